//! Deterministic seed data: the same `--seed` and sizes always give the same CRM.

use super::schema::{CALL_STATUS, DEAL_STAGES, DISPOSITIONS, LEAD_STATUS, LIFECYCLE, TIERS};
use super::{Crm, ObjectKind, ObjectStore, Owner, Record, churn, iso, json::lit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Sizes and seed of the generated CRM.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    pub contacts: usize,
    pub deals: usize,
    pub calls: usize,
    pub owners: usize,
    pub seed: u64,
}

/// 2025-06-01T00:00:00Z: seeded history ends here, so it does not depend on the wall clock.
pub const SEED_END_MS: i64 = 1_748_736_000_000;
const SPAN_MS: i64 = 3 * 365 * 86_400_000;

/// (display, ascii slug) pairs, deliberately including non-ASCII names.
pub(crate) const FIRST: &[(&str, &str)] = &[
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("李", "li"),
    ("Anna", "anna"),
    ("Ben", "ben"),
    ("Chloé", "chloe"),
    ("Łukasz", "lukasz"),
    ("Søren", "soren"),
    ("Mei", "mei"),
    ("Priya", "priya"),
    ("Noah", "noah"),
    ("Emma", "emma"),
    ("Mateo", "mateo"),
    ("Fatima", "fatima"),
    ("Yuki", "yuki"),
    ("Olu", "olu"),
    ("Björn", "bjorn"),
    ("Ava", "ava"),
];
pub(crate) const LAST: &[(&str, &str)] = &[
    ("Müller", "mueller"),
    ("García", "garcia"),
    ("李", "li"),
    ("Smith", "smith"),
    ("Nguyen", "nguyen"),
    ("O'Brien", "obrien"),
    ("Kowalski", "kowalski"),
    ("Johansson", "johansson"),
    ("Dubois", "dubois"),
    ("Rossi", "rossi"),
    ("Kim", "kim"),
    ("Patel", "patel"),
    ("Okafor", "okafor"),
    ("Schröder", "schroeder"),
    ("Núñez", "nunez"),
];
const DOMAINS: &[&str] = &["example.com", "example.org", "coach.example", "mail.example.net"];
const PLANS: &[&str] = &["Starter", "Growth", "Premium", "Annual Coaching", "Team — 5 seats"];

pub(crate) fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

fn maybe(rng: &mut StdRng, p: f64, v: &str) -> Option<Box<str>> {
    (rng.random::<f64>() < p).then(|| lit(v))
}

/// Builds the whole CRM.
pub fn generate(cfg: &SeedConfig) -> Crm {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let owners = owners(&mut rng, cfg.owners);
    let active: Vec<u64> = owners.iter().filter(|o| !o.archived).map(|o| o.id).collect();
    let all_owners: Vec<u64> = owners.iter().map(|o| o.id).collect();
    let mut crm = Crm {
        contacts: ObjectStore::new(ObjectKind::Contacts, 101),
        deals: ObjectStore::new(ObjectKind::Deals, 5_000_000_001),
        calls: ObjectStore::new(ObjectKind::Calls, 40_000_000_001),
        last_owner_id: owners.iter().map(|o| o.id).max().unwrap_or(10_000_000),
        owners,
        last_ts: SEED_END_MS,
        associations: Default::default(),
    };
    let owner_for = |rng: &mut StdRng| -> Option<Box<str>> {
        let r = rng.random::<f64>();
        if r < 0.08 || active.is_empty() {
            None
        } else if r < 0.11 {
            Some(lit(&pick(rng, &all_owners).to_string()))
        } else {
            Some(lit(&pick(rng, &active).to_string()))
        }
    };
    for (kind, n) in
        [(ObjectKind::Contacts, cfg.contacts), (ObjectKind::Deals, cfg.deals), (ObjectKind::Calls, cfg.calls)]
    {
        let start = SEED_END_MS - SPAN_MS;
        let mut prev_updated = start;
        for i in 0..n {
            let id = {
                let s = crm.store_mut(kind);
                let id = s.next_id;
                s.next_id += rng.random_range(1..4);
                id
            };
            let created = start + (i as i64) * (SPAN_MS / 2) / (n.max(1) as i64) + rng.random_range(0..1000);
            let mut updated = created + rng.random_range(0..(SEED_END_MS - created).max(1));
            if rng.random::<f64>() < 0.01 {
                updated = prev_updated.max(created); // occasional ties, as imports make
            }
            prev_updated = updated;
            let owner = owner_for(&mut rng);
            let values = match kind {
                ObjectKind::Contacts => contact(&mut rng, id, owner),
                ObjectKind::Deals => deal(&mut rng, created, owner),
                ObjectKind::Calls => call(&mut rng, created, owner),
            };
            let archived_ms = (rng.random::<f64>() < 0.02)
                .then(|| updated + rng.random_range(0..86_400_000))
                .map(|a: i64| a.min(SEED_END_MS));
            let updated = archived_ms.unwrap_or(updated).min(SEED_END_MS);
            let rec = Record { id, created_ms: created, updated_ms: updated, archived_ms, merged_into: None, values };
            crm.store_mut(kind).insert(rec);
        }
        // Merged records: about 1% of contacts and 0.5% of deals.
        let merges = match kind {
            ObjectKind::Contacts => n / 100,
            ObjectKind::Deals => n / 200,
            ObjectKind::Calls => 0,
        };
        for _ in 0..merges {
            let s = crm.store_mut(kind);
            let a = s.pick(false, rng.random(), &[]);
            let b = a.and_then(|a| s.pick(false, rng.random(), &[a]));
            if let (Some(a), Some(b)) = (a, b) {
                let ts = SEED_END_MS - rng.random_range(0..30 * 86_400_000);
                churn::merge_pair(s, a, b, ts);
            }
        }
    }
    // Its own random stream: the records stay what they were before associations existed.
    super::assoc::seed(&mut crm, &mut StdRng::seed_from_u64(cfg.seed ^ 0xA550_C1A7));
    crm
}

