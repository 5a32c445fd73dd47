// SPDX-License-Identifier: GPL-2.0
//! Decode the perf.data files captured from the real module
//! (`perf-plugin/fixtures/capture.sh`: `perf record -e 'kstackwatch:*' -k
//! mono [-g] -a`) and check them against what the module did and what
//! perf itself printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{fixture_text, open};
use ksw_perf::abi::{attr_flag, callchain, feature, CLOCK_MONOTONIC};
use ksw_perf::read::{PerfFile, Record, Sample};
use ksw_perf::{EventFormat, Kallsyms, Value};

const SYS: &str = "kstackwatch";

fn samples<'a>(file: &'a PerfFile, event: &str) -> Vec<Sample<'a>> {
    file.samples()
        .map(|s| s.unwrap())
        .filter(|s| s.is_event(SYS, event))
        .collect()
}

fn kallsyms() -> Kallsyms {
    Kallsyms::parse(&fixture_text("kallsyms.txt"))
}

/// Checks of one arm → hit → disarm story; returns the watch id.
fn check_story(arm: &Sample<'_>, hit: &Sample<'_>, disarm: &Sample<'_>) -> u64 {
    let id = arm.u64("id").unwrap();
    assert_eq!(hit.u64("id").unwrap(), id);
    assert_eq!(disarm.u64("id").unwrap(), id);
    let slot = arm.u64("slot").unwrap();
    assert_eq!(hit.u64("slot").unwrap(), slot);
    assert_eq!(disarm.u64("slot").unwrap(), slot);
    let addr = arm.u64("addr").unwrap();
    assert_eq!(hit.u64("addr").unwrap(), addr);
    assert_eq!(disarm.u64("addr").unwrap(), addr);
    assert_eq!(arm.u64("len").unwrap(), 8);
    assert_eq!(arm.u64("depth").unwrap(), 0);

    // The writer is the writer thread, the victim the armed thread.
    assert_eq!(hit.str("writer_comm").unwrap(), "ksw-writer");
    assert_eq!(hit.str("victim_comm").unwrap(), "ksw-victim");
    assert_eq!(hit.i64("victim_pid").unwrap(), i64::from(arm.pid.unwrap()));
    assert_eq!(
        hit.value("victim_pid").unwrap(),
        Value::Signed(arm.pid.unwrap().into())
    );
    assert_ne!(hit.pid, arm.pid);
    assert_eq!(disarm.pid, arm.pid);

    // Values: armed value, the writer's store, the corrupted exit value.
    let armed = arm.u64("value").unwrap();
    assert_eq!(hit.u64("old_value").unwrap(), armed);
    assert_eq!(hit.u64("new_value").unwrap(), 0xabcd_abcd);
    assert_eq!(disarm.u64("arm_value").unwrap(), armed);
    assert_eq!(disarm.u64("exit_value").unwrap(), 0xabcd_abcd);
    assert_eq!(disarm.u64("hits").unwrap(), 1);
    assert_eq!(disarm.u64("corrupted").unwrap(), 1);
    assert_eq!(disarm.u64("reason").unwrap(), 0);
    assert_eq!(hit.u64("probe_ip").unwrap(), arm.u64("probe_ip").unwrap());

    // Time order and kstackwatch's own symbolization.
    assert!(arm.time < hit.time && hit.time < disarm.time);
    let syms = kallsyms();
    let writer = syms.resolve(hit.u64("writer_ip").unwrap()).unwrap();
    assert_eq!(
        writer.to_string(),
        "ksw_test_corrupt+0x3 [kstackwatch_test]"
    );
    let probe = syms.resolve(arm.u64("probe_ip").unwrap()).unwrap();
    assert_eq!(probe.name, "ksw_test_victim");
    assert_eq!(probe.module, Some("kstackwatch_test"));
    id
}

/// The hit's callchain runs through the store in ksw_test_corrupt.
fn check_hit_callchain(hit: &Sample<'_>) {
    assert_eq!(hit.callchain.first(), Some(&callchain::KERNEL));
    let syms = kallsyms();
    let frames: Vec<String> = hit
        .callchain_addresses()
        .iter()
        .map(|&a| syms.resolve(a).map(|r| r.to_string()).unwrap_or_default())
        .collect();
    assert!(
        frames
            .iter()
            .any(|f| f == "ksw_test_corrupt+0x3 [kstackwatch_test]"),
        "{frames:#?}"
    );
    assert_eq!(frames.first().unwrap(), "ksw_trace_hit+0x7c [kstackwatch]");
    assert_eq!(frames.last().unwrap(), "ret_from_fork_asm+0x11");
    assert!(hit
        .callchain_addresses()
        .iter()
        .all(|&a| !callchain::is_marker(a)));
    assert_eq!(hit.callchain_addresses().len(), hit.callchain.len() - 1);
}

