//! The hand-written declarations of `src/sys.rs` against the C header (via
//! bindgen) and against what Debian's perf 6.1 exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use traceevent::sys::PERF61_EXPORTS;

const SYS_RS: &str = include_str!("../src/sys.rs");
const HEADER: &str = "/usr/include/traceevent/event-parse.h";
/// Where the project's tool cache keeps bindgen-cli 0.69.5.
const TOOL_CACHE_BINDGEN: &str = "/root/.cache/kstackwatch/tools/bin/bindgen";

fn normalize(s: &str) -> String {
    let s: String = s
        .replace("::std::os::raw::", "")
        .replace("::core::ffi::", "")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    s.replace(",)", ")").replace(",>", ">")
}

/// From `text`, the end (exclusive) of the item starting at `start`: the
/// first `end` character at bracket depth 0.
fn item_end(text: &str, start: usize, end: char) -> usize {
    let mut depth = 0i32;
    for (i, c) in text[start..].char_indices() {
        match c {
            '(' | '<' | '{' | '[' => depth += 1,
            ')' | '>' | '}' | ']' if !text[..start + i].ends_with('-') => depth -= 1,
            _ => {}
        }
        if c == end && depth <= 0 {
            return start + i + c.len_utf8();
        }
    }
    text.len()
}

fn name_after(text: &str, at: usize) -> String {
    text[at..]
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// `pub fn NAME(...) -> T;` items, normalized, by name.
fn functions(text: &str) -> BTreeMap<String, String> {
    text.match_indices("pub fn ")
        .map(|(at, _)| {
            let name = name_after(text, at + 7);
            (name, normalize(&text[at..item_end(text, at, ';')]))
        })
        .collect()
}

/// `pub type NAME = ...;` items, normalized, by name.
fn type_aliases(text: &str) -> BTreeMap<String, String> {
    text.match_indices("pub type ")
        .map(|(at, _)| {
            let name = name_after(text, at + 9);
            (name, normalize(&text[at..item_end(text, at, ';')]))
        })
        .collect()
}

/// The fields (`name:type`, normalized) of `pub struct NAME { ... }`.
fn struct_fields(text: &str, name: &str) -> Option<Vec<String>> {
    let at = text.find(&format!("pub struct {name} {{"))?;
    let body_start = at + text[at..].find('{')? + 1;
    let body_end = item_end(text, at, '}') - 1;
    Some(
        text[body_start..body_end]
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("pub "))
            .map(|l| normalize(l.trim_start_matches("pub ").trim_end_matches(',')))
            .collect(),
    )
}

fn find_bindgen() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BINDGEN") {
        return Some(p.into());
    }
    if Path::new(TOOL_CACHE_BINDGEN).exists() {
        return Some(TOOL_CACHE_BINDGEN.into());
    }
    let on_path = Command::new("bindgen").arg("--version").output().ok()?;
    on_path.status.success().then(|| "bindgen".into())
}

fn generated() -> Option<String> {
    let Some(bindgen) = find_bindgen() else {
        eprintln!("SKIP: no bindgen (set BINDGEN, or install bindgen-cli 0.69)");
        return None;
    };
    if !Path::new(HEADER).exists() {
        eprintln!("SKIP: {HEADER} missing (apt install libtraceevent-dev)");
        return None;
    }
    let out = Command::new(&bindgen)
        .args([
            HEADER,
            "--allowlist-function",
            "tep_.*|trace_seq_.*",
            "--allowlist-type",
            "tep_record|tep_format_field|trace_seq|tep_event",
            "--no-layout-tests",
            "--",
            "-I/usr/include/traceevent",
        ])
        .output()
        .expect("run bindgen");
    assert!(
        out.status.success(),
        "bindgen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("utf-8 bindings"))
}

#[test]
fn declarations_match_the_header() {
    let Some(gen) = generated() else {
        return;
    };
    let theirs = functions(&gen);
    let ours = functions(SYS_RS);
    let mut checked = 0;
    for (name, decl) in &ours {
        if name == "free" {
            continue; // libc's, not libtraceevent's
        }
        let Some(expected) = theirs.get(name) else {
            panic!("{name} is not in {HEADER}");
        };
        assert_eq!(decl, expected, "declaration of {name}");
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} functions compared");

    let their_types = type_aliases(&gen);
    for name in [
        "tep_event_handler_func",
        "tep_errno",
        "tep_endian",
        "trace_seq_fail",
    ] {
        assert_eq!(
            type_aliases(SYS_RS).get(name),
            their_types.get(name),
            "type {name}"
        );
    }

    for name in ["tep_record", "tep_format_field", "trace_seq"] {
        let ours = struct_fields(SYS_RS, name).unwrap();
        let theirs = struct_fields(&gen, name).unwrap();
        assert_eq!(ours, theirs, "layout of struct {name}");
    }
    // tep_event_head is the start of struct tep_event.
    let head = struct_fields(SYS_RS, "tep_event_head").unwrap();
    let event = struct_fields(&gen, "tep_event").unwrap();
    assert_eq!(head[..], event[..head.len()], "tep_event_head");
}

#[test]
fn plugin_functions_are_exported_by_perf_6_1() {
    let perf61 = &SYS_RS
        [SYS_RS.find("pub mod perf61").unwrap()..SYS_RS.find("pub mod libtraceevent").unwrap()];
    let names: Vec<String> = functions(perf61).into_keys().collect();
    assert!(names.len() >= 10, "{names:?}");
    for name in &names {
        assert!(
            PERF61_EXPORTS.contains(&name.as_str()),
            "{name} is not exported by perf 6.1"
        );
    }
    // And none of the host-only ones is.
    let host = &SYS_RS[SYS_RS.find("pub mod libtraceevent").unwrap()..];
    for name in functions(host).into_keys() {
        assert!(
            !PERF61_EXPORTS.contains(&name.as_str()),
            "{name} is in perf61's list"
        );
    }
}

#[test]
fn perf_exports_what_the_list_says() {
    let perf = Path::new("/usr/bin/perf");
    if !perf.exists() {
        eprintln!("SKIP: /usr/bin/perf missing (apt install linux-perf)");
        return;
    }
    let version = Command::new(perf)
        .arg("version")
        .output()
        .expect("perf version");
    let version = String::from_utf8_lossy(&version.stdout).into_owned();
    let Ok(nm) = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(perf)
        .output()
    else {
        eprintln!("SKIP: no nm (apt install binutils)");
        return;
    };
    let text = String::from_utf8_lossy(&nm.stdout);
    let exported: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter(|n| n.starts_with("tep_") || n.starts_with("trace_seq_"))
        .collect();
    if !version.starts_with("perf version 6.1.") {
        // Newer perf links the system libtraceevent, which has everything.
        eprintln!("SKIP: {} is not perf 6.1", version.trim());
        return;
    }
    let mut exported = exported;
    exported.sort_unstable();
    let mut listed = PERF61_EXPORTS.to_vec();
    listed.sort_unstable();
    assert_eq!(exported, listed);
}
