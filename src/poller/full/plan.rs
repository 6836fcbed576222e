//! How a full pass covers an object's ids (pure: no I/O). Two walkers share the live ids:
//!
//! - the list walks up from the lowest id with HubSpot's cursor (100 a page; HubSpot lists in id
//!   order, its cursor is "the next record ID", docs/hubspot.md §3.2), and covers every id up to
//!   the `boundary`;
//! - searches cover the ids above it: the first one reads the 200 highest ids (descending), which
//!   gives the top of the id space, the number of live records and their density; then ranges
//!   `(after, upto]` are claimed downwards from the boundary, each walked upwards by 200-record
//!   pages sorted by `hs_object_id` with `GT last id seen` / `LTE upto` filters, so no query
//!   passes the 10,000-result cap.
//!
//! A claim moves the boundary down, never below the highest id the list has fetched, so the
//! two parts stay disjoint and together cover every id whatever the distribution: the list
//! covers everything below the lowest claim, the claims tile the rest, and list records above the
//! boundary are left to the searches (a list page in flight while a claim is made). Claims are
//! sized from the density and the shares of the two rates ([`Plan::claim`]) so both walkers end
//! together; a density estimate that is wrong only costs time, never coverage. Archived records
//! never appear in searches: the archived list is walked whole, by the list walker, first.
//!
//! The [`Checkpoint`] is what was written: the list walks' cursors, the boundary and the open
//! ranges with the last id written in each. It is a consistent partition at every moment (a
//! claim adds its range as it moves the boundary), so a resumed pass neither skips nor repeats
//! a range.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::hubspot::{Record, SEARCH_LIMIT};

/// Below this share of records carried by searches, a pass lists only (a budget large enough
/// that lists outrun the search limit).
pub const MIN_SEARCH_SHARE: f64 = 0.05;
/// The part of the searches' share of the remaining ids one claim takes: claims shrink as the
/// walkers close in, so the last one is small and both walkers finish together.
const CLAIM_FACTOR: f64 = 0.7;

/// One list walk: at a cursor (`None`: not started), or done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Walk {
    At(Option<String>),
    Done,
}

impl Walk {
    fn started(&self) -> bool {
        matches!(self, Walk::At(Some(_)))
    }

    fn after(next: Option<String>) -> Self {
        next.map_or(Walk::Done, |after| Walk::At(Some(after)))
    }
}

/// Live ids in `(after, upto]` (no upper bound without `upto`), read by searches; `after` is the
/// last id written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub after: u64,
    pub upto: Option<u64>,
}

/// Where a pass is, as kept in `sync_state.full_cursor`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub live: Walk,
    pub archived: Walk,
    /// The live list covers ids up to this one, the ranges (and finished ones) the rest; `None`:
    /// no search yet, the list covers every id.
    #[serde(default)]
    pub boundary: Option<u64>,
    #[serde(default)]
    pub ranges: Vec<Range>,
    /// Live records per id seen so far (for claims after a resume).
    #[serde(default)]
    pub density: Option<f64>,
}

impl Checkpoint {
    pub const START: Checkpoint = Checkpoint {
        live: Walk::At(None),
        archived: Walk::At(None),
        boundary: None,
        ranges: Vec::new(),
        density: None,
    };

    /// `split:{json}`; [`Checkpoint::decode`] also reads the list-only `live:<after>` and
    /// `archived:<after>` of passes begun before searches.
    pub fn encode(&self) -> String {
        format!("split:{}", serde_json::to_string(self).unwrap_or_default())
    }

    pub fn decode(raw: &str) -> Option<Self> {
        if let Some(json) = raw.strip_prefix("split:") {
            return serde_json::from_str(json).ok();
        }
        let (list, after) = raw.split_once(':')?;
        let after = (!after.is_empty()).then(|| after.to_owned());
        match list {
            "live" => Some(Self { live: Walk::At(after), ..Self::START }),
            "archived" => Some(Self { live: Walk::Done, archived: Walk::At(after), ..Self::START }),
            _ => None,
        }
    }

