//! `ksw sweep`: find the victim function when you do not know it.
//!
//! `ksw watch` needs the victim's name. When all you have is a corrupted
//! stack somewhere in a subsystem, a sweep watches the stack canary of
//! many functions at once (every function of a module, or those matching
//! globs, or a list), records while the reproducer runs, and names the
//! function whose frame was written and the instruction that wrote it.
//!
//! The hardware has four watchpoints, so the module arms a random sample
//! of the calls (`sa=N`: one in N eligible calls per CPU) or at most R
//! frames a second (`ra=R`). A corruption that happens k times is caught
//! with probability 1 - (1 - 1/N)^k.
//!
//! The kernel exports no symbol iterator to modules, so globs and module
//! names are expanded here, from tracefs `available_filter_functions`:
//! exactly the functions fprobe can hook (the module needs a function's
//! ftrace entry to follow its calls' depth and returns).
//!
//! The per-function stats the module keeps while the sweep is configured
//! (calls, frames armed, hits; the functions it skipped and why) are in
//! the recording's /proc/kstackwatch snapshot ([`record::feature_text`]),
//! so `ksw report` can tell the coverage later.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::rc::Rc;

use ksw_core::config::{Config, FuncName, Limits, MAX_DEPTH, MAX_FUNCS, MAX_SAMPLE, MAX_SPECS};
use ksw_dwarf::cli::{self as proc_config, WriteError, PROC};

use crate::cli::{RecordArgs, SweepArgs};
use crate::correlate::{Frame, FrameVerdict, MatchedHit};
use crate::events::Recording;
use crate::record;
use crate::report::{self, KernelCounters};
use crate::symbols::Symbols;

/// Default sampling: one in 16 eligible calls (`Documentation/ksw.md`,
/// "Sampling: why one in 16 by default"): a corruption that recurs 50
/// times is caught with probability 96%, while the arming cost per
/// eligible call falls to a sixteenth and the four watchpoints stay free
/// for inner frames.
pub const DEFAULT_SAMPLE: u32 = 16;
/// A recording with frames in at least this many functions gets the
/// report's sweep section even without the stored sweep stats (a `perf
/// record` of a sweep): more functions than a configuration of
/// single-function specs can watch, so only a sweep's.
pub const SWEEP_MIN_FUNCTIONS: usize = MAX_SPECS + 1;
/// Functions listed in the report's "frames sampled per function".
const TOP_FUNCTIONS: usize = 10;
/// Example names given per group (skipped functions, duplicates).
const EXAMPLES: usize = 3;
/// kstackwatch's own module: its functions are never swept (its probes
/// would run inside its own handlers).
const SELF_MODULE: &str = "kstackwatch";

// ---------------------------------------------------------------- globs

/// Shell-style match of the whole `name`: `*` is any run of characters,
/// `?` any one character, everything else itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was, and where in `name` it matched up to: on a
    // mismatch the star takes one more character (linear backtracking).
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// Module names are spelled with `_` in kallsyms and tracefs, with `-` or
/// `_` by people.
fn module_key(module: &str) -> String {
    module.replace('-', "_")
}

// ----------------------------------------------------------- candidates

/// One line of `available_filter_functions`: `name` or `name [module]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traceable {
    pub name: String,
    pub module: Option<String>,
}

/// The functions fprobe can hook, from `available_filter_functions` text.
/// Lines that are not a function (ftrace's placeholders for addresses it
/// could not resolve) are left out.
pub fn parse_available(text: &str) -> Vec<Traceable> {
    text.lines().filter_map(parse_available_line).collect()
}

fn parse_available_line(line: &str) -> Option<Traceable> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (name, module) = match line.strip_suffix(']').and_then(|l| l.rsplit_once(" [")) {
        Some((n, m)) => (n.trim(), Some(module_key(m.trim()))),
        None => (line, None),
    };
    if name.is_empty()
        || name.contains(char::is_whitespace)
        || name.starts_with("__ftrace_invalid_address__")
    {
        return None;
    }
    Some(Traceable {
        name: name.to_string(),
        module,
    })
}

/// A function pattern: a glob or a name, optionally of one module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub glob: String,
    pub module: Option<String>,
    /// Where it came from, for errors: `--function 'x*'` or `FILE:LINE: 'x'`.
    pub origin: String,
}

impl Pattern {
    /// `GLOB`, `MODULE:GLOB`, or `name [module]` (a line of
    /// `available_filter_functions`, so its output can be edited into a
    /// list).
    pub fn parse(text: &str, origin: String) -> Result<Pattern, String> {
        let text = text.trim();
        let (glob, module) =
            if let Some((n, m)) = text.strip_suffix(']').and_then(|t| t.rsplit_once(" [")) {
                (n.trim(), Some(m.trim()))
            } else if let Some((m, n)) = text.split_once(':') {
                (n, Some(m))
            } else {
                (text, None)
            };
        let valid = |c: char| c.is_ascii_alphanumeric() || "_.$*?".contains(c);
        if glob.is_empty() || !glob.chars().all(valid) {
            return Err(format!(
                "{origin} is not a function name or glob (letters, digits, _ . $ and the wildcards * and ?; MODULE:GLOB for one module's)"
            ));
        }
        if module.is_some_and(|m| {
            m.is_empty()
                || !m
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }) {
            return Err(format!("{origin}: not a module name before the function"));
        }
        Ok(Pattern {
            glob: glob.to_string(),
            module: module.map(module_key),
            origin,
        })
    }

    fn matches(&self, f: &Traceable) -> bool {
        self.module
            .as_deref()
            .is_none_or(|m| f.module.as_deref() == Some(m))
            && glob_match(&self.glob, &f.name)
    }
}

/// What to sweep: modules (each one's every function) and patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    pub modules: Vec<String>,
    pub patterns: Vec<Pattern>,
}

impl Selection {
    fn from_args(args: &SweepArgs) -> Result<Selection, String> {
        let mut patterns = Vec::new();
        for g in &args.functions {
            patterns.push(Pattern::parse(g, format!("--function '{g}'"))?);
        }
        if let Some(path) = &args.functions_from {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            patterns.extend(parse_list(&text, &path.display().to_string())?);
        }
        Ok(Selection {
            modules: args.modules.iter().map(|m| module_key(m)).collect(),
            patterns,
        })
    }
}

/// A `--functions-from` file: one pattern per line, `#` comments.
pub fn parse_list(text: &str, file: &str) -> Result<Vec<Pattern>, String> {
    let mut patterns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        patterns.push(Pattern::parse(line, format!("{file}:{}: '{line}'", i + 1))?);
    }
    if patterns.is_empty() {
        return Err(format!("{file}: no function in it"));
    }
    Ok(patterns)
}

/// The functions a sweep names, as written in `fn=`, and what to tell
/// the user about how they were chosen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidates {
    pub names: Vec<String>,
    pub notes: Vec<String>,
}

