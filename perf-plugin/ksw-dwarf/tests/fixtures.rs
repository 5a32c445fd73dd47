//! `ksw watch` on committed objects (see fixtures/make-fixtures.sh):
//! the test module's watched functions against the marker-based oracle
//! (trace-scripts/ksw-probe-point), fs/select.o's do_sys_poll (location
//! lists, a variable that moves, members, registers), GCC's frame base.

use std::path::{Path, PathBuf};
use std::process::Command;

use ksw_core::layout::Rel;
use ksw_dwarf::cli::{resolve, WatchArgs};
use ksw_dwarf::watch::Resolved;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn args(obj: &str, func: &str, var: Option<&str>, at: Option<&str>) -> WatchArgs {
    WatchArgs {
        vmlinux: None,
        modules: vec![fixture(obj)],
        list: false,
        at: at.map(str::to_string),
        canary: false,
        depth: None,
        max_watch: None,
        panic: false,
        print: true,
        apply: false,
        func: func.to_string(),
        var: var.map(str::to_string),
    }
}

fn watch(obj: &str, func: &str, var: &str, at: Option<&str>) -> Result<Resolved, String> {
    resolve(&args(obj, func, Some(var), at))
}

fn ok(obj: &str, func: &str, var: &str, at: Option<&str>) -> Resolved {
    watch(obj, func, var, at).unwrap_or_else(|e| panic!("{func} {var} {at:?}: {e}"))
}

fn err(obj: &str, func: &str, var: &str, at: Option<&str>) -> String {
    match watch(obj, func, var, at) {
        Ok(r) => panic!("{func} {var} {at:?}: expected an error, got {}", r.config),
        Err(e) => e,
    }
}

/// `func_offset=0x.. sp_offset=0x..` from the oracle.
fn oracle(obj: &Path, func: &str) -> (u32, i64) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../trace-scripts/ksw-probe-point");
    let out = Command::new(script)
        .arg(obj)
        .arg(func)
        .output()
        .expect("run trace-scripts/ksw-probe-point (python3, objdump)");
    assert!(
        out.status.success(),
        "oracle on {func}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let field = |k: &str| {
        let v = text
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {text}"));
        i64::from_str_radix(v.trim_start_matches("0x"), 16).expect("hex")
    };
    (field("func_offset=") as u32, field("sp_offset="))
}

/// The functions of the victims' source that call the marker with
/// `&buf[...]`, with the line of that call.
fn marker_functions() -> Vec<(String, u64)> {
    let src = std::fs::read_to_string(fixture("ksw_test_victims.c")).expect("source");
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for (i, line) in src.lines().enumerate() {
        if line.starts_with("noinline ") {
            current = line
                .split('(')
                .next()
                .and_then(|head| head.split_whitespace().last())
                .map(|n| n.trim_start_matches('*').to_string());
        }
        if line.trim_start().starts_with("ksw_test_mark(&buf[") {
            if let Some(f) = current.take() {
                out.push((f, i as u64 + 1));
            }
        }
    }
    out
}

#[test]
fn agrees_with_the_marker_oracle() {
    let obj = fixture("ksw_test_victims.o");
    let funcs = marker_functions();
    assert!(funcs.len() >= 9, "{funcs:?}");
    let mut checked = 0;
    for (func, mark_line) in &funcs {
        if func == "ksw_test_switch" {
            // A jump table: the module cannot follow it, neither can we.
            let e = err("ksw_test_victims.o", func, "buf[8]", None);
            assert!(e.contains("jump table"), "{e}");
            continue;
        }
        let (ofo, oso) = oracle(&obj, func);
        // 1. At the oracle's probe point, the same sp offset.
        let at_oracle = ok(
            "ksw_test_victims.o",
            func,
            "buf[8]",
            Some(&format!("+{ofo:#x}")),
        );
        assert_eq!(
            (at_oracle.fo, at_oracle.so),
            (Some(ofo), Some(oso)),
            "{func} at the oracle's fo"
        );
        // 2. From the line after the marker call: the oracle's probe point.
        let line = format!("ksw_test_victims.c:{}", mark_line + 1);
        let at_line = ok("ksw_test_victims.o", func, "buf[8]", Some(&line));
        assert_eq!(
            (at_line.fo, at_line.so),
            (Some(ofo), Some(oso)),
            "{func} --at {line}"
        );
        // 3. By default (right after the prologue): the same frame slot,
        // its own sp offset.
        let d = ok("ksw_test_victims.o", func, "buf[8]", None);
        assert_eq!(d.slot, at_oracle.slot, "{func}: default slot");
        assert!(d.fo < Some(ofo), "{func}: default arms before the marker");
        assert_eq!(d.wl, Some(8));
        checked += 1;
    }
    assert!(checked >= 9, "{checked}");
}