    pub fn is_done(&self) -> bool {
        self.live == Walk::Done && self.archived == Walk::Done && self.ranges.is_empty()
    }
}

/// What a fetched page does to the checkpoint once written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// A live list page: the cursor after it, and the highest id on it.
    Live {
        next: Option<String>,
        through: Option<u64>,
    },
    Archived {
        next: Option<String>,
    },
    /// A page of the range ending at `upto`: the last id it read (`None`: the range is done).
    Range {
        upto: Option<u64>,
        next: Option<u64>,
    },
    /// Nothing (a first search made redundant by a list that ended first).
    Nothing,
}

/// What the search walker does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchStep {
    /// Read the 200 highest ids.
    Top,
    Range(Range),
    /// Not enough known yet (the list's first live page, a density): ask again shortly.
    Wait,
    Finished,
}

/// The id of a record, when numeric (HubSpot's ids are).
pub fn id_of(record: &Record) -> Option<u64> {
    record.id.parse().ok()
}

/// A pass in progress: the written checkpoint, and what the walkers have fetched.
#[derive(Debug)]
pub struct Plan {
    written: Checkpoint,
    /// The list walks as fetched (ahead of `written`).
    live: Walk,
    archived: Walk,
    /// The highest live id the list has fetched, and how many live records.
    live_through: Option<u64>,
    live_fetched: u64,
    /// Ranges to read, each at its fetched position; the front one is being read.
    queue: VecDeque<Range>,
    /// Records the searches cover: the first search's, then each range's `total` (its estimate
    /// until its first page arrives).
    search_records: f64,
    /// Live records when the first search ran (`total`).
    total: Option<u64>,
    /// Estimates of claimed ranges not read yet, by `upto`.
    estimates: Vec<(Option<u64>, f64)>,
    /// Records and ids of every range whose count is known (density).
    counted: (f64, f64),
    share: f64,
    searches: bool,
    top_asked: bool,
}

impl Plan {
    /// A plan from a checkpoint; `share` is the part of the records the searches should carry
    /// ([`crate::hubspot::HubSpot::search_share`]); searches only when `searching` (objects with
    /// a search endpoint) and the share is worth it.
    pub fn new(written: Checkpoint, share: f64, searching: bool) -> Self {
        let searches = searching && share >= MIN_SEARCH_SHARE && written.live != Walk::Done;
        Self {
            live: written.live.clone(),
            archived: written.archived.clone(),
            queue: written.ranges.iter().cloned().collect(),
            counted: written.density.map_or((0.0, 0.0), |d| (d * 1e6, 1e6)),
            written,
            live_through: None,
            live_fetched: 0,
            search_records: 0.0,
            total: None,
            estimates: Vec::new(),
            share,
            searches,
            top_asked: false,
        }
    }

    pub fn checkpoint(&self) -> Checkpoint {
        let density = (self.counted.1 > 0.0).then(|| self.counted.0 / self.counted.1);
        Checkpoint { density, ..self.written.clone() }
    }

    /// The list page to fetch next: (archived, cursor). A walk already started goes first (a
    /// resumed one), else the archived list, then the live one.
    pub fn next_list(&self) -> Option<(bool, Option<String>)> {
        let walk = |archived: bool, w: &Walk| match w {
            Walk::At(after) => Some((archived, after.clone())),
            Walk::Done => None,
        };
        if self.live.started() {
            return walk(false, &self.live);
        }
        walk(true, &self.archived).or_else(|| walk(false, &self.live))
    }

    /// Records a fetched list page; the live walk stops at the boundary.
    pub fn list_fetched(&mut self, archived: bool, records: &[Record], next: Option<String>) -> Effect {
        if archived {
            self.archived = Walk::after(next.clone());
            return Effect::Archived { next };
        }
        let through = records.iter().filter_map(id_of).max();
        self.live_through = self.live_through.max(through);
        self.live_fetched += records.len() as u64;
        let crossed = matches!((through, self.written.boundary), (Some(t), Some(b)) if t >= b);
        self.live = if crossed { Walk::Done } else { Walk::after(next.clone()) };
        Effect::Live { next, through }
    }