/// Expands `sel` over the traceable functions. With modules, only their
/// functions; with patterns, only those matching one. Every module and
/// every pattern must match something, so a typo is an error, never a
/// smaller sweep than asked for.
pub fn expand(available: &[Traceable], sel: &Selection) -> Result<Candidates, String> {
    if sel.modules.is_empty() && sel.patterns.is_empty() {
        return Err(
            "nothing to sweep: give --module NAME, --function GLOB or --functions-from FILE".into(),
        );
    }
    check_modules(available, &sel.modules)?;
    let in_scope = |f: &Traceable| {
        sel.modules.is_empty()
            || f.module
                .as_deref()
                .is_some_and(|m| sel.modules.iter().any(|x| x == m))
    };
    let own = |f: &Traceable| f.module.as_deref() == Some(SELF_MODULE);
    let mut chosen = vec![false; available.len()];
    let mut own_left_out = 0usize;
    let mut take = |i: usize| {
        if own(&available[i]) {
            own_left_out += 1;
        } else {
            chosen[i] = true;
        }
    };
    if sel.patterns.is_empty() {
        (0..available.len())
            .filter(|&i| in_scope(&available[i]))
            .for_each(&mut take);
    } else {
        let by_name = index_by_name(available);
        for p in &sel.patterns {
            let matched = matching(available, &by_name, p, &in_scope);
            if matched.is_empty() {
                return Err(no_match(p, &sel.modules));
            }
            matched.into_iter().for_each(&mut take);
        }
    }
    let mut out = name_candidates(available, &chosen);
    if own_left_out > 0 {
        out.notes.push(format!(
            "{own_left_out} function(s) of kstackwatch itself left out (its probes cannot watch its own handlers)"
        ));
    }
    if out.names.is_empty() {
        return Err(format!(
            "no function left to sweep: {}",
            out.notes.join("; ")
        ));
    }
    Ok(out)
}

fn check_modules(available: &[Traceable], modules: &[String]) -> Result<(), String> {
    for m in modules {
        if m == SELF_MODULE {
            return Err(
                "--module kstackwatch: kstackwatch cannot watch its own functions (its probes run inside them)"
                    .into(),
            );
        }
        if !available.iter().any(|f| f.module.as_deref() == Some(m)) {
            return Err(format!(
                "--module {m}: none of its functions is in available_filter_functions (is it loaded? `lsmod`; a module built without ftrace has no traceable function)"
            ));
        }
    }
    Ok(())
}

fn index_by_name(available: &[Traceable]) -> HashMap<&str, Vec<usize>> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, f) in available.iter().enumerate() {
        by_name.entry(f.name.as_str()).or_default().push(i);
    }
    by_name
}

/// The indices `p` matches in scope: a plain name by lookup (a list of
/// thousands of names stays fast), a glob by scanning.
fn matching(
    available: &[Traceable],
    by_name: &HashMap<&str, Vec<usize>>,
    p: &Pattern,
    in_scope: &impl Fn(&Traceable) -> bool,
) -> Vec<usize> {
    let ok = |i: &usize| in_scope(&available[*i]) && p.matches(&available[*i]);
    if has_wildcard(&p.glob) {
        (0..available.len()).filter(ok).collect()
    } else {
        by_name
            .get(p.glob.as_str())
            .map(|v| v.iter().copied().filter(ok).collect())
            .unwrap_or_default()
    }
}

fn no_match(p: &Pattern, modules: &[String]) -> String {
    let scope = match modules {
        [] => String::new(),
        [m] => format!(" of module {m}"),
        ms => format!(" of modules {}", ms.join(", ")),
    };
    format!(
        "{} matches no traceable function{scope} (available_filter_functions lists those fprobe can hook: an inlined, notrace or Rust function is not there)",
        p.origin
    )
}

/// Names for `fn=`, once each, in the order of `available_filter_functions`.
/// A name that is also another module's (or the kernel's) gets its
/// `module:` prefix, which the module's lookup understands; two static
/// functions of one name in one place cannot be told apart by name:
/// passed once, noted.
fn name_candidates(available: &[Traceable], chosen: &[bool]) -> Candidates {
    let mut homes: HashMap<&str, BTreeSet<Option<&str>>> = HashMap::new();
    let mut count: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    for f in available {
        homes
            .entry(f.name.as_str())
            .or_default()
            .insert(f.module.as_deref());
        *count
            .entry((f.name.as_str(), f.module.as_deref()))
            .or_default() += 1;
    }
    let mut out = Candidates::default();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let (mut repeated, mut qualified, mut invalid) = (Vec::new(), Vec::new(), Vec::new());
    for (f, _) in available.iter().zip(chosen).filter(|(_, &c)| c) {
        let shared = homes.get(f.name.as_str()).is_some_and(|h| h.len() > 1);
        let name = match (&f.module, shared) {
            (Some(m), true) => format!("{m}:{}", f.name),
            _ => f.name.clone(),
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        if count
            .get(&(f.name.as_str(), f.module.as_deref()))
            .copied()
            .unwrap_or(0)
            > 1
        {
            repeated.push(name.clone());
        }
        if FuncName::new(name.as_bytes()).is_err() {
            invalid.push(name);
            continue;
        }
        if name.contains(':') {
            qualified.push(name.clone());
        }
        out.names.push(name);
    }
    if !repeated.is_empty() {
        out.notes.push(format!(
            "{} name(s) occur more than once in available_filter_functions (static functions of the same name): each is passed once, and the module watches the one its symbol lookup finds: {}",
            repeated.len(),
            examples(&repeated)
        ));
    }
    if !qualified.is_empty() {
        out.notes.push(format!(
            "{} name(s) are both a module's and the kernel's (or another module's): passed as module:function: {}",
            qualified.len(),
            examples(&qualified)
        ));
    }
    if !invalid.is_empty() {
        out.notes.push(format!(
            "{} function(s) left out: the module takes names of at most 127 bytes of [A-Za-z0-9_.$]: {}",
            invalid.len(),
            examples(&invalid)
        ));
    }
    out
}

/// The first few of `names`, and how many more.
fn examples(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(EXAMPLES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > EXAMPLES {
        text.push_str(&format!(", ... ({} more)", names.len() - EXAMPLES));
    }
    text
}

// ----------------------------------------------------------------- spec

/// The sweep's sampling and depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpecOptions {
    pub sample: Option<u32>,
    pub rate: Option<u32>,
    pub depth: Option<u16>,
}

impl SpecOptions {
    fn from_args(args: &SweepArgs) -> Result<SpecOptions, String> {
        let in_range = |what: &str, v: Option<u32>, min: u32, max: u64| match v {
            Some(n) if n < min || u64::from(n) > max => {
                Err(format!("{what} {n}: out of range ({min}..{max})"))
            }
            _ => Ok(v),
        };
        let depth = match args.depth {
            Some(d) if d > MAX_DEPTH => {
                return Err(format!("--depth {d}: out of range (0..{MAX_DEPTH})"))
            }
            d => d,
        };
        Ok(SpecOptions {
            sample: in_range("--sample", args.sample, 1, MAX_SAMPLE)?,
            rate: in_range("--rate", args.rate, 1, MAX_SAMPLE)?,
            depth,
        })
    }

    /// One in how many eligible calls arms: the default unless a rate
    /// was asked for instead (None: every call the rate allows).
    pub fn sample(&self) -> Option<u32> {
        match (self.sample, self.rate) {
            (Some(n), _) => Some(n),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_SAMPLE),
        }
    }
}

/// The sweep spec: every function's canary (`ac=1`), sampled, short keys
/// (the whole configuration has to fit one write).
pub fn spec_line(names: &[String], o: &SpecOptions) -> String {
    let mut line = format!("fn={} ac=1", names.join(","));
    if let Some(n) = o.sample().filter(|&n| n > 1) {
        line.push_str(&format!(" sa={n}"));
    }
    if let Some(r) = o.rate {
        line.push_str(&format!(" ra={r}"));
    }
    if let Some(d) = o.depth {
        line.push_str(&format!(" dp={d}"));
    }
    line
}

/// The most bytes one write to /proc/kstackwatch takes (the module's
/// limit, shared through ksw-core).
pub fn write_limit() -> usize {
    ksw_core::config::MAX_CONFIG_WRITE
}

