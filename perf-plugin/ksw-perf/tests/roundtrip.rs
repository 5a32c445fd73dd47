// SPDX-License-Identifier: GPL-2.0
//! Write perf.data files with [`ksw_perf::write`] and read them with Debian's
//! perf 6.1 (`/usr/bin/perf script`, `perf report`) and with our reader.

mod common;

use std::fs::File;
use std::io::{BufWriter, Cursor};
use std::path::{Path, PathBuf};

use common::{fixture, fixture_text, have_perf, open, perf, perf_status, scratch_dir};
use ksw_perf::abi::{callchain, misc, record_type, CLOCK_MONOTONIC};
use ksw_perf::read::{ClockData, Comm, Mmap, PerfFile, Record, Sample, SampleId};
use ksw_perf::tracing_data::{self, build_from_formats, EventFormatText};
use ksw_perf::write::{encode_sample, EventSpec, Writer, WriterConfig};
use ksw_perf::{EventFormat, PerfEventAttr};

const EVENTS: [&str; 3] = ["ksw_arm", "ksw_hit", "ksw_disarm"];

fn format_texts() -> Vec<EventFormatText> {
    EVENTS
        .iter()
        .map(|e| EventFormatText {
            system: "kstackwatch".into(),
            text: fixture_text(&format!("{e}.format")),
        })
        .collect()
}

struct Copy {
    /// Copy non-sample records too (raw), not just samples.
    everything: bool,
    /// Put fixtures/kallsyms.txt in the tracing data.
    kallsyms: bool,
    /// Write CLOCK_DATA.
    clock_data: bool,
}

/// Write a new perf.data from `src`: its events, tracing data rebuilt from
/// the fixture format files, its samples re-encoded with `encode_sample`.
fn rewrite(src: &PerfFile, dst: &Path, how: &Copy) {
    let td = src.tracing_data().unwrap();
    let kallsyms = fixture_text("kallsyms.txt");
    let blob = build_from_formats(
        &td.header_page,
        &td.header_event,
        &format_texts(),
        how.kallsyms.then_some(kallsyms.as_str()),
    );
    let ft = src.features();
    let config = WriterConfig {
        tracing_data: blob,
        nr_cpus_online: ft.nr_cpus.unwrap().online,
        nr_cpus_avail: ft.nr_cpus.unwrap().available,
        cmdline: vec!["ksw".into(), "record".into(), "--test".into()],
        clock_res_ns: ft.clock_res_ns,
        clock_data: if how.clock_data { ft.clock_data } else { None },
        ..WriterConfig::from_recording(src)
    };
    let out = BufWriter::new(File::create(dst).unwrap());
    let mut w = Writer::create(out, config).unwrap();
    for raw in src.raw_records() {
        let raw = raw.unwrap();
        match src.parse_record(&raw).unwrap() {
            Record::Sample(s) => {
                // Re-encoding is lossless: same bytes as the kernel wrote.
                let attr = &src.attrs()[s.attr_index].attr;
                assert_eq!(encode_sample(attr, &s).unwrap(), raw.bytes);
                w.write_sample(&s).unwrap();
            }
            _ if how.everything => w.write_raw_record(raw.bytes).unwrap(),
            _ => {}
        }
    }
    w.finish().unwrap();
}

fn same_samples(a: &PerfFile, b: &PerfFile) {
    let sa: Vec<Sample<'_>> = a.samples().map(Result::unwrap).collect();
    let sb: Vec<Sample<'_>> = b.samples().map(Result::unwrap).collect();
    assert_eq!(sa.len(), sb.len());
    for (x, y) in sa.iter().zip(&sb) {
        let y = Sample {
            offset: x.offset,
            ..y.clone()
        };
        assert_eq!(x, &y);
        for f in &x.format.unwrap().fields {
            assert_eq!(x.value(&f.name).unwrap(), y.value(&f.name).unwrap());
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// perf script with the fields that do not depend on COMM records.
fn script_fields(file: &Path) -> String {
    perf(&[
        "script",
        "-i",
        path_str(file),
        "--ns",
        "-F",
        "tid,cpu,time,event,trace",
    ])
}

fn report_trace(file: &Path) -> String {
    perf(&[
        "report",
        "-i",
        path_str(file),
        "--stdio",
        "--sort",
        "trace",
        "-g",
        "none",
    ])
}

/// perf report output equal but for the random "(Tip: ...)" line.
fn assert_same_report(ours: &str, theirs: &str) {
    let keep = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("# (Tip:"))
            .map(String::from)
            .collect()
    };
    let (a, b) = (keep(ours), keep(theirs));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "perf report line {}", i + 1);
    }
    assert_eq!(a.len(), b.len(), "perf report line count");
}

