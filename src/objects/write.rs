//! Writing HubSpot records of one kind to their table, in multi-row upserts.

use std::borrow::Cow;

use diesel_async::AsyncPgConnection;

use super::{ObjectKind, call, contact, deal, owner};
use crate::config::file::{FILTERED_KEY, LiveFilters};
use crate::hubspot::Record;
use crate::store::{StoreError, calls, contacts, deals, staff};

/// What a write needs besides the records.
#[derive(Clone, Debug)]
pub struct WriteContext {
    /// `OWNER_ROLE`: the role new owners get in `staff`.
    pub owner_role: String,
    /// When the reads that returned the records started (database clock), if the writer knows:
    /// a live record then revives a row archived before it, whatever its `updatedAt` (HubSpot
    /// may restore a record without moving it; `store::records::revived`).
    pub read_since: Option<chrono::DateTime<chrono::Utc>>,
    /// `HUBSPOT_SYNC_CONFIG`'s filters: a record outside its object's filter is written archived,
    /// stripped of every property but the filter's own, with the reason under
    /// `properties->>'_hubspot_sync_filtered'` (a newer version inside the
    /// filter makes it live again, by the usual newest-wins rule).
    /// Shared: a reload of the file changes them for every writer at once.
    pub filters: LiveFilters,
}

impl Default for WriteContext {
    fn default() -> Self {
        Self { owner_role: "coach".to_owned(), read_since: None, filters: LiveFilters::default() }
    }
}

/// `records` with those outside `kind`'s filter marked archived with the reason and stripped of
/// every property but the ones the filter judged them by and the owner (so the copy holds nothing
/// of a record it was not asked to keep: no name, e-mail or amount); which ones (by position).
fn apply_filter<'a>(kind: ObjectKind, records: &'a [Record], ctx: &WriteContext) -> (Cow<'a, [Record]>, Vec<bool>) {
    let Some(filter) = ctx.filters.get(kind) else { return (Cow::Borrowed(records), vec![false; records.len()]) };
    let mut filtered = Vec::with_capacity(records.len());
    let marked = records
        .iter()
        .map(|r| match filter.excludes(|name| r.prop(name)) {
            None => {
                filtered.push(false);
                r.clone()
            }
            Some(reason) => {
                filtered.push(true);
                let mut out = r.clone();
                out.archived = true;
                // Nothing the copy was not asked for: only what the filter judged the record by,
                // and the owner (kept, so leaving the filter is never taken for an owner change
                // by the owner-change hooks).
                let judged: Vec<&str> = filter.conditions().into_iter().map(|(name, _)| name).collect();
                out.properties.retain(|name, _| {
                    judged.contains(&name.as_str()) || name == "hs_object_id" || name == "hubspot_owner_id"
                });
                out.properties.insert(FILTERED_KEY.to_owned(), Some(reason));
                out
            }
        })
        .collect();
    (Cow::Owned(marked), filtered)
}

/// Maps records of one kind to rows and upserts them (last-modified wins, one multi-row
/// statement per <= 1000 rows). A record whose id differs from the one asked for (a merged-away
/// id answered by its survivor) is the caller's concern: this writes what it is given.
/// Returns the rows written (inserted or changed).
pub async fn write_records(
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    records: Vec<Record>,
    ctx: &WriteContext,
) -> Result<usize, StoreError> {
    Ok(write_slice(conn, kind, &records, ctx).await?.0)
}

/// [`write_records`] on borrowed records (mapping to rows copies what it needs), so a caller that
/// may retry them one by one keeps them without cloning every page. Returns the rows written
/// and how many records were outside the object's filter.
async fn write_slice(
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    records: &[Record],
    ctx: &WriteContext,
) -> Result<(usize, usize), StoreError> {
    if records.is_empty() {
        return Ok((0, 0));
    }
    let (rows, filtered) = map_rows(kind, records, ctx);
    Ok((write_rows(conn, kind, rows, ctx).await?, count(&filtered)))
}

/// A table's rows, mapped from records of its kind.
enum Rows {
    Contacts(Vec<contacts::ContactRow>),
    Deals(Vec<deals::DealRow>),
    Calls(Vec<calls::CallRow>),
    Owners(Vec<staff::StaffRow>),
}

