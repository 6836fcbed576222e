//! Values and answers real portals produce that a kind simulator would not:
//!
//! - **Planted values** (`POST /_sim/plant`): set any properties of a record to raw text of your
//!   choosing, NUL characters (`\u0000`) and impossible dates (`"0000-00-00"`, `"-10000-01-01"`,
//!   `"300000-01-01"`) included. The record's `updatedAt` moves and, with webhooks configured, a
//!   `propertyChange` event is delivered per property, as HubSpot does for an edit.
//! - **Per-id batch errors** (`POST /_sim/batch_errors`): batch reads answer the named ids with a
//!   207 whose `errors` hold a `StandardError` (`status`, `category`, `message`,
//!   `context.ids`, `errors`, `links`) instead of the record, until cleared
//!   (`DELETE /_sim/batch_errors`, or the same ids with `"clear": true`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::data::ObjectKind;
use crate::data::churn::Change;

/// Body of `POST /_sim/plant`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct PlantRequest {
    /// `contacts`, `deals` or `calls`.
    pub object: String,
    /// The record's id (a live record).
    pub id: String,
    /// Property name -> raw value (`null` clears it). Names must exist in the object's schema or
    /// have been created at run time.
    pub properties: BTreeMap<String, Option<String>>,
}

/// Body of `POST /_sim/batch_errors`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct BatchErrorRequest {
    pub object: String,
    pub ids: Vec<String>,
    /// HubSpot's error category; default `VALIDATION_ERROR`.
    pub category: Option<String>,
    pub message: Option<String>,
    /// Stop answering these ids with an error.
    pub clear: bool,
}

/// A planted per-id error: (category, message).
pub type PlantedError = (String, String);

/// Ids batch reads answer with an error, per object.
#[derive(Debug, Default)]
pub struct BatchErrors {
    ids: Mutex<HashMap<ObjectKind, HashMap<String, PlantedError>>>,
}

impl BatchErrors {
    pub fn set(&self, req: &BatchErrorRequest) -> Result<usize, String> {
        let kind = ObjectKind::parse(&req.object)
            .ok_or_else(|| format!("unknown object {:?}: use contacts, deals or calls", req.object))?;
        let mut all = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let ids = all.entry(kind).or_default();
        for id in &req.ids {
            if req.clear {
                ids.remove(id.trim());
            } else {
                let category = req.category.clone().unwrap_or_else(|| "VALIDATION_ERROR".to_owned());
                let message = req.message.clone().unwrap_or_else(|| {
                    format!("Unable to read {} {}: the object could not be loaded.", kind.upper(), id.trim())
                });
                ids.insert(id.trim().to_owned(), (category, message));
            }
        }
        Ok(all.values().map(HashMap::len).sum())
    }

    pub fn clear_all(&self) {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// The error for an asked id, if one is planted.
    pub fn get(&self, kind: ObjectKind, id: &str) -> Option<(String, String)> {
        self.ids.lock().unwrap_or_else(PoisonError::into_inner).get(&kind)?.get(id.trim()).cloned()
    }
}

/// The `StandardError` entries of a 207 for the errored ids, one per (category, message).
pub fn error_entries(errored: &[(String, (String, String))]) -> Vec<serde_json::Value> {
    let mut grouped: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (id, key) in errored {
        grouped.entry(key.clone()).or_default().push(id.clone());
    }
    grouped
        .into_iter()
        .map(|((category, message), ids)| {
            serde_json::json!({
                "status": "error",
                "category": category,
                "message": message,
                "context": {"ids": ids},
                "errors": [],
                "links": {},
            })
        })
        .collect()
}

/// Applies a plant request to the CRM; returns the changes (for webhooks).
pub fn plant(crm: &mut crate::data::Crm, req: &PlantRequest, clock_ms: i64) -> Result<Vec<Change>, String> {
    let kind = ObjectKind::parse(&req.object)
        .ok_or_else(|| format!("unknown object {:?}: use contacts, deals or calls", req.object))?;
    let id: u64 = req.id.trim().parse().map_err(|_| format!("invalid id {:?}", req.id))?;
    let mut slots = Vec::new();
    for (name, value) in &req.properties {
        // The schema's properties and those created at run time (`--extra-properties`, `/_sim/properties`).
        let store = crm.store(kind);
        let idx = store.prop_index(name).ok_or_else(|| format!("unknown {} property {name:?}", kind.name()))?;
        if kind.derived(name).is_some() {
            return Err(format!("{name} is computed from the record; it cannot be planted"));
        }
        let def = store.prop_def(idx).ok_or_else(|| format!("unknown {} property {name:?}", kind.name()))?;
        slots.push((idx, def.name, value.clone()));
    }
    if !crm.store(kind).live.contains(&id) {
        return Err(format!("no live {} with id {id}", kind.name()));
    }
    let ts = crm.now(clock_ms);
    crm.store_mut(kind).modify(id, ts, |rec| {
        for (idx, _, value) in &slots {
            if rec.values.len() <= *idx {
                rec.values.resize(*idx + 1, None);
            }
            rec.set_raw(*idx, value.as_deref());
        }
    });
    Ok(slots
        .into_iter()
        .map(|(_, name, value)| Change::PropertyChanged { id, name, value: value.unwrap_or_default(), bulk: false })
        .collect())
}
