use super::*;

const EXAMPLE: &str = r#"
[contacts.columns]                     # typed columns generated from `properties`
job_title = { property = "jobtitle", type = "text" }
score     = { property = "lead_score", type = "integer", index = true }
tags      = { property = "interests", type = "text[]" }

[contacts.properties]
exclude = ["hs_analytics_*"]

[deals.filter]
pipelines = ["default"]
owners = ["12345"]
"#;

fn problems(text: &str) -> Vec<Problem> {
    match CopyConfig::parse(text, None) {
        Err(CopyConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn the_documented_example_parses() {
    let config = CopyConfig::parse(EXAMPLE, None).unwrap();
    let contacts = config.object(ObjectKind::Contacts);
    let names: Vec<_> = contacts.columns.iter().map(|c| (c.column.as_str(), c.column_type, c.index, c.line)).collect();
    assert_eq!(
        names,
        [
            ("job_title", ColumnType::Text, false, 3),
            ("score", ColumnType::Integer, true, 4),
            ("tags", ColumnType::TextArray, false, 5)
        ]
    );
    assert!(!contacts.properties.keeps("hs_analytics_source"));
    assert!(contacts.properties.keeps("email"));
    let deals = config.object(ObjectKind::Deals);
    assert_eq!(deals.filter.pipelines, ["default"]);
    assert_eq!(deals.filter.owners, ["12345"]);
    assert!(config.has_filters());
    assert_eq!(config.object(ObjectKind::Calls), ObjectConfig::default());
}

#[test]
fn problems_name_their_line() {
    let text = "[contacts.columns]\nok = { property = \"a\", type = \"text\" }\nbad = { property = \"b\", type = \"int\" }\nEmail = { property = \"c\", type = \"text\" }\nemail = { property = \"c\", type = \"text\" }\n";
    let found = problems(text);
    assert_eq!(found.iter().map(|p| p.line).collect::<Vec<_>>(), [3, 4, 5], "{found:?}");
    assert!(found[0].message.contains("unknown type \"int\""), "{found:?}");
    assert!(found[1].message.contains("lower-case"), "{found:?}");
    assert!(found[2].message.contains("already has a column"), "{found:?}");
}

#[test]
fn syntax_and_unknown_sections_name_their_line() {
    let found = problems("[contacts.columns]\nx = { property = \"a\", type = \"text\" }\n\n[companies]\ny = 1\n");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 4, "{found:?}");
    let found = problems("[contacts.columns]\nx = { property = \"a\" type = \"text\" }\n");
    assert_eq!(found[0].line, 2, "{found:?}");
    let found = problems("[deals.columns]\nx = { property = \"a\", type = \"text\", indexed = true }\n");
    assert_eq!(found[0].line, 2, "{found:?}");
}

#[test]
fn include_and_exclude_together_or_bad_globs_are_refused() {
    let found = problems("[calls.properties]\ninclude = [\"a*\"]\nexclude = [\"b\"]\n");
    assert_eq!(found[0].line, 1, "{found:?}");
    let found = problems("[calls.properties]\ninclude = [\n  \"ok_*\",\n  \"bad'\",\n]\n");
    assert_eq!(found[0].line, 4, "{found:?}");
    let found = problems("[contacts.filter]\npipelines = [\"default\"]\n");
    assert!(found[0].message.contains("deals only"), "{found:?}");
}

#[test]
fn globs_match_names() {
    let g = |p: &str| Glob::new(p).unwrap();
    assert!(g("hs_analytics_*").matches("hs_analytics_source"));
    assert!(!g("hs_analytics_*").matches("hs_analytic"));
    assert!(g("*_at").matches("portal_custom_field_002_at"));
    assert!(g("a?c").matches("abc"));
    assert!(!g("a?c").matches("ac"));
    assert!(g("*a*b*").matches("xxaxxbxx"));
    assert!(!g("*a*b").matches("xxaxxbxx"));
    assert!(g("*").matches(""));
    assert!(Glob::new("").is_err());
}

#[test]
fn types_hold_their_hubspot_types() {
    assert!(ColumnType::Integer.holds("number", "number"));
    assert!(!ColumnType::Integer.holds("enumeration", "select"), "integer for a string enumeration");
    assert!(ColumnType::Text.holds("enumeration", "select"));
    assert!(ColumnType::TextArray.holds("enumeration", "checkbox"));
    assert!(ColumnType::Boolean.holds("bool", "booleancheckbox"));
    assert!(!ColumnType::Boolean.holds("string", "text"));
    assert!(ColumnType::Date.holds("datetime", "date"));
    for t in ColumnType::ALL {
        assert_eq!(t.as_str().parse::<ColumnType>(), Ok(t));
    }
}

#[test]
fn mappings_are_checked_against_hubspot_properties() {
    let config = CopyConfig::parse(EXAMPLE, None).unwrap();
    let known = |name: &str, t: &str, f: &str| KnownProperty {
        name: name.into(),
        hubspot_type: t.into(),
        field_type: f.into(),
        custom: true,
    };
    let found = config.check_properties(
        ObjectKind::Contacts,
        &[known("jobtitle", "string", "text"), known("lead_score", "enumeration", "select")],
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].line, 4);
    assert!(found[0].message.contains("cannot hold"), "{found:?}");
    assert_eq!(found[1].line, 5);
    assert!(found[1].message.contains("no contacts property \"interests\""), "{found:?}");
    assert!(config.check_properties(ObjectKind::Calls, &[]).is_empty());
}

#[test]
fn filters_say_why_a_record_is_outside() {
    let config = CopyConfig::parse(EXAMPLE, None).unwrap();
    let filter = config.object(ObjectKind::Deals).filter;
    let props = |pipeline: Option<&'static str>, owner: Option<&'static str>| {
        move |name: &str| match name {
            "pipeline" => pipeline,
            "hubspot_owner_id" => owner,
            _ => None,
        }
    };
    assert_eq!(filter.excludes(props(Some("default"), Some("12345"))), None);
    assert_eq!(
        filter.excludes(props(Some("75e28846"), Some("12345"))).as_deref(),
        Some("pipeline 75e28846 is not in the filter")
    );
    assert_eq!(
        filter.excludes(props(Some("default"), None)).as_deref(),
        Some("hubspot_owner_id (none) is not in the filter")
    );
    assert!(config.unsupported().is_empty());
    assert_eq!(config.filters().len(), 1);
    assert!(config.asks_for(ObjectKind::Deals, "pipeline"));
}