fn owners(rng: &mut StdRng, n: usize) -> Vec<Owner> {
    let teams = [("4411", "Coaching"), ("4412", "Sales"), ("4413", "Success")];
    (0..n)
        .map(|i| {
            let (first, fslug) = *pick(rng, FIRST);
            let (last, lslug) = *pick(rng, LAST);
            let created = SEED_END_MS - SPAN_MS - rng.random_range(0..SPAN_MS / 3);
            let (tid, tname) = teams[i % teams.len()];
            Owner {
                id: 10_000_001 + (i as u64) * 37,
                email: format!("{fslug}.{lslug}{i}@coach.example"),
                first_name: first.to_string(),
                last_name: last.to_string(),
                user_id: 2_000_001 + (i as u64) * 7,
                created_ms: created,
                updated_ms: created + rng.random_range(0..SPAN_MS),
                archived: i % 10 == 9,
                created_at_omitted: false,
                teams: if i % 4 == 3 { vec![] } else { vec![(tid.to_string(), tname.to_string(), true)] },
            }
        })
        .collect()
}

pub(crate) fn contact(rng: &mut StdRng, id: u64, owner: Option<Box<str>>) -> Vec<Option<Box<str>>> {
    let (first, fslug) = *pick(rng, FIRST);
    let (last, lslug) = *pick(rng, LAST);
    let email = format!("{fslug}.{lslug}.{id}@{}", pick(rng, DOMAINS));
    let phone = format!("+1 555-{:03}-{:04}", rng.random_range(100..999), rng.random_range(0..10_000));
    let tier = pick(rng, TIERS).1;
    let nps = rng.random_range(0..11).to_string();
    let stage = pick(rng, LIFECYCLE).1;
    let status = pick(rng, LEAD_STATUS).1;
    let source = if rng.random::<bool>() { "webinar" } else { "referral" };
    vec![
        maybe(rng, 0.97, &email),
        maybe(rng, 0.95, first),
        maybe(rng, 0.93, last),
        maybe(rng, 0.7, &phone),
        owner,
        maybe(rng, 0.9, stage),
        maybe(rng, 0.6, status),
        None, // createdate (derived)
        None, // lastmodifieddate (derived)
        None, // hs_lastmodifieddate (derived)
        None, // hs_object_id (derived)
        None, // hs_merged_object_ids
        maybe(rng, 0.4, tier),
        maybe(rng, 0.5, source),
        maybe(rng, 0.3, &nps),
    ]
}

pub(crate) fn deal(rng: &mut StdRng, created: i64, owner: Option<Box<str>>) -> Vec<Option<Box<str>>> {
    let (last, _) = *pick(rng, LAST);
    let name = format!("{last} — {}", pick(rng, PLANS));
    let amount = match rng.random_range(0..40) {
        0 => String::new(),     // type lie: empty string
        1 => "1;2".to_string(), // type lie: not a number
        2 => "1500".to_string(),
        _ => format!("{}.{:02}", rng.random_range(100..50_000), rng.random_range(0..100)),
    };
    let renewal = rng.random::<f64>() < 0.25;
    let stage = if renewal { pick(rng, &DEAL_STAGES[7..]).1 } else { pick(rng, &DEAL_STAGES[..7]).1 };
    let won = stage == "closedwon" || stage == "1034568";
    let closed = won || stage == "closedlost" || stage == "1034569";
    let close = iso(created + rng.random_range(0..120 * 86_400_000i64));
    let months = rng.random_range(1..37).to_string();
    let renewal_type = pick(rng, super::schema::RENEWAL).1;
    vec![
        maybe(rng, 0.98, &name),
        Some(lit(&amount)),
        Some(lit(stage)),
        Some(lit(if renewal { "75e28846" } else { "default" })),
        maybe(rng, 0.85, &close),
        owner,
        Some(lit(if closed { "true" } else { "false" })),
        Some(lit(if won { "true" } else { "false" })),
        None,
        None,
        None,
        None,
        maybe(rng, 0.5, &months),
        maybe(rng, 0.5, renewal_type),
    ]
}

