//! Helpers shared by the integration tests: fixtures, scratch directories,
//! and the built `ksw` binary.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A recording or text under `perf-plugin/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name)
}

/// An empty directory of this test process's own.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ksw-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the built `ksw` binary.
pub fn ksw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ksw"))
        .args(args)
        .output()
        .expect("run ksw")
}

/// `ksw report -i INPUT --kallsyms KALLSYMS EXTRA...`, which must succeed.
pub fn report_with(input: &Path, kallsyms: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "report",
        "-i",
        input.to_str().unwrap(),
        "--kallsyms",
        kallsyms.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = ksw(&args);
    assert!(
        out.status.success(),
        "ksw report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