/// Checks the spec against the module's limits before writing it, so
/// the error says how to narrow the sweep: the functions per spec, the
/// bytes per write, and the module's own parser.
pub fn check_spec(
    line: &str,
    functions: usize,
    max_functions: usize,
    write_limit: usize,
) -> Result<(), String> {
    let cap = max_functions.min(MAX_FUNCS as usize);
    if functions > cap {
        let whose = if cap < MAX_FUNCS as usize {
            "--max-functions"
        } else {
            "the module's limit for one spec"
        };
        return Err(format!(
            "{functions} functions match, more than {cap} ({whose}): narrow the sweep with --function GLOB or fewer --module, or split it into several runs"
        ));
    }
    let bytes = line.len() + 1;
    if bytes > write_limit {
        let fit = functions * write_limit / bytes;
        return Err(format!(
            "the spec for {functions} functions is {bytes} bytes, and /proc/kstackwatch takes at most {write_limit} in one write (about {fit} functions of these names): narrow the sweep with --function GLOB, or split it into several runs"
        ));
    }
    let generous = Limits {
        stack_size: u32::MAX,
        hw_slots: u8::MAX,
    };
    Config::parse(line.as_bytes(), &generous)
        .map(drop)
        .map_err(|e| {
            format!(
                "the module would refuse the spec: {e} (errno {})",
                e.errno()
            )
        })
}

// ------------------------------------------------------ /proc/kstackwatch

/// What /proc/kstackwatch says (live, or the snapshot in a recording).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcState {
    pub specs: Vec<SpecState>,
}

/// One spec: its line, and the module's comments about it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecState {
    pub line: String,
    /// Its `func_name` list.
    pub names: Vec<String>,
    pub sample: u32,
    pub rate: u32,
    pub depth: u16,
    /// A sweep's totals line.
    pub totals: Option<SweepTotals>,
    /// The functions listed with their stats (a sweep lists its top ones:
    /// most hits, then most armed).
    pub functions: Vec<FunctionStats>,
    /// Functions watched but not listed (`... and N more`).
    pub unlisted: u64,
    pub skipped: Vec<Skipped>,
}

/// `#  spec N: sweep of F function(s): W watched, S skipped; calls=...`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepTotals {
    pub listed: u64,
    pub watched: u64,
    pub skipped: u64,
    pub calls: u64,
    pub armed: u64,
    pub hits: u64,
}

/// A watched function's counts since the spec was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionStats {
    pub name: String,
    pub module: Option<String>,
    /// Calls that reached the arming probe.
    pub calls: u64,
    pub armed: u64,
    pub hits: u64,
}

/// A function of the list the module cannot watch, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

impl ProcState {
    /// Parses the text; lines it does not know are ignored (the module
    /// may say more in later versions).
    pub fn parse(text: &str) -> ProcState {
        let mut state = ProcState::default();
        // The spec that comment lines without an index belong to.
        let mut current: Option<usize> = None;
        for line in text.lines() {
            let line = line.trim_end();
            if !line.starts_with('#') {
                if !line.trim().is_empty() {
                    state.specs.push(SpecState::from_line(line.trim()));
                    current = Some(state.specs.len() - 1);
                }
                continue;
            }
            let comment = line.trim_start_matches('#').trim_start();
            if let Some((index, rest)) = spec_comment(comment) {
                current = Some(index);
                if let Some(spec) = state.specs.get_mut(index) {
                    spec.take_comment(rest);
                }
            } else if let Some(spec) = current.and_then(|i| state.specs.get_mut(i)) {
                spec.take_other(comment);
            }
        }
        state
    }

    /// The first spec naming more than one function.
    pub fn sweep(&self) -> Option<&SpecState> {
        self.specs.iter().find(|s| s.is_sweep())
    }
}

/// `spec N: REST`.
fn spec_comment(comment: &str) -> Option<(usize, &str)> {
    let rest = comment.strip_prefix("spec ")?;
    let (index, rest) = rest.split_once(": ")?;
    Some((index.parse().ok()?, rest))
}

/// `key=value` words of `text` as numbers.
fn numbers(text: &str) -> BTreeMap<&str, u64> {
    text.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k, v.trim_end_matches([';', ',']).parse().ok()?)))
        .collect()
}

/// `name` or `name [module]`.
fn name_and_module(text: &str) -> (String, Option<String>) {
    match text.strip_suffix(']').and_then(|t| t.rsplit_once(" [")) {
        Some((n, m)) => (n.to_string(), Some(m.to_string())),
        None => (text.to_string(), None),
    }
}

impl SpecState {
    fn from_line(line: &str) -> SpecState {
        let mut spec = SpecState {
            line: line.to_string(),
            ..SpecState::default()
        };
        let generous = Limits {
            stack_size: u32::MAX,
            hw_slots: u8::MAX,
        };
        if let Ok(config) = Config::parse(line.as_bytes(), &generous) {
            if let Some(s) = config.get(0) {
                (spec.sample, spec.rate, spec.depth) = (s.sample, s.rate, s.depth);
            }
            spec.names = config
                .functions(0, line.as_bytes())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
        }
        spec
    }

    /// `sweep of ...` or `NAME at 0x...: ...; calls=...`.
    fn take_comment(&mut self, rest: &str) {
        if let Some(sweep) = rest.strip_prefix("sweep of ") {
            let n = |word: &str| {
                sweep
                    .split([':', ',', ';'])
                    .find_map(|part| part.trim().strip_suffix(word)?.trim().parse().ok())
                    .unwrap_or(0)
            };
            let kv = numbers(sweep);
            let listed = sweep
                .split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or(0);
            self.totals = Some(SweepTotals {
                listed,
                watched: n("watched"),
                skipped: n("skipped"),
                calls: kv.get("calls").copied().unwrap_or(0),
                armed: kv.get("armed").copied().unwrap_or(0),
                hits: kv.get("hits").copied().unwrap_or(0),
            });
        } else if let (Some((name, _)), Some((_, stats))) =
            (rest.split_once(" at 0x"), rest.rsplit_once("; calls="))
        {
            let stats = format!("calls={stats}");
            let kv = numbers(&stats);
            let (name, module) = name_and_module(name);
            self.functions.push(FunctionStats {
                name,
                module,
                calls: kv.get("calls").copied().unwrap_or(0),
                armed: kv.get("armed").copied().unwrap_or(0),
                hits: kv.get("hits").copied().unwrap_or(0),
            });
        }
    }

