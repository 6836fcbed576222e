//! Property definitions per object type, served by the properties endpoint.
//!
//! Each object has HubSpot's standard properties that `hubspot-sync` reads plus a few custom
//! properties (`hubspotDefined: false`), which clients can only discover through this endpoint.

use super::ObjectKind;

/// One property definition (a subset of HubSpot's `Property` model).
#[derive(Debug)]
pub struct PropDef {
    pub name: &'static str,
    pub label: &'static str,
    /// HubSpot `type`: string, number, datetime, date, enumeration, bool, phone_number.
    pub ptype: &'static str,
    /// HubSpot `fieldType`: text, number, date, select, booleancheckbox, phonenumber, calculation_equation.
    pub field_type: &'static str,
    pub group: &'static str,
    pub description: &'static str,
    /// (label, value) pairs for enumerations.
    pub options: &'static [(&'static str, &'static str)],
    pub custom: bool,
    pub read_only: bool,
}

const fn p(
    name: &'static str,
    label: &'static str,
    ptype: &'static str,
    field_type: &'static str,
    group: &'static str,
) -> PropDef {
    PropDef { name, label, ptype, field_type, group, description: "", options: &[], custom: false, read_only: false }
}

const fn ro(mut d: PropDef) -> PropDef {
    d.read_only = true;
    d
}

const fn opts(mut d: PropDef, options: &'static [(&'static str, &'static str)]) -> PropDef {
    d.options = options;
    d
}

const fn custom(mut d: PropDef, description: &'static str) -> PropDef {
    d.custom = true;
    d.description = description;
    d
}

pub const LIFECYCLE: &[(&str, &str)] = &[
    ("Subscriber", "subscriber"),
    ("Lead", "lead"),
    ("Marketing Qualified Lead", "marketingqualifiedlead"),
    ("Sales Qualified Lead", "salesqualifiedlead"),
    ("Opportunity", "opportunity"),
    ("Customer", "customer"),
    ("Evangelist", "evangelist"),
    ("Other", "other"),
];
pub const LEAD_STATUS: &[(&str, &str)] = &[
    ("New", "NEW"),
    ("Open", "OPEN"),
    ("In Progress", "IN_PROGRESS"),
    ("Open Deal", "OPEN_DEAL"),
    ("Unqualified", "UNQUALIFIED"),
    ("Attempted to Contact", "ATTEMPTED_TO_CONTACT"),
    ("Connected", "CONNECTED"),
    ("Bad Timing", "BAD_TIMING"),
];
pub const DEAL_STAGES: &[(&str, &str)] = &[
    ("Appointment Scheduled", "appointmentscheduled"),
    ("Qualified To Buy", "qualifiedtobuy"),
    ("Presentation Scheduled", "presentationscheduled"),
    ("Decision Maker Bought-In", "decisionmakerboughtin"),
    ("Contract Sent", "contractsent"),
    ("Closed Won", "closedwon"),
    ("Closed Lost", "closedlost"),
    ("Renewal: Upcoming", "1034567"),
    ("Renewal: Won", "1034568"),
    ("Renewal: Lost", "1034569"),
];
pub const PIPELINES: &[(&str, &str)] = &[("Sales Pipeline", "default"), ("Renewals", "75e28846")];
pub const DISPOSITIONS: &[(&str, &str)] = &[
    ("Busy", "9d9162e7-6cf3-4944-bf63-4dff82258764"),
    ("Connected", "f240bbac-87c9-4f6e-bf70-924b57d47db7"),
    ("Left live message", "a4c4c377-d246-4b32-a13b-75a56a4cd0ff"),
    ("Left voicemail", "b2cf5968-551e-4856-9783-52b3da59a7d0"),
    ("No answer", "73a0d17f-1163-4015-bdd5-ec830791da20"),
    ("Wrong number", "17b47fee-58de-441e-a44c-c6300d46f273"),
];
pub const CALL_STATUS: &[(&str, &str)] = &[
    ("Busy", "BUSY"),
    ("Calling CRM user", "CALLING_CRM_USER"),
    ("Canceled", "CANCELED"),
    ("Completed", "COMPLETED"),
    ("Connecting", "CONNECTING"),
    ("Failed", "FAILED"),
    ("In progress", "IN_PROGRESS"),
    ("No answer", "NO_ANSWER"),
    ("Queued", "QUEUED"),
    ("Ringing", "RINGING"),
];
pub const DIRECTIONS: &[(&str, &str)] = &[("Inbound", "INBOUND"), ("Outbound", "OUTBOUND")];
pub const BOOL: &[(&str, &str)] = &[("True", "true"), ("False", "false")];
pub const TIERS: &[(&str, &str)] = &[("Bronze", "bronze"), ("Silver", "silver"), ("Gold", "gold")];
pub const RENEWAL: &[(&str, &str)] = &[("Auto-renew", "auto"), ("Manual", "manual"), ("None", "none")];