pub(crate) fn call(rng: &mut StdRng, created: i64, owner: Option<Box<str>>) -> Vec<Option<Box<str>>> {
    let (first, _) = *pick(rng, FIRST);
    let (last, _) = *pick(rng, LAST);
    let outbound = rng.random::<f64>() < 0.7;
    let status = if rng.random::<f64>() < 0.85 { "COMPLETED" } else { pick(rng, CALL_STATUS).1 };
    let disposition = pick(rng, DISPOSITIONS).1;
    let quality = rng.random_range(1..6).to_string();
    let follow = if rng.random::<bool>() { "true" } else { "false" };
    vec![
        Some(lit(&iso(created - rng.random_range(0..3_600_000)))),
        Some(lit(&format!("Call with {first} {last}"))),
        maybe(rng, 0.5, "<p>Discussed goals &amp; next steps.</p>"),
        Some(lit(if outbound { "OUTBOUND" } else { "INBOUND" })),
        maybe(rng, 0.9, disposition),
        Some(lit(status)),
        Some(lit(&rng.random_range(0..3_600_000u64).to_string())),
        owner,
        None,
        None,
        None,
        maybe(rng, 0.3, &quality),
        maybe(rng, 0.5, follow),
    ]
}

/// Types of the extra custom properties, in turn: (HubSpot `type`, `fieldType`, name suffix):
/// one of each HubSpot type, a multi-select (`checkbox`, values `a;b`) included.
const EXTRA_TYPES: &[(&str, &str, &str)] = &[
    ("string", "text", "text"),
    ("number", "number", "count"),
    ("datetime", "date", "at"),
    ("date", "date", "on"),
    ("enumeration", "select", "choice"),
    ("bool", "booleancheckbox", "flag"),
    ("string", "textarea", "notes"),
    ("enumeration", "checkbox", "tags"),
];
const EXTRA_CHOICES: &[(&str, &str)] = &[("Alpha", "alpha"), ("Beta", "beta"), ("Gamma", "gamma"), ("Delta", "delta")];

/// Adds `n` custom properties of mixed types to every object (after its schema, as properties
/// created at run time are) and gives about half of each object's records a value for each:
/// the several hundred properties of a real portal. Deterministic for a seed; `n == 0` changes
/// nothing. Names are long enough that asking for all of them in a URL passes the 414 limit.
pub fn add_extra_properties(crm: &mut Crm, n: usize, seed: u64) {
    if n == 0 {
        return;
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_E47A);
    for kind in ObjectKind::ALL {
        let group = match kind {
            ObjectKind::Contacts => "contactinformation",
            ObjectKind::Deals => "dealinformation",
            ObjectKind::Calls => "call",
        };
        let s = crm.store_mut(kind);
        let base = kind.schema().len() + s.created.len();
        for i in 0..n {
            let (ptype, field_type, suffix) = EXTRA_TYPES[i % EXTRA_TYPES.len()];
            // Property definitions are `'static` (the schema is): leaked once per simulator.
            let name: &'static str = Box::leak(format!("portal_custom_field_{i:03}_{suffix}").into_boxed_str());
            let label: &'static str = Box::leak(format!("Portal custom field {i} ({suffix})").into_boxed_str());
            let options: &'static [(&'static str, &'static str)] = match ptype {
                "enumeration" => EXTRA_CHOICES,
                "bool" => super::schema::BOOL,
                _ => &[],
            };
            s.created.push(super::PropDef {
                name,
                label,
                ptype,
                field_type,
                group,
                description: "One of a real portal's many custom properties",
                options,
                custom: true,
                read_only: false,
            });
        }
        let mut ids: Vec<u64> = s.records.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let Some(rec) = s.records.get_mut(&id) else { continue };
            rec.values.resize(base + n, None);
            for i in 0..n {
                if rng.random::<bool>() {
                    continue;
                }
                let (ptype, field_type, _) = EXTRA_TYPES[i % EXTRA_TYPES.len()];
                let value = match ptype {
                    // A multi-select: some of the choices, `;`-separated, in the options' order.
                    "enumeration" if field_type == "checkbox" => {
                        let chosen: Vec<&str> =
                            EXTRA_CHOICES.iter().filter(|_| rng.random::<bool>()).map(|(_, v)| *v).collect();
                        chosen.join(";")
                    }
                    "number" => rng.random_range(-1000..100_000).to_string(),
                    "datetime" => iso(rec.created_ms + rng.random_range(0..86_400_000 * 30)),
                    "date" => iso(rec.created_ms)[..10].to_string(),
                    "enumeration" => pick(&mut rng, EXTRA_CHOICES).1.to_string(),
                    "bool" => if rng.random::<bool>() { "true" } else { "false" }.to_string(),
                    _ => format!("{} #{}", pick(&mut rng, PLANS), rng.random_range(0..10_000)),
                };
                rec.values[base + i] = Some(lit(&value));
            }
        }
    }
}
