// SPDX-License-Identifier: GPL-2.0
//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ksw_perf::read::PerfFile;

/// `perf-plugin/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// The bytes of a fixture.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A fixture's text.
pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Open `<scenario>.perf.data`.
pub fn open(scenario: &str) -> PerfFile {
    PerfFile::open(fixture(&format!("{scenario}.perf.data")))
        .unwrap_or_else(|e| panic!("{scenario}: {e}"))
}

/// A fresh scratch directory for one test.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ksw-perf-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The perf binary the round-trip tests run.
pub const PERF: &str = "/usr/bin/perf";

/// True if `/usr/bin/perf` exists; prints why a test is skipped if not.
pub fn have_perf(test: &str) -> bool {
    if Path::new(PERF).exists() {
        true
    } else {
        eprintln!("note: {test}: {PERF} is absent, perf part skipped");
        false
    }
}

/// Run perf with `args`; returns stdout, panics (with stderr) on failure.
pub fn perf(args: &[&str]) -> String {
    let out = Command::new(PERF)
        .args(args)
        // Keep perf from reading the user's config or plugins.
        .env("PERF_CONFIG", "/dev/null")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap_or_else(|e| panic!("perf {args:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "perf {args:?} failed: {}\n{stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run perf with `args`; returns (success, stdout + stderr).
pub fn perf_status(args: &[&str]) -> (bool, String) {
    let out = Command::new(PERF)
        .args(args)
        .env("PERF_CONFIG", "/dev/null")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap_or_else(|e| panic!("perf {args:?}: {e}"));
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}
