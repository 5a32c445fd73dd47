//! `ksw watch` and `ksw record --watch`: the command line, finding the
//! files, and writing `/proc/kstackwatch`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Parser};

use crate::elf::Binary;
use crate::types::VarPath;
use crate::watch::{self, At, Frame, Request, Resolved};

/// The module's configuration file.
pub const PROC: &str = "/proc/kstackwatch";

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ksw watch --list do_sys_poll\n  ksw watch do_sys_poll 'stack_pps[4]'\n  ksw watch --module my.ko my_submit req.flags --at my.c:212\n  ksw watch my_submit --canary --print"
)]
pub struct WatchArgs {
    /// Kernel image with debug info. Default: the running kernel's, from
    /// /usr/lib/debug/boot, /lib/modules/$(uname -r)/build or /boot.
    #[arg(long, value_name = "FILE")]
    pub vmlinux: Option<PathBuf>,
    /// A module (.ko) with debug info; repeatable. Default: the loaded
    /// module that has FUNC, from /lib/modules or /usr/lib/debug.
    #[arg(long = "module", value_name = "FILE.ko")]
    pub modules: Vec<PathBuf>,
    /// List FUNC's parameters and locals that live in its frame, and
    /// where each can be watched.
    #[arg(long)]
    pub list: bool,
    /// Arm at the first instruction of a source line, or after the
    /// instruction at +OFFSET. Default: the first instruction after the
    /// prologue where VAR is in the frame.
    #[arg(long, value_name = "FILE:LINE|+OFFSET")]
    pub at: Option<String>,
    /// Watch the stack canary instead of a variable.
    #[arg(long)]
    pub canary: bool,
    /// Arm only this recursion depth (dp=).
    #[arg(long)]
    pub depth: Option<u32>,
    /// Frames armed at once (mw=).
    #[arg(long = "max-watch", value_name = "N")]
    pub max_watch: Option<u32>,
    /// Panic on a caught write (ph=1).
    #[arg(long)]
    pub panic: bool,
    /// Print the config line, do not apply it.
    #[arg(long, conflicts_with = "apply")]
    pub print: bool,
    /// Write it to /proc/kstackwatch (the default as root with the module
    /// loaded), adding to the running configuration.
    #[arg(long)]
    pub apply: bool,
    /// The function: FUNC or MODULE:FUNC.
    pub func: String,
    /// The variable: VAR, VAR.field, VAR[index], combined.
    pub var: Option<String>,
}

/// `ksw record --watch 'FUNC VAR [options]'` words, parsed as `ksw watch`.
#[derive(Debug, Parser)]
#[command(name = "--watch", no_binary_name = true)]
struct WatchSpec {
    #[command(flatten)]
    args: WatchArgs,
}

fn request(a: &WatchArgs) -> Result<Request, String> {
    let var = a.var.as_deref().map(VarPath::parse).transpose()?;
    if var.is_some() && a.canary {
        return Err("give a variable or --canary, not both".into());
    }
    Ok(Request {
        func: a.func.clone(),
        var,
        canary: a.canary,
        at: a.at.as_deref().map_or(Ok(At::Default), At::parse)?,
        depth: a.depth,
        max_watch: a.max_watch,
        panic: a.panic,
    })
}

fn osrelease() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The running kernel's image with debug info, where distributions and
/// `make install` put it.
pub fn find_vmlinux() -> Option<PathBuf> {
    let rel = osrelease()?;
    [
        format!("/usr/lib/debug/boot/vmlinux-{rel}"),
        format!("/usr/lib/debug/lib/modules/{rel}/vmlinux"),
        format!("/lib/modules/{rel}/build/vmlinux"),
        format!("/boot/vmlinux-{rel}"),
        format!("/usr/lib/debug/vmlinux-{rel}"),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The loaded module that has function `name`, from /proc/kallsyms.
fn module_of(name: &str) -> Option<String> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let (_, kind, sym, module) = (it.next()?, it.next()?, it.next()?, it.next()?);
        (sym == name && matches!(kind, "t" | "T"))
            .then(|| module.trim_matches(['[', ']']).to_string())
    })
}

