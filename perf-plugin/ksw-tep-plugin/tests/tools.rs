//! The built plugin under the real tools: `perf script` (Debian perf 6.1,
//! bundled libtraceevent) and `trace-cmd report` (3.1.6, system
//! libtraceevent 1.7.1), on the fixtures captured from the module.
//!
//! Each test skips, saying why, only when its tool is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use traceevent::sys::PERF61_EXPORTS;

const HIT_SILENT_PERF: &str = "ksw_hit: watch 1 slot 0: ksw-writer wrote 0xabcdabcd over 0xdeadbef7 at 0xffff8880003cfe50 by ksw_test_corrupt+0x3 [kstackwatch_test]; victim ksw-victim/84 armed at ksw_test_victim+0xd7 [kstackwatch_test]";
const ARM_SILENT_PERF: &str = "ksw_arm: watch 1 slot 0 armed at ksw_test_victim+0xd7 [kstackwatch_test]: 8 bytes at 0xffff8880003cfe50 hold 0xdeadbef7 (sp 0xffff8880003cfe10, depth 0, spec 0)";
const DISARM_SILENT_PERF: &str = "ksw_disarm: watch 1 slot 0 disarmed on return: hit (1 write caught; 0xdeadbef7 -> 0xabcdabcd at 0xffff8880003cfe50)";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// Builds the cdylib (once per test run) in a target directory of its own,
/// so it is built exactly as a user would build it.
fn plugin() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-build");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "ksw-tep-plugin", "--target-dir"])
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p ksw-tep-plugin failed");
        let so = target.join("debug/libksw_tep_plugin.so");
        assert!(so.exists(), "{} missing", so.display());
        so
    })
}

fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    let found = std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        eprintln!("SKIP: {name} is not installed (see trace-scripts/README.md)");
    }
    found
}

/// A fresh directory for one test: `plugins/` and an empty `home/`.
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    std::fs::create_dir_all(dir.join("home")).unwrap();
    dir
}

fn install(dir: &Path, name: &str) {
    std::fs::copy(plugin(), dir.join(name)).unwrap();
}

/// Where the plugin is looked for in a run.
enum Found<'a> {
    /// `TRACEEVENT_PLUGIN_DIR=<dir>`
    EnvDir(&'a Path),
    /// `$HOME/.local/lib/traceevent/plugins` only.
    Home,
}

fn run(tool: &Path, args: &[&str], dir: &Path, found: Found<'_>, kallsyms: &Path) -> String {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .current_dir(fixtures())
        .env("HOME", dir.join("home"))
        .env("KSW_KALLSYMS", kallsyms)
        .env_remove("TRACEEVENT_PLUGIN_DIR");
    if let Found::EnvDir(plugins) = found {
        cmd.env("TRACEEVENT_PLUGIN_DIR", plugins);
    }
    let out = cmd.output().expect("run tool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}\n{stdout}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn perf_script(perf: &Path, data: &str, dir: &Path, found: Found<'_>, kallsyms: &Path) -> String {
    run(
        perf,
        &[
            "script",
            "--force",
            "-i",
            data,
            "--ns",
            "-F",
            "comm,tid,cpu,time,event,trace",
        ],
        dir,
        found,
        kallsyms,
    )
}

fn trace_cmd_report(tc: &Path, dir: &Path, found: Found<'_>, kallsyms: &Path) -> String {
    run(
        tc,
        &["report", "-i", "silent.trace.dat"],
        dir,
        found,
        kallsyms,
    )
}

fn kallsyms() -> PathBuf {
    fixtures().join("kallsyms.txt")
}

fn lines_with<'a>(out: &'a str, needle: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.contains(needle)).collect()
}