#[test]
fn silent_one_story() {
    let f = open("silent");
    let (arms, hits, disarms) = (
        samples(&f, "ksw_arm"),
        samples(&f, "ksw_hit"),
        samples(&f, "ksw_disarm"),
    );
    assert_eq!((arms.len(), hits.len(), disarms.len()), (1, 1, 1));
    let id = check_story(&arms[0], &hits[0], &disarms[0]);
    assert_eq!(id, 1);
    // silent.outcome: writer_pid=85 writer_cpu=1 victim_pids=84.
    assert_eq!(hits[0].pid, Some(85));
    assert_eq!(hits[0].cpu, Some(1));
    assert_eq!(arms[0].pid, Some(84));
    check_hit_callchain(&hits[0]);
    assert_eq!(
        hits[0].value("writer_comm").unwrap().as_str(),
        Some("ksw-writer")
    );
}

#[test]
fn graph_one_story() {
    let f = open("graph");
    let (arms, hits, disarms) = (
        samples(&f, "ksw_arm"),
        samples(&f, "ksw_hit"),
        samples(&f, "ksw_disarm"),
    );
    assert_eq!((arms.len(), hits.len(), disarms.len()), (1, 1, 1));
    assert_eq!(check_story(&arms[0], &hits[0], &disarms[0]), 6);
    // With function_graph on, the tracer's frame is on top of the chain.
    let syms = kallsyms();
    let top = hits[0].callchain_addresses()[0];
    assert!(syms.resolve(top).is_some());
    assert!(hits[0].callchain_addresses().iter().any(|&a| syms
        .resolve(a)
        .map(|r| r.to_string())
        .as_deref()
        == Some("ksw_test_corrupt+0x3 [kstackwatch_test]")));
}

#[test]
fn many_four_slots() {
    let f = open("many");
    let (arms, hits, disarms) = (
        samples(&f, "ksw_arm"),
        samples(&f, "ksw_hit"),
        samples(&f, "ksw_disarm"),
    );
    assert_eq!((arms.len(), hits.len(), disarms.len()), (4, 4, 4));
    let slots: BTreeSet<u64> = arms.iter().map(|a| a.u64("slot").unwrap()).collect();
    assert_eq!(slots, BTreeSet::from([0, 1, 2, 3]));
    let ids: BTreeSet<u64> = arms.iter().map(|a| a.u64("id").unwrap()).collect();
    assert_eq!(ids.len(), 4);
    // many.outcome: writer_pid=97, victims 91..=96 (only four get a slot).
    for arm in &arms {
        let id = arm.u64("id").unwrap();
        let hit = hits.iter().find(|h| h.u64("id").unwrap() == id).unwrap();
        let disarm = disarms.iter().find(|d| d.u64("id").unwrap() == id).unwrap();
        check_story(arm, hit, disarm);
        assert_eq!(hit.pid, Some(97));
        assert!((91..=96).contains(&arm.pid.unwrap()));
        assert!(hit.callchain.is_empty(), "recorded without -g");
    }
}

#[test]
fn clock_is_monotonic() {
    for scenario in ["silent", "many", "graph"] {
        let f = open(scenario);
        assert_eq!(f.clockid(), Some(CLOCK_MONOTONIC), "{scenario}");
        for a in f.attrs() {
            assert!(a.attr.has(attr_flag::USE_CLOCKID));
            assert_eq!(a.attr.clockid, CLOCK_MONOTONIC);
        }
        let cd = f.features().clock_data.unwrap();
        assert_eq!(cd.clockid, 1);
        assert!(cd.wall_clock_ns > cd.clockid_time_ns);
        assert_eq!(f.features().clock_res_ns, Some(1));
        assert!(f.has_feature(feature::CLOCK_DATA));
        assert!(f.has_feature(feature::CLOCKID));
    }
}