    /// `skipped NAME: REASON` and `... and N more function(s)`.
    fn take_other(&mut self, comment: &str) {
        if let Some(rest) = comment.strip_prefix("skipped ") {
            if let Some((name, reason)) = rest.split_once(": ") {
                self.skipped.push(Skipped {
                    name: name.to_string(),
                    reason: reason.to_string(),
                });
            }
        } else if let Some(rest) = comment.strip_prefix("... and ") {
            self.unlisted = rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
    }

    pub fn is_sweep(&self) -> bool {
        self.names.len() > 1
    }

    /// Functions watched: the totals line's, else those listed.
    pub fn watched(&self) -> u64 {
        self.totals
            .map_or(self.functions.len() as u64 + self.unlisted, |t| t.watched)
    }

    /// Calls, frames armed and hits over every watched function.
    pub fn counts(&self) -> (u64, u64, u64) {
        match self.totals {
            Some(t) => (t.calls, t.armed, t.hits),
            None => self.functions.iter().fold((0, 0, 0), |(c, a, h), f| {
                (c + f.calls, a + f.armed, h + f.hits)
            }),
        }
    }

    /// How it samples, in words.
    pub fn sampling(&self) -> String {
        match (self.sample, self.rate) {
            (0 | 1, 0) => "every call".into(),
            (0 | 1, r) => format!("at most {r} frame(s)/s"),
            (n, 0) => format!("sample 1 in {n}"),
            (n, r) => format!("sample 1 in {n}, at most {r} frame(s)/s"),
        }
    }
}

/// The kind of reason a function was skipped, for summaries.
pub fn reason_class(reason: &str) -> String {
    const CLASSES: &[(&str, &str)] = &[
        ("no stack-protector canary", "no stack-protector canary"),
        (
            "no ftrace entry",
            "no ftrace entry (notrace, inlined or Rust)",
        ),
        ("sets up no stack frame", "no stack frame"),
        ("cannot be watched safely", "stack layout not followed"),
        ("function not found", "not found"),
        ("refused a kprobe", "kprobe refused"),
        ("decoded", "too large to decode"),
        ("cannot read the function's code", "code unreadable"),
        ("out of memory", "out of memory"),
    ];
    CLASSES
        .iter()
        .find(|(needle, _)| reason.contains(needle))
        .map_or_else(
            || {
                reason
                    .split(':')
                    .next()
                    .unwrap_or(reason)
                    .trim()
                    .to_string()
            },
            |(_, class)| class.to_string(),
        )
}

/// Skipped functions by reason, most first: (reason, names).
pub fn skipped_by_reason(skipped: &[Skipped]) -> Vec<(String, Vec<String>)> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in skipped {
        groups
            .entry(reason_class(&s.reason))
            .or_default()
            .push(s.name.clone());
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_by_key(|(reason, names)| (std::cmp::Reverse(names.len()), reason.clone()));
    groups
}

/// "70 no stack-protector canary (a, b, c, ... (67 more)); 9 ..."
fn skipped_summary(skipped: &[Skipped]) -> String {
    skipped_by_reason(skipped)
        .iter()
        .map(|(reason, names)| format!("{} {reason} ({})", names.len(), examples(names)))
        .collect::<Vec<_>>()
        .join("; ")
}

// ------------------------------------------------------------ the tally

/// What the recording shows of one function's frames.
#[derive(Clone, Debug, Default)]
pub struct FunctionTally {
    pub frames: u64,
    /// Frames written (hit) or silently corrupted.
    pub corrupted: u64,
    pub silent: u64,
    /// Writes into its frames (the kernel's count where recorded).
    pub writes: u64,
    /// Recorded hits per writer instruction.
    pub writer_ips: BTreeMap<u64, u64>,
    /// Its first corrupted frame.
    pub example: Option<VictimExample>,
}

/// A corrupted frame, as the verdict names it.
#[derive(Clone, Debug)]
pub struct VictimExample {
    pub pid: i32,
    pub comm: Option<String>,
    pub depth: Option<u32>,
    /// Who wrote (task or context), when a write is recorded.
    pub writer: Option<String>,
}

impl VictimExample {
    fn of(f: &Frame) -> VictimExample {
        VictimExample {
            pid: f.tid.unwrap_or(-1),
            comm: f.task_name.map(|n| n.to_string()),
            depth: f.arm.as_ref().map(|a| a.depth),
            writer: f.hits.first().map(writer_words),
        }
    }

    fn task(&self) -> String {
        format!("{}/{}", self.comm.as_deref().unwrap_or("?"), self.pid)
    }
}

/// The writer as the verdict says it: its task or context, and whether
/// it was the victim task itself.
fn writer_words(m: &MatchedHit) -> String {
    let mut who = report::writer_label(m);
    let plain_task = matches!(m.hit.context.map(|c| c.as_str()), None | Some("task"));
    if m.hit.by_victim && plain_task {
        who.push_str(" (the victim task itself)");
    }
    who
}

impl FunctionTally {
    /// The instruction with the most recorded writes.
    pub fn main_writer(&self) -> Option<u64> {
        self.writer_ips
            .iter()
            .max_by_key(|(ip, n)| (**n, std::cmp::Reverse(**ip)))
            .map(|(ip, _)| *ip)
    }
}

/// Frames per function (the function of the arm's probe point).
#[derive(Clone, Debug, Default)]
pub struct SweepTally {
    pub functions: BTreeMap<Rc<str>, FunctionTally>,
    pub frames: u64,
}

impl SweepTally {
    pub fn add(&mut self, f: &Frame, symbols: &Symbols) {
        let Some(ip) = f.probe_ip else {
            return;
        };
        let t = self.functions.entry(symbols.function(ip)).or_default();
        self.frames += 1;
        t.frames += 1;
        let verdict = f.verdict();
        match verdict {
            FrameVerdict::Hit => t.writes += f.writes().max(f.hit_count),
            FrameVerdict::SilentlyCorrupted => t.silent += 1,
            _ => return,
        }
        t.corrupted += 1;
        for m in &f.hits {
            *t.writer_ips.entry(m.hit.writer_ip).or_default() += 1;
        }
        // The first frame with a recorded writer is the best example.
        if t.example.as_ref().is_none_or(|e| e.writer.is_none()) {
            t.example = Some(VictimExample::of(f));
        }
    }

    /// Functions with corrupted frames: most writes first.
    pub fn victims(&self) -> Vec<(&Rc<str>, &FunctionTally)> {
        let mut v: Vec<_> = self
            .functions
            .iter()
            .filter(|(_, t)| t.corrupted > 0)
            .collect();
        v.sort_by_key(|(name, t)| (std::cmp::Reverse((t.writes, t.corrupted)), Rc::clone(name)));
        v
    }

    /// Functions by frames sampled, most first (corrupted ones first
    /// among equals).
    pub fn by_frames(&self) -> Vec<(&Rc<str>, &FunctionTally)> {
        let mut v: Vec<_> = self.functions.iter().collect();
        v.sort_by_key(|(name, t)| (std::cmp::Reverse((t.frames, t.corrupted)), Rc::clone(name)));
        v
    }
}

// ------------------------------------------------------------- analysis

/// A recording seen as a sweep: frames per function, the stored stats of
/// the sweep's spec, the module's counters.
#[derive(Debug, Default)]
pub struct SweepAnalysis {
    pub tally: SweepTally,
    pub spec: Option<SpecState>,
    pub counters: Option<KernelCounters>,
}

/// Sampled calls over eligible ones, from the module's counters: what the
/// sampling picked (armed, or not armed for a reason found after the
/// pick) and what it did not (`not_sampled`).
pub fn picked(c: &KernelCounters) -> Option<(u64, u64)> {
    if !c.delta.contains_key("not_sampled") {
        return None;
    }
    let after_pick = [
        "arms",
        "dropped_no_slot",
        "dropped_max_watch",
        "canary_not_found",
        "outside_stack",
        "misaligned",
    ];
    let picked: u64 = after_pick.iter().map(|k| c.get(k)).sum();
    let eligible = picked + c.get("not_sampled");
    (eligible > 0).then_some((picked, eligible))
}

impl SweepAnalysis {
    /// The stored sweep stats and counters of `recording` with `tally`.
    /// `first_spec`: take the configuration's first spec even if it names
    /// one function (a `ksw sweep` whose globs matched one).
    pub fn new(recording: &Recording, tally: SweepTally, first_spec: bool) -> SweepAnalysis {
        let counters = recording.counters.as_deref();
        let state = counters
            .and_then(record::proc_snapshot)
            .map(|t| ProcState::parse(&t));
        let spec = state.and_then(|s| {
            let sweep = s.sweep().cloned();
            sweep.or_else(|| s.specs.into_iter().next().filter(|_| first_spec))
        });
        SweepAnalysis {
            tally,
            spec,
            counters: counters.and_then(KernelCounters::parse),
        }
    }