#[test]
fn elements_and_canary() {
    let v = ok("ksw_test_victims.o", "ksw_test_victim", "buf[0]", None);
    let w = ok("ksw_test_victims.o", "ksw_test_victim", "buf[15]", None);
    assert_eq!(w.so.unwrap() - v.so.unwrap(), 15 * 8);
    let e = err("ksw_test_victims.o", "ksw_test_victim", "buf[16]", None);
    assert!(
        e.contains("out of bounds") && e.contains("16 elements"),
        "{e}"
    );
    let e = err("ksw_test_victims.o", "ksw_test_victim", "buf.x", None);
    assert!(e.contains("array"), "{e}");
    // The parameter lives in registers only.
    let e = err("ksw_test_victims.o", "ksw_test_victim", "r", None);
    assert!(
        e.contains("never in ksw_test_victim's frame") && e.contains("register"),
        "{e}"
    );
    let e = err("ksw_test_victims.o", "ksw_test_victim", "r->pattern", None);
    assert!(e.contains("pointer"), "{e}");
    let e = err("ksw_test_victims.o", "ksw_test_victim", "nosuch", None);
    assert!(
        e.contains("no parameter or local named nosuch") && e.contains("buf"),
        "{e}"
    );
    // The canary: where the layout says the prologue stores it.
    let mut a = args("ksw_test_victims.o", "ksw_test_canary_victim", None, None);
    a.canary = true;
    let c = resolve(&a).expect("canary");
    assert_eq!(c.config, "fn=ksw_test_canary_victim ac=1");
    assert!(matches!(c.slot, Some(Rel::Realigned(_) | Rel::Cfa(_))));
    let e = err("ksw_test_victims.o", "no_such_function", "x", None);
    assert!(e.contains("no function no_such_function"), "{e}");
}

#[test]
fn do_sys_poll_members_and_location_lists() {
    let o = "select.o";
    // long stack_pps[32] at DW_OP_breg7 +128 for the whole body.
    let r = ok(o, "do_sys_poll", "stack_pps[4]", None);
    assert_eq!((r.so, r.wl), (Some(0x80 + 4 * 8), Some(8)), "{}", r.text());
    assert!(r.config.starts_with("fn=do_sys_poll fo=0x"));
    // A member of a struct on the stack: table (poll_wqueues) at +384.
    let r = ok(o, "do_sys_poll", "table.pt._qproc", None);
    assert_eq!(r.so, Some(0x180));
    let r = ok(o, "do_sys_poll", "table.inline_index", None);
    assert_eq!(r.wl, Some(4), "{}", r.text());
    // A parameter that moves: in %rdi/%rbx first, spilled to %rsp+56 by a
    // location list later. The default is the first probe point after
    // which it is in the frame.
    let r = ok(o, "do_sys_poll", "ufds", None);
    assert_eq!(r.so, Some(56), "{}", r.text());
    assert!(r.text().contains("location list"), "{}", r.text());
    let e = err(o, "do_sys_poll", "ufds", Some("+0x2f"));
    assert!(
        e.contains("in register %rdi there") && e.contains("is in the frame at"),
        "{e}"
    );
    // Only ever in registers, or computed.
    let e = err(o, "do_sys_poll", "nfds", None);
    assert!(e.contains("only in register"), "{e}");
    let e = err(o, "do_sys_poll", "head", None);
    assert!(e.contains("recomputed"), "{e}");
    // Lines: where no code is, the nearest lines that have some.
    let e = err(o, "do_sys_poll", "stack_pps[4]", Some("select.c:1"));
    assert!(e.contains("lines with code near it"), "{e}");
    let e = err(o, "do_sys_poll", "stack_pps[4]", Some("nosuch.c:10"));
    assert!(e.contains("no code from a file named nosuch.c"), "{e}");
    // An inlined function has no frame of its own.
    let e = err(o, "do_poll", "x", None);
    assert!(
        e.contains("inlined") && e.contains("into do_sys_poll"),
        "{e}"
    );
}