impl Rows {
    fn append(&mut self, other: Rows) {
        match (self, other) {
            (Rows::Contacts(a), Rows::Contacts(b)) => a.extend(b),
            (Rows::Deals(a), Rows::Deals(b)) => a.extend(b),
            (Rows::Calls(a), Rows::Calls(b)) => a.extend(b),
            (Rows::Owners(a), Rows::Owners(b)) => a.extend(b),
            // Prepared batches are only merged within one kind (`Prepared::append`).
            _ => unreachable!("rows of two kinds merged"),
        }
    }

    /// Keeps the rows whose position is `true` in `keep`.
    fn retain(&mut self, keep: &[bool]) {
        match self {
            Rows::Contacts(rows) => retain_at(rows, keep),
            Rows::Deals(rows) => retain_at(rows, keep),
            Rows::Calls(rows) => retain_at(rows, keep),
            Rows::Owners(rows) => retain_at(rows, keep),
        }
    }
}

/// Keeps the items whose position is `true` in `keep` (as long as `items`).
fn retain_at<T>(items: &mut Vec<T>, keep: &[bool]) {
    let mut at = keep.iter();
    items.retain(|_| at.next().copied().unwrap_or(false));
}

fn count(flags: &[bool]) -> usize {
    flags.iter().filter(|f| **f).count()
}

/// `records` after `kind`'s filter ([`apply_filter`]), mapped to rows (one per record, in order);
/// which were filtered.
fn map_rows(kind: ObjectKind, records: &[Record], ctx: &WriteContext) -> (Rows, Vec<bool>) {
    let (records, filtered) = apply_filter(kind, records, ctx);
    let records = records.as_ref();
    let rows = match kind {
        ObjectKind::Contacts => Rows::Contacts(records.iter().map(contact::to_row).collect()),
        ObjectKind::Deals => Rows::Deals(records.iter().map(deal::to_row).collect()),
        ObjectKind::Calls => Rows::Calls(records.iter().map(call::to_row).collect()),
        ObjectKind::Owners => Rows::Owners(records.iter().map(owner::to_row).collect()),
    };
    (rows, filtered)
}

/// Upserts mapped rows; returns the rows written.
async fn write_rows(
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    rows: Rows,
    ctx: &WriteContext,
) -> Result<usize, StoreError> {
    let written = match rows {
        Rows::Contacts(rows) => contacts::upsert_read(conn, rows, ctx.read_since).await?,
        Rows::Deals(rows) => deals::upsert_read(conn, rows, ctx.read_since).await?,
        Rows::Calls(rows) => calls::upsert_read(conn, rows, ctx.read_since).await?,
        Rows::Owners(rows) => staff::upsert_batch(conn, &rows, &ctx.owner_role).await?,
    };
    metrics::counter!(crate::metric::OBJECTS_UPSERTED, "object" => kind.as_str()).increment(written as u64);
    Ok(written)
}

/// Records of one kind already mapped to rows ([`prepare`]), so the mapping (with decoding, the
/// client's main work per record) can run while the database writes the batch before.
pub struct Prepared {
    kind: ObjectKind,
    records: Vec<Record>,
    /// One per record, in the same order.
    rows: Rows,
    /// Whether each record was outside the filter.
    filtered: Vec<bool>,
}

impl Prepared {
    /// The records, as read (before the filter).
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Appends `other`, of the same kind, after these.
    pub fn append(&mut self, other: Prepared) {
        assert_eq!(self.kind, other.kind, "prepared records of two kinds merged");
        self.records.extend(other.records);
        self.rows.append(other.rows);
        self.filtered.extend(other.filtered);
    }

    /// Keeps only the records `keep` accepts, with their rows: a full pass maps a list page as it
    /// arrives and drops, when it writes it, what its plan gave to the searches meanwhile.
    pub fn retain(&mut self, keep: impl Fn(&Record) -> bool) {
        let kept: Vec<bool> = self.records.iter().map(keep).collect();
        if kept.iter().all(|k| *k) {
            return;
        }
        retain_at(&mut self.records, &kept);
        self.rows.retain(&kept);
        retain_at(&mut self.filtered, &kept);
    }
}

/// Maps `records` of `kind` to their rows with `ctx`'s filter, for [`write_prepared`].
pub fn prepare(kind: ObjectKind, records: Vec<Record>, ctx: &WriteContext) -> Prepared {
    let (rows, filtered) = map_rows(kind, &records, ctx);
    Prepared { kind, records, rows, filtered }
}

