//! The sweep verdict and the report's sweep section, on a recording
//! synthesized from `fixtures/ctx-canary.perf.data` (a canary overwritten
//! by `ksw_test_overflow` and put back): its frame copied into look-alike
//! functions `ksw_test_sweep_N` (new symbols added to a copy of the
//! kallsyms), only one of them written, with the sweep's /proc snapshot
//! in the counters section as `ksw record` stores it.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

mod common;
use common::{fixture, ksw, report_with, scratch};

use ksw::sweep::SweepAnalysis;
use ksw::symbols::{Source, Symbols};
use ksw_perf::abi::record_type;
use ksw_perf::{PerfFile, Sample, Writer, WriterConfig};

/// Where the fake sweep functions start (past the fixture's module text).
const SWEEP_BASE: u64 = 0xffff_ffff_a004_8000;
const FUNCTIONS: u64 = 6;
/// The arm's probe point in each (the fixture's is +0x28).
const PROBE: u64 = 0x28;

fn function_addr(n: u64) -> u64 {
    SWEEP_BASE + n * 0x100
}

/// The fixture's kallsyms and the look-alikes.
fn kallsyms(dir: &Path) -> (PathBuf, String) {
    let mut text = std::fs::read_to_string(fixture("ctx-kallsyms.txt")).unwrap();
    for n in 0..FUNCTIONS {
        text.push_str(&format!(
            "{:016x} t ksw_test_sweep_{n}\t[kstackwatch_test]\n",
            function_addr(n)
        ));
    }
    let path = dir.join("kallsyms");
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

/// The /proc/kstackwatch text of a sweep over the six look-alikes and two
/// functions without a canary.
fn proc_text() -> String {
    let mut names: Vec<String> = (0..FUNCTIONS)
        .map(|n| format!("ksw_test_sweep_{n}"))
        .collect();
    names.extend(["ksw_test_fill".to_string(), "ksw_test_mark".to_string()]);
    let mut text = format!(
        "# kstackwatch: 1 spec(s), 4 of 4 hardware slot(s) claimed, 0 armed\nfunc_name={} depth=0 max_watch=0 sp_offset=0 watch_len=0 auto_canary=1 panic_on_catch=0 sample=16\n",
        names.join(",")
    );
    text.push_str("#  spec 0: sweep of 8 function(s): 6 watched, 2 skipped; calls=200 armed=12 hits=4 missed: fprobe=0\n");
    text.push_str("#  spec 0: ksw_test_sweep_3 [kstackwatch_test] at 0xffffffffa0048300 (160 bytes): arms at +0x28 (after the prologue), watches the canary at sp+0x88 (frame slot CFA-16), disarms at +0x90; calls=34 armed=2 hits=4 missed: arm=0 release=0\n");
    text.push_str("#  ... and 5 more function(s)\n");
    for f in ["ksw_test_fill", "ksw_test_mark"] {
        text.push_str(&format!("#  skipped {f}: no stack-protector canary store in the function's code: watch a local with sp_offset and watch_len\n"));
    }
    text.push_str("# counters: arms=12 disarms=12 hits=4 not_sampled=180\n");
    text
}

/// Writes `copies` copies of the fixture's frame, copy k in function
/// k % FUNCTIONS; only copies in function `victim` keep their hits.
fn synthesize(output: &Path, copies: u64, victim: Option<u64>) {
    let file = PerfFile::open(fixture("ctx-canary.perf.data")).unwrap();
    let config = WriterConfig {
        ksw_counters: Some(ksw::record::feature_text(
            "arms=0 disarms=0 hits=0 not_sampled=0",
            "arms=12 disarms=12 hits=4 not_sampled=180",
            &proc_text(),
        )),
        ..WriterConfig::from_recording(&file)
    };
    let mut w = Writer::create(BufWriter::new(File::create(output).unwrap()), config).unwrap();
    for raw in file.raw_records() {
        let raw = raw.unwrap();
        if raw.kind != record_type::SAMPLE && raw.kind != record_type::FINISHED_ROUND {
            w.write_raw_record(raw.bytes).unwrap();
        }
    }
    let samples = file.samples_by_time().unwrap();
    let span = samples.last().unwrap().time.unwrap() - samples.first().unwrap().time.unwrap()
        + 100_000_000;
    for copy in 0..copies {
        let function = copy % FUNCTIONS;
        let written = Some(function) == victim;
        for s in &samples {
            let format = s.format.unwrap();
            if format.name == "ksw_hit" && !written {
                continue;
            }
            let mut raw = s.raw.to_vec();
            let mut set = |field: &str, value: u64, size: usize| {
                if let Some(f) = format.field(field) {
                    let at = f.offset as usize;
                    raw[at..at + size].copy_from_slice(&value.to_le_bytes()[..size]);
                }
            };
            let id = s.u64("id").unwrap();
            set("id", id + copy * 1000, 8);
            if format.name != "ksw_disarm" {
                set("probe_ip", function_addr(function) + PROBE, 8);
            } else if !written {
                set("hits", 0, 4);
            }
            let mut s = s.clone();
            s.time = s.time.map(|t| t + copy * span);
            w.write_sample(&Sample { raw: &raw, ..s }).unwrap();
        }
        w.write_finished_round().unwrap();
    }
    w.finish().unwrap();
}

fn analysis(input: &Path, kallsyms: &str) -> (SweepAnalysis, Symbols) {
    let recording = ksw::events::open(input).unwrap();
    let symbols = Symbols::from_text(kallsyms, Source::None);
    let (a, error) = SweepAnalysis::of_recording(&recording, &symbols);
    assert_eq!(error, None);
    (a, symbols)
}

#[test]
fn the_verdict_names_the_victim_function_and_its_writer() {
    let dir = scratch("victim");
    let (kpath, ktext) = kallsyms(&dir);
    let data = dir.join("sweep.data");
    synthesize(&data, 12, Some(3));
    let (a, symbols) = analysis(&data, &ktext);
    let verdict = a.verdict(&symbols);
    assert_eq!(
        verdict[0],
        "victim found: ksw_test_sweep_3 (frame of task ksw-canary/91, depth 0), written by ksw_test_overflow+0xf4 [kstackwatch_test] in ksw-canary/91 (the victim task itself); 4 write(s) in 2 of 2 sampled frame(s), 1 other writer instruction(s)"
    );
    assert_eq!(
        verdict[1],
        "coverage: 12 frame(s) sampled in 6 function(s) of 6 watched, at least 6 called; the module counted 200 call(s), 12 armed, 4 hit(s)"
    );
    assert_eq!(
        verdict[2],
        "sampling: 12 of 192 eligible call(s) picked (1 in 16.0; asked 1 in 16)"
    );
    assert_eq!(verdict.len(), 3);

    // The report: its usual text, and the sweep section after the summary.
    let text = report_with(&data, &kpath, &[]);
    assert!(
        text.contains("\n4 corruptions of 2 victims by 1 writer\n"),
        "{text}"
    );
    let section = text
        .split("\nSweep: ")
        .nth(1)
        .and_then(|s| s.split("\nVictim frames").next())
        .unwrap_or_else(|| panic!("no sweep section: {text}"));
    assert!(
        section.starts_with("6 function(s) watched (sample 1 in 16; 8 listed, 2 skipped)\n"),
        "{section}"
    );
    assert!(
        section.contains("  victim functions (frames written or silently corrupted):\n    ksw_test_sweep_3 (frame of task ksw-canary/91, depth 0), written by ksw_test_overflow+0xf4"),
        "{section}"
    );
    assert!(
        section.contains("  frames sampled per function (top 6 of 6):\n           2  ksw_test_sweep_3 (2 corrupted)\n"),
        "{section}"
    );
    assert!(
        section.contains("  skipped: 2 no stack-protector canary (ksw_test_fill, ksw_test_mark)\n"),
        "{section}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&report_with(&data, &kpath, &["--format", "json"])).unwrap();
    let s = &json["sweep"];
    assert_eq!(s["victims"][0]["function"], "ksw_test_sweep_3");
    assert_eq!(s["victims"][0]["writes"], 4);
    assert_eq!(
        s["victims"][0]["writer_instruction"],
        "ksw_test_overflow+0xf4 [kstackwatch_test]"
    );
    assert_eq!(s["victims"][0]["task"]["comm"], "ksw-canary");
    assert_eq!(s["functions"]["watched"], 6);
    assert_eq!(s["functions"]["armed"], 6);
    assert_eq!(s["functions"]["called_exact"], false);
    assert_eq!(s["sample"], 16);
    assert_eq!(s["sampling"]["eligible"], 192);
    assert_eq!(s["skipped_reasons"]["no stack-protector canary"], 2);
    assert_eq!(s["per_function"][0]["function"], "ksw_test_sweep_3");
    assert_eq!(s["per_function"][0]["calls"], 34);
    assert_eq!(s["per_function"][1]["calls"], serde_json::Value::Null);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_corruption_is_said_with_the_coverage() {
    let dir = scratch("clean");
    let (_, ktext) = kallsyms(&dir);
    let data = dir.join("clean.data");
    synthesize(&data, 6, None);
    let (a, symbols) = analysis(&data, &ktext);
    let verdict = a.verdict(&symbols);
    assert_eq!(
        verdict[0],
        "no corruption seen in 6 sampled frame(s) of 6 function(s)"
    );
    assert!(verdict[1].starts_with("coverage: 6 frame(s) sampled in 6 function(s) of 6 watched"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn recordings_of_one_function_keep_their_report() {
    // No sweep stats, one function: no sweep section, no `sweep` member.
    let k = fixture("ctx-kallsyms.txt");
    let input = fixture("ctx-canary.perf.data");
    let text = report_with(&input, &k, &[]);
    assert!(!text.contains("\nSweep: "), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&report_with(&input, &k, &["--format", "json"])).unwrap();
    assert_eq!(json["sweep"], serde_json::Value::Null);
}

#[test]
fn sweep_print_expands_without_a_kernel() {
    let dir = scratch("print");
    let available = dir.join("available_filter_functions");
    std::fs::write(
        &available,
        "ksw_test_sweep_0 [kstackwatch_test]\nksw_test_sweep_1 [kstackwatch_test]\nksw_test_fill [kstackwatch_test]\ndo_one_initcall\n",
    )
    .unwrap();
    let a = available.to_str().unwrap();
    let out = ksw(&[
        "sweep",
        "--available-functions",
        a,
        "--module",
        "kstackwatch_test",
        "--function",
        "ksw_test_sweep_*",
        "--print",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "fn=ksw_test_sweep_0,ksw_test_sweep_1 ac=1 sa=16\n"
    );
    let out = ksw(&[
        "sweep",
        "--available-functions",
        a,
        "--function",
        "xfs_*",
        "--print",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ksw: --function 'xfs_*' matches no traceable function"),
        "{err}"
    );
    let out = ksw(&[
        "sweep",
        "--available-functions",
        a,
        "--sample",
        "4",
        "--rate",
        "9",
        "--module",
        "x",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--sample and --rate exclude each other"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
