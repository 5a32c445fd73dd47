//! `ksw report` on recordings of the real module (perf-plugin/fixtures,
//! captured in the VM by fixtures/capture.sh), run as the built binary.

use std::process::Command;

mod common;
use common::{fixture, ksw, report_with, scratch};

fn report(input: &str, extra: &[&str]) -> String {
    report_with(&fixture(input), &fixture("kallsyms.txt"), extra)
}

fn json(input: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&report(input, &args)).expect("valid JSON")
}

#[test]
fn silent_corruption_names_writer_and_victim() {
    let text = report("silent.perf.data", &[]);
    assert!(
        text.contains("\n1 corruption of 1 victim by 1 writer\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "watch 1: ksw_test_victim (probe ksw_test_victim+0xd7 [kstackwatch_test], depth 0)"
        ),
        "{text}"
    );
    assert!(text.contains("task     ksw-victim/84 on cpu 0"), "{text}");
    assert!(
        text.contains("verdict  HIT: 1 write(s) caught, by ksw-writer/85; value changed"),
        "{text}"
    );
    assert!(text.contains("ksw-writer/85: 1 write(s)"), "{text}");
    assert!(
        text.contains("1 x ksw_test_corrupt+0x3 [kstackwatch_test] on cpu 1"),
        "{text}"
    );
    assert!(text.contains("0xdeadbef7 -> 0xabcdabcd"), "{text}");
    // The writer's call chain, cut where the writer starts.
    let chain = text.split("call chain:\n").nth(1).expect("a call chain");
    let first: Vec<&str> = chain.lines().take(3).map(str::trim).collect();
    assert_eq!(first[0], "ksw_test_corrupt+0x3 [kstackwatch_test]");
    assert_eq!(
        first[1],
        "ksw_test_main::writer_thread+0x94 [kstackwatch_test]"
    );
    assert_eq!(first[2], "ksw_test_thread_fn+0x10 [kstackwatch_test]");
}

#[test]
fn json_carries_the_same_facts() {
    let v = json("silent.perf.data", &[]);
    assert_eq!(
        v["summary"]["headline"],
        "1 corruption of 1 victim by 1 writer"
    );
    assert_eq!(v["recording"]["clock"], "monotonic");
    assert_eq!(v["victims"][0]["function"], "ksw_test_victim");
    assert_eq!(v["victims"][0]["task"]["comm"], "ksw-victim");
    assert_eq!(v["victims"][0]["verdict"], "hit");
    assert_eq!(v["victims"][0]["value_at_exit"], "0xabcdabcd");
    assert_eq!(v["writers"][0]["task"]["comm"], "ksw-writer");
    assert_eq!(
        v["writers"][0]["sites"][0]["instruction"],
        "ksw_test_corrupt+0x3 [kstackwatch_test]"
    );
    let hit = &v["victims"][0]["hits"][0];
    assert_eq!(hit["agreement"], "agree");
    assert_eq!(hit["matched_by_id"], 1);
    assert_eq!(hit["matched_by_time"], 1);
    assert_eq!(hit["writer"]["comm"], "ksw-writer");
    assert_eq!(v["victims"][0]["hit_count"], 1);
}

