//! The CRM calls: list pages, batch reads, searches, owners and property definitions.
//!
//! No request can fail with 414: property lists travel in POST bodies (batch read, search); a
//! list page names its properties in the query string only while that stays short, and
//! otherwise lists ids alone and batch-reads them with every property in the body. A search
//! body over HubSpot's 3000-character limit does the same.

use std::collections::HashSet;

use super::HubSpot;
use super::error::HubSpotError;
use super::limiter::Lane;
use super::record::{InvalidRecord, Record, decode_all, decode_object, decode_owner};
use super::transport::Call;
use super::wire::{
    BatchReadRequest, BatchResponse, Filter, FilterGroup, IdInput, Page, PropertiesResponse, SearchRequest, SearchSort,
};
use crate::config::CopyConfig;
use crate::config::file::{KnownProperty, Problem};
use crate::kind::ObjectKind;

/// Ids per batch read (HubSpot's maximum).
pub const BATCH_READ_MAX: usize = 100;
/// Records per list page (HubSpot's maximum).
pub const LIST_LIMIT: u32 = 100;
/// Records per search page (HubSpot's maximum).
pub const SEARCH_LIMIT: u32 = 200;

/// The answer of a batch read.
#[derive(Clone, Debug, Default)]
pub struct BatchRead {
    /// Records found. A merged-away id may come back as its survivor, under another id.
    pub records: Vec<Record>,
    /// Requested ids HubSpot says do not exist (deleted, or never existed).
    pub not_found: Vec<String>,
    /// Records HubSpot returned that could not be decoded, and other per-id errors.
    pub invalid: Vec<InvalidRecord>,
}

/// One page of a list or search.
#[derive(Clone, Debug, Default)]
pub struct RecordPage {
    pub records: Vec<Record>,
    pub invalid: Vec<InvalidRecord>,
    /// Cursor of the next page (list: HubSpot's `after`; search: the last id seen), if any.
    pub next: Option<String>,
    /// Search only: records matching the whole query.
    pub total: Option<u64>,
}