    /// Reads `recording`'s frames and tallies them per function.
    pub fn of_recording(
        recording: &Recording,
        symbols: &Symbols,
    ) -> (SweepAnalysis, Option<String>) {
        let mut tally = SweepTally::default();
        let (_, result, _) = report::stream_frames(recording, |f| tally.add(f, symbols));
        let error = result.err().map(|e| e.to_string());
        (SweepAnalysis::new(recording, tally, true), error)
    }

    /// Whether a report shows the sweep section.
    pub fn is_sweep(&self) -> bool {
        self.spec.as_ref().is_some_and(SpecState::is_sweep)
            || self.tally.functions.len() >= SWEEP_MIN_FUNCTIONS
    }

    /// Functions known to have been called: those listed with calls and
    /// those with frames; exact when the module listed every function.
    pub fn functions_called(&self) -> Option<(usize, bool)> {
        let spec = self.spec.as_ref()?;
        let mut called: BTreeSet<&str> = spec
            .functions
            .iter()
            .filter(|f| f.calls > 0)
            .map(|f| f.name.as_str())
            .collect();
        called.extend(self.tally.functions.keys().map(|k| &**k));
        Some((called.len(), spec.unlisted == 0))
    }

    /// The coverage in one sentence.
    pub fn coverage(&self) -> String {
        let t = &self.tally;
        let mut text = format!(
            "{} frame(s) sampled in {} function(s)",
            t.frames,
            t.functions.len()
        );
        if let Some(spec) = &self.spec {
            text.push_str(&format!(" of {} watched", spec.watched()));
            if let Some((called, exact)) = self.functions_called() {
                let bound = if exact { "" } else { "at least " };
                text.push_str(&format!(", {bound}{called} called"));
            }
            let (calls, armed, hits) = spec.counts();
            text.push_str(&format!(
                "; the module counted {calls} call(s), {armed} armed, {hits} hit(s)"
            ));
        }
        text
    }

    /// What the sampling picked, when the counters tell.
    pub fn sampling(&self) -> Option<String> {
        let (picked, eligible) = self.counters.as_ref().and_then(picked)?;
        let mut text = format!("{picked} of {eligible} eligible call(s) picked");
        if picked > 0 {
            text.push_str(&format!(" (1 in {:.1}", eligible as f64 / picked as f64));
            if let Some(n) = self.spec.as_ref().map(|s| s.sample).filter(|&n| n > 1) {
                text.push_str(&format!("; asked 1 in {n}"));
            }
            text.push(')');
        }
        Some(text)
    }

    /// One line per victim function, most writes first.
    pub fn victim_lines(&self, symbols: &Symbols) -> Vec<String> {
        self.tally
            .victims()
            .into_iter()
            .map(|(name, t)| victim_line(name, t, symbols))
            .collect()
    }

    /// `ksw sweep`'s verdict: the victims, or that none was seen, then
    /// the coverage.
    pub fn verdict(&self, symbols: &Symbols) -> Vec<String> {
        let mut lines: Vec<String> = self
            .victim_lines(symbols)
            .into_iter()
            .map(|l| format!("victim found: {l}"))
            .collect();
        if lines.is_empty() {
            lines.push(format!(
                "no corruption seen in {} sampled frame(s) of {} function(s)",
                self.tally.frames,
                self.tally.functions.len()
            ));
        }
        lines.push(format!("coverage: {}", self.coverage()));
        if let Some(s) = self.sampling() {
            lines.push(format!("sampling: {s}"));
        }
        lines
    }
}

/// `F (frame of task T, depth D), written by INSN in WRITER; N write(s)
/// in C of K sampled frame(s)`.
fn victim_line(name: &str, t: &FunctionTally, symbols: &Symbols) -> String {
    let mut line = name.to_string();
    if let Some(e) = &t.example {
        line.push_str(&format!(" (frame of task {}", e.task()));
        if let Some(d) = e.depth {
            line.push_str(&format!(", depth {d}"));
        }
        line.push(')');
    }
    match (
        t.main_writer(),
        t.example.as_ref().and_then(|e| e.writer.as_ref()),
    ) {
        (Some(ip), Some(who)) => {
            line.push_str(&format!(", written by {} in {who}", symbols.describe(ip)))
        }
        _ if t.silent == t.corrupted => {
            line.push_str(": silently corrupted (its value changed, no write caught)")
        }
        _ => line.push_str(": written (the writes are not in the recording)"),
    }
    line.push_str(&format!(
        "; {} write(s) in {} of {} sampled frame(s)",
        t.writes, t.corrupted, t.frames
    ));
    if t.writer_ips.len() > 1 {
        line.push_str(&format!(
            ", {} other writer instruction(s)",
            t.writer_ips.len() - 1
        ));
    }
    line
}

// --------------------------------------------------------- report section

/// The report's sweep section (text).
pub fn write_section(o: &mut Vec<u8>, a: &SweepAnalysis, symbols: &Symbols) -> io::Result<()> {
    write!(o, "\nSweep: ")?;
    match &a.spec {
        Some(spec) => {
            write!(
                o,
                "{} function(s) watched ({}",
                spec.watched(),
                spec.sampling()
            )?;
            if let Some(t) = spec.totals {
                write!(o, "; {} listed, {} skipped", t.listed, t.skipped)?;
            }
            writeln!(o, ")")?;
        }
        None => writeln!(
            o,
            "frames armed in {} function(s) (no sweep stats in the recording)",
            a.tally.functions.len()
        )?,
    }
    let victims = a.victim_lines(symbols);
    if victims.is_empty() {
        writeln!(
            o,
            "  victim functions: none (no write caught in {} sampled frame(s))",
            a.tally.frames
        )?;
    } else {
        writeln!(
            o,
            "  victim functions (frames written or silently corrupted):"
        )?;
        for v in victims {
            writeln!(o, "    {v}")?;
        }
    }
    writeln!(o, "  coverage: {}", a.coverage())?;
    if let Some(s) = a.sampling() {
        writeln!(o, "  sampling: {s}")?;
    }
    let top = a.tally.by_frames();
    if !top.is_empty() {
        writeln!(
            o,
            "  frames sampled per function (top {} of {}):",
            top.len().min(TOP_FUNCTIONS),
            top.len()
        )?;
        for (name, t) in top.iter().take(TOP_FUNCTIONS) {
            write!(o, "    {:>8}  {name}", t.frames)?;
            if t.corrupted > 0 {
                write!(o, " ({} corrupted)", t.corrupted)?;
            }
            writeln!(o)?;
        }
    }
    if let Some(spec) = a.spec.as_ref().filter(|s| !s.skipped.is_empty()) {
        writeln!(o, "  skipped: {}", skipped_summary(&spec.skipped))?;
    }
    Ok(())
}

/// The report's `sweep` member (JSON).
pub fn section_json(a: &SweepAnalysis, symbols: &Symbols) -> serde_json::Value {
    let spec = a.spec.as_ref();
    let listed: BTreeMap<&str, &FunctionStats> = spec
        .map(|s| s.functions.iter().map(|f| (f.name.as_str(), f)).collect())
        .unwrap_or_default();
    let victims: Vec<serde_json::Value> = a
        .tally
        .victims()
        .into_iter()
        .map(|(name, t)| {
            let e = t.example.as_ref();
            serde_json::json!({
                "function": &**name,
                "frames": t.frames,
                "frames_corrupted": t.corrupted,
                "frames_silently_corrupted": t.silent,
                "writes": t.writes,
                "writer_instruction": t.main_writer().map(|ip| symbols.describe(ip).to_string()),
                "writer_instruction_addr": t.main_writer().map(|ip| format!("{ip:#x}")),
                "writer": e.and_then(|e| e.writer.clone()),
                "task": e.map(|e| serde_json::json!({"pid": e.pid, "comm": e.comm})),
                "depth": e.and_then(|e| e.depth),
            })
        })
        .collect();
    let per_function: Vec<serde_json::Value> = a
        .tally
        .by_frames()
        .into_iter()
        .map(|(name, t)| {
            let k = listed.get(&**name);
            serde_json::json!({
                "function": &**name,
                "frames": t.frames,
                "frames_corrupted": t.corrupted,
                "writes": t.writes,
                "calls": k.map(|k| k.calls),
                "armed_in_kernel": k.map(|k| k.armed),
                "hits_in_kernel": k.map(|k| k.hits),
            })
        })
        .collect();
    let counts = spec.map(SpecState::counts);
    let called = a.functions_called();
    serde_json::json!({
        "spec": spec.map(|s| s.line.clone()),
        "sample": spec.map(|s| s.sample).filter(|&n| n > 1),
        "rate": spec.map(|s| s.rate).filter(|&r| r > 0),
        "depth": spec.map(|s| s.depth),
        "functions": {
            "listed": spec.map(|s| s.totals.map_or(s.names.len() as u64, |t| t.listed)),
            "watched": spec.map(SpecState::watched),
            "skipped": spec.map(|s| s.skipped.len()),
            "called": called.map(|c| c.0),
            "called_exact": called.map(|c| c.1),
            "armed": a.tally.functions.len(),
        },
        "frames": a.tally.frames,
        "calls": counts.map(|c| c.0),
        "armed_in_kernel": counts.map(|c| c.1),
        "hits_in_kernel": counts.map(|c| c.2),
        "sampling": a.counters.as_ref().and_then(picked).map(|(p, e)| serde_json::json!({"picked": p, "eligible": e})),
        "victims": victims,
        "per_function": per_function,
        "skipped": spec.map(|s| s.skipped.iter().map(|k| serde_json::json!({"function": k.name, "reason": k.reason})).collect::<Vec<_>>()).unwrap_or_default(),
        "skipped_reasons": spec.map(|s| skipped_by_reason(&s.skipped).into_iter().map(|(r, n)| (r, n.len())).collect::<BTreeMap<_, _>>()).unwrap_or_default(),
    })
}

// ------------------------------------------------------------- ksw sweep

/// The traceable functions, from `--available-functions` or tracefs.
fn read_available(explicit: Option<&Path>) -> Result<(String, String), String> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => record::tracefs()
            .map_err(|e| e.to_string())?
            .join("available_filter_functions"),
    };
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => format!("{shown}: permission denied: run as root"),
        _ => format!("{shown}: {e}"),
    })?;
    Ok((shown, text))
}

