//! Throughput of contact batch reads (100 ids each) with the request budget off.
//!
//! `cargo bench -p hubspot-sim --bench batch_read -- [seconds] [concurrency] [contacts]`
//! Starts the simulator in-process (HTTP on 127.0.0.1, 2 worker threads) and drives it with
//! `concurrency` keep-alive clients for `seconds`, then prints requests/s and records/s.

use hubspot_sim::{Sim, SimOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args().filter(|a| !a.starts_with('-')).nth(n).and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let secs = arg(1, 10);
    let concurrency = arg(2, 32) as usize;
    let contacts = arg(3, 200_000) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let t = Instant::now();
        let h = Sim::start(SimOptions { contacts, deals: 1000, calls: 1000, workers: 2, ..Default::default() }).await?;
        println!("generated {contacts} contacts and started in {:.2?}", t.elapsed());
        let ids: Arc<Vec<u64>> = Arc::new(h.state().read().contacts.live.iter().copied().collect());
        let url = format!("{}/crm/v3/objects/contacts/batch/read", h.url());
        let ok = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?;
        let mut tasks = Vec::new();
        for worker in 0..concurrency {
            let (ids, url, ok, bad, bytes, stop, client) = (ids.clone(), url.clone(), ok.clone(), bad.clone(), bytes.clone(), stop.clone(), client.clone());
            tasks.push(tokio::spawn(async move {
                let mut x = worker as u64 * 7919 + 1;
                while !stop.load(Ordering::Relaxed) {
                    let inputs: Vec<serde_json::Value> = (0..100)
                        .map(|_| {
                            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                            serde_json::json!({"id": ids[(x >> 33) as usize % ids.len()].to_string()})
                        })
                        .collect();
                    let body = serde_json::json!({
                        "properties": ["email", "firstname", "lastname", "phone", "hubspot_owner_id", "lifecyclestage", "hs_lead_status", "createdate", "lastmodifieddate"],
                        "propertiesWithHistory": [], "inputs": inputs,
                    });
                    match client.post(&url).bearer_auth("bench").json(&body).send().await {
                        Ok(r) if r.status().as_u16() == 200 || r.status().as_u16() == 207 => {
                            let b = r.bytes().await.map(|b| b.len()).unwrap_or(0);
                            bytes.fetch_add(b as u64, Ordering::Relaxed);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await; // warm-up
        let (ok0, t0) = (ok.load(Ordering::Relaxed), Instant::now());
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (ok1, el) = (ok.load(Ordering::Relaxed), t0.elapsed());
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let rps = (ok1 - ok0) as f64 / el.as_secs_f64();
        println!(
            "batch_read: {rps:.0} requests/s ({:.0} contacts/s), concurrency {concurrency}, {secs} s, errors {}, avg response {} bytes",
            rps * 100.0,
            bad.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed) / ok1.max(1)
        );
        h.shutdown().await;
        anyhow::Ok(())
    })
}
