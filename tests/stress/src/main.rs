//! `ksw-stress`: the harness of `make stress` (see `tests/stress/run` and
//! the stress section of `Documentation/testing.md`).
//!
//! ```text
//! ksw-stress guest --scale full|short|F --test-ko KO --ksw-ko KO --ksw BIN --out DIR [--stack-size N] [--seed N] [--variant V] [--only config|calls]
//! ksw-stress table RESULTS.json [--markdown]
//! ```
//!
//! `guest` runs inside the VM, with kstackwatch and kstackwatch_test
//! loaded: the config storm (item 1), then the call storm with `ksw
//! record` under it (items 2 and 3). It writes `DIR/results.json`, prints
//! the table, and exits 1 naming the figure and the cycle of the first
//! broken invariant. `table` prints the table of a results file.

mod call_storm;
mod config_storm;
mod facts;
mod gen;
mod kernel;
mod rng;

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Instant;

use ksw_core::config::{Key, Limits, WatchTarget};
use serde_json::{json, Value};

use crate::facts::{Facts, Pred};
use crate::gen::{Ctx, SpecText};

/// A broken invariant: where, which figure, which cycle (or write).
#[derive(Debug, Clone)]
pub struct Failure {
    pub part: String,
    pub figure: String,
    pub cycle: u64,
    pub message: String,
}

/// How much of everything.
#[derive(Debug, Clone)]
struct Scale {
    name: String,
    writes: u64,
    calls: u64,
    cycles: u64,
}