#[test]
fn cdylib_needs_only_what_perf_6_1_exports() {
    let (Some(nm), Some(readelf)) = (tool("nm"), tool("readelf")) else {
        return;
    };
    let so = plugin();
    let undefined = Command::new(nm)
        .args(["-D", "--undefined-only"])
        .arg(so)
        .output()
        .unwrap();
    let undefined = String::from_utf8_lossy(&undefined.stdout).into_owned();
    let tep: Vec<&str> = undefined
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|s| s.starts_with("tep_") || s.starts_with("trace_seq"))
        .collect();
    assert!(tep.contains(&"tep_register_event_handler"), "{tep:?}");
    for sym in &tep {
        assert!(
            PERF61_EXPORTS.contains(sym),
            "{sym} is not exported by perf 6.1"
        );
    }
    let dynamic = Command::new(readelf).arg("-dW").arg(so).output().unwrap();
    let dynamic = String::from_utf8_lossy(&dynamic.stdout).into_owned();
    assert!(
        !dynamic.contains("libtraceevent"),
        "the plugin must not pull in the system libtraceevent:\n{dynamic}"
    );
    let defined = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(so)
        .output()
        .unwrap();
    let defined = String::from_utf8_lossy(&defined.stdout).into_owned();
    for sym in ["tep_plugin_loader", "tep_plugin_unloader"] {
        assert!(
            defined.lines().any(|l| l.ends_with(&format!(" T {sym}"))),
            "{sym} not exported:\n{defined}"
        );
    }
}

#[test]
fn perf_script_prints_readable_lines() {
    let Some(perf) = tool("perf") else { return };
    let dir = scratch("perf-silent");
    install(&dir.join("plugins"), "plugin_ksw.so");
    let out = perf_script(
        &perf,
        "silent.perf.data",
        &dir,
        Found::EnvDir(&dir.join("plugins")),
        &kallsyms(),
    );
    for expect in [ARM_SILENT_PERF, HIT_SILENT_PERF, DISARM_SILENT_PERF] {
        assert_eq!(
            lines_with(&out, expect).len(),
            1,
            "{expect}\nnot in:\n{out}"
        );
    }
    assert!(!out.contains("writer=0x"), "default print fmt left:\n{out}");
}

#[test]
fn perf_script_many_victims_and_call_chains() {
    let Some(perf) = tool("perf") else { return };
    let dir = scratch("perf-many");
    install(&dir.join("plugins"), "plugin_ksw.so");
    let plugins = dir.join("plugins");
    let out = perf_script(
        &perf,
        "many.perf.data",
        &dir,
        Found::EnvDir(&plugins),
        &kallsyms(),
    );
    // Four hardware slots: four of the six victims are watched, each hit.
    let hits = lines_with(
        &out,
        "by ksw_test_corrupt+0x3 [kstackwatch_test]; victim ksw-victim/",
    );
    assert_eq!(hits.len(), 4, "{out}");
    assert_eq!(
        lines_with(
            &out,
            "armed at ksw_test_victim+0xd7 [kstackwatch_test]: 8 bytes"
        )
        .len(),
        4
    );
    assert_eq!(
        lines_with(&out, "disarmed on return: hit (1 write caught;").len(),
        4
    );

    // With call chains (-g): the default perf script output, chains included.
    let out = run(
        &perf,
        &["script", "--force", "-i", "graph.perf.data"],
        &dir,
        Found::EnvDir(&plugins),
        &kallsyms(),
    );
    assert_eq!(
        lines_with(&out, "kstackwatch:ksw_hit: watch 6 slot 0: ksw-writer wrote 0xabcdabcd over 0xdeadbef7 at 0xffff88800331fe50 by ksw_test_corrupt+0x3 [kstackwatch_test]; victim ksw-victim/103 armed at ksw_test_victim+0xd7 [kstackwatch_test]").len(),
        1,
        "{out}"
    );
    assert!(
        out.contains("ffffffffa0019223"),
        "call chain missing:\n{out}"
    );
}

#[test]
fn perf_6_1_names_no_module_symbols_itself() {
    let Some(perf) = tool("perf") else { return };
    let dir = scratch("perf-nosyms");
    install(&dir.join("plugins"), "plugin_ksw.so");
    // An empty table: what is named now, perf's tep_find_function named.
    let out = perf_script(
        &perf,
        "silent.perf.data",
        &dir,
        Found::EnvDir(&dir.join("plugins")),
        Path::new("/dev/null"),
    );
    assert_eq!(
        lines_with(&out, "ksw-writer wrote 0xabcdabcd over 0xdeadbef7 at 0xffff8880003cfe50 by 0xffffffffa0019223; victim ksw-victim/84 armed at 0xffffffffa001bae7").len(),
        1,
        "{out}"
    );
}

