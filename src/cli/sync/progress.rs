//! Progress of running syncs: a line per object redrawn in place at the bottom of a terminal
//! (log lines appear above it, see `telemetry::set_sticky_lines`); a log line per object every
//! few seconds otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::kind::ObjectKind;
use crate::poller::Poller;

const TERMINAL_EVERY: Duration = Duration::from_millis(250);
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The running display; [`Display::stop`] ends it.
pub struct Display {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Display {
    pub fn start(poller: Poller, kinds: Vec<ObjectKind>) -> Self {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let terminal = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let every = if terminal { TERMINAL_EVERY } else { LOG_EVERY };
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = token.cancelled() => break,
                }
                let lines: Vec<String> = kinds.iter().filter_map(|k| status(&poller, *k, started.elapsed())).collect();
                if terminal {
                    crate::telemetry::set_sticky_lines(lines);
                } else {
                    for line in &lines {
                        tracing::info!("{line}");
                    }
                }
            }
            if terminal {
                crate::telemetry::set_sticky_lines(Vec::new());
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// One object's progress: records, pages, rate and, when the total is known, a bar and an ETA.
fn status(poller: &Poller, kind: ObjectKind, elapsed: Duration) -> Option<String> {
    let (records, pages, total) = poller.progress(kind)?.snapshot();
    let rate = records as f64 / elapsed.as_secs_f64().max(0.001);
    let mut line = format!("{:<9} {records:>8} records {pages:>6} pages {rate:>8.0}/s", kind.as_str());
    if total > 0 {
        let done = (records as f64 / total as f64).min(1.0);
        let filled = (done * 20.0).round() as usize;
        let eta = (total.saturating_sub(records) as f64 / rate.max(0.001)).round();
        line.push_str(&format!(
            "  [{}{}] {:>3.0}%  ETA {eta:.0} s",
            "#".repeat(filled),
            ".".repeat(20 - filled),
            done * 100.0
        ));
    }
    Some(line)
}