#[test]
fn more_victims_than_slots() {
    let v = json("many.perf.data", &[]);
    assert_eq!(
        v["summary"]["headline"],
        "4 corruptions of 4 victims by 1 writer"
    );
    let victims = v["victims"].as_array().unwrap();
    assert_eq!(victims.len(), 4);
    assert!(victims.iter().all(|x| x["verdict"] == "hit"));
    let sites = v["writers"][0]["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 1, "identical hits are grouped");
    assert_eq!(sites[0]["count"], 4);
    assert_eq!(sites[0]["victims"].as_array().unwrap().len(), 4);
    assert_eq!(sites[0]["examples"].as_array().unwrap().len(), 4);
}

#[test]
fn text_lists_the_first_frames_and_counts_the_rest() {
    let text = report("many.perf.data", &["--max-frames", "1"]);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  watch ")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("... 3 more frame(s)"), "{text}");
    assert!(text.contains("       3 x ksw_test_victim: hit"), "{text}");
}

#[test]
fn function_graph_by_inline_event() {
    let graph = fixture("graph.function_graph.txt");
    let v = json("graph.perf.data", &["--graph", graph.to_str().unwrap()]);
    let victim = &v["victims"][0]["graph"];
    assert_eq!(victim["anchor"], "event");
    assert_eq!(victim["anchor_text"], "by event id");
    assert_eq!(
        victim["path"],
        serde_json::json!([
            "ksw_test_thread_fn",
            "ksw_test_silent_round",
            "ksw_test_victim"
        ])
    );
    let calls = victim["calls"].as_array().unwrap();
    assert_eq!(calls[0]["function"], "ksw_test_victim_wait");
    assert_eq!(calls[0]["depth"], 0);
    assert!(
        calls[0]["duration_ns"].as_u64().unwrap() > 0,
        "duration from the exit line"
    );
    let writer = &v["writers"][0]["sites"][0]["graph"];
    assert_eq!(writer["anchor"], "event");
    assert_eq!(writer["path"], serde_json::json!(["ksw_test_thread_fn"]));
}

#[test]
fn a_graph_from_another_run_is_unmatched_not_guessed() {
    // trace-cmd capture of a later run: other ids, other times.
    let graph = fixture("silent.trace-cmd.txt");
    let v = json("silent.perf.data", &["--graph", graph.to_str().unwrap()]);
    let anchor = v["victims"][0]["graph"]["anchor_text"].as_str().unwrap();
    assert!(anchor.starts_with("unmatched"), "{anchor}");
    assert_eq!(v["victims"][0]["graph"]["anchor"], "unmatched");
    assert!(v["victims"][0]["graph"]["path"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn truncated_files_fail_with_an_offset() {
    let bytes = std::fs::read(fixture("silent.perf.data")).unwrap();
    let dir = scratch("trunc");
    // Cuts inside the header, the attributes or the data section.
    let data_end = ksw_perf::PerfFile::from_bytes(bytes.clone())
        .unwrap()
        .data_range()
        .1 as usize;
    for cut in [0, 7, 100, 700, 800, bytes.len() / 4, data_end - 1] {
        let path = dir.join(format!("cut-{cut}.data"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let out = ksw(&["report", "-i", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "cut at {cut} accepted");
        assert_eq!(out.status.code(), Some(1), "cut at {cut}: {err}");
        assert!(err.starts_with("ksw: "), "cut at {cut}: {err}");
        assert!(
            err.contains(path.to_str().unwrap()),
            "cut at {cut}: the error does not name the file: {err}"
        );
        assert!(!err.contains("perf.data:"), "cut at {cut}: {err}");
        assert!(
            err.contains("offset") || err.contains("0x"),
            "cut at {cut}: no offset in: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn cut_feature_sections_are_skipped_when_the_samples_are_intact() {
    let bytes = std::fs::read(fixture("silent.perf.data")).unwrap();
    let dir = scratch("cutfeat");
    for cut in [1, 5, 40] {
        let path = dir.join(format!("cut-{cut}.data"));
        std::fs::write(&path, &bytes[..bytes.len() - cut]).unwrap();
        let out = ksw(&[
            "report",
            "-i",
            path.to_str().unwrap(),
            "--kallsyms",
            fixture("kallsyms.txt").to_str().unwrap(),
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "cut {cut}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("\n1 corruption of 1 victim by 1 writer\n"),
            "{text}"
        );
        assert!(
            text.contains("skipped (damaged: ") && text.contains("the samples are intact"),
            "{text}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupted_files_never_panic() {
    let bytes = std::fs::read(fixture("many.perf.data")).unwrap();
    let dir = std::env::temp_dir().join(format!("ksw-flip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..40 {
        let mut copy = bytes.clone();
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed as usize) % copy.len();
            copy[at] ^= (seed >> 32) as u8 | 1;
        }
        let path = dir.join(format!("flip-{round}.data"));
        std::fs::write(&path, &copy).unwrap();
        let out = ksw(&["report", "-i", path.to_str().unwrap(), "--format", "json"]);
        // Either a report or one error line; a panic exits with 101.
        assert_ne!(
            out.status.code(),
            Some(101),
            "panic on round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_input_and_non_ksw_recordings() {
    // A trace-cmd file is named as such.
    let out = ksw(&[
        "report",
        "-i",
        fixture("silent.trace.dat").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("a trace-cmd trace.dat, not a perf.data file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = ksw(&["report", "-i", "/nonexistent/perf.data"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/perf.data"));

    // A valid perf.data with no kstackwatch event in it.
    let dir = std::env::temp_dir().join(format!("ksw-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("other.data");
    let file = std::fs::File::create(&path).unwrap();
    let writer = ksw_perf::Writer::create(
        std::io::BufWriter::new(file),
        ksw_perf::WriterConfig {
            events: vec![ksw_perf::EventSpec {
                // A software event (dummy): a perf.data with no tracepoints.
                attr: ksw_perf::PerfEventAttr {
                    type_: 1,
                    config: 9,
                    ..ksw_perf::PerfEventAttr::tracepoint(0, false)
                },
                name: "dummy:u".into(),
                ids: vec![1],
            }],
            ..ksw_perf::WriterConfig::default()
        },
    )
    .unwrap();
    // A data section of size 0 means "recording never finished": add a record.
    let mut writer = writer;
    writer.write_finished_round().unwrap();
    writer.finish().unwrap();
    let out = ksw(&["report", "-i", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no kstackwatch events"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn ksw_report_binary_is_ksw_report() {
    let input = fixture("silent.perf.data");
    let kallsyms = fixture("kallsyms.txt");
    let out = Command::new(env!("CARGO_BIN_EXE_ksw-report"))
        .args([
            "-i",
            input.to_str().unwrap(),
            "--kallsyms",
            kallsyms.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        report("silent.perf.data", &[])
    );
}

#[test]
fn check_config_and_completions() {
    let dir = std::env::temp_dir().join(format!("ksw-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good");
    std::fs::write(&good, "fn=ksw_test_victim fo=0xd7 so=64 wl=8\n").unwrap();
    let out = ksw(&["check-config", good.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "func_name=ksw_test_victim func_offset=0xd7 depth=0 max_watch=0 sp_offset=64 watch_len=8 auto_canary=0 panic_on_catch=0\n"
    );
    let bad = dir.join("bad");
    std::fs::write(&bad, "fn=x wl=3\n").unwrap();
    let out = ksw(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("watch_len must be 0 (canary), 1, 2, 4 or 8")
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let out = ksw(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("_ksw()"));
}