/// A record that could not be stored, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FailedRecord {
    pub id: String,
    pub reason: String,
}

/// The outcome of [`write_isolating`].
#[derive(Clone, Debug, Default)]
pub struct WriteReport {
    pub written: usize,
    pub failed: Vec<FailedRecord>,
    /// Records outside the object's filter (written archived).
    pub filtered: usize,
}

/// Like [`write_records`], but a failing statement does not lose the batch: the records are
/// then written one by one, so only those the database refuses are reported as failed.
pub async fn write_isolating(
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    records: Vec<Record>,
    ctx: &WriteContext,
) -> WriteReport {
    write_prepared(conn, prepare(kind, records, ctx), ctx).await
}

/// [`write_isolating`] of records mapped beforehand ([`prepare`], with the same `ctx`).
pub async fn write_prepared(conn: &mut AsyncPgConnection, prepared: Prepared, ctx: &WriteContext) -> WriteReport {
    let Prepared { kind, records, rows, filtered } = prepared;
    if records.is_empty() {
        return WriteReport::default();
    }
    match write_rows(conn, kind, rows, ctx).await {
        Ok(written) => WriteReport { written, failed: Vec::new(), filtered: count(&filtered) },
        Err(batch_error) => {
            tracing::warn!(object.kind = %kind, error = %batch_error, "batch write failed; writing records one by one");
            let mut report = WriteReport::default();
            for record in records {
                let id = record.id.clone();
                match write_slice(conn, kind, std::slice::from_ref(&record), ctx).await {
                    Ok((n, filtered)) => {
                        report.written += n;
                        report.filtered += filtered;
                    }
                    Err(e) => report.failed.push(FailedRecord { id, reason: e.to_string() }),
                }
            }
            report
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::RecordFilter;

    fn contact(id: u64, owner: &str) -> Record {
        Record {
            id: id.to_string(),
            properties: [("hubspot_owner_id".to_owned(), Some(owner.to_owned()))].into_iter().collect(),
            created_at: None,
            updated_at: chrono::Utc::now(),
            archived: false,
        }
    }

    fn row_ids(prepared: &Prepared) -> Vec<String> {
        match &prepared.rows {
            Rows::Contacts(rows) => rows.iter().map(|r| r.hubspot_contact_id.clone()).collect(),
            _ => unreachable!("contacts only"),
        }
    }

    /// A full pass maps a list page when it arrives and drops, when it writes it, the records its
    /// plan gave to the searches meanwhile: the rows, the records and the filter flags must stay
    /// one per record, or a row would be written for a record that was dropped (or lost).
    #[test]
    fn retaining_records_keeps_their_rows_and_filter_flags_in_step() {
        let filter = RecordFilter { pipelines: Vec::new(), owners: vec!["7".into()], line: 1 };
        let ctx = WriteContext {
            filters: LiveFilters::new([(ObjectKind::Contacts, filter)].into_iter().collect()),
            ..WriteContext::default()
        };
        let records: Vec<Record> = (1..=10).map(|id| contact(id, if id % 3 == 0 { "8" } else { "7" })).collect();
        let mut prepared = prepare(ObjectKind::Contacts, records, &ctx);
        assert_eq!(count(&prepared.filtered), 3, "ids 3, 6 and 9 are outside the filter");
        prepared.append(prepare(ObjectKind::Contacts, vec![contact(11, "8")], &ctx));

        prepared.retain(|r| r.id.parse::<u64>().unwrap() <= 6);
        let ids: Vec<String> = prepared.records().iter().map(|r| r.id.clone()).collect();
        assert_eq!(ids, ["1", "2", "3", "4", "5", "6"]);
        assert_eq!(row_ids(&prepared), ids, "one row per kept record, in order");
        assert_eq!(count(&prepared.filtered), 2, "the dropped ones' filter flags go with them");
        let Rows::Contacts(rows) = &prepared.rows else { unreachable!() };
        assert!(rows[2].archived && !rows[3].archived, "the filtered row is still the filtered record's");

        prepared.retain(|_| false);
        assert!(prepared.records().is_empty() && row_ids(&prepared).is_empty() && prepared.filtered.is_empty());
    }
}