/// A module's .ko under /lib/modules/$(uname -r) or its debug twin.
pub fn find_module(module: &str) -> Option<PathBuf> {
    let rel = osrelease()?;
    let want = module.replace('-', "_");
    for root in [
        format!("/usr/lib/debug/lib/modules/{rel}"),
        format!("/lib/modules/{rel}"),
    ] {
        let mut stack = vec![PathBuf::from(root)];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                let Ok(ft) = e.file_type() else {
                    continue;
                };
                if ft.is_dir() {
                    if !p.ends_with("build") && !p.ends_with("source") {
                        stack.push(p);
                    }
                } else if p.extension().is_some_and(|x| x == "ko")
                    && p.file_stem()
                        .is_some_and(|s| s.to_string_lossy().replace('-', "_") == want)
                {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// The binaries to search for `func`: the given ones; else the running
/// kernel's image and the loaded module that has it.
pub fn binaries(
    vmlinux: Option<&Path>,
    modules: &[PathBuf],
    func: &str,
) -> Result<Vec<Binary>, String> {
    let mut bins = Vec::new();
    for m in modules {
        bins.push(Binary::load(m)?);
    }
    if let Some(v) = vmlinux {
        bins.push(Binary::load(v)?);
        return Ok(bins);
    }
    let (module, name) = match func.split_once(':') {
        Some((m, n)) => (Some(m), n),
        None => (None, func),
    };
    let has = |bins: &[Binary]| {
        bins.iter()
            .any(|b| b.functions_named(name).next().is_some())
    };
    if has(&bins) {
        return Ok(bins);
    }
    if module.is_none() || module == Some("vmlinux") {
        if let Some(v) = find_vmlinux() {
            bins.push(Binary::load(&v)?);
            if has(&bins) {
                return Ok(bins);
            }
        }
    }
    let module = module.map(str::to_string).or_else(|| module_of(name));
    if let Some(m) = module {
        if let Some(p) = find_module(&m) {
            bins.push(Binary::load(&p)?);
        }
    }
    if bins.is_empty() {
        return Err(format!(
            "no kernel image with debug info found for the running kernel (looked in /usr/lib/debug/boot, /lib/modules/{}/build, /boot): give --vmlinux FILE (and --module FILE.ko for a module's function)",
            osrelease().unwrap_or_else(|| "$(uname -r)".into())
        ));
    }
    Ok(bins)
}

/// Resolves one watch.
pub fn resolve(a: &WatchArgs) -> Result<Resolved, String> {
    let req = request(a)?;
    let bins = binaries(a.vmlinux.as_deref(), &a.modules, &req.func)?;
    let found = watch::locate(&bins, &req.func)?;
    let frame = Frame::open(found)?;
    frame.resolve(&req)
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether `--apply` is the default: root, module loaded.
fn can_apply() -> bool {
    effective_uid() == Some(0) && Path::new(PROC).exists()
}

/// The running configuration's spec lines.
pub fn current_specs() -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(PROC).map_err(|e| proc_error(&e))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// What to do about an error opening /proc/kstackwatch.
pub fn proc_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{PROC}: the kstackwatch module is not loaded (insmod kstackwatch.ko)")
        }
        std::io::ErrorKind::PermissionDenied => format!("{PROC}: permission denied: run as root"),
        _ => format!("{PROC}: {e}"),
    }
}

/// The function a spec line watches.
fn spec_func(line: &str) -> Option<&str> {
    line.split_whitespace().find_map(|kv| {
        kv.strip_prefix("fn=")
            .or_else(|| kv.strip_prefix("func_name="))
    })
}

/// Why a configuration was not written.
#[derive(Debug)]
pub enum WriteError {
    /// The file could not be opened (the message says what to do).
    Open(String),
    /// The module refused it: the write's error (its errno is the reason
    /// class; the module logs the reason to the kernel log).
    Rejected(std::io::Error),
}

/// The text of a whole configuration, as written.
pub fn config_text(lines: &[String]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Writes a whole configuration in one write(), keeping the module's
/// errno for callers that explain it themselves (`ksw sweep`).
pub fn try_write_config(lines: &[String]) -> Result<(), WriteError> {
    let text = config_text(lines);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(PROC)
        .map_err(|e| WriteError::Open(proc_error(&e)))?;
    f.write_all(text.as_bytes()).map_err(WriteError::Rejected)
}

/// Writes a whole configuration in one write().
pub fn write_config(lines: &[String]) -> Result<(), String> {
    try_write_config(lines).map_err(|e| match e {
        WriteError::Open(message) => message,
        WriteError::Rejected(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            format!(
                "kstackwatch rejected the configuration ({e}, errno {errno}; dmesg says why):\n{}",
                config_text(lines).trim_end()
            )
        }
    })
}

/// Adds (or replaces, per function) specs in the running configuration.
pub fn apply(new: &[&Resolved]) -> Result<(), String> {
    let mut lines = current_specs()?;
    for r in new {
        lines.retain(|l| spec_func(l) != Some(r.func.as_str()));
        lines.push(r.config.clone());
    }
    write_config(&lines)
}

fn read_notes_build_id(path: &Path) -> Option<Vec<u8>> {
    let data = std::fs::read(path).ok()?;
    let mut at = 0usize;
    let u32_at = |i: usize| {
        data.get(i..i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    while at + 12 <= data.len() {
        let (namesz, descsz, kind) = (u32_at(at)?, u32_at(at + 4)?, u32_at(at + 8)?);
        let name = data.get(at + 12..at + 12 + namesz)?;
        let desc_at = at + 12 + namesz.div_ceil(4) * 4;
        let desc = data.get(desc_at..desc_at + descsz)?;
        if kind == 3 && name.starts_with(b"GNU") {
            return Some(desc.to_vec());
        }
        at = desc_at + descsz.div_ceil(4) * 4;
    }
    None
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Refuses offsets from a file that is not what runs.
pub fn check_running(a: &WatchArgs, r: &Resolved) -> Result<(), String> {
    let bins_paths: Vec<PathBuf> = a.modules.clone();
    let (notes, what) = match &r.module {
        Some(m) => (
            PathBuf::from(format!("/sys/module/{m}/notes/.note.gnu.build-id")),
            format!("module {m}"),
        ),
        None => (
            PathBuf::from("/sys/kernel/notes"),
            "the running kernel".to_string(),
        ),
    };
    let Some(running) = read_notes_build_id(&notes) else {
        return Ok(());
    };
    let file = match &r.module {
        Some(m) => bins_paths
            .iter()
            .find(|p| Binary::load(p).ok().and_then(|b| b.module).as_deref() == Some(m.as_str()))
            .cloned()
            .or_else(|| find_module(m)),
        None => a.vmlinux.clone().or_else(find_vmlinux),
    };
    let Some(file) = file else {
        return Ok(());
    };
    let Ok(bin) = Binary::load(&file) else {
        return Ok(());
    };
    match bin.build_id {
        Some(id) if id != running => Err(format!(
            "{} is not {what}: build id {} there, {} running; its offsets would be wrong (use --print to see them anyway)",
            file.display(),
            hexs(&id),
            hexs(&running)
        )),
        _ => Ok(()),
    }
}

/// `ksw watch`.
pub fn run(a: &WatchArgs) -> Result<(), String> {
    if a.list {
        if a.var.is_some() {
            return Err("--list takes only FUNC".into());
        }
        let bins = binaries(a.vmlinux.as_deref(), &a.modules, &a.func)?;
        let found = watch::locate(&bins, &a.func)?;
        let frame = Frame::open(found)?;
        print!("{}", frame.list()?);
        return Ok(());
    }
    let r = resolve(a)?;
    let apply_it = a.apply || (!a.print && can_apply());
    eprintln!("ksw watch: {}", r.func);
    eprint!("{}", r.text());
    if apply_it {
        check_running(a, &r)?;
        apply(&[&r])?;
        eprintln!("  applied   {PROC} now watches it (echo > {PROC} stops)");
    }
    println!("{}", r.config);
    Ok(())
}

/// Resolves `ksw record --watch` specs.
pub fn resolve_specs(specs: &[String]) -> Result<Vec<(WatchArgs, Resolved)>, String> {
    let mut out = Vec::new();
    for s in specs {
        let words: Vec<&str> = s.split_whitespace().collect();
        let spec = WatchSpec::try_parse_from(&words)
            .map_err(|e| format!("--watch '{s}': {}", e.to_string().trim()))?;
        if spec.args.list {
            return Err(format!("--watch '{s}': --list is for ksw watch"));
        }
        let r = resolve(&spec.args).map_err(|e| format!("--watch '{s}': {e}"))?;
        out.push((spec.args, r));
    }
    Ok(out)
}

/// Applies `--watch` specs, runs `f`, and restores the configuration that
/// was there before, whatever `f` returned.
pub fn with_watches<T>(
    specs: &[String],
    f: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    if specs.is_empty() {
        return f();
    }
    let resolved = resolve_specs(specs)?;
    for (a, r) in &resolved {
        eprintln!("ksw record --watch: {}", r.func);
        eprint!("{}", r.text());
        check_running(a, r)?;
    }
    let before = current_specs()?;
    let refs: Vec<&Resolved> = resolved.iter().map(|(_, r)| r).collect();
    apply(&refs)?;
    let result = f();
    let restored = write_config(&before);
    let value = result?;
    restored.map_err(|e| format!("restoring the configuration after recording: {e}"))?;
    Ok(value)
}
