//! `ksw report` on recordings of the reworked module (fixtures/ctx-*) and on
//! damaged copies of the fixtures made here: deleted hits, lost arms, lost
//! disarms (slots re-armed), kallsyms of another kernel or not kallsyms at
//! all, names that are not UTF-8. Nothing is guessed, nothing is `?` when
//! the file has it, every loss is said once with its count.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

mod common;
use common::{fixture, ksw, report_with, scratch};

use ksw_perf::abi::record_type;
use ksw_perf::{PerfFile, Sample, Writer, WriterConfig};

fn report(input: &Path, kallsyms: &str, extra: &[&str]) -> String {
    report_with(input, &fixture(kallsyms), extra)
}

fn json(input: &Path, kallsyms: &str) -> serde_json::Value {
    serde_json::from_str(&report(input, kallsyms, &["--format", "json"])).expect("valid JSON")
}

fn event(s: &Sample<'_>) -> String {
    s.format.map(|f| f.name.clone()).unwrap_or_default()
}

/// Copies `input` into `output`: the non-sample records as they are, the
/// samples through `edit` (None drops one), COPIES times with times
/// shifted and watch ids renumbered (copy k adds k * 1000 to ids).
fn derive(input: &str, output: &Path, copies: u64, edit: impl Fn(u64, &Sample<'_>) -> bool) {
    let file = PerfFile::open(fixture(input)).unwrap();
    let config = WriterConfig::from_recording(&file);
    let mut w = Writer::create(BufWriter::new(File::create(output).unwrap()), config).unwrap();
    // Non-sample records first (maps, names), once.
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
        for s in &samples {
            if !edit(copy, s) {
                continue;
            }
            let mut s = s.clone();
            s.time = s.time.map(|t| t + copy * span);
            let f = s.format.unwrap().field("id").unwrap().clone();
            let mut raw = s.raw.to_vec();
            let at = f.offset as usize;
            let id = u64::from_le_bytes(raw[at..at + 8].try_into().unwrap());
            raw[at..at + 8].copy_from_slice(&(id + copy * 1000).to_le_bytes());
            w.write_sample(&Sample { raw: &raw, ..s }).unwrap();
        }
        w.write_finished_round().unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn the_reworked_module_fields_are_reported() {
    let v = json(&fixture("ctx-hardirq.perf.data"), "ctx-kallsyms.txt");
    assert_eq!(v["schema_version"], 2);
    let f = &v["victims"][0];
    assert_eq!(
        (f["verdict"].as_str(), f["exit_state"].as_str()),
        (Some("hit"), Some("changed"))
    );
    let h = &f["hits"][0];
    assert_eq!(
        (h["context"].as_str(), h["by_victim"].as_bool()),
        (Some("hardirq"), Some(true))
    );
    assert!(h["instruction_addr"]
        .as_str()
        .unwrap()
        .starts_with("0xffffffff"));
    let text = report(&fixture("ctx-hardirq.perf.data"), "ctx-kallsyms.txt", &[]);
    assert!(
        text.contains("verdict  HIT: 1 write(s) caught, by hardirq on the victim's CPU (interrupting ksw-hardirq/86); value changed\n"),
        "{text}"
    );
    assert!(
        text.contains("[hardirq on the victim's CPU, interrupting it]\n"),
        "{text}"
    );

    // The canary: values withheld, written twice, restored.
    let text = report(&fixture("ctx-canary.perf.data"), "ctx-kallsyms.txt", &[]);
    assert!(
        text.contains("value    canary at arm -> canary at exit"),
        "{text}"
    );
    assert!(
        text.contains("verdict  HIT: 2 write(s) caught, by ksw-canary"),
        "{text}"
    );
    assert!(text.contains("; value restored"), "{text}");
    assert!(text.contains("canary -> 0xf0f0f0f0f0f0f0f"), "{text}");

    // A write through another mapping: silently corrupted.
    let text = report(&fixture("ctx-alias.perf.data"), "ctx-kallsyms.txt", &[]);
    assert!(
        text.contains("\n1 corruption of 1 victim by 0 writers\n"),
        "{text}"
    );
    assert!(
        text.contains("SILENTLY CORRUPTED: 0x7008 at arm, 0xf0e1d2c3 when the frame died, and no write was caught"),
        "{text}"
    );
}

#[test]
fn return_hooks_are_named_and_the_caller_recovered_from_function_graph() {
    let graph = fixture("ctx-graph.function_graph.txt");
    let text = report(
        &fixture("ctx-graph.perf.data"),
        "ctx-kallsyms.txt",
        &["--graph", graph.to_str().unwrap()],
    );
    assert!(
        text.contains("armed in ksw_test_victim+0xda [kstackwatch_test] <- return_to_handler (function_graph return hook: chain continues in the return-hook stack) [function_graph: called from ksw_test_silent_round]\n"),
        "{text}"
    );
    assert!(!text.contains("ftrace_stub_direct_tramp"), "{text}");
}

#[test]
fn deleted_hits_are_counted_by_the_kernel_and_named_from_comm_records() {
    let dir = scratch("hits");
    let out = dir.join("nohits.data");
    derive("ctx-silent.perf.data", &out, 1, |_, s| {
        event(s) != "ksw_hit"
    });
    let text = report(&out, "ctx-kallsyms.txt", &[]);
    assert!(
        text.contains("\n1 corruption of 1 victim by 0 writers\n"),
        "{text}"
    );
    assert!(
        text.contains("verdict  HIT: 1 write(s) in the kernel, 0 recorded, by no writer recorded; value changed"),
        "{text}"
    );
    assert!(
        text.contains("(1 write(s) in the kernel are missing from the recording)"),
        "{text}"
    );
    // The victim, a kernel thread created during the recording, has only
    // its fork in this file (perf recorded no COMM for its rename; its own
    // name was in the deleted hit): named as its parent, as perf does.
    assert!(text.contains("task     kthreadd/"), "{text}");
    assert!(!text.contains("?/"), "{text}");
    let v = json(&out, "ctx-kallsyms.txt");
    let f = &v["victims"][0];
    assert_eq!(
        (f["hit_count"].as_u64(), f["kernel_hits"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(v["loss"]["hits_missing"], 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lost_arms_and_lost_disarms_are_said_once_with_counts() {
    let dir = scratch("arms");
    // Three copies of the 4-frame recording; copy 1 loses its arms, copy 0
    // loses every disarm (its slots are armed again by copy 1).
    let out = dir.join("lossy.data");
    derive("many.perf.data", &out, 3, |copy, s| {
        !(copy == 1 && event(s) == "ksw_arm" || copy == 0 && event(s) == "ksw_disarm")
    });
    let text = report(&out, "kallsyms.txt", &["--max-frames", "0"]);
    assert!(
        text.contains("4 frame(s) have hits or a disarm but no recorded arm (lost"),
        "{text}"
    );
    assert!(
        text.contains("4 frame(s) ended without a recorded disarm (their slot was armed again"),
        "{text}"
    );
    assert!(text.contains("arm not recorded (lost)"), "{text}");
    assert!(
        text.contains("(disarm not recorded; the slot was armed again at "),
        "{text}"
    );
    assert!(!text.contains("ambiguous"), "{text}");
    assert!(!text.contains("Some("), "Rust debug syntax: {text}");
    assert!(
        !text.contains("armed before the recording started"),
        "{text}"
    );
    // Every write is still counted: 12 frames, 12 writes.
    assert!(
        text.contains("\n12 corruptions of 12 victims by 1 writer\n"),
        "{text}"
    );
    let v = json(&out, "kallsyms.txt");
    assert_eq!(v["loss"]["arms_missing"], 4);
    assert_eq!(v["loss"]["disarms_missing"], 4);
    let ends: Vec<&str> = v["victims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["end"].as_str().unwrap())
        .collect();
    assert_eq!(ends.iter().filter(|e| **e == "disarm_lost").count(), 4);

    // Only the hits of the first frame: armed before the recording.
    let out = dir.join("before.data");
    derive("silent.perf.data", &out, 1, |_, s| event(s) != "ksw_arm");
    let text = report(&out, "kallsyms.txt", &[]);
    assert!(
        text.contains("1 frame(s) were armed before the recording started"),
        "{text}"
    );
    assert!(text.contains("task     ksw-victim/84"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kallsyms_are_checked() {
    let dir = scratch("kallsyms");
    let input = fixture("ctx-silent.perf.data");
    // Not kallsyms at all.
    let passwd = dir.join("passwd");
    std::fs::write(
        &passwd,
        "root:x:0:0:root:/root:/bin/bash\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\n",
    )
    .unwrap();
    let out = ksw(&[
        "report",
        "-i",
        input.to_str().unwrap(),
        "--kallsyms",
        passwd.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(passwd.to_str().unwrap()) && err.contains("line 1: not a kallsyms line"),
        "{err}"
    );

    // Another boot (KASLR): every address moved by 2 MiB.
    let shifted: String = std::fs::read_to_string(fixture("ctx-kallsyms.txt"))
        .unwrap()
        .lines()
        .map(|l| {
            let (addr, rest) = l.split_once(' ').unwrap();
            let a = u64::from_str_radix(addr, 16).unwrap() + 0x20_0000;
            format!("{a:016x} {rest}\n")
        })
        .collect();
    let other = dir.join("other-boot");
    std::fs::write(&other, &shifted).unwrap();
    let out = ksw(&[
        "report",
        "-i",
        input.to_str().unwrap(),
        "--kallsyms",
        other.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("kallsyms of another kernel or boot"), "{err}");

    // Without _text to check against: addresses stay hex, never a far
    // offset from a data symbol.
    let no_text: String = shifted
        .lines()
        .filter(|l| !l.ends_with(" _text") && !l.ends_with(" _stext"))
        .map(|l| format!("{l}\n"))
        .collect();
    let other = dir.join("other-kernel");
    std::fs::write(&other, no_text).unwrap();
    let out = ksw(&[
        "report",
        "-i",
        input.to_str().unwrap(),
        "--kallsyms",
        other.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for word in text.split_whitespace() {
        if let Some((_, off)) = word.split_once("+0x") {
            let off =
                u64::from_str_radix(off.trim_end_matches(|c: char| !c.is_ascii_hexdigit()), 16)
                    .unwrap_or(0);
            assert!(off < 0x40000, "a far offset: {word} in {text}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn non_utf8_bytes_in_text_inputs_are_read_lossily() {
    let dir = scratch("utf8");
    // A graph whose victim's task name has a stray byte.
    let mut graph = std::fs::read(fixture("ctx-graph.function_graph.txt")).unwrap();
    let needle = b"ksw-vic";
    let mut changed = 0;
    for i in 0..graph.len() - needle.len() {
        if &graph[i..i + needle.len()] == needle {
            graph[i + 3] = 0xff;
            changed += 1;
        }
    }
    assert!(changed > 0);
    let g = dir.join("graph.txt");
    std::fs::write(&g, &graph).unwrap();
    // A kallsyms with one odd name.
    let mut k = std::fs::read(fixture("ctx-kallsyms.txt")).unwrap();
    k.extend_from_slice(b"ffffffffa1000000 t odd\xffname\t[kstackwatch_test]\n");
    let kp = dir.join("kallsyms");
    std::fs::write(&kp, &k).unwrap();
    let out = ksw(&[
        "report",
        "-i",
        fixture("ctx-graph.perf.data").to_str().unwrap(),
        "--kallsyms",
        kp.to_str().unwrap(),
        "--graph",
        g.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("function_graph (victim, by event id): ksw_test_thread_fn > ksw_test_silent_round > ksw_test_victim"),
        "{text}"
    );
    assert!(
        text.contains("line(s) hold bytes that are not UTF-8"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_stays_valid_when_the_file_is_damaged_mid_way() {
    let dir = scratch("midway");
    let bytes = std::fs::read(fixture("many.perf.data")).unwrap();
    let file = PerfFile::from_bytes(bytes.clone()).unwrap();
    // Break the size of the 3rd-to-last sample record: framing stops there.
    let records: Vec<_> = file
        .raw_records()
        .map(|r| r.unwrap())
        .filter(|r| r.kind == record_type::SAMPLE)
        .map(|r| r.offset as usize)
        .collect();
    let at = records[records.len() - 3];
    let mut broken = bytes.clone();
    broken[at + 6..at + 8].copy_from_slice(&0xfff0u16.to_le_bytes());
    let p = dir.join("broken.data");
    std::fs::write(&p, &broken).unwrap();
    let k = fixture("kallsyms.txt");
    let out = ksw(&[
        "report",
        "-i",
        p.to_str().unwrap(),
        "--kallsyms",
        k.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("complete JSON");
    assert!(v["error"].as_str().unwrap().contains("offset"), "{v}");
    assert!(!v["victims"].as_array().unwrap().is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(p.to_str().unwrap()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_task_is_unnamed_when_the_file_names_it() {
    for (input, k) in [
        ("silent.perf.data", "kallsyms.txt"),
        ("many.perf.data", "kallsyms.txt"),
        ("graph.perf.data", "kallsyms.txt"),
        ("ctx-silent.perf.data", "ctx-kallsyms.txt"),
        ("ctx-hardirq.perf.data", "ctx-kallsyms.txt"),
        ("ctx-canary.perf.data", "ctx-kallsyms.txt"),
        ("ctx-alias.perf.data", "ctx-kallsyms.txt"),
        ("ctx-graph.perf.data", "ctx-kallsyms.txt"),
    ] {
        let text = report(&fixture(input), k, &["--max-frames", "0"]);
        assert!(!text.contains("?/"), "{input}: {text}");
    }
}