    /// What the search walker does next (claiming a range when it is time).
    pub fn next_search(&mut self) -> SearchStep {
        if let Some(range) = self.queue.front() {
            return SearchStep::Range(range.clone());
        }
        if !self.searches || self.live == Walk::Done {
            return SearchStep::Finished;
        }
        if self.written.boundary.is_none() {
            if self.top_asked {
                return SearchStep::Wait;
            }
            self.top_asked = true;
            return SearchStep::Top;
        }
        self.claim()
    }

    /// Records the first search's page (the highest ids, descending, and `total`): the ids from
    /// its lowest one up become the top range, read already. Returns the effect and the records
    /// to write.
    pub fn top_fetched(&mut self, records: Vec<Record>, total: Option<u64>) -> (Effect, Vec<Record>) {
        let ids: Vec<u64> = records.iter().filter_map(id_of).collect();
        let (Some(low), Some(high)) = (ids.iter().min().copied(), ids.iter().max().copied()) else {
            self.searches = false;
            return (Effect::Nothing, Vec::new());
        };
        if self.live == Walk::Done {
            // The list reached the end first: it has every id.
            self.searches = false;
            return (Effect::Nothing, Vec::new());
        }
        let after = low.saturating_sub(1).max(self.live_through.unwrap_or(0));
        self.written.boundary = Some(after);
        self.written.ranges.push(Range { after, upto: None });
        self.total = total;
        let kept: Vec<Record> = records.into_iter().filter(|r| id_of(r).is_some_and(|id| id > after)).collect();
        self.search_records += kept.len() as f64;
        if ids.len() >= 2 {
            self.counted.0 += ids.len() as f64;
            self.counted.1 += (high - low + 1) as f64;
        }
        (Effect::Range { upto: None, next: None }, kept)
    }

    /// Claims the next range below the boundary, sized so the searches take `CLAIM_FACTOR` of
    /// their share of what is left; none once their share is under half a page.
    fn claim(&mut self) -> SearchStep {
        let Some(boundary) = self.written.boundary else { return SearchStep::Wait };
        let density = match self.counted {
            (records, ids) if ids > 0.0 && records > 0.0 => records / ids,
            _ => return SearchStep::Wait,
        };
        let floor = self.live_through;
        let left = match (self.total, floor) {
            (Some(total), _) => total as f64 - self.search_records - self.live_fetched as f64,
            (None, Some(floor)) => boundary.saturating_sub(floor) as f64 * density,
            (None, None) => return SearchStep::Wait,
        };
        if floor.is_some_and(|f| f >= boundary) || self.share * left < f64::from(SEARCH_LIMIT) / 2.0 {
            return SearchStep::Finished;
        }
        let records = (CLAIM_FACTOR * self.share * left).max(f64::from(SEARCH_LIMIT)).min(left.max(1.0));
        let width = ((records / density).ceil() as u64).max(1);
        let after = boundary.saturating_sub(width).max(floor.unwrap_or(0));
        if after >= boundary {
            return SearchStep::Finished;
        }
        let range = Range { after, upto: Some(boundary) };
        self.written.boundary = Some(after);
        self.written.ranges.push(range.clone());
        self.search_records += records;
        self.estimates.push((range.upto, records));
        self.queue.push_back(range.clone());
        SearchStep::Range(range)
    }

    /// Records a fetched page of the range being read.
    pub fn range_fetched(&mut self, range: &Range, next: Option<u64>, total: Option<u64>) -> Effect {
        if let Some(at) = self.estimates.iter().position(|(upto, _)| *upto == range.upto) {
            let (_, estimate) = self.estimates.swap_remove(at);
            if let Some(total) = total {
                self.search_records += total as f64 - estimate;
                self.counted.0 += total as f64;
                self.counted.1 += range.upto.map_or(0, |upto| upto - range.after) as f64;
            }
        }
        if self.queue.front().is_some_and(|front| front.upto == range.upto) {
            match (next, self.queue.front_mut()) {
                (Some(after), Some(front)) => front.after = after,
                _ => {
                    self.queue.pop_front();
                }
            }
        }
        Effect::Range { upto: range.upto, next }
    }

