//! The plugin's pure parts (line formatting, kallsyms table), compiled into
//! this test directly: the crate itself is a cdylib whose libtraceevent
//! references only a host program resolves.

#[path = "../src/format.rs"]
mod format;
#[path = "../src/symtab.rs"]
mod symtab;

use std::collections::HashMap;

use format::{Fields, Missing, Symbolize};
use symtab::{SymTab, MAX_FUNCTION_SIZE};

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
    fn symbolize(&self, addr: u64, with_module: bool) -> String {
        self.lookup(addr)
            .map(|l| l.describe(with_module))
            .unwrap_or_else(|| format!("{addr:#x}"))
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
fn symtab_names_module_addresses() {
    let tab = SymTab::parse(KALLSYMS);
    assert!(!tab.is_empty());
    let loc = tab.lookup(0xffffffffa0019223).unwrap();
    assert_eq!(
        loc.describe(true),
        "ksw_test_corrupt+0x3 [kstackwatch_test]"
    );
    assert_eq!(loc.describe(false), "ksw_test_corrupt+0x3");
    assert_eq!(
        tab.lookup(0xffffffffa001ba10).unwrap().describe(true),
        "ksw_test_victim [kstackwatch_test]"
    );
    assert_eq!(
        tab.lookup(0xffffffff810276ce).unwrap().describe(true),
        "do_int3+0xe"
    );
    assert_eq!(
        tab.module_of("ksw_test_corrupt", 0xffffffffa0019220),
        Some("kstackwatch_test")
    );
    assert_eq!(tab.module_of("ksw_test_corrupt", 0x1234), None);
    assert_eq!(tab.module_of("do_int3", 0), None);
}

#[test]
fn symtab_does_not_guess() {
    let tab = SymTab::parse(KALLSYMS);
    // Before the first symbol, past the last one (no known end).
    assert_eq!(tab.lookup(0xffffffff81000000), None);
    assert_eq!(tab.lookup(0xffffffffa001bb71), None);
    // In a gap wider than any function.
    let tab = SymTab::parse(
        "ffffffff81000000 T _stext\nffffffff82000000 T _etext\nffffffffa0000000 t f\t[m]\nffffffffa0000100 t g\t[m]\n",
    );
    assert_eq!(
        tab.lookup(0xffffffff81000000 + MAX_FUNCTION_SIZE - 1)
            .map(|l| l.offset),
        Some(MAX_FUNCTION_SIZE - 1)
    );
    assert_eq!(tab.lookup(0xffffffff81000000 + MAX_FUNCTION_SIZE), None);
    assert_eq!(
        tab.lookup(0xffffffffa0000010).unwrap().describe(true),
        "f+0x10 [m]"
    );
}

#[test]
fn symtab_keeps_text_symbols_with_addresses() {
    // kallsyms read without privilege: all zero.
    let hidden = "0000000000000000 T _stext\n0000000000000000 t f\t[m]\n";
    assert!(SymTab::parse(hidden).is_empty());
    // Data symbols and junk are skipped; aliases report the first listed.
    let tab = SymTab::parse(
        "ffffffff81000000 T a\nffffffff81000000 T a_alias\nffffffff81000008 D data\nnot a line\nffffffff81000100 T b\n",
    );
    assert_eq!(
        tab.lookup(0xffffffff81000010).unwrap().describe(false),
        "a+0x10"
    );
}

#[test]
fn arm_line() {
    let tab = SymTab::parse(KALLSYMS);
    assert_eq!(
        format::arm(&arm(), &tab).unwrap(),
        "watch 1 slot 0 armed at ksw_test_victim+0xd7: 8 bytes at 0xffff8880003cfe50 hold 0xdeadbef7 (sp 0xffff8880003cfe10, depth 0, spec 0)"
    );
    assert_eq!(
        format::arm(&arm().without("sp").without("depth").without("spec"), &tab).unwrap(),
        "watch 1 slot 0 armed at ksw_test_victim+0xd7: 8 bytes at 0xffff8880003cfe50 hold 0xdeadbef7"
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
        "watch 1 slot 0: ksw-writer wrote 0xabcdabcd over 0xdeadbef7 at 0xffff8880003cfe50 by ksw_test_corrupt+0x3 [kstackwatch_test]; victim ksw-victim/84 armed at ksw_test_victim+0xd7"
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