#[test]
fn perf_finds_the_plugin_in_home() {
    let Some(perf) = tool("perf") else { return };
    let dir = scratch("perf-home");
    let home_plugins = dir.join("home/.local/lib/traceevent/plugins");
    std::fs::create_dir_all(&home_plugins).unwrap();
    install(&home_plugins, "plugin_ksw.so");
    let out = perf_script(&perf, "silent.perf.data", &dir, Found::Home, &kallsyms());
    assert_eq!(lines_with(&out, HIT_SILENT_PERF).len(), 1, "{out}");
}

#[test]
fn trace_cmd_report_prints_readable_lines() {
    let Some(tc) = tool("trace-cmd") else { return };
    let dir = scratch("trace-cmd-silent");
    install(&dir.join("plugins"), "plugin_ksw.so");
    let out = trace_cmd_report(&tc, &dir, Found::EnvDir(&dir.join("plugins")), &kallsyms());
    let hit = lines_with(&out, "ksw_hit:");
    assert_eq!(hit.len(), 1, "{out}");
    assert!(
        hit[0].trim_end().ends_with("watch 7 slot 0: ksw-writer wrote 0xabcdabcd over 0xdeadbef7 at 0xffff8880029a7e50 by ksw_test_corrupt+0x3 [kstackwatch_test]; victim ksw-victim/111 armed at ksw_test_victim+0xd7 [kstackwatch_test]"),
        "{}",
        hit[0]
    );
    assert_eq!(
        lines_with(&out, "ksw_arm:              watch 7 slot 0 armed at ksw_test_victim+0xd7 [kstackwatch_test]: 8 bytes at 0xffff8880029a7e50 hold 0xdeadbef7").len(),
        1,
        "{out}"
    );
    assert_eq!(
        lines_with(&out, "watch 7 slot 0 disarmed on return: hit (1 write caught; 0xdeadbef7 -> 0xabcdabcd at 0xffff8880029a7e50)").len(),
        1,
        "{out}"
    );
    // function_graph lines are untouched.
    assert!(out.contains("|      ksw_test_victim() {"), "{out}");
}

#[test]
fn trace_cmd_names_symbols_from_the_recorded_kallsyms() {
    let Some(tc) = tool("trace-cmd") else { return };
    let dir = scratch("trace-cmd-nosyms");
    install(&dir.join("plugins"), "plugin_ksw.so");
    // No table of ours: tep_find_function answers from trace.dat's kallsyms
    // (so no module name is known).
    let out = trace_cmd_report(
        &tc,
        &dir,
        Found::EnvDir(&dir.join("plugins")),
        Path::new("/dev/null"),
    );
    assert_eq!(
        lines_with(
            &out,
            "by ksw_test_corrupt+0x3; victim ksw-victim/111 armed at ksw_test_victim+0xd7"
        )
        .len(),
        1,
        "{out}"
    );
}

#[test]
fn trace_cmd_finds_the_plugin_in_home() {
    let Some(tc) = tool("trace-cmd") else { return };
    let dir = scratch("trace-cmd-home");
    let home_plugins = dir.join("home/.local/lib/traceevent/plugins");
    std::fs::create_dir_all(&home_plugins).unwrap();
    install(&home_plugins, "plugin_ksw.so");
    let out = trace_cmd_report(&tc, &dir, Found::Home, &kallsyms());
    assert_eq!(
        lines_with(
            &out,
            "by ksw_test_corrupt+0x3 [kstackwatch_test]; victim ksw-victim/111"
        )
        .len(),
        1,
        "{out}"
    );
}