static CONTACTS: &[PropDef] = &[
    p("email", "Email", "string", "text", "contactinformation"),
    p("firstname", "First Name", "string", "text", "contactinformation"),
    p("lastname", "Last Name", "string", "text", "contactinformation"),
    p("phone", "Phone Number", "string", "phonenumber", "contactinformation"),
    p("hubspot_owner_id", "Contact owner", "enumeration", "select", "sales_properties"),
    opts(p("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation"), LIFECYCLE),
    opts(p("hs_lead_status", "Lead Status", "enumeration", "radio", "sales_properties"), LEAD_STATUS),
    ro(p("createdate", "Create Date", "datetime", "date", "contactinformation")),
    ro(p("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation")),
    ro(p("hs_lastmodifieddate", "Object last modified date/time", "datetime", "date", "contactinformation")),
    ro(p("hs_object_id", "Record ID", "number", "number", "contactinformation")),
    ro(p("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox", "contactinformation")),
    opts(
        custom(
            p("membership_tier", "Membership tier", "enumeration", "select", "contactinformation"),
            "Coaching membership tier",
        ),
        TIERS,
    ),
    custom(p("signup_source", "Signup source", "string", "text", "contactinformation"), "Where the contact signed up"),
    custom(p("nps_score", "NPS score", "number", "number", "contactinformation"), "Latest NPS answer, 0-10"),
];

static DEALS: &[PropDef] = &[
    p("dealname", "Deal Name", "string", "text", "dealinformation"),
    p("amount", "Amount", "number", "number", "dealinformation"),
    opts(p("dealstage", "Deal Stage", "enumeration", "radio", "dealinformation"), DEAL_STAGES),
    opts(p("pipeline", "Pipeline", "enumeration", "select", "dealinformation"), PIPELINES),
    p("closedate", "Close Date", "datetime", "date", "dealinformation"),
    p("hubspot_owner_id", "Deal owner", "enumeration", "select", "dealinformation"),
    opts(ro(p("hs_is_closed", "Is Deal Closed?", "bool", "calculation_equation", "dealinformation")), BOOL),
    opts(ro(p("hs_is_closed_won", "Is Closed Won", "bool", "calculation_equation", "dealinformation")), BOOL),
    ro(p("createdate", "Create Date", "datetime", "date", "dealinformation")),
    ro(p("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "dealinformation")),
    ro(p("hs_object_id", "Record ID", "number", "number", "dealinformation")),
    ro(p("hs_merged_object_ids", "Merged Deal IDs", "enumeration", "checkbox", "dealinformation")),
    custom(
        p("contract_length_months", "Contract length (months)", "number", "number", "dealinformation"),
        "Length of the coaching contract",
    ),
    opts(
        custom(
            p("renewal_type", "Renewal type", "enumeration", "select", "dealinformation"),
            "How the contract renews",
        ),
        RENEWAL,
    ),
];

static CALLS: &[PropDef] = &[
    p("hs_timestamp", "Activity date", "datetime", "date", "engagement"),
    p("hs_call_title", "Call Title", "string", "text", "call"),
    p("hs_call_body", "Call notes", "string", "html", "call"),
    opts(p("hs_call_direction", "Call direction", "enumeration", "select", "call"), DIRECTIONS),
    opts(p("hs_call_disposition", "Call outcome", "enumeration", "select", "call"), DISPOSITIONS),
    opts(p("hs_call_status", "Call status", "enumeration", "select", "call"), CALL_STATUS),
    p("hs_call_duration", "Call duration", "number", "number", "call"),
    p("hubspot_owner_id", "Activity assigned to", "enumeration", "select", "engagement"),
    ro(p("hs_createdate", "Create date", "datetime", "date", "engagement")),
    ro(p("hs_lastmodifieddate", "Last modified date", "datetime", "date", "engagement")),
    ro(p("hs_object_id", "Record ID", "number", "number", "engagement")),
    custom(
        p("call_quality_score", "Call quality score", "number", "number", "call"),
        "Coach-assigned quality score, 1-5",
    ),
    opts(
        custom(
            p("follow_up_required", "Follow-up required", "bool", "booleancheckbox", "call"),
            "Whether the coach must call back",
        ),
        BOOL,
    ),
];

pub fn schema(kind: ObjectKind) -> &'static [PropDef] {
    match kind {
        ObjectKind::Contacts => CONTACTS,
        ObjectKind::Deals => DEALS,
        ObjectKind::Calls => CALLS,
    }
}

/// The HubSpot JSON for one property definition.
pub fn to_json(d: &PropDef, order: usize) -> serde_json::Value {
    let options: Vec<serde_json::Value> = d
        .options
        .iter()
        .enumerate()
        .map(|(i, (label, value))| {
            serde_json::json!({"label": label, "value": value, "displayOrder": i, "hidden": false})
        })
        .collect();
    let stamp = if d.custom { "2024-03-05T10:15:00.000Z" } else { "2019-08-06T02:41:08.163Z" };
    serde_json::json!({
        "name": d.name,
        "label": d.label,
        "type": d.ptype,
        "fieldType": d.field_type,
        "description": d.description,
        "groupName": d.group,
        "options": options,
        "displayOrder": if d.custom { -1 } else { order as i64 },
        "calculated": d.field_type == "calculation_equation",
        "externalOptions": false,
        "hasUniqueValue": false,
        "hidden": false,
        "hubspotDefined": !d.custom,
        "formField": !d.read_only,
        "modificationMetadata": {
            "archivable": d.custom,
            "readOnlyDefinition": !d.custom,
            "readOnlyValue": d.read_only,
        },
        "createdAt": stamp,
        "updatedAt": stamp,
        "archived": false,
        "dataSensitivity": "non_sensitive",
    })
}
