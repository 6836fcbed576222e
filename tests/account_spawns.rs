#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
//! The per-account metrics label (`telemetry::account`) comes from a task-local that a spawned
//! task does not inherit: every task started in the modules that run per account must take it
//! along (`account::spawn`, `account::carry`), else its metrics would say `account="default"`.
//! This reads those modules' code (tests excluded) and refuses a spawn that does not.

use std::path::Path;

/// The modules whose code runs inside an account's parts.
const PER_ACCOUNT: [&str; 6] = ["src/fetcher", "src/poller", "src/hubspot", "src/queue", "src/objects", "src/audit"];

/// The poller's own tracked spawn (`poller::core`), which carries the account itself.
const CARRYING: [&str; 2] = ["inner.spawn(", "poller.spawn("];

/// Files of those modules that run once per process, not per account.
const PROCESS_WIDE: [&str; 2] = ["src/poller/leader.rs", "src/poller/listen.rs"];

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_spawn_in_an_accounts_parts_carries_its_account() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    for dir in PER_ACCOUNT {
        files(&root.join(dir), &mut paths);
    }
    let mut bare = Vec::new();
    for path in paths {
        let relative = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
        if PROCESS_WIDE.contains(&relative.as_str()) || relative.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Inline test modules come last in this codebase.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let spawns = line.contains("spawn(") && !line.trim_start().starts_with("//");
            let carried = line.contains("account::") || CARRYING.iter().any(|c| line.contains(c));
            if spawns && !carried && !line.contains("fn spawn(") {
                bare.push(format!("{relative}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        bare.is_empty(),
        "spawns that lose the account (use telemetry::account::spawn or carry):\n{}",
        bare.join("\n")
    );
}
