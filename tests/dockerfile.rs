//! The Dockerfile's dependency-cache stage: before `COPY . .` it copies only the manifests and
//! writes stub sources, and Cargo refuses a manifest whose declared targets (`[lib]`, `[[bin]]`,
//! `[[bench]]`, `[[test]]`) have no file. So a target added to `Cargo.toml` or `sim/Cargo.toml`
//! without a stub breaks `docker build`. This test replays that stage without Docker (the same
//! `COPY`s into a temporary directory, then the stub step's shell command) and checks that a file
//! exists for every library, binary and bench of both packages and every declared `[[test]]`,
//! at the path `cargo metadata` gives for it. (`cargo metadata` itself is no check: it silently
//! leaves out a bench whose file is missing, where `cargo build` refuses the manifest.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The build stage's instructions up to `COPY . .`, continuation lines joined (as Docker does),
/// comments dropped.
fn cache_stage() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current).trim().to_owned());
            }
        }
    }
    let end = instructions.iter().position(|i| i == "COPY . .").expect("the Dockerfile has `COPY . .`");
    instructions.truncate(end);
    instructions
}

/// Applies a `COPY src... dst` of the build context (the repository) into `dir`.
fn copy(args: &str, dir: &Path) {
    let mut parts: Vec<&str> = args.split_whitespace().collect();
    let dst = parts.pop().expect("COPY names a destination");
    for src in &parts {
        let target = if dst.ends_with('/') || parts.len() > 1 {
            dir.join(dst).join(Path::new(src).file_name().unwrap())
        } else {
            dir.join(dst)
        };
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(root().join(src), &target).unwrap_or_else(|e| panic!("COPY {src} {dst}: {e}"));
    }
}

#[test]
fn cache_stage_never_hides_a_failure() {
    for instruction in cache_stage() {
        assert!(!instruction.contains("|| true"), "the cache stage must fail loudly: {instruction}");
    }
}

#[test]
fn cache_stage_stubs_every_target_of_both_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let mut ran_stubs = false;
    let mut builds = 0;
    for instruction in cache_stage() {
        if let Some(args) = instruction.strip_prefix("COPY ") {
            copy(args, dir.path());
        } else if let Some(command) = instruction.strip_prefix("RUN ") {
            if command.contains("cargo ") {
                // Compiling here would take minutes; the files it needs are checked below.
                assert!(command.contains("--locked"), "the cached build uses Cargo.lock as is: {command}");
                builds += 1;
                continue;
            }
            let status = Command::new("sh").arg("-c").arg(command).current_dir(dir.path()).status().unwrap();
            assert!(status.success(), "the stub step failed ({status}): {command}");
            ran_stubs = true;
        }
    }
    assert!(ran_stubs, "no stub step (a RUN without cargo) before `COPY . .`");
    assert_eq!(builds, 1, "one cached dependency build before `COPY . .`");

    // What must exist: every library, binary and bench of both packages (declared or found by
    // Cargo), and every `[[test]]` a manifest declares. Cargo gives their paths.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut required = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
        let declared = declared_tests(&std::fs::read_to_string(&manifest).unwrap());
        for target in package["targets"].as_array().unwrap() {
            let kind = target["kind"][0].as_str().unwrap();
            let name = target["name"].as_str().unwrap();
            if matches!(kind, "lib" | "bin" | "bench") || (kind == "test" && declared.iter().any(|d| d == name)) {
                let path = PathBuf::from(target["src_path"].as_str().unwrap());
                required.push((format!("{kind} `{name}`"), path.strip_prefix(root()).unwrap().to_owned()));
            }
        }
    }
    assert!(required.len() >= 10, "too few targets found, is the parser broken? {required:?}");
    let missing: Vec<String> = required
        .iter()
        .filter(|(_, path)| !dir.path().join(path).is_file())
        .map(|(what, path)| format!("{what} ({})", path.display()))
        .collect();
    assert!(
        missing.is_empty(),
        "the Dockerfile's stub step writes no file for: {}; add each path to the stub step's list, \
         or `docker build` fails on the manifest",
        missing.join(", ")
    );
}

/// Names of the `[[test]]` targets a manifest declares.
fn declared_tests(manifest: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_test = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_test = line == "[[test]]";
        } else if in_test {
            let value = line.strip_prefix("name").and_then(|rest| rest.trim_start().strip_prefix('='));
            names.extend(value.map(|v| v.trim().trim_matches('"').to_owned()));
        }
    }
    names
}