#[test]
fn header_and_features() {
    let f = open("silent");
    let ft = f.features();
    assert_eq!(ft.hostname.as_deref(), Some("virtme-ng"));
    assert_eq!(ft.os_release.as_deref(), Some("6.12.117"));
    assert_eq!(ft.version.as_deref(), Some("6.1.187"));
    assert_eq!(ft.arch.as_deref(), Some("x86_64"));
    let cpus = ft.nr_cpus.unwrap();
    assert_eq!((cpus.available, cpus.online), (2, 2));
    assert_eq!(ft.cpu_desc.as_deref(), Some("QEMU TCG CPU version 2.5+"));
    assert_eq!(ft.cpu_id.as_deref(), Some("AuthenticAMD,15,107,1"));
    assert_eq!(ft.total_mem_kb, Some(1010900));
    let cmd = ft.cmdline.as_ref().unwrap();
    assert_eq!(cmd[0], "/usr/bin/perf");
    assert!(cmd.windows(2).any(|w| w == ["-k", "mono"]));
    assert_eq!(f.data_range(), (744, 744 + 22128));

    let names: Vec<&str> = f
        .attrs()
        .iter()
        .map(|a| a.name.as_deref().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "kstackwatch:ksw_arm",
            "kstackwatch:ksw_hit",
            "kstackwatch:ksw_disarm",
            "dummy:HG"
        ]
    );
    let desc = ft.event_desc.as_ref().unwrap();
    for (a, d) in f.attrs().iter().zip(desc) {
        assert_eq!(a.attr, d.attr);
        assert_eq!(a.ids, d.ids);
    }
    assert_eq!(f.attrs()[1].ids, [20, 21]);
    assert_eq!(f.attr_index_of_id(21), Some(1));
    assert_eq!(f.attrs()[1].attr.config, 474);
    assert!(f.attrs()[3].format.is_none());
    assert!(f.feature_section(feature::HOSTNAME).unwrap().len() == 68);
    assert!(!f.has_feature(feature::BUILD_ID));
}

#[test]
fn tracing_data_matches_the_format_files() {
    for scenario in ["silent", "many", "graph"] {
        let f = open(scenario);
        let td = f.tracing_data().unwrap();
        assert_eq!(td.version, "0.6");
        assert!(!td.big_endian);
        assert_eq!(td.long_size, 8);
        assert_eq!(td.page_size, 4096);
        assert!(td.header_page.contains("field: u64 timestamp"));
        assert!(td.header_event.contains("type_len"));
        assert!(td.kallsyms.is_empty(), "perf 6.1 stores no kallsyms");
        assert!(f.kallsyms().is_empty());
        let names: BTreeSet<String> = td.events.iter().map(EventFormat::full_name).collect();
        assert!(names.contains("kstackwatch:ksw_hit"), "{names:?}");
        for event in ["ksw_arm", "ksw_hit", "ksw_disarm"] {
            let from_file =
                EventFormat::parse(SYS, &fixture_text(&format!("{event}.format"))).unwrap();
            assert_eq!(f.event_format(SYS, event), Some(&from_file), "{event}");
        }
    }
    let hit = open("silent").event_format(SYS, "ksw_hit").unwrap().clone();
    assert_eq!(hit.id, 474);
    assert_eq!(hit.fields.iter().filter(|f| f.common).count(), 4);
    let comm = hit.field("victim_comm").unwrap();
    assert_eq!((comm.offset, comm.size), (60, 16));
    assert!(comm.is_string());
    assert_eq!(hit.min_record_len(), 94);
}

#[test]
fn record_kinds_match_perf_report_dump() {
    // Counts from `perf report -D -i silent.perf.data`.
    let f = open("silent");
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for r in f.records() {
        let k = match r.unwrap() {
            Record::Sample(_) => "sample",
            Record::Comm(_) => "comm",
            Record::Mmap(_) => "mmap",
            Record::Mmap2(_) => "mmap2",
            Record::Lost(_) => "lost",
            Record::LostSamples(_) => "lost_samples",
            Record::FinishedRound => "finished_round",
            Record::Other { .. } => "other",
        };
        *kinds.entry(k).or_default() += 1;
    }
    let expect = BTreeMap::from([
        ("sample", 3),
        ("comm", 51),
        ("mmap", 3),
        ("mmap2", 91),
        ("finished_round", 2),
        // EXIT 13, FORK 52, CPU_MAP, THREAD_MAP, ID_INDEX, FINISHED_INIT.
        ("other", 69),
    ]);
    assert_eq!(kinds, expect);
}