/// A window of last-modified times, walked in `hs_object_id` order (see the poller).
#[derive(Clone, Debug)]
pub struct SearchWindow {
    pub from_ms: i64,
    pub to_ms: i64,
    /// Only ids above this one.
    pub after_id: Option<String>,
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, HubSpotError> {
    serde_json::to_vec(value).map_err(|e| HubSpotError::Config(format!("cannot encode a request: {e}")))
}

fn decode<'a, T: serde::Deserialize<'a>>(raw: &'a [u8], what: &'static str) -> Result<T, HubSpotError> {
    serde_json::from_slice(raw).map_err(|source| HubSpotError::Decode { what, source })
}

/// The length of `properties=a%2Cb...` once encoded (names are `[a-z0-9_]`).
fn query_len(properties: &[String]) -> usize {
    properties.iter().map(String::len).sum::<usize>() + 3 * properties.len().saturating_sub(1)
}

impl HubSpot {
    /// Every property name of an object type (custom ones included), discovered on first use and
    /// again once older than `ClientOptions::properties_refresh`, unless the options fix the list.
    /// When a re-read fails, the last list is used.
    pub async fn properties(&self, kind: ObjectKind) -> Result<std::sync::Arc<Vec<String>>, HubSpotError> {
        if let Some(list) = self.inner.properties.get(kind, self.inner.options.properties_refresh) {
            return Ok(list);
        }
        match (self.discover_properties(kind).await, self.inner.properties.last(kind)) {
            (Ok(list), _) => Ok(list),
            (Err(e), Some(last)) => {
                tracing::warn!(object.kind = %kind, error = %e, "cannot re-read the HubSpot property list; using the last one");
                Ok(last)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Reads the property list now (a full pass does at its start, so properties created since
    /// the last read are fetched), unless the options fix it; returns how many names it has.
    pub async fn refresh_properties(&self, kind: ObjectKind) -> Result<usize, HubSpotError> {
        if kind == ObjectKind::Owners || self.inner.properties.fixed(kind) {
            return Ok(0);
        }
        Ok(self.discover_properties(kind).await?.len())
    }

    async fn discover_properties(&self, kind: ObjectKind) -> Result<std::sync::Arc<Vec<String>>, HubSpotError> {
        let url = self.inner.paths.properties(kind);
        let endpoint = format!("{kind}.properties");
        let raw = self.send(Call::get(&url, &[], Lane::Background, &endpoint)).await?;
        let response: PropertiesResponse = decode(&raw, "property list")?;
        let copy = self.copy_config();
        let mut names: Vec<String> = response
            .results
            .into_iter()
            .filter(|p| !p.archived && !p.name.is_empty() && copy.asks_for(kind, &p.name))
            .map(|p| p.name)
            .collect();
        names.sort();
        names.dedup();
        let known = self.inner.properties.last(kind).map_or(0, |l| l.len());
        if known != names.len() {
            tracing::info!(object.kind = %kind, properties = names.len(), before = known, "discovered HubSpot properties");
        }
        Ok(self.inner.properties.put(kind, names, true))
    }

    /// Every live property of `kind` with its HubSpot type, read now (not cached): what
    /// `HUBSPOT_SYNC_CONFIG` is checked against and `config suggest` starts from.
    pub async fn property_definitions(&self, kind: ObjectKind) -> Result<Vec<KnownProperty>, HubSpotError> {
        let url = self.inner.paths.properties(kind);
        let endpoint = format!("{kind}.properties");
        let raw = self.send(Call::get(&url, &[], Lane::Background, &endpoint)).await?;
        let response: PropertiesResponse = decode(&raw, "property list")?;
        let mut known: Vec<KnownProperty> = response
            .results
            .into_iter()
            .filter(|p| !p.archived && !p.name.is_empty())
            .map(|p| KnownProperty {
                custom: p.hubspot_defined != Some(true),
                name: p.name,
                hubspot_type: p.property_type,
                field_type: p.field_type,
            })
            .collect();
        known.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(known)
    }

    /// `config`'s mappings checked against HubSpot's property lists (read now), by line.
    pub async fn check_config(&self, config: &CopyConfig) -> Result<Vec<Problem>, HubSpotError> {
        let mut problems = Vec::new();
        for (kind, object) in &config.objects {
            if object.columns.is_empty() {
                continue;
            }
            let known = self.property_definitions(*kind).await?;
            problems.extend(config.check_properties(*kind, &known));
        }
        problems.sort_by_key(|p| p.line);
        Ok(problems)
    }

    /// Batch read by id, every discovered property; split into calls of at most 100 ids.
    pub async fn batch_read(&self, kind: ObjectKind, ids: &[String], lane: Lane) -> Result<BatchRead, HubSpotError> {
        if kind == ObjectKind::Owners {
            return self.read_owners(ids, lane).await;
        }
        self.batch_read_in(kind, ids, false, lane).await
    }

    /// [`HubSpot::batch_read`] of live records whose first call uses the budget slot the caller
    /// took with [`HubSpot::reserve`] (the webhook fetchers do this).
    pub async fn batch_read_reserved(
        &self,
        kind: ObjectKind,
        ids: &[String],
        lane: Lane,
    ) -> Result<BatchRead, HubSpotError> {
        if kind == ObjectKind::Owners {
            return self.read_owners(ids, lane).await;
        }
        self.batch_read_paid(kind, ids, false, lane, true).await
    }

    /// Batch read of live (`archived = false`) or archived records.
    pub async fn batch_read_in(
        &self,
        kind: ObjectKind,
        ids: &[String],
        archived: bool,
        lane: Lane,
    ) -> Result<BatchRead, HubSpotError> {
        self.batch_read_paid(kind, ids, archived, lane, false).await
    }

    async fn batch_read_paid(
        &self,
        kind: ObjectKind,
        ids: &[String],
        archived: bool,
        lane: Lane,
        prepaid: bool,
    ) -> Result<BatchRead, HubSpotError> {
        let properties = self.properties(kind).await?;
        let mut out = BatchRead::default();
        let mut unique: Vec<&String> = Vec::with_capacity(ids.len());
        let mut seen = HashSet::with_capacity(ids.len());
        unique.extend(ids.iter().filter(|id| seen.insert(id.as_str())));
        for (i, chunk) in unique.chunks(BATCH_READ_MAX).enumerate() {
            let call = ChunkCall { archived, lane, prepaid: prepaid && i == 0 };
            let part = self.batch_read_chunk(kind, chunk, &properties, call).await?;
            out.records.extend(part.records);
            out.not_found.extend(part.not_found);
            out.invalid.extend(part.invalid);
        }
        Ok(out)
    }

    async fn batch_read_chunk(
        &self,
        kind: ObjectKind,
        ids: &[&String],
        properties: &[String],
        ChunkCall { archived, lane, prepaid }: ChunkCall,
    ) -> Result<BatchRead, HubSpotError> {
        let body = encode(&BatchReadRequest {
            properties,
            properties_with_history: [],
            inputs: ids.iter().map(|id| IdInput { id: id.as_str() }).collect(),
        })?;
        let url = self.inner.paths.batch_read(kind);
        let endpoint = format!("{kind}.batch_read");
        let query = [("archived", archived.to_string())];
        let raw = self.send(Call::post(&url, &query, body, false, lane, &endpoint).paid(prepaid)).await?;
        let response: BatchResponse = decode(&raw, "batch read answer")?;
        let (records, mut invalid) = decode_all(response.results, decode_object);
        count_fetched(kind.as_str(), records.len());
        let mut not_found = Vec::new();
        for error in response.errors {
            if error.is_not_found() {
                not_found.extend(error.ids());
            } else {
                let ids = error.ids();
                let reason = format!("{}: {}", error.category.unwrap_or_default(), error.message.unwrap_or_default());
                invalid.extend(ids.into_iter().map(|id| InvalidRecord { id: Some(id), reason: reason.clone() }));
            }
        }
        Ok(BatchRead { records, not_found, invalid })
    }

    /// One page of `GET /crm/v3/objects/{type}` (live, or with `archived`, only archived ones).
    pub async fn list_page(
        &self,
        kind: ObjectKind,
        after: Option<&str>,
        archived: bool,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        let properties = self.properties(kind).await?;
        let inline = query_len(&properties) <= self.inner.options.max_query_bytes;
        let mut query = vec![("limit", LIST_LIMIT.to_string()), ("archived", archived.to_string())];
        query.push(("properties", if inline { properties.join(",") } else { "hs_object_id".to_owned() }));
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let url = self.inner.paths.objects(kind);
        let endpoint = format!("{kind}.list");
        let raw = self.send(Call::get(&url, &query, lane, &endpoint)).await?;
        let page: Page = decode(&raw, "list page")?;
        let next = page.next_after();
        let (records, invalid) = decode_all(page.results, decode_object);
        count_fetched(kind.as_str(), records.len());
        if inline {
            return Ok(RecordPage { records, invalid, next, total: None });
        }
        self.complete(kind, records, invalid, next, None, archived, lane).await
    }

    /// One page of live ids with their `updatedAt`, as cheap as a list call gets: 100 records
    /// asking for `hs_object_id` alone (without `properties` HubSpot adds its default ones), no
    /// property discovery. For the drift audit; owners come from [`HubSpot::owners_page`].
    pub async fn list_ids_page(
        &self,
        kind: ObjectKind,
        after: Option<&str>,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        if kind == ObjectKind::Owners {
            return self.owners_page(after, false, lane).await;
        }
        let mut query = vec![
            ("limit", LIST_LIMIT.to_string()),
            ("archived", "false".to_owned()),
            ("properties", "hs_object_id".to_owned()),
        ];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let url = self.inner.paths.objects(kind);
        let endpoint = format!("{kind}.list_ids");
        let raw = self.send(Call::get(&url, &query, lane, &endpoint)).await?;
        let page: Page = decode(&raw, "list page")?;
        let next = page.next_after();
        let (records, invalid) = decode_all(page.results, decode_object);
        Ok(RecordPage { records, invalid, next, total: None })
    }

    /// Reads the full records behind a page fetched with ids only.
    #[allow(clippy::too_many_arguments)]
    async fn complete(
        &self,
        kind: ObjectKind,
        stubs: Vec<Record>,
        mut invalid: Vec<InvalidRecord>,
        next: Option<String>,
        total: Option<u64>,
        archived: bool,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        let ids: Vec<String> = stubs.into_iter().map(|r| r.id).collect();
        let read = self.batch_read_in(kind, &ids, archived, lane).await?;
        invalid.extend(read.invalid);
        Ok(RecordPage { records: read.records, invalid, next, total })
    }

    /// Records modified within the window, in `hs_object_id` order, at most 200; only those
    /// inside `HUBSPOT_SYNC_CONFIG`'s filter (the incremental runs' search: records outside it
    /// cost nothing).
    pub async fn search_modified(
        &self,
        kind: ObjectKind,
        window: &SearchWindow,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        let filter = self.copy_config().object(kind).filter;
        self.search_modified_where(kind, window, lane, &filter.conditions()).await
    }

    /// Records modified within the window whose properties `only` lists hold one of its values.
    async fn search_modified_where(
        &self,
        kind: ObjectKind,
        window: &SearchWindow,
        lane: Lane,
        only: &[(&str, &[String])],
    ) -> Result<RecordPage, HubSpotError> {
        let properties = self.properties(kind).await?;
        let lastmod = kind.lastmod_property();
        let body = encode(&search_request(kind, window, &properties, only))?;
        let ids_only = || encode(&search_request(kind, window, &["hs_object_id".to_owned(), lastmod.to_owned()], only));
        self.search_page(kind, body, ids_only, lane).await
    }

    /// Sends a search asking for every property (`body`), or, when that body is over
    /// `max_search_body`, the one `ids_only` makes (the rest of each record is then read by id),
    /// and decodes its page.
    async fn search_page(
        &self,
        kind: ObjectKind,
        body: Vec<u8>,
        ids_only: impl FnOnce() -> Result<Vec<u8>, HubSpotError>,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        let inline = body.len() <= self.inner.options.max_search_body;
        let body = if inline { body } else { ids_only()? };
        let url = self.inner.paths.search(kind);
        let endpoint = format!("{kind}.search");
        let raw = self.send(Call::post(&url, &[], body, true, lane, &endpoint)).await?;
        let page: Page = decode(&raw, "search page")?;
        let (total, next) = (page.total, next_after_id(&page));
        let (records, invalid) = decode_all(page.results, decode_object);
        count_fetched(kind.as_str(), records.len());
        if inline {
            return Ok(RecordPage { records, invalid, next, total });
        }
        self.complete(kind, records, invalid, next, total, false, lane).await
    }

    /// Records modified within the window when every property asked of HubSpot fits in one
    /// search body (the page's records then carry all that is kept); `None` without a request
    /// otherwise. For the fast polling lanes: without the filter, so a record that moved out of
    /// it is seen, written and archived.
    pub async fn search_modified_inline(
        &self,
        kind: ObjectKind,
        window: &SearchWindow,
        lane: Lane,
    ) -> Result<Option<RecordPage>, HubSpotError> {
        let properties = self.properties(kind).await?;
        let body = encode(&search_request(kind, window, &properties, &[]))?;
        if body.len() > self.inner.options.max_search_body {
            return Ok(None);
        }
        self.search_modified_where(kind, window, lane, &[]).await.map(Some)
    }

    /// Ids and `updatedAt` of records modified within the window, in `hs_object_id` order, at
    /// most 200: the cheapest search (no property discovery, two properties per record), for the
    /// fast polling lanes, which leave the reads to the batch fetchers.
    pub async fn search_changed(
        &self,
        kind: ObjectKind,
        window: &SearchWindow,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        // Without the filter: a record that moved out of it is found here, read and archived.
        let properties = ["hs_object_id".to_owned(), kind.lastmod_property().to_owned()];
        let body = encode(&search_request(kind, window, &properties, &[]))?;
        let url = self.inner.paths.search(kind);
        let endpoint = format!("{kind}.search");
        let raw = self.send(Call::post(&url, &[], body, true, lane, &endpoint)).await?;
        let page: Page = decode(&raw, "search page")?;
        let (total, next) = (page.total, next_after_id(&page));
        let (records, invalid) = decode_all(page.results, decode_object);
        Ok(RecordPage { records, invalid, next, total })
    }

    /// One search page of a full pass: records with `hs_object_id` in `(after, upto]` (no upper
    /// bound without `upto`), 200 at most, ascending by id; `next` is the last id of a full page
    /// (the next page asks for ids above it, so no page passes the 10,000-result cap). Every
    /// property, like a list page.
    pub async fn search_id_range(
        &self,
        kind: ObjectKind,
        after: u64,
        upto: Option<u64>,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        let mut filters = vec![id_filter("GT", after)];
        filters.extend(upto.map(|upto| id_filter("LTE", upto)));
        self.search_by_id(kind, filters, "ASCENDING", lane).await
    }

    /// The 200 highest live ids of `kind` (descending) with every property, and `total`, the
    /// number of live records: where a full pass's searches start.
    pub async fn search_top(&self, kind: ObjectKind, lane: Lane) -> Result<RecordPage, HubSpotError> {
        let mut page = self.search_by_id(kind, Vec::new(), "DESCENDING", lane).await?;
        page.next = None;
        Ok(page)
    }

    async fn search_by_id(
        &self,
        kind: ObjectKind,
        filters: Vec<Filter>,
        direction: &'static str,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        let properties = self.properties(kind).await?;
        let request = |properties| SearchRequest {
            filter_groups: if filters.is_empty() { Vec::new() } else { vec![FilterGroup { filters: filters.clone() }] },
            sorts: vec![SearchSort { property_name: "hs_object_id".into(), direction }],
            properties,
            limit: SEARCH_LIMIT,
        };
        let body = encode(&request(&properties))?;
        let id_property = ["hs_object_id".to_owned()];
        let ids_only = || encode(&request(&id_property));
        self.search_page(kind, body, ids_only, lane).await
    }

    /// The share of a full pass's records that search pages carry when the budget and the
    /// search limit are both used to the full (0 when searches are off): 200-record searches
    /// at the search limit beside 100-record list pages in what is left of the budget (all of
    /// it when searches do not count against it).
    pub fn search_share(&self) -> f64 {
        let options = &self.inner.options;
        let budget = &self.inner.transport.budget;
        let window = (options.window + options.window_margin).as_secs_f64().max(0.001);
        let requests = f64::from(budget.requests()) / window;
        let searches = f64::from(options.searches_per_second) / (1.0 + options.search_margin.as_secs_f64());
        let (searches, lists) = match budget.searches_in_budget() {
            true => (searches.min(requests), (requests - searches).max(0.0)),
            false => (searches, requests),
        };
        let carried = searches * f64::from(SEARCH_LIMIT);
        if carried <= 0.0 { 0.0 } else { carried / (carried + lists * f64::from(LIST_LIMIT)) }
    }

    /// One page of owners, active or archived.
    pub async fn owners_page(
        &self,
        after: Option<&str>,
        archived: bool,
        lane: Lane,
    ) -> Result<RecordPage, HubSpotError> {
        let mut query = vec![("limit", "100".to_owned()), ("archived", archived.to_string())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        let url = self.inner.paths.owners();
        let raw = self.send(Call::get(&url, &query, lane, "owners.list")).await?;
        let page: Page = decode(&raw, "owners page")?;
        let next = page.next_after();
        let (records, invalid) = decode_all(page.results, decode_owner);
        count_fetched("owners", records.len());
        Ok(RecordPage { records, invalid, next, total: None })
    }

    /// Owners by id (there is no batch endpoint): active first, then archived.
    async fn read_owners(&self, ids: &[String], lane: Lane) -> Result<BatchRead, HubSpotError> {
        let mut out = BatchRead::default();
        for id in ids {
            match self.read_owner(id, false, lane).await {
                Err(HubSpotError::NotFound { .. }) => match self.read_owner(id, true, lane).await {
                    Err(HubSpotError::NotFound { .. }) => out.not_found.push(id.clone()),
                    other => push_owner(&mut out, other?),
                },
                other => push_owner(&mut out, other?),
            }
        }
        Ok(out)
    }

    async fn read_owner(
        &self,
        id: &str,
        archived: bool,
        lane: Lane,
    ) -> Result<Result<Record, InvalidRecord>, HubSpotError> {
        let url = self.inner.paths.owner(id);
        let query = [("archived", archived.to_string())];
        let raw = self.send(Call::get(&url, &query, lane, "owners.read")).await?;
        let value: serde_json::Value = decode(&raw, "owner")?;
        Ok(decode_owner(value))
    }
}

/// The last id of a full search page (the next page asks for ids above it); `None` after a
/// partial page.
fn next_after_id(page: &Page) -> Option<String> {
    if page.results.len() < SEARCH_LIMIT as usize {
        return None;
    }
    page.results.last().and_then(|v| v.get("id")).map(|id| match id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// A search for records modified within the window, ids above `after_id`, in id order.
/// A search of `kind` modified in `window`; with `only` (a filter's properties and the values it
/// keeps), records outside them are not returned.
fn search_request<'a>(
    kind: ObjectKind,
    window: &SearchWindow,
    properties: &'a [String],
    only: &[(&str, &[String])],
) -> SearchRequest<'a> {
    let mut filters = vec![Filter {
        property_name: kind.lastmod_property().to_owned(),
        operator: "BETWEEN",
        value: Some(window.from_ms.to_string()),
        high_value: Some(window.to_ms.to_string()),
        values: None,
    }];
    if let Some(after_id) = &window.after_id {
        filters.push(Filter {
            property_name: "hs_object_id".into(),
            operator: "GT",
            value: Some(after_id.clone()),
            high_value: None,
            values: None,
        });
    }
    for (property, values) in only {
        filters.push(Filter {
            property_name: (*property).to_owned(),
            operator: "IN",
            value: None,
            high_value: None,
            values: Some(values.to_vec()),
        });
    }
    SearchRequest {
        filter_groups: vec![FilterGroup { filters }],
        sorts: vec![SearchSort { property_name: "hs_object_id".into(), direction: "ASCENDING" }],
        properties,
        limit: SEARCH_LIMIT,
    }
}

/// An `hs_object_id` filter (`GT`, `LTE`, ...).
fn id_filter(operator: &'static str, id: u64) -> Filter {
    Filter {
        property_name: "hs_object_id".into(),
        operator,
        value: Some(id.to_string()),
        high_value: None,
        values: None,
    }
}

fn push_owner(out: &mut BatchRead, owner: Result<Record, InvalidRecord>) {
    match owner {
        Ok(r) => out.records.push(r),
        Err(e) => out.invalid.push(e),
    }
}

/// How one batch-read call is made: which records, for whom, and whether its slot is paid.
#[derive(Clone, Copy)]
struct ChunkCall {
    archived: bool,
    lane: Lane,
    prepaid: bool,
}

/// Records read from HubSpot, per object, for the metrics endpoint.
fn count_fetched(object: &'static str, n: usize) {
    metrics::counter!(crate::metric::OBJECTS_FETCHED, "object" => object).increment(n as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_rides_on_the_search() {
        let window = SearchWindow { from_ms: 1, to_ms: 2, after_id: None };
        let pipelines = ["default".to_owned()];
        let body = serde_json::to_value(search_request(ObjectKind::Deals, &window, &[], &[("pipeline", &pipelines)]));
        let filters = &body.unwrap()["filterGroups"][0]["filters"];
        assert_eq!(
            filters[1],
            serde_json::json!({"propertyName": "pipeline", "operator": "IN", "values": ["default"]})
        );
        let body = serde_json::to_value(search_request(ObjectKind::Deals, &window, &[], &[])).unwrap();
        assert_eq!(body["filterGroups"][0]["filters"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn encoded_query_length() {
        let names = vec!["email".to_owned(), "firstname".to_owned()];
        assert_eq!(query_len(&names), "email%2Cfirstname".len());
        assert_eq!(query_len(&[]), 0);
    }

    #[test]
    fn unreadable_json_keeps_serde_error_as_source() {
        let error = decode::<Vec<String>>(b"{\"results\": ", "page").unwrap_err();
        assert!(matches!(error, HubSpotError::Decode { what: "page", .. }), "{error:?}");
        let source = std::error::Error::source(&error).expect("the serde_json error is the source");
        assert!(error.to_string().ends_with(&source.to_string()), "{error}");
        assert_eq!(error.details()["error"], error.to_string());
    }
}