impl Scale {
    fn parse(s: &str) -> Result<Scale, String> {
        let full = Scale {
            name: "full".into(),
            writes: 100_000,
            calls: 1_000_000,
            cycles: 100,
        };
        match s {
            "full" => Ok(full),
            "short" => Ok(Scale {
                name: "short".into(),
                writes: 1_000,
                calls: 10_000,
                cycles: 5,
            }),
            f => {
                let f: f64 = f
                    .parse()
                    .map_err(|_| format!("scale {s:?}: full, short or a factor of full"))?;
                if !(f > 0.0 && f <= 10.0) {
                    return Err(format!("scale {f} out of (0, 10]"));
                }
                Ok(Scale {
                    name: format!("{f}"),
                    writes: (full.writes as f64 * f).ceil() as u64,
                    calls: (full.calls as f64 * f).ceil() as u64,
                    cycles: ((full.cycles as f64 * f).ceil() as u64).max(1),
                })
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("guest") => guest(&args[1..]),
        Some("table") => table_cmd(&args[1..]),
        Some("quiet-splat") => quiet_splat(&args[1..]),
        _ => Err("usage: ksw-stress guest ... | ksw-stress table RESULTS.json [--markdown]".into()),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ksw-stress: {e}");
            ExitCode::from(2)
        }
    }
}

fn opt(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn num<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    opt(args, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The console is quiet during the config storm: a kernel report then
/// must still reach it. Loads a module that warns (the argument) while the
/// console is quiet; the VM runner must fail the run, showing the warning.
fn quiet_splat(args: &[String]) -> Result<bool, String> {
    let ko = args.first().ok_or("quiet-splat: which module?")?;
    let kmsg = kernel::Kmsg::start()?;
    kmsg.quiet_console(true);
    kernel::load_module(ko, "")?;
    kmsg.sync();
    kmsg.quiet_console(false);
    let seen = kmsg.with(|k| k.splats.len());
    println!("reports seen in the kernel log while the console was quiet: {seen}");
    Ok(seen > 0)
}

fn table_cmd(args: &[String]) -> Result<bool, String> {
    let path = args.first().ok_or("table: which results file?")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    print!("{}", table(&v, args.iter().any(|a| a == "--markdown")));
    Ok(v["passed"].as_bool().unwrap_or(false))
}

/// Functions of the test module nothing runs during the config storm:
/// the only ones (besides the baseline's) its accepted configurations may
/// watch at will.
const IDLE: &[&str] = &[
    "ksw_test_victim",
    "ksw_test_buggy",
    "ksw_test_silent_round",
    "ksw_test_publish",
    "ksw_test_nothing",
    "ksw_test_victim_wait",
    "ksw_test_round_new",
    "ksw_test_round_wait_ready",
    "ksw_test_round_published",
    "ksw_test_round_writer_done",
    "ksw_test_round_bad_words",
    "ksw_test_round_overlap",
    "ksw_test_canary_victim",
    "ksw_test_recurse",
    "ksw_test_hop",
    "ksw_test_hold_victim",
    "ksw_test_irq_victim",
    "ksw_test_irq_strike",
    "ksw_test_deep_victim",
    "ksw_test_deep_write",
    "ksw_test_alias_victim",
    "ksw_test_alias_write",
    "ksw_test_exit_victim",
    "ksw_test_exit_inside",
    "ksw_test_held_victim",
    "ksw_test_huge",
    "ksw_test_switch",
    "ksw_test_ipi_roundtrip_ns",
    "ksw_test_dr_program_ns",
    "ksw_test_watch_tax_ns",
    "ksw_test_hog",
    "ksw_test_hog_online",
    "ksw_test_hog_offline",
];

/// Kernel functions watched (canary only) by some valid configurations;
/// their outcome is not predicted.
const KERNEL_FUNCS: &[&str] = &[
    "vfs_read",
    "seq_read_iter",
    "do_sys_openat2",
    "schedule_timeout",
    "kthread",
];

fn probe_point(ko: &str, func: &str) -> Result<(String, String), String> {
    let out = std::process::Command::new("trace-scripts/ksw-probe-point")
        .args([ko, func])
        .output()
        .map_err(|e| format!("trace-scripts/ksw-probe-point: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fo = kernel::field(&text, "func_offset")
        .ok_or_else(|| format!("no probe point for {func}: {text}"))?;
    let so = kernel::field(&text, "sp_offset")
        .ok_or_else(|| format!("no sp_offset for {func}: {text}"))?;
    Ok((fo, so))
}

fn local(ko: &str, func: &str, extra: &[(Key, &str)]) -> Result<SpecText, String> {
    let (fo, so) = probe_point(ko, func)?;
    let mut s = SpecText::new(&[
        (Key::FuncName, func),
        (Key::FuncOffset, &fo),
        (Key::SpOffset, &so),
        (Key::WatchLen, "8"),
    ]);
    for (k, v) in extra {
        s.set(*k, v);
    }
    Ok(s)
}

/// The generator's material, from the module's code.
#[allow(clippy::type_complexity)]
fn material(
    facts: &Facts,
    ko: &str,
    rng: &mut rng::Rng,
) -> Result<
    (
        Vec<SpecText>,
        Vec<SpecText>,
        Vec<SpecText>,
        Vec<(&'static str, SpecText, i32)>,
        Vec<String>,
    ),
    String,
> {
    let baseline = vec![
        local(ko, "ksw_test_direct_victim", &[(Key::MaxWatch, "1")])?,
        SpecText::new(&[(Key::FuncName, "ksw_test_small"), (Key::MaxWatch, "2")]),
    ];
    let mut bg_safe = Vec::new();
    for s in [
        SpecText::new(&[
            (Key::FuncName, "ksw_test_exits"),
            (Key::SpOffset, "0"),
            (Key::WatchLen, "8"),
            (Key::MaxWatch, "1"),
        ]),
        SpecText::new(&[
            (Key::FuncName, "ksw_test_bench_victim"),
            (Key::MaxWatch, "1"),
        ]),
    ] {
        let f = facts
            .func(s.func())
            .ok_or_else(|| format!("{} not in the module", s.func()))?;
        let target = if s.get(Key::WatchLen).is_some() {
            WatchTarget::Local {
                sp_offset: 0,
                len: 8,
            }
        } else {
            WatchTarget::Canary
        };
        if facts::predict_func(f, None, target) == Pred::Ok {
            bg_safe.push(s);
        }
    }
    let mut valid = Vec::new();
    let mut semantic: Vec<(&'static str, SpecText, i32)> = Vec::new();
    for name in IDLE {
        let Some(f) = facts.func(name) else { continue };
        let spec = |fields: &[(Key, &str)]| {
            let mut s = SpecText::new(&[(Key::FuncName, name)]);
            for (k, v) in fields {
                s.set(*k, v);
            }
            s
        };
        match facts::predict_func(f, None, WatchTarget::Canary) {
            Pred::Ok => valid.push(spec(&[])),
            Pred::Err(facts::ENODATA) => semantic.push(("no_canary", spec(&[]), facts::ENODATA)),
            Pred::Err(facts::EINVAL) => semantic.push(("no_frame", spec(&[]), facts::EINVAL)),
            Pred::Err(facts::EOPNOTSUPP) => {
                semantic.push(("layout_not_followed", spec(&[]), facts::EOPNOTSUPP))
            }
            Pred::Err(facts::EFBIG) => {
                semantic.push(("function_too_large", spec(&[]), facts::EFBIG))
            }
            _ => {}
        }
        if f.size > 0 {
            let fo = format!("{:#x}", f.size + rng.below(0x100));
            semantic.push((
                "offset_outside_function",
                spec(&[
                    (Key::FuncOffset, &fo),
                    (Key::SpOffset, "8"),
                    (Key::WatchLen, "8"),
                ]),
                facts::ERANGE,
            ));
        }
        let local = WatchTarget::Local {
            sp_offset: 0x40,
            len: 8,
        };
        let by = facts::offsets_by_outcome(f, local);
        let canary = facts::offsets_by_outcome(f, WatchTarget::Canary);
        let some = |v: Option<&Vec<u32>>, n: usize, rng: &mut rng::Rng| -> Vec<String> {
            let v = v.cloned().unwrap_or_default();
            (0..n.min(v.len()))
                .map(|_| format!("{:#x}", rng.pick(&v)))
                .collect()
        };
        for fo in some(by.get(&0), 3, rng) {
            valid.push(spec(&[
                (Key::FuncOffset, &fo),
                (Key::SpOffset, "0x40"),
                (Key::WatchLen, "8"),
            ]));
        }
        for fo in some(by.get(&facts::EILSEQ), 3, rng) {
            semantic.push((
                "offset_inside_instruction",
                spec(&[
                    (Key::FuncOffset, &fo),
                    (Key::SpOffset, "0x40"),
                    (Key::WatchLen, "8"),
                ]),
                facts::EILSEQ,
            ));
        }
        for fo in some(by.get(&facts::EINVAL), 3, rng) {
            semantic.push((
                "offset_on_branch_or_unreached",
                spec(&[
                    (Key::FuncOffset, &fo),
                    (Key::SpOffset, "0x40"),
                    (Key::WatchLen, "8"),
                ]),
                facts::EINVAL,
            ));
        }
        // Canary watches probed before the canary is stored.
        let ok_local: HashSet<u32> = by
            .get(&0)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let early: Vec<u32> = canary
            .get(&facts::EINVAL)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|o| ok_local.contains(o))
            .collect();
        for fo in some(Some(&early), 2, rng) {
            semantic.push((
                "canary_before_store",
                spec(&[(Key::FuncOffset, &fo), (Key::AutoCanary, "1")]),
                facts::EINVAL,
            ));
        }
        for fo in some(canary.get(&0), 1, rng) {
            valid.push(spec(&[(Key::FuncOffset, &fo), (Key::AutoCanary, "1")]));
        }
    }
    semantic.push((
        "unknown_function",
        SpecText::new(&[(Key::FuncName, "ksw_stress_nosuch")]),
        facts::ENOENT,
    ));
    semantic.push((
        "unknown_function",
        SpecText::new(&[(Key::FuncName, "nosuchmodule:ksw_test_victim")]),
        facts::ENOENT,
    ));
    let qualified = format!("{}:ksw_stress_nosuch", facts.module);
    semantic.push((
        "unknown_function",
        SpecText::new(&[(Key::FuncName, &qualified)]),
        facts::ENOENT,
    ));
    // No prediction: only documented errnos.
    semantic.push((
        "rust_function",
        SpecText::new(&[
            (Key::FuncName, "ksw_test_corrupt"),
            (Key::FuncOffset, "0"),
            (Key::SpOffset, "0"),
            (Key::WatchLen, "8"),
        ]),
        0,
    ));
    semantic.push((
        "kprobe_blacklisted",
        SpecText::new(&[
            (Key::FuncName, "do_int3"),
            (Key::FuncOffset, "0"),
            (Key::SpOffset, "0"),
            (Key::WatchLen, "8"),
        ]),
        0,
    ));
    let kernel_pool: Vec<String> = KERNEL_FUNCS
        .iter()
        .filter(|n| facts.exists(n))
        .map(|n| n.to_string())
        .collect();
    for c in [
        "no_canary",
        "no_frame",
        "layout_not_followed",
        "function_too_large",
        "offset_inside_instruction",
        "offset_on_branch_or_unreached",
        "canary_before_store",
    ] {
        if !semantic.iter().any(|s| s.0 == c) {
            return Err(format!(
                "no function of the test module gives the class {c}"
            ));
        }
    }
    Ok((baseline, bg_safe, valid, semantic, kernel_pool))
}

fn guest(args: &[String]) -> Result<bool, String> {
    let t0 = Instant::now();
    let scale = Scale::parse(&opt(args, "--scale").unwrap_or_else(|| "short".into()))?;
    let test_ko = opt(args, "--test-ko").ok_or("--test-ko KO")?;
    let ksw_ko = opt(args, "--ksw-ko").ok_or("--ksw-ko KO")?;
    let ksw_bin = opt(args, "--ksw").unwrap_or_else(|| "target/release/ksw".into());
    let out_dir = opt(args, "--out").ok_or("--out DIR")?;
    let variant = opt(args, "--variant").unwrap_or_else(|| "?".into());
    let only = opt(args, "--only");
    let seed: u64 = opt(args, "--seed")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let stack: u32 = opt(args, "--stack-size")
        .and_then(|s| s.parse().ok())
        .unwrap_or(16384);
    let limits = Limits {
        stack_size: stack,
        hw_slots: 4,
    };
    let slow = if std::path::Path::new("/proc/lockdep").exists() {
        4
    } else {
        1
    };
    let kmsg = kernel::Kmsg::start()?;
    let doc = std::fs::read_to_string("Documentation/kstackwatch.md")
        .map_err(|e| format!("Documentation/kstackwatch.md: {e}"))?;
    let documented = facts::documented_errnos(&doc);
    let kallsyms =
        std::fs::read_to_string("/proc/kallsyms").map_err(|e| format!("/proc/kallsyms: {e}"))?;
    let ko = std::fs::read(&test_ko).map_err(|e| format!("{test_ko}: {e}"))?;
    let facts = Facts::load(&kallsyms, &ko, "kstackwatch_test")?;
    let mut rng = rng::Rng::new(seed);
    let (baseline, bg_safe, valid, semantic, kernel_pool) = material(&facts, &test_ko, &mut rng)?;
    let running: Vec<String> = facts
        .funcs()
        .map(|f| f.name.clone())
        .filter(|n| !IDLE.contains(&n.as_str()))
        .collect();
    let ctx = Ctx::new(
        limits,
        &facts,
        baseline.clone(),
        running,
        bg_safe,
        valid,
        semantic,
        kernel_pool,
    )?;
    eprintln!(
        "[stress] {} kernel, scale {}: {} config writes, {} calls, {} cycles; {} valid and {} semantic spec templates",
        variant,
        scale.name,
        scale.writes,
        scale.calls,
        scale.cycles,
        ctx.valid_pool.len(),
        ctx.semantic.len()
    );
    let mut failures = Vec::new();
    let mut results = json!({
        "variant": variant,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "lockdep": slow > 1,
        "cpus": kernel::online_cpus().len(),
        "scale": {"name": scale.name, "writes": scale.writes, "calls": scale.calls, "cycles": scale.cycles},
        "seed": seed,
        "stack_size": stack,
    });
    if only.as_deref() != Some("calls") {
        let params = config_storm::Params {
            writes: scale.writes,
            writers: 4,
            readers: 2,
            valid_permille: num(args, "--valid-permille", 1),
            semantic_permille: num(args, "--semantic-permille", 10),
            catch_every: num(args, "--catch-every", 100),
            ebusy_every: num(args, "--ebusy-every", (scale.writes / 20).max(200)),
            bg_pause_us: num(args, "--bg-pause-us", 100_000),
            reader_pause_ms: num(args, "--reader-pause-ms", 20),
            quiet_console: !args.iter().any(|a| a == "--loud-console"),
            require_every_errno: scale.writes >= 20_000,
            seed,
        };
        let (fig, f) = config_storm::run(&ctx, params, documented, &kmsg);
        results["config_storm"] = fig;
        failures.extend(f);
        // Back to nothing watched for the call storm.
        let _ =
            kernel::ConfigFile::open().and_then(|c| c.write(b"").map_err(|e| format!("errno {e}")));
    }
    if only.as_deref() != Some("config") && failures.is_empty() {
        let specs = call_storm::Specs {
            lines: vec![
                SpecText::new(&[(Key::FuncName, "ksw_test_small"), (Key::MaxWatch, "1")]),
                SpecText::new(&[
                    (Key::FuncName, "ksw_test_exits"),
                    (Key::SpOffset, "0"),
                    (Key::WatchLen, "8"),
                    (Key::MaxWatch, "1"),
                ]),
                local(&test_ko, "ksw_test_bench_victim", &[(Key::Depth, "1")])?,
                local(&test_ko, "ksw_test_recurse", &[])?,
                local(&test_ko, "ksw_test_victim", &[])?,
                local(&test_ko, "ksw_test_held_victim", &[])?,
                local(&test_ko, "ksw_test_exit_victim", &[])?,
                local(&test_ko, "ksw_test_direct_victim", &[])?,
            ],
        };
        let params = call_storm::Params {
            cycles: scale.cycles,
            calls: scale.calls,
            record_every: if scale.cycles >= 20 { 4 } else { 2 },
            rethook_every: 4,
            record_flush: !args.iter().any(|a| a == "--record-strict"),
            slow,
            ksw_ko: ksw_ko.clone(),
            ksw_bin,
            tmp: "/tmp".into(),
            seed,
        };
        let (fig, f) = call_storm::run(&specs, params, &kmsg);
        results["call_storm"] = fig;
        failures.extend(f);
    }
    kmsg.sync();
    let splats = kmsg.with(|k| k.splats.clone());
    for (phase, line) in &splats {
        failures.push(Failure {
            part: "kernel log".into(),
            figure: "splats".into(),
            cycle: 0,
            message: format!("{phase}: {line}"),
        });
    }
    results["splats"] = json!(splats
        .iter()
        .map(|(p, l)| format!("{p}: {l}"))
        .collect::<Vec<_>>());
    results["seconds"] = json!(t0.elapsed().as_secs());
    results["passed"] = json!(failures.is_empty());
    results["failures"] = json!(failures
        .iter()
        .map(
            |f| json!({"part": f.part, "figure": f.figure, "cycle": f.cycle, "message": f.message})
        )
        .collect::<Vec<_>>());
    let path = format!("{out_dir}/results.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    )
    .map_err(|e| format!("{path}: {e}"))?;
    print!("{}", table(&results, false));
    for f in &failures {
        println!(
            "FAILED: {}, figure '{}', cycle {}: {}",
            f.part, f.figure, f.cycle, f.message
        );
    }
    Ok(failures.is_empty())
}

/// The figures as a table (text, or Markdown for Documentation/testing.md).
pub fn table(v: &Value, markdown: bool) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let n = |x: &Value| x.as_u64().map_or_else(|| x.to_string(), |n| n.to_string());
    let cs = &v["config_storm"];
    if cs.is_object() {
        rows.push(("**config storm**".into(), String::new()));
        rows.push((
            "writes (4 writers, 2 readers, background on every CPU)".into(),
            n(&cs["writes"]),
        ));
        rows.push(("accepted".into(), n(&cs["accepted"])));
        let by = cs["rejected_by_errno"].as_object().map(|m| {
            m.iter()
                .map(|(k, c)| format!("{k} {}", n(c)))
                .collect::<Vec<_>>()
                .join(", ")
        });
        rows.push((
            "rejected".into(),
            format!("{} ({})", n(&cs["rejected"]), by.unwrap_or_default()),
        ));
        rows.push(("unexpected errnos".into(), n(&cs["unexpected_errnos"])));
        let classes = cs["class_outcomes"].as_object().map_or(0, |m| m.len());
        let never = cs["documented_errnos_never_produced"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        rows.push((
            "generator classes / documented errnos never produced".into(),
            format!(
                "{classes} / {}",
                if never.is_empty() { "none" } else { &never }
            ),
        ));
        rows.push((
            "watch intact checks passed".into(),
            n(&cs["watch_intact_checks_passed"]),
        ));
        rows.push((
            "catch samples passed".into(),
            n(&cs["catch_samples_passed"]),
        ));
        rows.push((
            "writes the kernel planned (parsed)".into(),
            n(&cs["writes_planned_by_the_kernel"]),
        ));
        rows.push((
            "predicted exactly / errno only checked documented".into(),
            format!(
                "{} / {}",
                n(&cs["predicted_exactly"]),
                n(&cs["predicted_documented_only"])
            ),
        ));
        rows.push(("reads of /proc/kstackwatch".into(), n(&cs["reads"])));
        rows.push(("reject log lines".into(), n(&cs["reject_log_lines"])));
        rows.push(("time (s)".into(), n(&cs["seconds"])));
    }
    let call = &v["call_storm"];
    if call.is_object() {
        let c = &call["counters"];
        rows.push(("**call storm**".into(), String::new()));
        rows.push(("cycles".into(), n(&call["cycles"])));
        rows.push(("watched calls".into(), n(&call["calls"])));
        let u = &call["unload_phase"];
        rows.push((
            "arms / disarms / hits, at rest after each cycle (arms = disarms checked)".into(),
            format!(
                "{} / {} / {}",
                n(&c["arms"]),
                n(&c["disarms"]),
                n(&c["hits"])
            ),
        ));
        rows.push((
            "during the unloads: arms / disarms / hits, then frames disarmed by the unload".into(),
            format!(
                "{} / {} / {}, then {}",
                n(&u["arms"]),
                n(&u["disarms"]),
                n(&u["hits"]),
                n(&call["teardown_disarms"])
            ),
        ));
        let drops: Vec<String> = [
            "dropped_no_slot",
            "dropped_max_watch",
            "exit_unobservable",
            "other_depth",
            "canary_not_found",
            "outside_stack",
            "misaligned",
            "bad_frame",
            "nmi_context",
            "depth_untracked",
        ]
        .iter()
        .map(|k| format!("{k} {}", n(&c[*k])))
        .collect();
        rows.push(("not armed, by reason".into(), drops.join(", ")));
        let other = call["disarms_other_than_return"].as_object().map(|m| {
            m.iter()
                .map(|(k, c)| format!("{k} {}", n(c)))
                .collect::<Vec<_>>()
                .join(", ")
        });
        rows.push((
            "disarms other than return (before unload)".into(),
            other.unwrap_or_default(),
        ));
        rows.push((
            "backstop disarms / late releases / stale hits".into(),
            format!(
                "{} / {} / {}",
                n(&c["backstop_disarms"]),
                n(&c["late_releases"]),
                n(&c["stale_hits"])
            ),
        ));
        rows.push((
            "unloads while armed".into(),
            n(&call["unloads_while_armed"]),
        ));
        rows.push((
            "CPU hotplug cycles (every non-boot CPU off and on)".into(),
            n(&call["hotplug_cycles"]),
        ));
        rows.push((
            "rethook exhaustion cycles (rethook_nodes=2)".into(),
            n(&call["rethook_exhaustion_cycles"]),
        ));
        rows.push((
            "invariant checks passed".into(),
            n(&call["invariant_checks_passed"]),
        ));
        let m = &call["memory"];
        let sl = &m["slopes"];
        let growing = m["caches_growing_half_an_object_per_cycle_or_more"]
            .as_object()
            .map_or(0, |g| g.len());
        rows.push((
            format!(
                "kernel memory, slope over cycles {} to {} ({})",
                n(&m["from_cycle"]),
                n(&m["to_cycle"]),
                if m["judged"].as_bool() == Some(true) {
                    "judged"
                } else {
                    "too few cycles to judge"
                }
            ),
            format!(
                "SUnreclaim {} kB/cycle, Vmalloc {}, Percpu {}, KernelStack {}; slab caches growing >= 0.5 object/cycle: {growing}",
                sl["SUnreclaim_kb_per_cycle"], sl["VmallocUsed_kb_per_cycle"], sl["Percpu_kb_per_cycle"], sl["KernelStack_kb_per_cycle"]
            ),
        ));
        let r = &call["recorder"];
        rows.push(("**ksw record under load**".into(), String::new()));
        rows.push(("recordings".into(), n(&r["recordings"])));
        rows.push((
            "events: module / recorded / lost records / missing".into(),
            format!(
                "{} / {} / {} / {}",
                n(&r["module_events"]),
                n(&r["recorded_events"]),
                n(&r["lost_records"]),
                n(&r["missing_events"])
            ),
        ));
        rows.push(("time (s)".into(), n(&call["seconds"])));
    }
    rows.push(("**run**".into(), String::new()));
    rows.push((
        "kernel".into(),
        format!(
            "{} ({}), {} CPUs",
            v["variant"].as_str().unwrap_or("?"),
            v["kernel"].as_str().unwrap_or("?"),
            n(&v["cpus"])
        ),
    ));
    rows.push((
        "scale".into(),
        v["scale"]["name"].as_str().unwrap_or("?").to_string(),
    ));
    rows.push(("time in the guest (s)".into(), n(&v["seconds"])));
    rows.push((
        "result".into(),
        if v["passed"].as_bool() == Some(true) {
            "PASS".into()
        } else {
            "FAIL".into()
        },
    ));
    let mut out = String::new();
    if markdown {
        out.push_str("| figure | value |\n| --- | --- |\n");
        for (k, val) in rows {
            out.push_str(&format!("| {k} | {val} |\n"));
        }
    } else {
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (k, val) in rows {
            let k = k.trim_matches('*');
            if val.is_empty() {
                out.push_str(&format!("{k}\n"));
            } else {
                out.push_str(&format!("  {k:<w$}  {val}\n"));
            }
        }
    }
    out
}