#[test]
fn kernel_and_module_maps() {
    let f = open("silent");
    let maps: Vec<_> = f
        .records()
        .filter_map(|r| match r.unwrap() {
            Record::Mmap(m) => Some(m),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = maps.iter().map(|m| m.filename.as_ref()).collect();
    assert_eq!(
        names,
        [
            "[kernel.kallsyms]_text",
            "[kstackwatch]",
            "[kstackwatch_test]"
        ]
    );
    assert_eq!(maps[0].pgoff, 0xffff_ffff_8100_0000);
    assert_eq!(maps[0].pid, -1);
    assert_eq!(maps[0].cpumode, ksw_perf::abi::misc::KERNEL);
    let test_mod = &maps[2];
    let writer_ip = samples(&f, "ksw_hit")[0].u64("writer_ip").unwrap();
    assert!((test_mod.addr..test_mod.addr + test_mod.len).contains(&writer_ip));
    // Synthesized records have an all-zero sample_id trailer.
    assert_eq!(maps[0].sample_id.id, Some(0));
    assert_eq!(maps[0].sample_id.time, Some(0));
    // Kernel-generated ones carry the dummy event's id and a time.
    let exec = f
        .records()
        .find_map(|r| match r.unwrap() {
            Record::Comm(c) if c.exec => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(exec.comm, "sh");
    assert_eq!(f.attr_index_of_id(exec.sample_id.id.unwrap()), Some(3));
    assert!(exec.sample_id.time.unwrap() > 0);
    let mmap2 = f
        .records()
        .find_map(|r| match r.unwrap() {
            Record::Mmap2(m) => Some(m),
            _ => None,
        })
        .unwrap();
    assert!(!mmap2.map.filename.is_empty());
}

#[test]
fn samples_sorted_by_time() {
    let f = open("silent");
    let in_file: Vec<String> = f
        .samples()
        .map(|s| s.unwrap().format.unwrap().name.clone())
        .collect();
    // perf flushes per-CPU buffers: the CPU 0 events come first in the file.
    assert_eq!(in_file, ["ksw_arm", "ksw_disarm", "ksw_hit"]);
    let sorted: Vec<String> = f
        .samples_by_time()
        .unwrap()
        .iter()
        .map(|s| s.format.unwrap().name.clone())
        .collect();
    assert_eq!(sorted, ["ksw_arm", "ksw_hit", "ksw_disarm"]);
    let many_file = open("many");
    let many = many_file.samples_by_time().unwrap();
    assert!(many.windows(2).all(|w| w[0].time <= w[1].time));
}

/// Parse one `perf script --ns -F comm,tid,cpu,time,event,trace` line into
/// (tid, cpu, time ns, event, key=value pairs).
fn parse_script_line(line: &str) -> (i32, u32, u64, String, BTreeMap<String, String>) {
    let (head, trace) = line.split_once(" kstackwatch:").unwrap();
    let mut head = head.split_whitespace().rev();
    let time = head.next().unwrap().trim_end_matches(':');
    let cpu = head.next().unwrap();
    let tid = head.next().unwrap();
    let (secs, ns) = time.split_once('.').unwrap();
    let time = secs.parse::<u64>().unwrap() * 1_000_000_000 + ns.parse::<u64>().unwrap();
    let cpu = cpu.trim_matches(|c| c == '[' || c == ']').parse().unwrap();
    let (event, fields) = trace.split_once(": ").unwrap();
    let kv = fields
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    (tid.parse().unwrap(), cpu, time, event.to_string(), kv)
}

#[test]
fn values_agree_with_perf_script() {
    // silent.perf-script.txt is perf 6.1's libtraceevent decoding of silent.perf.data.
    let f = open("silent");
    let text = fixture_text("silent.perf-script.txt");
    let lines: Vec<_> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let ours = f.samples_by_time().unwrap();
    assert_eq!(lines.len(), ours.len());
    for (line, s) in lines.iter().zip(&ours) {
        let (tid, cpu, time, event, kv) = parse_script_line(line);
        assert_eq!(s.tid, Some(tid));
        assert_eq!(s.cpu, Some(cpu));
        assert_eq!(s.time, Some(time));
        assert_eq!(s.format.unwrap().name, event);
        for (k, v) in &kv {
            // perf's print fmt names → field names.
            let field = match (event.as_str(), k.as_str()) {
                (_, "probe") => "probe_ip",
                ("ksw_hit", "writer") => "writer_ip",
                (_, "old") => "old_value",
                (_, "new") => "new_value",
                (_, "victim") => {
                    let (comm, pid) = v.split_once('/').unwrap();
                    assert_eq!(s.str("victim_comm").unwrap(), comm);
                    assert_eq!(s.i64("victim_pid").unwrap().to_string(), pid);
                    continue;
                }
                (_, "reason") => {
                    assert_eq!(v, "return");
                    assert_eq!(s.u64("reason").unwrap(), 0);
                    continue;
                }
                (_, k) => k,
            };
            let ours = s.value(field).unwrap();
            let shown = match (&ours, v.strip_prefix("0x")) {
                (Value::Unsigned(n), Some(_)) => format!("{n:#x}"),
                _ => ours.to_string(),
            };
            assert_eq!(&shown, v, "{event}.{field}");
        }
    }
}
