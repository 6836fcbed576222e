//! Logging: `tracing` to stderr, human-readable on a terminal and JSON elsewhere (`LOG_FORMAT`),
//! levels from `RUST_LOG` (default `info`).
//!
//! Conventions: a readable message plus dotted fields (`object.kind`, `hubspot.id`,
//! `duration_ms`); log a failure once, where it is handled; secrets live in `config::Secret`,
//! which prints as `[redacted]`, and personal data (emails, names) is never logged.

pub mod account;
pub mod prometheus;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let format = format.unwrap_or(if std::io::stderr().is_terminal() { LogFormat::Pretty } else { LogFormat::Json });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| EventWriter(Vec::new()));
    let _already_set = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
    };
}

/// Displays an error with its chain of causes (`a: b: c`), for log fields: errors keep their
/// cause as a `source`, and `Display` of the outer one alone would drop it. Causes whose text the
/// outer message already contains are skipped, so nothing is said twice.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut said = self.0.to_string();
        f.write_str(&said)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !said.contains(&text) {
                write!(f, ": {text}")?;
                said.push_str(&text);
            }
            cause = e.source();
        }
        Ok(())
    }
}
/// Lines kept at the bottom of a terminal (a live progress display) below the log lines.
static STICKY: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Shows `lines` at the bottom of stderr (a terminal), replacing the previous ones; log lines
/// written meanwhile appear above them instead of being overwritten. An empty list erases them.
pub fn set_sticky_lines(lines: Vec<String>) {
    let mut sticky = STICKY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut err = std::io::stderr().lock();
    erase(&mut err, sticky.len());
    *sticky = lines;
    draw(&mut err, &sticky);
    let _ = err.flush();
}

fn erase(err: &mut impl Write, lines: usize) {
    for _ in 0..lines {
        let _ = write!(err, "\x1b[1A\x1b[2K");
    }
    let _ = write!(err, "\r");
}

fn draw(err: &mut impl Write, lines: &[String]) {
    for line in lines {
        let _ = writeln!(err, "\x1b[2K{line}");
    }
}

/// One formatted log event, written to stderr in one piece above any sticky lines.
struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let sticky = STICKY.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut err = std::io::stderr().lock();
        if !sticky.is_empty() {
            erase(&mut err, sticky.len());
        }
        let _ = err.write_all(&self.0);
        if !sticky.is_empty() {
            draw(&mut err, &sticky);
        }
        let _ = err.flush();
    }
}