    /// Whether to write a record of a fetched page: a live list page keeps what is at or below
    /// the boundary (what lies above is the searches'), nothing once the list is done.
    pub fn keeps(&self, effect: &Effect, record: &Record) -> bool {
        match effect {
            Effect::Live { .. } if self.written.live == Walk::Done => false,
            Effect::Live { .. } => self.written.boundary.is_none_or(|b| id_of(record).is_none_or(|id| id <= b)),
            _ => true,
        }
    }

    /// Applies a written page's effect to the checkpoint.
    pub fn apply(&mut self, effect: Effect) {
        let written = &mut self.written;
        match effect {
            Effect::Live { next, through } => {
                if written.live != Walk::Done {
                    let crossed = matches!((through, written.boundary), (Some(t), Some(b)) if t >= b);
                    written.live = if crossed { Walk::Done } else { Walk::after(next) };
                }
            }
            Effect::Archived { next } => written.archived = Walk::after(next),
            Effect::Range { upto, next } => {
                if let Some(at) = written.ranges.iter().position(|r| r.upto == upto) {
                    match next {
                        Some(after) => written.ranges[at].after = after,
                        None => {
                            written.ranges.remove(at);
                        }
                    }
                }
            }
            Effect::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn checkpoints_round_trip_and_old_positions_still_decode() {
        let split = Checkpoint {
            live: Walk::At(Some("123".into())),
            archived: Walk::Done,
            boundary: Some(900),
            ranges: vec![Range { after: 950, upto: None }, Range { after: 900, upto: Some(940) }],
            density: Some(0.5),
        };
        assert_eq!(Checkpoint::decode(&split.encode()), Some(split));
        assert_eq!(
            Checkpoint::decode("live:5"),
            Some(Checkpoint { live: Walk::At(Some("5".into())), ..Checkpoint::START })
        );
        let archived = Checkpoint::decode("archived:").unwrap();
        assert_eq!((archived.live, archived.archived), (Walk::Done, Walk::At(None)));
        assert_eq!(Checkpoint::decode("bogus"), None);
        assert!(!Checkpoint::START.is_done());
    }

    /// A small PRNG (xorshift), so the walk below is the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn record(id: u64) -> Record {
        Record {
            id: id.to_string(),
            properties: BTreeMap::new(),
            created_at: None,
            updated_at: chrono::Utc::now(),
            archived: false,
        }
    }

    /// HubSpot's answers over sorted ids: a list page from a cursor (the next id), a search range.
    struct Account {
        live: Vec<u64>,
        archived: Vec<u64>,
    }

    impl Account {
        fn list(&self, archived: bool, after: Option<&str>) -> (Vec<Record>, Option<String>) {
            let ids = if archived { &self.archived } else { &self.live };
            let from: u64 = after.map_or(0, |a| a.parse().unwrap());
            let rest: Vec<u64> = ids.iter().copied().filter(|id| *id >= from).collect();
            let next = rest.get(100).map(|id| id.to_string());
            (rest.into_iter().take(100).map(record).collect(), next)
        }

        fn search(&self, range: &Range) -> (Vec<Record>, Option<u64>, u64) {
            let hits: Vec<u64> = self
                .live
                .iter()
                .copied()
                .filter(|id| *id > range.after && range.upto.is_none_or(|u| *id <= u))
                .collect();
            let page: Vec<u64> = hits.iter().copied().take(200).collect();
            let next = (page.len() == 200).then(|| page[199]);
            (page.into_iter().map(record).collect(), next, hits.len() as u64)
        }

        fn top(&self) -> (Vec<Record>, u64) {
            (self.live.iter().rev().take(200).copied().map(record).collect(), self.live.len() as u64)
        }
    }

    /// Id layouts: dense, sparse, clustered at both ends, one huge gap, a handful of records.
    fn layouts(rng: &mut Rng) -> Vec<Vec<u64>> {
        let dense: Vec<u64> = (1_000..13_000).collect();
        let sparse: Vec<u64> = (0..9_000).map(|i| 5_000 + i * 37 + rng.below(30)).collect();
        let mut clustered: Vec<u64> = (1..4_000).collect();
        clustered.extend((0..6_000).map(|i| 90_000_000 + i * 3));
        let mut gap: Vec<u64> = (0..300).map(|i| 10 + i).collect();
        gap.extend((0..7_000).map(|i| 1_000_000_000 + i * 1_000));
        let few: Vec<u64> = vec![17, 18, 400, 9_000];
        vec![dense, sparse, clustered, gap, few]
    }

    /// Walks a pass of every layout at several shares, with random interleavings of fetches and
    /// writes and random crashes (pages fetched but not written are lost, the plan restarts from
    /// the last saved checkpoint): every id is written exactly once.
    #[test]
    fn every_id_is_written_exactly_once_whatever_the_layout_interleaving_and_crashes() {
        let mut rng = Rng(0x5eed_1234_abcd);
        for live in layouts(&mut rng) {
            let archived: Vec<u64> = live.iter().step_by(97).map(|id| id + 1).filter(|id| !live.contains(id)).collect();
            let account = Account { live, archived };
            for share in [0.0, 0.2, 0.5, 0.66, 0.9] {
                for round in 0..4 {
                    walk(&account, share, &mut rng, round > 0);
                }
            }
        }
    }

    fn walk(account: &Account, share: f64, rng: &mut Rng, crashes: bool) {
        let mut saved = Checkpoint::START;
        let mut plan = Plan::new(saved.clone(), share, true);
        let mut pending: VecDeque<(Vec<Record>, Effect)> = VecDeque::new();
        let mut written: BTreeMap<(bool, u64), u32> = BTreeMap::new();
        let (mut list_done, mut search_done) = (false, false);
        let mut steps = 0;
        loop {
            steps += 1;
            assert!(steps < 100_000, "the pass never ends");
            match rng.below(5) {
                0 | 1 if !list_done => match plan.next_list() {
                    Some((archived, after)) => {
                        let (records, next) = account.list(archived, after.as_deref());
                        let effect = plan.list_fetched(archived, &records, next);
                        let records = records
                            .into_iter()
                            .map(|mut r| {
                                r.archived = archived;
                                r
                            })
                            .collect();
                        pending.push_back((records, effect));
                    }
                    None => list_done = true,
                },
                2 if !search_done => match plan.next_search() {
                    SearchStep::Top => {
                        let (records, total) = account.top();
                        let (effect, kept) = plan.top_fetched(records, Some(total));
                        pending.push_back((kept, effect));
                    }
                    SearchStep::Range(range) => {
                        let (records, next, total) = account.search(&range);
                        let effect = plan.range_fetched(&range, next, Some(total));
                        pending.push_back((records, effect));
                    }
                    SearchStep::Wait => {}
                    SearchStep::Finished => search_done = true,
                },
                3 if crashes && rng.below(40) == 0 => {
                    pending.clear();
                    plan = Plan::new(saved.clone(), share, true);
                    (list_done, search_done) = (false, false);
                }
                _ => match pending.pop_front() {
                    Some((records, effect)) => {
                        for r in records.into_iter().filter(|r| plan.keeps(&effect, r)) {
                            *written.entry((r.archived, r.id.parse().unwrap())).or_default() += 1;
                        }
                        plan.apply(effect);
                        saved = plan.checkpoint();
                    }
                    None if list_done && search_done => break,
                    None => {}
                },
            }
        }
        assert!(plan.checkpoint().is_done(), "{:?}", plan.checkpoint());
        let expected: BTreeMap<(bool, u64), u32> = account
            .live
            .iter()
            .map(|id| ((false, *id), 1))
            .chain(account.archived.iter().map(|id| ((true, *id), 1)))
            .collect();
        if written != expected {
            let wrong: Vec<_> = expected
                .keys()
                .chain(written.keys())
                .filter(|k| written.get(k) != expected.get(k))
                .take(5)
                .map(|k| (k, written.get(k).copied().unwrap_or(0)))
                .collect();
            panic!("share {share}, crashes {crashes}: ids written a wrong number of times: {wrong:?}");
        }
    }
}