/// The kernel log from now on: the module says there why it refused a
/// configuration (the errno only gives the class).
struct Kmsg(File);

impl Kmsg {
    fn open_at_end() -> Option<Kmsg> {
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .ok()?;
        f.seek(SeekFrom::End(0)).ok()?;
        Some(Kmsg(f))
    }

    /// kstackwatch's messages logged since it was opened.
    fn module_messages(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let mut record = vec![0u8; 8192];
        // One record per read; bounded in case the log is being flooded.
        for _ in 0..10_000 {
            match self.0.read(&mut record) {
                Ok(0) => break,
                Ok(n) => {
                    let text = String::from_utf8_lossy(&record[..n]);
                    let message = text.split_once(';').map_or("", |(_, m)| m);
                    let message = message.lines().next().unwrap_or("");
                    if let Some(m) = message.strip_prefix("kstackwatch: ") {
                        out.push(m.to_string());
                    }
                }
                // Records overwritten while we read: go on with the next.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(_) => break,
            }
        }
        out
    }
}

/// Writes the sweep spec as the whole configuration; a refusal says the
/// errno, the module's reason and that the previous configuration stands.
fn apply_sweep(line: &str, before: &[String]) -> Result<(), String> {
    let mut kmsg = Kmsg::open_at_end();
    let err = match proc_config::try_write_config(&[line.to_string()]) {
        Ok(()) => return Ok(()),
        Err(WriteError::Open(message)) => return Err(message),
        Err(WriteError::Rejected(e)) => e,
    };
    let reasons = kmsg.as_mut().map(Kmsg::module_messages).unwrap_or_default();
    let why = if reasons.is_empty() {
        "the kernel log (dmesg) says why".to_string()
    } else {
        reasons.join("; ")
    };
    let kept = match proc_config::current_specs() {
        Ok(now) if now == before => "the previous configuration is untouched",
        Ok(_) => "the configuration changed nonetheless: check /proc/kstackwatch",
        Err(_) => "the configuration could not be read back",
    };
    let errno = err.raw_os_error().unwrap_or(0);
    // io::Error says "Invalid argument (os error 22)": the number once.
    let text = err.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    Err(format!(
        "kstackwatch refused the sweep (errno {errno}, {text}): {why}; {kept}"
    ))
}

/// What the module made of the sweep, in one line.
fn describe_applied(spec: Option<&SpecState>, asked: usize) -> String {
    let Some(spec) = spec else {
        return format!("{asked} function(s) configured ({PROC} shows no spec)");
    };
    let mut text = format!(
        "watching the canary of {} of {asked} function(s), {}",
        spec.watched(),
        spec.sampling()
    );
    if spec.depth > 0 {
        text.push_str(&format!(", depth {}", spec.depth));
    }
    if spec.skipped.is_empty() {
        text.push_str("; none skipped");
    } else {
        text.push_str(&format!(
            "; {} skipped: {}",
            spec.skipped.len(),
            skipped_summary(&spec.skipped)
        ));
    }
    text
}

/// Where the candidates came from, for the first message.
fn describe_selection(sel: &Selection) -> String {
    let mut parts = Vec::new();
    if !sel.modules.is_empty() {
        parts.push(format!("module {}", sel.modules.join(", ")));
    }
    if !sel.patterns.is_empty() {
        parts.push(format!("{} pattern(s)", sel.patterns.len()));
    }
    parts.join(" and ")
}

fn record_args(args: &SweepArgs) -> RecordArgs {
    RecordArgs {
        recording: args.recording.clone(),
        // The recorder's default: the watched functions.
        graph_filter: Vec::new(),
        watch: Vec::new(),
    }
}

/// Reads the recording back and prints the verdict (stdout).
fn print_verdict(args: &SweepArgs) -> Result<(), String> {
    let path = &args.recording.output;
    let recording = crate::events::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let symbols = Symbols::choose(&recording, None).map_err(|e| e.to_string())?;
    let (analysis, error) = SweepAnalysis::of_recording(&recording, &symbols);
    let mut lines = analysis.verdict(&symbols);
    lines.push(format!(
        "the frames, writers and call chains: ksw report -i {}",
        path.display()
    ));
    let mut out = io::stdout().lock();
    for line in lines {
        writeln!(out, "ksw sweep: {line}").map_err(|e| format!("writing the verdict: {e}"))?;
    }
    match error {
        Some(e) => Err(format!("{}: {e}", path.display())),
        None => Ok(()),
    }
}

