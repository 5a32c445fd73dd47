//! The plugin's pure parts (line formatting, kallsyms table), compiled into
//! this test directly: the crate itself is a cdylib whose libtraceevent
//! references only a host program resolves.

#[path = "../src/format.rs"]
mod format;

use std::collections::HashMap;

use format::{Fields, Missing, Symbolize};
use ksw_symbols::Kallsyms;

/// The plugin's table: ksw-symbols, as `ksw report` uses it.
#[derive(Default)]
struct SymTab(Kallsyms);

impl SymTab {
    fn parse(text: &str) -> SymTab {
        SymTab(Kallsyms::parse(text))
    }
}

const KALLSYMS: &str = include_str!("../../fixtures/kallsyms.txt");

#[derive(Default)]
struct Map {
    nums: HashMap<&'static str, u64>,
    texts: HashMap<&'static str, &'static str>,
}

impl Map {
    fn num(mut self, k: &'static str, v: u64) -> Self {
        self.nums.insert(k, v);
        self
    }

    fn text(mut self, k: &'static str, v: &'static str) -> Self {
        self.texts.insert(k, v);
        self
    }

    fn without(mut self, k: &'static str) -> Self {
        self.nums.remove(k);
        self.texts.remove(k);
        self
    }
}

impl Fields for Map {
    fn num(&self, name: &str) -> Option<u64> {
        self.nums.get(name).copied()
    }

    fn text(&self, name: &str) -> Option<String> {
        self.texts.get(name).map(|s| s.to_string())
    }
}

impl Symbolize for SymTab {
    fn symbolize(&self, addr: u64) -> String {
        self.0.describe(addr)
    }
}

/// The silent fixture's events (silent.perf-script.txt).
fn arm() -> Map {
    Map::default()
        .num("id", 1)
        .num("slot", 0)
        .num("spec", 0)
        .num("depth", 0)
        .num("probe_ip", 0xffffffffa001bae7)
        .num("addr", 0xffff8880003cfe50)
        .num("len", 8)
        .num("sp", 0xffff8880003cfe10)
        .num("value", 0xdeadbef7)
}

fn hit() -> Map {
    Map::default()
        .num("id", 1)
        .num("slot", 0)
        .num("addr", 0xffff8880003cfe50)
        .num("len", 8)
        .num("writer_ip", 0xffffffffa0019223)
        .num("old_value", 0xdeadbef7)
        .num("new_value", 0xabcdabcd)
        .num("probe_ip", 0xffffffffa001bae7)
        .num("victim_pid", 84)
        .text("victim_comm", "ksw-victim")
        .text("writer_comm", "ksw-writer")
}

fn disarm(hits: u64, corrupted: bool, exit_value: u64) -> Map {
    Map::default()
        .num("id", 1)
        .num("slot", 0)
        .num("addr", 0xffff8880003cfe50)
        .num("arm_value", 0xdeadbef7)
        .num("exit_value", exit_value)
        .num("hits", hits)
        .num("corrupted", corrupted as u64)
        .num("reason", 0)
}

#[test]
fn symbols_are_named_like_ksw_report() {
    let tab = SymTab::parse(KALLSYMS);
    assert_eq!(
        tab.symbolize(0xffffffffa0019223),
        "ksw_test_corrupt+0x3 [kstackwatch_test]"
    );
    assert_eq!(
        tab.symbolize(0xffffffffa001ba10),
        "ksw_test_victim+0x0 [kstackwatch_test]"
    );
    assert_eq!(tab.symbolize(0xffffffff810276ce), "do_int3+0xe");
    // Before the first symbol, past the last one's bound: hex.
    assert_eq!(tab.symbolize(0xffffffff81000000), "0xffffffff81000000");
}

#[test]
fn arm_line() {
    let tab = SymTab::parse(KALLSYMS);
    assert_eq!(
        format::arm(&arm(), &tab).unwrap(),
        "watch 1 slot 0 armed at ksw_test_victim+0xd7 [kstackwatch_test]: 8 bytes at 0xffff8880003cfe50 hold 0xdeadbef7 (sp 0xffff8880003cfe10, depth 0, spec 0)"
    );
    assert_eq!(
        format::arm(&arm().without("sp").without("depth").without("spec"), &tab).unwrap(),
        "watch 1 slot 0 armed at ksw_test_victim+0xd7 [kstackwatch_test]: 8 bytes at 0xffff8880003cfe50 hold 0xdeadbef7"
    );
    assert_eq!(
        format::arm(&arm().without("addr"), &tab),
        Err(Missing("addr"))
    );
}

#[test]
fn hit_line_names_the_writer() {
    let tab = SymTab::parse(KALLSYMS);
    assert_eq!(
        format::hit(&hit(), &tab).unwrap(),
        "watch 1 slot 0: ksw-writer wrote 0xabcdabcd over 0xdeadbef7 at 0xffff8880003cfe50 by ksw_test_corrupt+0x3 [kstackwatch_test]; victim ksw-victim/84 armed at ksw_test_victim+0xd7 [kstackwatch_test]"
    );
    // No symbols: hex. Older module without writer_comm: still a line.
    let empty = SymTab::default();
    assert_eq!(
        format::hit(&hit().without("writer_comm"), &empty).unwrap(),
        "watch 1 slot 0: a writer wrote 0xabcdabcd over 0xdeadbef7 at 0xffff8880003cfe50 by 0xffffffffa0019223; victim ksw-victim/84 armed at 0xffffffffa001bae7"
    );
    // victim_pid is an int.
    let line = format::hit(&hit().num("victim_pid", 0xffff_ffff), &tab).unwrap();
    assert!(line.contains("victim ksw-victim/-1 "), "{line}");
    assert_eq!(
        format::hit(&hit().without("writer_ip"), &tab),
        Err(Missing("writer_ip"))
    );
}

#[test]
fn disarm_line_gives_the_verdict() {
    assert_eq!(
        format::disarm(&disarm(1, true, 0xabcdabcd)).unwrap(),
        "watch 1 slot 0 disarmed on return: hit (1 write caught; 0xdeadbef7 -> 0xabcdabcd at 0xffff8880003cfe50)"
    );
    assert_eq!(
        format::disarm(&disarm(0, false, 0xdeadbef7)).unwrap(),
        "watch 1 slot 0 disarmed on return: clean (no write caught; 0xdeadbef7 kept at 0xffff8880003cfe50)"
    );
    assert_eq!(
        format::disarm(&disarm(0, true, 0x41414141)).unwrap(),
        "watch 1 slot 0 disarmed on return: silently corrupted (no write caught; 0xdeadbef7 -> 0x41414141 at 0xffff8880003cfe50)"
    );
    assert_eq!(
        format::disarm(&disarm(2, false, 0xdeadbef7)).unwrap(),
        "watch 1 slot 0 disarmed on return: hit (2 writes caught; 0xdeadbef7 kept at 0xffff8880003cfe50)"
    );
    let exit = disarm(0, false, 0xdeadbef7).num("reason", 1);
    assert!(format::disarm(&exit).unwrap().contains(" on task_exit: "));
    let odd = disarm(0, false, 0xdeadbef7).num("reason", 9);
    assert!(format::disarm(&odd).unwrap().contains(" on reason 9: "));
    assert_eq!(
        format::disarm(&disarm(0, false, 0).without("hits")),
        Err(Missing("hits"))
    );
}
