//! Hand-written, allocation-light JSON for records: the hot path of list, batch read and search.

use super::{Derived, ObjectStore, Record, iso};
use std::fmt::Write as _;

/// Encodes a raw string as a JSON string literal (with quotes).
pub fn lit(raw: &str) -> Box<str> {
    let mut s = String::with_capacity(raw.len() + 2);
    push_str_lit(&mut s, raw);
    s.into_boxed_str()
}

/// Appends `raw` as a JSON string literal.
pub fn push_str_lit(out: &mut String, raw: &str) {
    out.push('"');
    for c in raw.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Which properties a response carries, resolved once per request.
#[derive(Debug, Clone)]
pub struct PropSel {
    /// (name, source) in output order.
    pub props: Vec<(&'static str, Source)>,
    /// Properties whose history is requested.
    pub history: Vec<(&'static str, Source)>,
}

#[derive(Debug, Clone, Copy)]
pub enum Source {
    Derived(Derived),
    Stored(usize),
}

impl PropSel {
    /// Resolves requested names against the object's properties (its schema and those created
    /// at run time); unknown names are ignored (as HubSpot does). An empty request means the
    /// object's default properties.
    pub fn new(store: &ObjectStore, requested: &[String], history: &[String]) -> Self {
        let kind = store.kind;
        let resolve = |names: &mut dyn Iterator<Item = &str>| {
            let mut out: Vec<(&'static str, Source)> = Vec::new();
            for n in names {
                let n = n.trim();
                if out.iter().any(|(k, _)| *k == n) {
                    continue;
                }
                if let Some((i, def)) = store.prop_index(n).and_then(|i| Some((i, store.prop_def(i)?))) {
                    let src = match kind.derived(def.name) {
                        Some(d) => Source::Derived(d),
                        None => Source::Stored(i),
                    };
                    out.push((def.name, src));
                }
            }
            out
        };
        let props = if requested.iter().all(|s| s.trim().is_empty()) {
            resolve(&mut kind.default_props().iter().copied())
        } else {
            resolve(&mut requested.iter().map(String::as_str))
        };
        let history = resolve(&mut history.iter().map(String::as_str));
        PropSel { props, history }
    }

    /// Every property of the object (for the export).
    pub fn all(store: &ObjectStore) -> Self {
        let names: Vec<String> = store.props().map(|d| d.name.to_string()).collect();
        Self::new(store, &names, &[])
    }
}

fn push_value(out: &mut String, rec: &Record, src: Source) {
    match src {
        Source::Derived(Derived::Id) => {
            let _ = write!(out, "\"{}\"", rec.id);
        }
        Source::Derived(Derived::Created) => {
            let _ = write!(out, "\"{}\"", iso(rec.created_ms));
        }
        Source::Derived(Derived::Updated) => {
            let _ = write!(out, "\"{}\"", iso(rec.updated_ms));
        }
        Source::Stored(i) => match rec.values.get(i).and_then(|v| v.as_deref()) {
            Some(l) => out.push_str(l),
            None => out.push_str("null"),
        },
    }
}

/// Appends one `SimplePublicObject`. Requested properties without a value are `null`.
pub fn push_record(out: &mut String, rec: &Record, sel: &PropSel) {
    let _ = write!(out, "{{\"id\":\"{}\",\"properties\":{{", rec.id);
    for (n, (name, src)) in sel.props.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        push_value(out, rec, *src);
    }
    out.push('}');
    if !sel.history.is_empty() {
        out.push_str(",\"propertiesWithHistory\":{");
        let mut first = true;
        for (name, src) in &sel.history {
            let mut v = String::new();
            push_value(&mut v, rec, *src);
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(name);
            out.push_str("\":[");
            if v != "null" {
                let _ = write!(
                    out,
                    "{{\"value\":{v},\"timestamp\":\"{}\",\"sourceType\":\"CRM_UI\",\"sourceId\":\"userId:1000001\"}}",
                    iso(rec.updated_ms)
                );
            }
            out.push(']');
        }
        out.push('}');
    }
    let _ = write!(
        out,
        ",\"createdAt\":\"{}\",\"updatedAt\":\"{}\",\"archived\":{}",
        iso(rec.created_ms),
        iso(rec.updated_ms),
        rec.archived_ms.is_some() || rec.merged_into.is_some()
    );
    if let Some(a) = rec.archived_ms {
        let _ = write!(out, ",\"archivedAt\":\"{}\"", iso(a));
    }
    out.push('}');
}

/// The export line: every property, plus `archivedAt` / `mergedInto` when set.
pub fn export_line(out: &mut String, rec: &Record, all: &PropSel) {
    push_record(out, rec, all);
    out.pop();
    if let Some(m) = rec.merged_into {
        let _ = write!(out, ",\"mergedInto\":\"{m}\"");
    }
    out.push_str("}\n");
}