#[test]
fn samples_round_trip_through_perf_and_back() {
    let dir = scratch_dir("samples");
    for scenario in ["silent", "many", "graph"] {
        let src = open(scenario);
        let dst = dir.join(format!("{scenario}.perf.data"));
        rewrite(
            &src,
            &dst,
            &Copy {
                everything: false,
                kallsyms: true,
                clock_data: true,
            },
        );

        // Our reader.
        let back = PerfFile::open(&dst).unwrap();
        same_samples(&src, &back);
        let ft = back.features();
        assert_eq!(ft.version.as_deref(), Some("ksw 0.1.0"));
        assert_eq!(ft.hostname, src.features().hostname);
        assert_eq!(ft.os_release, src.features().os_release);
        assert_eq!(ft.nr_cpus, src.features().nr_cpus);
        assert_eq!(ft.clock_data, src.features().clock_data);
        assert_eq!(ft.clock_res_ns, Some(1));
        assert_eq!(ft.arch.as_deref(), Some(std::env::consts::ARCH));
        assert_eq!(ft.cmdline.as_ref().unwrap(), &["ksw", "record", "--test"]);
        assert_eq!(back.clockid(), Some(CLOCK_MONOTONIC));
        let names: Vec<_> = back.attrs().iter().map(|a| a.name.clone()).collect();
        let src_names: Vec<_> = src.attrs().iter().map(|a| a.name.clone()).collect();
        assert_eq!(names, src_names);
        for e in EVENTS {
            assert_eq!(
                back.event_format("kstackwatch", e),
                src.event_format("kstackwatch", e)
            );
        }
        // The kallsyms copy in the tracing data symbolizes for our reader.
        let syms = back.kallsyms();
        let hits: Vec<_> = back
            .samples()
            .map(Result::unwrap)
            .filter(|s| s.is_event("kstackwatch", "ksw_hit"))
            .collect();
        assert!(!hits.is_empty());
        for h in &hits {
            let w = syms.resolve(h.u64("writer_ip").unwrap()).unwrap();
            assert_eq!(w.to_string(), "ksw_test_corrupt+0x3 [kstackwatch_test]");
        }

        if !have_perf("samples_round_trip_through_perf_and_back") {
            continue;
        }
        let src_path = fixture(&format!("{scenario}.perf.data"));
        let ours = script_fields(&dst);
        assert_eq!(ours, script_fields(&src_path), "{scenario}: perf script");
        let n = src.samples().count();
        assert_eq!(ours.matches("kstackwatch:ksw_").count(), n);
        for needle in [
            "kstackwatch:ksw_arm: id=",
            "kstackwatch:ksw_hit: id=",
            "kstackwatch:ksw_disarm: id=",
            "new=0xabcdabcd victim=ksw-victim/",
            "writer_comm=ksw-writer",
            "hits=1 corrupted=1 reason=return",
            "writer=0xffffffffa0019223",
        ] {
            assert!(
                ours.contains(needle),
                "{scenario}: no {needle:?} in\n{ours}"
            );
        }
        let report = report_trace(&dst);
        assert_same_report(&report, &report_trace(&src_path));
        for e in EVENTS {
            assert!(
                report.contains(&format!("of event 'kstackwatch:{e}'")),
                "{report}"
            );
        }
        assert!(report.contains("writer_comm=ksw-writer"), "{report}");
        // The header perf prints.
        let header = perf(&["report", "-i", path_str(&dst), "--header-only"]);
        for needle in [
            "# perf version : ksw 0.1.0",
            "# hostname : virtme-ng",
            "# os release : 6.12.117",
            "# nrcpus online : 2",
            "# cmdline : ksw record --test",
            "# event : name = kstackwatch:ksw_hit",
            "# clockid: monotonic (1)",
            "# clockid frequency: 1000 MHz",
        ] {
            assert!(header.contains(needle), "no {needle:?} in\n{header}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn full_copy_is_identical_for_perf() {
    let dir = scratch_dir("full");
    for scenario in ["silent", "graph"] {
        let src = open(scenario);
        let dst = dir.join(format!("{scenario}.perf.data"));
        rewrite(
            &src,
            &dst,
            &Copy {
                everything: true,
                kallsyms: false,
                clock_data: true,
            },
        );
        let back = PerfFile::open(&dst).unwrap();
        // The data section is byte for byte the original.
        let (s0, s1) = src.data_range();
        let (b0, b1) = back.data_range();
        assert_eq!(
            &src.bytes()[s0 as usize..s1 as usize],
            &back.bytes()[b0 as usize..b1 as usize]
        );
        same_samples(&src, &back);
        assert_eq!(back.records().count(), src.records().count());

        if !have_perf("full_copy_is_identical_for_perf") {
            continue;
        }
        let src_path = fixture(&format!("{scenario}.perf.data"));
        // Default fields, callchains and comm names included.
        let ours = perf(&["script", "-i", path_str(&dst), "--ns"]);
        assert_eq!(ours, perf(&["script", "-i", path_str(&src_path), "--ns"]));
        // The COMM records came along: perf names the writer thread.
        let hit = src
            .samples()
            .map(Result::unwrap)
            .find(|s| s.is_event("kstackwatch", "ksw_hit"))
            .unwrap();
        let line = format!("kthreadd {:>5} [001]", hit.tid.unwrap());
        assert!(ours.contains(&line), "no {line:?} in\n{ours}");
        let report = |p: &Path| perf(&["report", "-i", path_str(p), "--stdio"]);
        assert_same_report(&report(&dst), &report(&src_path));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn perf_needs_clock_data_for_wall_clock_times() {
    if !have_perf("perf_needs_clock_data_for_wall_clock_times") {
        return;
    }
    let dir = scratch_dir("tod");
    let src = open("silent");
    let with = dir.join("with.perf.data");
    let without = dir.join("without.perf.data");
    for (p, clock_data) in [(&with, true), (&without, false)] {
        rewrite(
            &src,
            p,
            &Copy {
                everything: false,
                kallsyms: false,
                clock_data,
            },
        );
    }
    let args =
        |p: &PathBuf| ["script", "-i", path_str(p), "-F", "tod,time,event"].map(String::from);
    let run = |p: &PathBuf| {
        let a = args(p);
        perf_status(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let (ok, out) = run(&with);
    assert!(ok, "{out}");
    // CLOCK_DATA of the fixture: mono 15.426381280 = 02:46:49.202966 TOD,
    // so the arm at mono 16.119999 is at 02:46:49.8965 (local time zone
    // aside, the sub-second part is fixed).
    assert!(out.contains(":49.896584"), "{out}");
    let (ok, out) = run(&without);
    assert!(!ok, "{out}");
    assert!(out.contains("missing clock data"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What the ksw recorder does: its own attributes and ids, records as a
/// ring buffer hands them out, tracing data from a tracefs tree, COMM and
/// kernel MMAP records, a LOST record.
#[test]
fn fresh_recording_from_ring_buffer_records() {
    let dir = scratch_dir("fresh");
    let src = open("silent");
    let td = src.tracing_data().unwrap();

    // A tracefs tree holding the fixture's files.
    let tracefs = dir.join("tracefs");
    std::fs::create_dir_all(tracefs.join("events")).unwrap();
    std::fs::write(tracefs.join("events/header_page"), &td.header_page).unwrap();
    std::fs::write(tracefs.join("events/header_event"), &td.header_event).unwrap();
    for (e, t) in EVENTS.iter().zip(format_texts()) {
        let d = tracefs.join("events/kstackwatch").join(e);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("format"), t.text).unwrap();
    }
    let kallsyms = fixture_text("kallsyms.txt");
    let list: Vec<(&str, &str)> = EVENTS.iter().map(|e| ("kstackwatch", *e)).collect();
    let blob = tracing_data::build(&tracefs, &list, Some(&kallsyms)).unwrap();

    // One event per tracepoint, ids 100.. (one per CPU).
    let formats: Vec<&EventFormat> = EVENTS
        .iter()
        .map(|e| src.event_format("kstackwatch", e).unwrap())
        .collect();
    let events: Vec<EventSpec> = formats
        .iter()
        .enumerate()
        .map(|(i, f)| EventSpec {
            attr: PerfEventAttr::tracepoint(u64::from(f.id), true),
            name: f.full_name(),
            ids: vec![100 + 2 * i as u64, 101 + 2 * i as u64],
        })
        .collect();
    let config = WriterConfig {
        events: events.clone(),
        tracing_data: blob,
        hostname: "ksw-test".into(),
        os_release: "6.12.117".into(),
        nr_cpus_online: 2,
        nr_cpus_avail: 2,
        cmdline: vec!["ksw".into(), "record".into()],
        clock_res_ns: Some(1),
        clock_data: Some(ClockData {
            clockid: 1,
            wall_clock_ns: 1_795_315_609_202_966_000,
            clockid_time_ns: 15_426_381_280,
        }),
        ..WriterConfig::default()
    };

    // The fixture's samples, as the ring buffer would give them for our attrs.
    let mut ring: Vec<Vec<u8>> = Vec::new();
    let fixture_samples = src.samples_by_time().unwrap();
    for s in &fixture_samples {
        let idx = formats.iter().position(|f| Some(*f) == s.format).unwrap();
        let cpu = s.cpu.unwrap();
        let mine = Sample {
            attr_index: idx,
            id: Some(events[idx].ids[cpu as usize]),
            ip: None,
            period: None,
            misc: misc::KERNEL,
            ..s.clone()
        };
        ring.push(encode_sample(&events[idx].attr, &mine).unwrap());
    }

    let mut out = Cursor::new(Vec::new());
    {
        let mut w = Writer::create(&mut out, config).unwrap();
        let sid = |pid: i32, time: u64| SampleId {
            pid: Some(pid),
            tid: Some(pid),
            time: Some(time),
            id: Some(100),
            stream_id: None,
            cpu: Some(0),
        };
        w.write_mmap(&Mmap {
            pid: -1,
            tid: 0,
            addr: 0xffff_ffff_8100_0000,
            len: 0xa0_0000,
            pgoff: 0xffff_ffff_8100_0000,
            filename: "[kernel.kallsyms]_text".into(),
            cpumode: misc::KERNEL,
            sample_id: SampleId::default(),
        })
        .unwrap();
        for (pid, name) in [(84, "ksw-victim"), (85, "ksw-writer")] {
            w.write_comm(&Comm {
                pid,
                tid: pid,
                comm: name.into(),
                exec: false,
                sample_id: sid(pid, 1),
            })
            .unwrap();
        }
        // One record alone, the rest as one run (as `ksw record` drains).
        w.write_raw_record(&ring[0]).unwrap();
        w.write_raw_records(&ring[1..].concat()).unwrap();
        // No id in the trailer given: the lost event's own id goes there.
        let lost_sid = SampleId {
            id: None,
            ..sid(-1, 17_000_000_000)
        };
        w.write_lost(102, 7, &lost_sid).unwrap();
        w.write_finished_round().unwrap();
        // A malformed record is refused, not written.
        assert!(w.write_raw_record(&ring[0][..ring[0].len() - 8]).is_err());
        assert!(w.write_raw_record(&[1, 2, 3]).is_err());
        let run = ring[..2].concat();
        assert!(w.write_raw_records(&run[..run.len() - 8]).is_err());
        assert!(w.write_raw_records(&[0; 8]).is_err());
        w.finish().unwrap();
    }
    let bytes = out.into_inner();
    let path = dir.join("fresh.perf.data");
    std::fs::write(&path, &bytes).unwrap();

    // Our reader.
    let back = PerfFile::from_bytes(bytes).unwrap();
    let samples = back.samples_by_time().unwrap();
    assert_eq!(samples.len(), fixture_samples.len());
    for (a, b) in fixture_samples.iter().zip(&samples) {
        assert_eq!(a.raw, b.raw);
        assert_eq!(a.callchain, b.callchain);
        assert_eq!(a.time, b.time);
        assert_eq!(b.ip, None);
        assert_eq!(b.attr_index, back.attr_index_of_id(b.id.unwrap()).unwrap());
        assert_eq!(b.format.unwrap().name, a.format.unwrap().name);
    }
    let mut comms = Vec::new();
    let mut lost = Vec::new();
    for r in back.records() {
        match r.unwrap() {
            Record::Comm(c) => comms.push((c.pid, c.comm.into_owned(), c.sample_id)),
            Record::Lost(l) => lost.push(l),
            Record::Mmap(m) => assert_eq!(m.filename, "[kernel.kallsyms]_text"),
            Record::Sample(_) | Record::FinishedRound => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(comms[0].0, 84);
    assert_eq!(comms[1].1, "ksw-writer");
    assert_eq!(comms[1].2.time, Some(1));
    assert_eq!(lost.len(), 1);
    assert_eq!((lost[0].id, lost[0].lost), (102, 7));
    assert_eq!(lost[0].sample_id.id, Some(102));
    assert_eq!(lost[0].sample_id.time, Some(17_000_000_000));
    assert_eq!(back.attr_index_of_id(lost[0].id), Some(1));
    let hit = samples
        .iter()
        .find(|s| s.is_event("kstackwatch", "ksw_hit"))
        .unwrap();
    assert_eq!(hit.callchain[0], callchain::KERNEL);
    assert_eq!(
        back.kallsyms()
            .resolve(hit.u64("writer_ip").unwrap())
            .unwrap()
            .to_string(),
        "ksw_test_corrupt+0x3 [kstackwatch_test]"
    );
    let raw_kinds: Vec<u32> = back.raw_records().map(|r| r.unwrap().kind).collect();
    assert_eq!(raw_kinds.first(), Some(&record_type::MMAP));
    assert_eq!(raw_kinds.last(), Some(&record_type::FINISHED_ROUND));

    if !have_perf("fresh_recording_from_ring_buffer_records") {
        return;
    }
    let p = path_str(&path);
    let script = perf(&["script", "-i", p, "--ns", "--show-lost-events"]);
    for needle in [
        "ksw-victim    84 [000]    16.119999289:    kstackwatch:ksw_arm: id=1 slot=0",
        "ksw-writer    85 [001]    16.126258397:    kstackwatch:ksw_hit: id=1 slot=0",
        "new=0xabcdabcd victim=ksw-victim/84 writer_comm=ksw-writer",
        "kstackwatch:ksw_disarm: id=1 slot=0 addr=0xffff8880003cfe50 arm_value=0xdeadbef7 exit_value=0xabcdabcd hits=1 corrupted=1 reason=return",
        "ffffffffa0019223",
        "PERF_RECORD_LOST lost 7",
    ] {
        assert!(script.contains(needle), "no {needle:?} in\n{script}");
    }
    // perf script prints the events in time order, as the fixture's.
    let order: Vec<&str> = script
        .lines()
        .filter_map(|l| l.split("kstackwatch:").nth(1)?.split(':').next())
        .collect();
    assert_eq!(order, ["ksw_arm", "ksw_hit", "ksw_disarm"]);
    let (ok, tod) = perf_status(&["script", "-i", p, "-F", "tod,event"]);
    assert!(ok && tod.contains(":49.896584"), "{tod}");
    let report = perf(&[
        "report",
        "-i",
        p,
        "--stdio",
        "--sort",
        "comm,trace",
        "-g",
        "none",
    ]);
    for e in EVENTS {
        assert!(
            report.contains(&format!("of event 'kstackwatch:{e}'")),
            "{report}"
        );
    }
    assert!(report.contains("ksw-writer"), "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn writer_refuses_what_perf_refuses() {
    let texts: Vec<EventFormatText> = (1..=2)
        .map(|id| EventFormatText {
            system: "s".into(),
            text: format!("name: e{id}\nID: {id}\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\nprint fmt: \"\"\n"),
        })
        .collect();
    let blob = build_from_formats("", "", &texts, None);
    let tp = |id, st| EventSpec {
        attr: PerfEventAttr {
            sample_type: st,
            ..PerfEventAttr::tracepoint(id, false)
        },
        name: format!("e{id}"),
        ids: vec![id],
    };
    let create = |events: Vec<EventSpec>| {
        Writer::create(
            Cursor::new(Vec::new()),
            WriterConfig {
                events,
                tracing_data: blob.clone(),
                ..WriterConfig::default()
            },
        )
        .map(|_| ())
    };
    use ksw_perf::abi::sample_type as st;
    assert!(create(vec![]).is_err());
    // Two events need an id in samples, at the same place.
    let e = create(vec![tp(1, st::TIME | st::RAW), tp(2, st::TIME | st::RAW)]).unwrap_err();
    assert!(e.to_string().contains("ID or IDENTIFIER"), "{e}");
    let e = create(vec![
        tp(1, st::TIME | st::ID | st::RAW),
        tp(2, st::TIME | st::IP | st::ID | st::RAW),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("not where"), "{e}");
    // One event needs none.
    assert!(create(vec![tp(1, st::TIME | st::RAW)]).is_ok());
    let mut mixed = tp(2, st::IDENTIFIER | st::RAW);
    mixed
        .attr
        .set(ksw_perf::abi::attr_flag::SAMPLE_ID_ALL, false);
    assert!(create(vec![tp(1, st::IDENTIFIER | st::RAW), mixed]).is_err());
    // Samples with fields we cannot encode are refused.
    let attr = PerfEventAttr {
        sample_type: st::RAW | st::READ,
        ..PerfEventAttr::default()
    };
    let e = encode_sample(&attr, &Sample::default()).unwrap_err();
    assert!(e.to_string().contains("READ"), "{e}");
}