/// `ksw sweep`: returns the exit status to give (the command's).
pub fn run(args: &SweepArgs) -> Result<u8, String> {
    let selection = Selection::from_args(args)?;
    let options = SpecOptions::from_args(args)?;
    let (source, text) = read_available(args.available_functions.as_deref())?;
    let available = parse_available(&text);
    let candidates = expand(&available, &selection)?;
    let line = spec_line(&candidates.names, &options);
    check_spec(
        &line,
        candidates.names.len(),
        args.max_functions,
        write_limit(),
    )?;
    eprintln!(
        "ksw sweep: {} function(s) of {} from {source}",
        candidates.names.len(),
        describe_selection(&selection)
    );
    for note in &candidates.notes {
        eprintln!("ksw sweep: note: {note}");
    }
    if args.print {
        println!("{line}");
        return Ok(0);
    }
    record::catch_stop_signals();
    let before = proc_config::current_specs()?;
    apply_sweep(&line, &before)?;
    let now = std::fs::read_to_string(PROC).unwrap_or_default();
    let state = ProcState::parse(&now);
    eprintln!(
        "ksw sweep: {}",
        describe_applied(state.specs.first(), candidates.names.len())
    );
    if !before.is_empty() {
        eprintln!(
            "ksw sweep: the previous configuration ({} spec(s)) is set aside, and restored after",
            before.len()
        );
    }
    let recorded = if record::stop_requested() {
        Err("interrupted before recording started".to_string())
    } else {
        record::run(&record_args(args)).map_err(|e| e.to_string())
    };
    // Restored whatever happened, as `ksw record --watch` does.
    let restored = proc_config::write_config(&before)
        .map_err(|e| format!("restoring the previous configuration: {e}"));
    let status = match (recorded, restored) {
        (Err(e), Err(r)) => return Err(format!("{e}; {r}")),
        (Err(e), Ok(())) => return Err(e),
        (Ok(status), restored) => {
            let verdict = print_verdict(args);
            restored?;
            verdict?;
            status
        }
    };
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVAILABLE: &str = "\
do_one_initcall
ext4_readdir
ext4_file_open
ext4_free
dup_name
dup_name
ksw_test_sweep_0 [kstackwatch_test]
ksw_test_sweep_1 [kstackwatch_test]
ksw_test_sweep_10 [kstackwatch_test]
ksw_test_fill [kstackwatch_test]
ext4_free [other-mod]
ksw_arm_helper [kstackwatch]
__ftrace_invalid_address___84
";

    fn sel(modules: &[&str], globs: &[&str]) -> Selection {
        Selection {
            modules: modules.iter().map(|m| module_key(m)).collect(),
            patterns: globs
                .iter()
                .map(|g| Pattern::parse(g, format!("--function '{g}'")).unwrap())
                .collect(),
        }
    }

    fn names(modules: &[&str], globs: &[&str]) -> Vec<String> {
        expand(&parse_available(AVAILABLE), &sel(modules, globs))
            .unwrap()
            .names
    }

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("ext4_*", "ext4_readdir"));
        assert!(glob_match("*", ""));
        assert!(glob_match("ksw_test_sweep_?", "ksw_test_sweep_7"));
        assert!(!glob_match("ksw_test_sweep_?", "ksw_test_sweep_17"));
        assert!(glob_match("*_sweep_*7", "ksw_test_sweep_17"));
        assert!(glob_match("a*b*c", "aXbYbZc"));
        assert!(!glob_match("a*b*c", "aXbYbZ"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exact_not"));
        assert!(!glob_match("ext4_", "ext4_readdir"));
        assert!(glob_match("**x", "x"));
    }

    #[test]
    fn available_functions_are_read_with_their_modules() {
        let a = parse_available(AVAILABLE);
        assert_eq!(
            a.len(),
            12,
            "the invalid-address placeholder is not a function"
        );
        assert_eq!(
            a[6],
            Traceable {
                name: "ksw_test_sweep_0".into(),
                module: Some("kstackwatch_test".into())
            }
        );
        assert_eq!(a[10].module.as_deref(), Some("other_mod"));
    }

    #[test]
    fn modules_and_globs_expand_in_the_lists_order() {
        assert_eq!(
            names(&["kstackwatch_test"], &[]),
            [
                "ksw_test_sweep_0",
                "ksw_test_sweep_1",
                "ksw_test_sweep_10",
                "ksw_test_fill"
            ]
        );
        assert_eq!(
            names(&["kstackwatch_test"], &["*sweep_1*"]),
            ["ksw_test_sweep_1", "ksw_test_sweep_10"]
        );
        // A name also in another module is qualified with its module.
        assert_eq!(
            names(&[], &["ext4_*"]),
            [
                "ext4_readdir",
                "ext4_file_open",
                "ext4_free",
                "other_mod:ext4_free"
            ]
        );
        assert_eq!(names(&[], &["other-mod:ext4_*"]), ["other_mod:ext4_free"]);
        // A line of available_filter_functions is a pattern too.
        assert_eq!(
            names(&[], &["ext4_free [other_mod]"]),
            ["other_mod:ext4_free"]
        );
    }

    #[test]
    fn duplicates_are_passed_once_and_noted() {
        let c = expand(
            &parse_available(AVAILABLE),
            &sel(&[], &["dup_*", "dup_name"]),
        )
        .unwrap();
        assert_eq!(c.names, ["dup_name"]);
        assert!(
            c.notes[0].contains("1 name(s) occur more than once"),
            "{:?}",
            c.notes
        );
        assert!(c.notes[0].ends_with(": dup_name"), "{:?}", c.notes);
    }

    #[test]
    fn kstackwatch_never_sweeps_itself() {
        let c = expand(&parse_available(AVAILABLE), &sel(&[], &["ksw_*"])).unwrap();
        assert!(
            !c.names.iter().any(|n| n == "ksw_arm_helper"),
            "{:?}",
            c.names
        );
        assert!(
            c.notes.iter().any(|n| n.contains("kstackwatch itself")),
            "{:?}",
            c.notes
        );
        let e = expand(&parse_available(AVAILABLE), &sel(&["kstackwatch"], &[])).unwrap_err();
        assert!(e.contains("cannot watch its own functions"), "{e}");
    }

    #[test]
    fn no_match_is_an_error_naming_the_pattern() {
        let a = parse_available(AVAILABLE);
        let e = expand(&a, &sel(&[], &["xfs_*"])).unwrap_err();
        assert!(
            e.starts_with("--function 'xfs_*' matches no traceable function ("),
            "{e}"
        );
        let e = expand(&a, &sel(&["kstackwatch_test"], &["ext4_*"])).unwrap_err();
        assert!(
            e.contains("'ext4_*' matches no traceable function of module kstackwatch_test"),
            "{e}"
        );
        let e = expand(&a, &sel(&["nosuchmod"], &[])).unwrap_err();
        assert!(
            e.starts_with("--module nosuchmod: none of its functions"),
            "{e}"
        );
        let e = expand(&a, &Selection::default()).unwrap_err();
        assert!(e.starts_with("nothing to sweep"), "{e}");
        let e = Pattern::parse("ext4_[rw]*", "--function 'ext4_[rw]*'".into()).unwrap_err();
        assert!(
            e.starts_with("--function 'ext4_[rw]*' is not a function name or glob"),
            "{e}"
        );
    }

    #[test]
    fn list_files_name_their_lines() {
        let list = "# victims\next4_readdir\n\n  ksw_test_sweep_1 [kstackwatch_test]  # from tracefs\nnot_there\n";
        let patterns = parse_list(list, "list.txt").unwrap();
        assert_eq!(patterns.len(), 3);
        assert_eq!(patterns[1].module.as_deref(), Some("kstackwatch_test"));
        let s = Selection {
            modules: Vec::new(),
            patterns,
        };
        let e = expand(&parse_available(AVAILABLE), &s).unwrap_err();
        assert!(
            e.starts_with("list.txt:5: 'not_there' matches no traceable function"),
            "{e}"
        );
        assert!(parse_list("# only a comment\n", "empty.txt")
            .unwrap_err()
            .contains("no function"));
        let e = parse_list("ok\nbad name\n", "l").unwrap_err();
        assert!(
            e.starts_with("l:2: 'bad name' is not a function name"),
            "{e}"
        );
    }

    #[test]
    fn spec_lines_and_their_limits() {
        let names: Vec<String> = ["a", "b_1", "m:c"].iter().map(|s| s.to_string()).collect();
        let default = SpecOptions::default();
        assert_eq!(spec_line(&names, &default), "fn=a,b_1,m:c ac=1 sa=16");
        let rate = SpecOptions {
            rate: Some(50),
            depth: Some(2),
            ..default
        };
        assert_eq!(spec_line(&names, &rate), "fn=a,b_1,m:c ac=1 ra=50 dp=2");
        let every = SpecOptions {
            sample: Some(1),
            ..default
        };
        assert_eq!(spec_line(&names, &every), "fn=a,b_1,m:c ac=1");
        // The module's parser agrees, and says what it parsed.
        let line = spec_line(&names, &default);
        check_spec(&line, 3, 4096, 4095).unwrap();
        let state = ProcState::parse(&line);
        assert_eq!(state.specs[0].names, ["a", "b_1", "m:c"]);
        assert_eq!(state.specs[0].sample, 16);

        let e = check_spec(&line, 3, 2, 4095).unwrap_err();
        assert!(
            e.starts_with("3 functions match, more than 2 (--max-functions)"),
            "{e}"
        );
        let e = check_spec(&line, 5000, 9999, 1 << 20).unwrap_err();
        assert!(
            e.contains("more than 4096 (the module's limit for one spec): narrow"),
            "{e}"
        );
        // Bytes: the limit of one write (a small one here).
        let many: Vec<String> = (0..400).map(|i| format!("some_function_{i}")).collect();
        let long = spec_line(&many, &default);
        let e = check_spec(&long, 400, 4096, 4095).unwrap_err();
        assert!(
            e.contains("takes at most 4095 in one write (about 2"),
            "{e}"
        );
        let e = check_spec("fn=a,9b ac=1", 2, 4096, 4095).unwrap_err();
        assert!(
            e.starts_with(
                "the module would refuse the spec: line 1: func_name is not a symbol name"
            ),
            "{e}"
        );
    }

    const PROC_TEXT: &str = "\
# kstackwatch: 1 spec(s), 4 of 4 hardware slot(s) claimed, 0 armed
func_name=ksw_test_sweep_0,ksw_test_sweep_1,ksw_test_sweep_2,ksw_test_fill,kstackwatch_test:ksw_test_cpu depth=0 max_watch=0 sp_offset=0 watch_len=0 auto_canary=1 panic_on_catch=0 sample=16
#  spec 0: sweep of 5 function(s): 3 watched, 2 skipped; calls=150 armed=9 hits=2 missed: fprobe=0
#  spec 0: ksw_test_sweep_1 [kstackwatch_test] at 0xffffffffa0040000 (160 bytes): arms at +0x1e (after the prologue) [optimized probe], watches the canary at sp+0x80 (frame slot CFA-32), disarms at +0x85; calls=50 armed=4 hits=2 missed: arm=0 release=0
#  spec 0: ksw_test_sweep_0 [kstackwatch_test] at 0xffffffffa0040100 (160 bytes): arms at +0x1e (after the prologue), watches the canary at sp+0x80 (frame slot CFA-32), disarms at +0x85 +0x90; calls=60 armed=5 hits=0 missed: arm=0 release=0
#  ... and 1 more function(s)
#  skipped ksw_test_fill: no stack-protector canary store in the function's code: watch a local with sp_offset and watch_len
#  skipped kstackwatch_test:ksw_test_cpu: no stack-protector canary store in the function's code: watch a local with sp_offset and watch_len
# cpu0: slot0=parked slot1=parked slot2=parked slot3=parked
# counters: arms=9 disarms=9 hits=2 not_sampled=130
";

    #[test]
    fn proc_lines_are_parsed() {
        let state = ProcState::parse(PROC_TEXT);
        assert_eq!(state.specs.len(), 1);
        let s = state.sweep().unwrap();
        assert_eq!(s.names.len(), 5);
        assert_eq!((s.sample, s.rate, s.depth), (16, 0, 0));
        assert_eq!(
            s.totals,
            Some(SweepTotals {
                listed: 5,
                watched: 3,
                skipped: 2,
                calls: 150,
                armed: 9,
                hits: 2
            })
        );
        assert_eq!(
            s.functions[0],
            FunctionStats {
                name: "ksw_test_sweep_1".into(),
                module: Some("kstackwatch_test".into()),
                calls: 50,
                armed: 4,
                hits: 2
            }
        );
        assert_eq!(s.functions[1].calls, 60);
        assert_eq!(s.unlisted, 1);
        assert_eq!(s.skipped[1].name, "kstackwatch_test:ksw_test_cpu");
        assert_eq!(
            skipped_by_reason(&s.skipped),
            vec![(
                "no stack-protector canary".to_string(),
                vec![
                    "ksw_test_fill".to_string(),
                    "kstackwatch_test:ksw_test_cpu".to_string()
                ]
            )]
        );
        assert_eq!(s.sampling(), "sample 1 in 16");
        assert_eq!(
            describe_applied(Some(s), 5),
            "watching the canary of 3 of 5 function(s), sample 1 in 16; 2 skipped: 2 no stack-protector canary (ksw_test_fill, kstackwatch_test:ksw_test_cpu)"
        );
        // One plain spec: no sweep, its function's stats all the same.
        let one = "func_name=f depth=0 max_watch=0 sp_offset=0 watch_len=0 auto_canary=1 panic_on_catch=0\n#  spec 0: f [m] at 0xffffffffa0000000 (10 bytes): arms at +0x4, watches the canary at sp+0x8 (frame slot CFA-16), disarms at +0x9; calls=7 armed=7 hits=1 missed: arm=0 release=0\n#  spec 0: missed: fprobe=0\n";
        let state = ProcState::parse(one);
        assert!(state.sweep().is_none());
        assert_eq!(state.specs[0].counts(), (7, 7, 1));
        assert_eq!(state.specs[0].watched(), 1);
        assert_eq!(state.specs[0].sampling(), "every call");
    }

    #[test]
    fn stored_stats_parse_like_the_live_file() {
        let stored =
            record::feature_text("arms=0 not_sampled=0", "arms=9 not_sampled=130", PROC_TEXT);
        let snapshot = record::proc_snapshot(&stored).unwrap();
        assert_eq!(ProcState::parse(&snapshot), ProcState::parse(PROC_TEXT));
        // The start/end lines still read as they always did.
        let c = KernelCounters::parse(&stored).unwrap();
        assert_eq!(c.get("arms"), 9);
        assert_eq!(picked(&c), Some((9, 139)));
        assert_eq!(
            picked(&KernelCounters::parse("start: arms=1\nend: arms=2\n").unwrap()),
            None
        );
    }

    #[test]
    fn reasons_are_classed() {
        assert_eq!(
            reason_class("the function has no ftrace entry (notrace, inlined or Rust code): its calls cannot be tracked (error 22)"),
            "no ftrace entry (notrace, inlined or Rust)"
        );
        assert_eq!(
            reason_class("jump table at +0x40: its frame cannot be watched safely"),
            "stack layout not followed"
        );
        assert_eq!(reason_class("something new: details"), "something new");
    }
}