#[test]
fn list_shows_the_frame() {
    let mut a = args("select.o", "do_sys_poll", None, None);
    a.list = true;
    let bins = ksw_dwarf::cli::binaries(None, &a.modules, &a.func).unwrap();
    let found = ksw_dwarf::watch::locate(&bins, "do_sys_poll").unwrap();
    let text = ksw_dwarf::watch::Frame::open(found)
        .unwrap()
        .list()
        .unwrap();
    assert!(
        text.contains("stack_pps    local long[32] (256 bytes)"),
        "{text}"
    );
    assert!(text.contains("(sp+0x80)"), "{text}");
    assert!(
        text.contains("ufds         parameter struct pollfd *"),
        "{text}"
    );
    let outside = text
        .lines()
        .find(|l| l.starts_with("not in the frame:"))
        .unwrap();
    assert!(
        outside.contains("nfds (") && !outside.contains("stack_pps"),
        "{outside}"
    );
}

#[test]
fn gcc_frame_base_is_the_cfa() {
    let o = "frames.o";
    // struct req at DW_OP_fbreg -96 from DW_OP_call_frame_cfa.
    let r = ok(o, "frames_struct", "req.tail[1]", None);
    assert_eq!(r.slot, Some(Rel::Cfa(-96 + 0x30)), "{}", r.text());
    let base = ok(o, "frames_struct", "req", None);
    assert_eq!(r.so.unwrap() - base.so.unwrap(), 0x30);
    // A bit-field: its 4-byte storage unit.
    let r = ok(o, "frames_struct", "req.prio", None);
    assert_eq!((r.wl, r.so.unwrap() - base.so.unwrap()), (Some(4), 0x20));
    // 20 bytes at +12: the first aligned word inside is at +16.
    let r = ok(o, "frames_struct", "req.name", None);
    assert_eq!((r.wl, r.so.unwrap() - base.so.unwrap()), (Some(8), 16));
    assert!(
        r.text().contains("first naturally aligned 8-byte word"),
        "{}",
        r.text()
    );
    // Anonymous union member.
    let r = ok(o, "frames_struct", "req.b", None);
    assert_eq!(r.so.unwrap() - base.so.unwrap(), 0x40);
    // Two `v` in two blocks: ambiguous without a line, resolved with one.
    let e = err(o, "frames_blocks", "v[1]", None);
    assert!(e.contains("declares v 2 times"), "{e}");
    let r = ok(o, "frames_blocks", "v[1]", Some("frames.c:49"));
    assert_eq!(r.wl, Some(8));
    let e = err(o, "frames_register", "k", None);
    assert!(e.contains("only in register"), "{e}");
}

#[test]
fn window_choice() {
    use ksw_dwarf::watch::window;
    assert_eq!(window(0, 8), Some((0, 8)));
    assert_eq!(window(0, 128), Some((0, 8)));
    assert_eq!(window(4, 20), Some((4, 8)));
    assert_eq!(window(4, 8), Some((0, 4)));
    assert_eq!(window(1, 3), Some((1, 2)));
    assert_eq!(window(3, 1), Some((0, 1)));
    assert_eq!(window(0, 0), None);
}

#[test]
fn source_lines_of_symbols() {
    use ksw_dwarf::lines::{Kind, SourceLines};
    let lines =
        SourceLines::load(None, &[fixture("ksw_test_victims.o"), fixture("select.o")]).unwrap();
    // The oracle's probe point in ksw_test_victim is the first instruction
    // of the line after the marker call.
    let (fo, _) = oracle(&fixture("ksw_test_victims.o"), "ksw_test_victim");
    let (_, mark_line) = marker_functions()
        .into_iter()
        .find(|(f, _)| f == "ksw_test_victim")
        .unwrap();
    let d = lines
        .describe_symbol(
            &format!("ksw_test_victim+{fo:#x} [ksw_test_victims]"),
            Kind::Instruction,
        )
        .unwrap();
    assert!(
        d.ends_with(&format!("ksw_test_victims.c:{}", mark_line + 1)),
        "{d}"
    );
    // A return address: the line of the call (the marker's).
    let d = lines
        .describe_symbol(
            &format!("ksw_test_victim+{fo:#x} [ksw_test_victims]"),
            Kind::After,
        )
        .unwrap();
    assert!(
        d.ends_with(&format!("ksw_test_victims.c:{mark_line}")),
        "{d}"
    );
    // Inlined code names its chain.
    let frames = lines.frames(Some("select"), "do_sys_poll", 0x3f0, Kind::Instruction);
    assert!(frames.len() >= 2, "{frames:?}");
    assert_eq!(frames.last().unwrap().function, "do_sys_poll");
    let d = lines
        .describe(Some("select"), "do_sys_poll", 0x3f0, Kind::Instruction)
        .unwrap();
    assert!(
        d.contains("inlined into do_sys_poll at fs/select.c:"),
        "{d}"
    );
    assert_eq!(
        lines.describe(None, "do_sys_poll", 0x10, Kind::Instruction),
        None
    );
}
