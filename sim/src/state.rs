//! Shared state of one simulator, passed to handlers as `web::Data<AppState>`.

use crate::data::churn::{self, ChurnError, ChurnReport, ChurnRequest, PropertyReport, PropertyRequest};
use crate::data::json::{PropSel, export_line};
use crate::data::{Crm, ObjectKind};
use crate::faults::Faults;
use crate::limits::{Clock, Limits};
use crate::stats::Stats;
use crate::webhooks::{self, Dispatcher, WebhookConfig, WebhookStats};
use rand::rngs::StdRng;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub struct AppState {
    pub crm: RwLock<Crm>,
    pub limits: Limits,
    pub faults: Faults,
    pub stats: Stats,
    pub clock: Clock,
    pub churn_rng: Mutex<StdRng>,
    pub webhook_cfg: Option<WebhookConfig>,
    pub dispatcher: Option<Dispatcher>,
    pub webhook_stats: Arc<WebhookStats>,
    pub next_event_id: AtomicU64,
    /// Ids batch reads answer with per-id errors (`poison`).
    pub batch_errors: crate::poison::BatchErrors,
    /// Associated records per page of one input of an association batch read.
    pub association_page_size: usize,
}

impl AppState {
    pub fn read(&self) -> RwLockReadGuard<'_, Crm> {
        self.crm.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Crm> {
        self.crm.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies a churn request and queues its webhook events.
    pub fn churn(&self, req: &ChurnRequest) -> Result<ChurnReport, ChurnError> {
        let kind = ObjectKind::parse(&req.object).ok_or_else(|| ChurnError::UnknownObject(req.object.clone()))?;
        let (mut report, changes, ts) = {
            let mut crm = self.write();
            let mut rng = self.churn_rng.lock().unwrap_or_else(PoisonError::into_inner);
            let (r, c) = churn::apply(&mut crm, req, &mut rng, self.clock.now_ms())?;
            (r, c, crm.last_ts)
        };
        if let Some(cfg) = &self.webhook_cfg {
            let events = webhooks::events_for(kind, &changes, ts, &self.next_event_id, cfg);
            report.events = events.len();
            if let Some(d) = &self.dispatcher {
                d.send(events);
            }
        } else {
            report.events = 0;
        }
        Ok(report)
    }

    /// Plants raw property values in a live record and queues its `propertyChange` events.
    pub fn plant(&self, req: &crate::poison::PlantRequest) -> Result<(), String> {
        let kind = ObjectKind::parse(&req.object).ok_or_else(|| format!("unknown object {:?}", req.object))?;
        let (changes, ts) = {
            let mut crm = self.write();
            let changes = crate::poison::plant(&mut crm, req, self.clock.now_ms())?;
            (changes, crm.last_ts)
        };
        if let (Some(cfg), Some(d)) = (&self.webhook_cfg, &self.dispatcher) {
            d.send(webhooks::events_for(kind, &changes, ts, &self.next_event_id, cfg));
        }
        Ok(())
    }

    /// Creates a custom property (it then appears in the properties API, on records and in the
    /// export) and queues the webhook events of the records it was set on.
    pub fn create_property(&self, req: &PropertyRequest) -> Result<PropertyReport, ChurnError> {
        let kind = ObjectKind::parse(&req.object).ok_or_else(|| ChurnError::UnknownObject(req.object.clone()))?;
        let (mut report, changes, ts) = {
            let mut crm = self.write();
            let mut rng = self.churn_rng.lock().unwrap_or_else(PoisonError::into_inner);
            let (r, c) = churn::create_property(&mut crm, req, &mut rng, self.clock.now_ms())?;
            (r, c, crm.last_ts)
        };
        if let Some(cfg) = &self.webhook_cfg {
            let events = webhooks::events_for(kind, &changes, ts, &self.next_event_id, cfg);
            report.events = events.len();
            if let Some(d) = &self.dispatcher {
                d.send(events);
            }
        }
        Ok(report)
    }

    /// Changes owners as `POST /_sim/owners` does (no webhooks: HubSpot sends none for owners).
    pub fn change_owners(
        &self,
        req: &crate::data::owners::OwnerChangeRequest,
    ) -> Result<crate::data::owners::OwnerChangeReport, String> {
        let mut crm = self.write();
        let mut rng = self.churn_rng.lock().unwrap_or_else(PoisonError::into_inner);
        let ts = crm.now(self.clock.now_ms());
        crate::data::owners::apply(&mut crm, req, &mut rng, ts)
    }

    /// NDJSON of every record of `object` (archived and merged-away included), or owners, or
    /// `associations` (every edge whose ends are both live, one line per association type).
    pub fn export(&self, object: &str) -> Option<String> {
        let crm = self.read();
        let mut out = String::new();
        if object == "associations" {
            return Some(crate::data::assoc::export(&crm));
        }
        if object == "owners" {
            for o in &crm.owners {
                out.push_str(&o.to_json().to_string());
                out.push('\n');
            }
            return Some(out);
        }
        let kind = ObjectKind::parse(object)?;
        let store = crm.store(kind);
        let all = PropSel::all(store);
        let mut ids: Vec<u64> = store.records.keys().copied().collect();
        ids.sort_unstable();
        out.reserve(ids.len() * 600);
        for id in ids {
            if let Some(rec) = store.records.get(&id) {
                export_line(&mut out, rec, &all);
            }
        }
        Some(out)
    }
}
