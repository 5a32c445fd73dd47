//! Runs trace-scripts/test.sh (ksw-report.py under perf on the fixtures,
//! record-graph.sh plans). The script skips, with the reason, checks whose
//! tool is missing; it fails only on a wrong result.

use std::path::Path;
use std::process::Command;

#[test]
fn trace_scripts_test_sh() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../trace-scripts/test.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .expect("run bash trace-scripts/test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{} failed", script.display());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("trace-scripts: ") && l.contains(" passed, 0 failed")),
        "no summary line"
    );
}