/// libtraceevent loads every `*.so` of a plugin directory, whatever its
/// name; other suffixes are ignored. Same for both tools.
#[test]
fn plugin_file_name_needs_only_the_so_suffix() {
    let perf = tool("perf");
    let tc = tool("trace-cmd");
    if perf.is_none() && tc.is_none() {
        return;
    }
    for (name, loads) in [
        ("plugin_ksw.so", true),
        ("ksw.so", true),
        ("libksw_tep_plugin.so", true),
        ("ksw.so.1", false),
        ("plugin_ksw", false),
    ] {
        let dir = scratch(&format!("name-{name}"));
        let plugins = dir.join("plugins");
        install(&plugins, name);
        if let Some(perf) = &perf {
            let out = perf_script(
                perf,
                "silent.perf.data",
                &dir,
                Found::EnvDir(&plugins),
                &kallsyms(),
            );
            assert_eq!(
                out.contains("watch 1 slot 0: ksw-writer wrote"),
                loads,
                "perf, {name}"
            );
        }
        if let Some(tc) = &tc {
            let out = trace_cmd_report(tc, &dir, Found::EnvDir(&plugins), &kallsyms());
            assert_eq!(
                out.contains("watch 7 slot 0: ksw-writer wrote"),
                loads,
                "trace-cmd, {name}"
            );
        }
    }
}

/// Without the plugin both tools print the raw `print fmt` text, so the
/// tests above see the plugin's work, not the tools'.
#[test]
fn without_the_plugin_addresses_stay_raw() {
    let dir = scratch("no-plugin");
    if let Some(perf) = tool("perf") {
        let out = perf_script(&perf, "silent.perf.data", &dir, Found::Home, &kallsyms());
        assert!(out.contains("writer=0xffffffffa0019223"), "{out}");
        assert!(!out.contains("ksw-writer wrote"), "{out}");
    }
    if let Some(tc) = tool("trace-cmd") {
        let out = trace_cmd_report(&tc, &dir, Found::Home, &kallsyms());
        assert!(out.contains("writer=ksw_test_corrupt+0x3 "), "{out}");
        assert!(!out.contains("ksw-writer wrote"), "{out}");
    }
}

/// The plugin names every address the way `ksw report` does (both use
/// ksw-symbols): each writer and probe address of the fixtures, as printed
/// by `perf script` with the plugin, is what `ksw symbolize` says.
#[test]
fn the_plugin_and_ksw_name_addresses_alike() {
    let Some(perf) = tool("perf") else { return };
    let ksw = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/ksw");
    if !ksw.exists() {
        eprintln!("skipped: no {} (cargo build -p ksw)", ksw.display());
        return;
    }
    let dir = scratch("same-symbols");
    install(&dir.join("plugins"), "plugin_ksw.so");
    let plugins = dir.join("plugins");
    for (data, table) in [
        ("silent.perf.data", "kallsyms.txt"),
        ("many.perf.data", "kallsyms.txt"),
        ("ctx-silent.perf.data", "ctx-kallsyms.txt"),
        ("ctx-hardirq.perf.data", "ctx-kallsyms.txt"),
        ("ctx-canary.perf.data", "ctx-kallsyms.txt"),
        ("ctx-graph.perf.data", "ctx-kallsyms.txt"),
    ] {
        let table = fixtures().join(table);
        let plain = run(
            &perf,
            &["script", "--force", "-i", data, "-F", "trace"],
            &dir,
            Found::Home,
            &table,
        );
        let nice = perf_script(&perf, data, &dir, Found::EnvDir(&plugins), &table);
        // Raw addresses from the plain print fmt, in order of appearance.
        let mut addrs = Vec::new();
        for line in plain.lines() {
            for kv in line.split_whitespace() {
                if let Some(v) = kv
                    .strip_prefix("writer=")
                    .or_else(|| kv.strip_prefix("probe="))
                {
                    addrs.push(v.to_string());
                }
            }
        }
        assert!(!addrs.is_empty(), "{data}: {plain}");
        let out = std::process::Command::new(&ksw)
            .arg("symbolize")
            .arg("--kallsyms")
            .arg(&table)
            .args(&addrs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in String::from_utf8(out.stdout).unwrap().lines() {
            assert!(
                nice.contains(&format!(" {name};"))
                    || nice.contains(&format!(" {name}:"))
                    || nice.contains(&format!(" {name}\n"))
                    || nice.trim_end().ends_with(name),
                "{data}: ksw says {name:?}, the plugin printed:\n{nice}"
            );
        }
    }
}
