//! The config storm's generator: configurations for `/proc/kstackwatch`
//! that are valid, that hit one documented rejection class, or that are
//! grammar-aware mutations (keys, values at and beyond their limits, odd
//! whitespace, embedded NULs and control bytes, huge and split writes, many
//! specs), each with the outcome the storm expects.
//!
//! The parse outcome is predicted exactly by the module's own parser
//! (`ksw_core::config`, compiled into this program); what the parser
//! accepts is predicted by [`crate::facts`]. Nothing the storm sends can
//! replace the baseline watch: a write that might be accepted must contain
//! the baseline specs unchanged, and may only add watches that cannot fire
//! during the storm (functions that do not run, canaries nothing writes).

use ksw_core::config::{Config, Key, Limits, Spec, WatchTarget, MAX_FUNC_NAME, MAX_SPECS};

use crate::facts::{self, Facts, Pred, Resolved};
use crate::rng::Rng;

/// Most bytes one write may carry (the module's limit, from ksw-core).
pub const MAX_WRITE: usize = ksw_core::config::MAX_CONFIG_WRITE;

/// What the kernel log must never show: the VM runner fails a run whose
/// console matches any of these (its `$splat`), and rejected input is
/// echoed into the log. Generated text containing one is dropped.
pub const SPLAT_PATTERNS: &[&str] = &[
    "Oops",
    "BUG:",
    "WARNING:",
    "Kernel panic",
    "kernel BUG",
    "general protection fault",
    "lockdep is turned off",
    "possible circular locking",
    "possible recursive locking",
    "inconsistent lock state",
    "KASAN:",
    "UBSAN:",
    "rcu: INFO:",
    "rcu_sched detected stall",
    "self-detected stall",
    "watchdog: BUG",
    "hung_task",
    "Call Trace:",
    "stack-protector: Kernel stack is corrupted",
];

pub fn contains_splat(bytes: &[u8]) -> bool {
    SPLAT_PATTERNS
        .iter()
        .any(|p| bytes.windows(p.len()).any(|w| w == p.as_bytes()))
}

/// One spec as key/value text, rendered with either key name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecText {
    pub fields: Vec<(Key, String)>,
}

impl SpecText {
    pub fn new(fields: &[(Key, &str)]) -> SpecText {
        SpecText {
            fields: fields.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    pub fn func(&self) -> &str {
        self.get(Key::FuncName).unwrap_or("")
    }

    pub fn get(&self, key: Key) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: Key, value: &str) {
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(f) => f.1 = value.to_string(),
            None => self.fields.push((key, value.to_string())),
        }
    }

    /// The canonical long form, key order as given, single spaces.
    pub fn plain(&self) -> String {
        self.fields
            .iter()
            .map(|(k, v)| format!("{}={v}", k.long_name()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// With random key names, separators and key order (`func_name`
    /// first or not); never a comment or a line break.
    pub fn render(&self, rng: &mut Rng) -> String {
        let mut fields = self.fields.clone();
        if rng.percent(30) {
            rng.shuffle(&mut fields);
        }
        let mut out = String::new();
        if rng.percent(10) {
            out.push_str(rng.pick_str(&[" ", "\t", "  "]));
        }
        for (i, (k, v)) in fields.iter().enumerate() {
            if i > 0 {
                out.push_str(
                    rng.pick_str(&[" ", " ", " ", " ", "\t", "  ", " \t ", "\x0c", "\r "]),
                );
            }
            out.push_str(if rng.percent(50) {
                k.short_name()
            } else {
                k.long_name()
            });
            out.push('=');
            out.push_str(v);
        }
        if rng.percent(10) {
            out.push_str(rng.pick_str(&[" ", "\t", "\r"]));
        }
        out
    }
}

/// Renders spec lines into one configuration, with the odd comment, blank
/// line and CRLF.
pub fn render_config(specs: &[SpecText], rng: &mut Rng) -> String {
    let mut out = String::new();
    if rng.percent(10) {
        out.push_str("# ksw-stress\n");
    }
    for s in specs {
        if rng.percent(5) {
            out.push_str(rng.pick_str(&["\n", "   \n", "# comment\n", "\t# =,;:'\"\n"]));
        }
        out.push_str(&s.render(rng));
        if rng.percent(8) {
            out.push_str(rng.pick_str(&[" # a comment", "#no space", " # fn=x bogus=1 \x01\x7f"]));
        }
        out.push_str(if rng.percent(5) { "\r\n" } else { "\n" });
    }
    if !out.is_empty() && rng.percent(30) {
        out.pop();
    }
    out
}

/// The parse outcome: the config, or the errno of the whole write (EFBIG
/// for a write longer than the module takes).
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Config, i32> {
    if bytes.len() > MAX_WRITE {
        return Err(facts::EFBIG);
    }
    Config::parse(bytes, limits).map_err(|e| e.errno())
}

/// What the storm expects of one write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Rejected with this errno (exact prediction).
    Reject(i32),
    /// Accepted; the active configuration then reads back as these lines.
    Accept(String),
    /// No exact prediction: accepted, or any documented errno.
    Documented,
}

/// One write as the storm sends it: `bytes` in one `write()`.
#[derive(Clone, Debug)]
pub struct Planned {
    pub class: &'static str,
    pub bytes: Vec<u8>,
    pub expect: Expect,
    /// Parsed without error: the kernel plans it (config lock, probes).
    pub parsed: bool,
}

/// One of the cheap kinds of writes.
type Kind<'c> = fn(&Ctx<'c>, &mut Rng) -> Option<Vec<Planned>>;

/// What the generator works from.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub limits: Limits,
    pub facts: &'a Facts,
    /// Specs every accepted configuration keeps, unchanged.
    pub baseline: Vec<SpecText>,
    baseline_specs: Vec<Spec>,
    /// Functions the background or the storm itself runs: only the
    /// baseline and `bg_safe` may watch them.
    pub running: Vec<String>,
    /// Watches on running functions that cannot fire (one at a time).
    pub bg_safe: Vec<SpecText>,
    /// Watches predicted valid on functions that do not run.
    pub valid_pool: Vec<SpecText>,
    /// Specs with a predicted semantic rejection: (class, spec, errno).
    pub semantic: Vec<(&'static str, SpecText, i32)>,
    /// Kernel functions (outcome not predicted; canary watches only).
    pub kernel_pool: Vec<String>,
    /// Names for mutations: existing functions, near misses.
    pub names: Vec<String>,
}

impl<'a> Ctx<'a> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        limits: Limits,
        facts: &'a Facts,
        baseline: Vec<SpecText>,
        running: Vec<String>,
        bg_safe: Vec<SpecText>,
        valid_pool: Vec<SpecText>,
        semantic: Vec<(&'static str, SpecText, i32)>,
        kernel_pool: Vec<String>,
    ) -> Result<Ctx<'a>, String> {
        let text = baseline
            .iter()
            .map(SpecText::plain)
            .collect::<Vec<_>>()
            .join("\n");
        let config = Config::parse(text.as_bytes(), &limits)
            .map_err(|e| format!("baseline {text:?} does not parse: {e}"))?;
        let baseline_specs: Vec<Spec> = config.specs().copied().collect();
        let mut names: Vec<String> = valid_pool.iter().map(|s| s.func().to_string()).collect();
        names.extend(running.iter().cloned());
        names.extend(kernel_pool.iter().cloned());
        names.sort();
        names.dedup();
        Ok(Ctx {
            limits,
            facts,
            baseline,
            baseline_specs,
            running,
            bg_safe,
            valid_pool,
            semantic,
            kernel_pool,
            names,
        })
    }

    /// The baseline's canonical lines (as `/proc/kstackwatch` shows them).
    pub fn baseline_canonical(&self) -> String {
        canonical(self.baseline_specs.iter())
    }

    /// The expectation for `bytes`, or None when the storm must not send
    /// it (it could be accepted without keeping the baseline, or could
    /// arm a watch that fires during the storm).
    pub fn expect(&self, bytes: &[u8]) -> Option<(Expect, bool)> {
        if contains_splat(bytes) {
            return None;
        }
        let config = match parse(bytes, &self.limits) {
            Err(e) => return Some((Expect::Reject(e), false)),
            Ok(c) => c,
        };
        if !self.safe(&config, bytes) {
            return None;
        }
        let mut unknown = false;
        let mut seen: Vec<&str> = Vec::new();
        for spec in config.specs() {
            // Two names of one function (`f` and `module:f`): the module's
            // answer is not predicted.
            let key = match self.facts.resolve(spec.func.as_str()) {
                Resolved::Test(f) => f.name.as_str(),
                _ => spec.func.as_str(),
            };
            if seen.contains(&key) {
                unknown = true;
            }
            seen.push(key);
            match self.facts.predict(spec) {
                Pred::Ok => {}
                Pred::Unknown => unknown = true,
                Pred::Err(e) if !unknown => return Some((Expect::Reject(e), true)),
                Pred::Err(_) => {}
            }
        }
        if unknown {
            return Some((Expect::Documented, true));
        }
        Some((Expect::Accept(canonical(config.specs())), true))
    }

    /// A parsed configuration the storm may send: the baseline unchanged,
    /// nothing else on the baseline's functions, on running functions only
    /// `bg_safe` watches (one at most), elsewhere canary watches only for
    /// functions outside the test module, no function lists.
    fn safe(&self, config: &Config, bytes: &[u8]) -> bool {
        let specs: Vec<&Spec> = config.specs().collect();
        if !self.baseline_specs.iter().all(|b| specs.contains(&b)) {
            return false;
        }
        let text = String::from_utf8_lossy(bytes);
        let mut bg = 0;
        for (i, spec) in specs.iter().enumerate() {
            if self.baseline_specs.contains(spec) {
                continue;
            }
            // A function list (a sweep) names functions this check cannot see.
            let line = text
                .lines()
                .nth(config.line_of(i).saturating_sub(1) as usize)
                .unwrap_or("");
            let line = line.split('#').next().unwrap_or("");
            if line.split_whitespace().any(|t| {
                t.split_once('=').is_some_and(|(k, v)| {
                    Key::from_name(k.as_bytes()) == Some(Key::FuncName) && v.contains(',')
                })
            }) {
                return false;
            }
            let name = match self.facts.resolve(spec.func.as_str()) {
                Resolved::Test(f) => f.name.clone(),
                Resolved::Elsewhere => {
                    // A kernel function may run all the time: its canary
                    // only, and one frame at a time (it counts among the
                    // running functions' slots).
                    if spec.target != WatchTarget::Canary
                        || spec.func_offset.is_some()
                        || spec.panic_on_catch
                        || spec.max_watch != 1
                    {
                        return false;
                    }
                    bg += 1;
                    continue;
                }
                _ => continue,
            };
            if self.baseline_specs.iter().any(|b| {
                matches!(self.facts.resolve(b.func.as_str()), Resolved::Test(f) if f.name == name)
            }) {
                return false;
            }
            if self.running.contains(&name) {
                let ok = self.bg_safe.iter().any(|s| {
                    let t = s.plain();
                    Config::parse(t.as_bytes(), &self.limits).is_ok_and(|c| {
                        c.specs().next().is_some_and(|b| {
                            b.func == spec.func
                                && b.func_offset == spec.func_offset
                                && b.target == spec.target
                        })
                    })
                });
                if !ok || spec.panic_on_catch || spec.max_watch != 1 {
                    return false;
                }
                bg += 1;
            }
        }
        bg <= 1
    }

    /// Baseline plus up to `max_extra` valid watches, shuffled.
    pub fn valid_specs(&self, rng: &mut Rng, max_extra: usize) -> Vec<SpecText> {
        let mut specs = self.baseline.clone();
        let extra = rng.below(max_extra + 1).min(MAX_SPECS - specs.len());
        let mut used: Vec<String> = Vec::new();
        for _ in 0..extra {
            // At most one watch on a function that runs (the background's,
            // or the kernel's), capped at one frame: the baseline keeps a slot.
            let running_used = used
                .iter()
                .any(|u| self.running.contains(u) || self.kernel_pool.contains(u));
            let s = if rng.percent(15) && !self.bg_safe.is_empty() && !running_used {
                rng.pick(&self.bg_safe).clone()
            } else if rng.percent(10) && !self.kernel_pool.is_empty() && !running_used {
                SpecText::new(&[
                    (Key::FuncName, rng.pick(&self.kernel_pool).as_str()),
                    (Key::MaxWatch, "1"),
                ])
            } else if !self.valid_pool.is_empty() {
                let mut s = rng.pick(&self.valid_pool).clone();
                // Filters that never matter for a function that does not run.
                if rng.percent(30) {
                    s.set(Key::Depth, &rng.range(0, 1024).to_string());
                }
                if rng.percent(30) {
                    s.set(Key::MaxWatch, &rng.range(0, 4).to_string());
                }
                if rng.percent(20) {
                    s.set(Key::PanicOnCatch, rng.pick_str(&["0", "1"]));
                }
                s
            } else {
                continue;
            };
            if used.iter().any(|u| u == s.func()) {
                continue;
            }
            used.push(s.func().to_string());
            specs.push(s);
        }
        rng.shuffle(&mut specs);
        specs
    }

    /// One write of the storm's mix; `valid_pct` and `parsed_pct` bound
    /// the expensive kinds (accepted, and planned by the kernel).
    pub fn generate(
        &self,
        rng: &mut Rng,
        valid_permille: u32,
        semantic_permille: u32,
    ) -> Vec<Planned> {
        loop {
            let r = rng.below(1000) as u32;
            let planned = if r < valid_permille {
                self.valid(rng)
            } else if r < valid_permille + semantic_permille {
                self.semantic_write(rng)
            } else {
                let kinds: &[(u32, Kind<'_>)] = &[
                    (40, Self::defect),
                    (44, Self::mutant),
                    (4, Self::huge),
                    (5, Self::split),
                    (4, Self::many),
                    (3, Self::garbage),
                ];
                let weights: Vec<u32> = kinds.iter().map(|k| k.0).collect();
                let pick = kinds[rng.weighted(&weights)].1;
                match pick(self, rng) {
                    // Parsed writes of the cheap kinds stay rare too.
                    Some(p)
                        if p.iter().any(|w| w.parsed)
                            && rng.below(1000) as u32 >= semantic_permille * 4 =>
                    {
                        None
                    }
                    p => p,
                }
            };
            if let Some(p) = planned {
                return p;
            }
        }
    }

    fn plan(&self, class: &'static str, bytes: Vec<u8>) -> Option<Planned> {
        let (expect, parsed) = self.expect(&bytes)?;
        Some(Planned {
            class,
            bytes,
            expect,
            parsed,
        })
    }

    fn valid(&self, rng: &mut Rng) -> Option<Vec<Planned>> {
        let specs = self.valid_specs(rng, 4);
        let text = render_config(&specs, rng);
        let mut bytes = text.into_bytes();
        // A valid write at the size limit, now and then.
        if rng.percent(3) && bytes.len() < MAX_WRITE - 4 {
            bytes.push(b'#');
            bytes.resize(MAX_WRITE, b'x');
        }
        // A NUL or control byte inside a comment is fine.
        if rng.percent(3) {
            bytes.extend_from_slice(b"\n# \x00\x01\x7f\xff");
            bytes.truncate(MAX_WRITE);
        }
        Some(vec![self.plan("valid", bytes)?])
    }

    fn semantic_write(&self, rng: &mut Rng) -> Option<Vec<Planned>> {
        // A class first, then one of its specs: every class as often.
        let mut classes: Vec<&str> = self.semantic.iter().map(|s| s.0).collect();
        classes.sort_unstable();
        classes.dedup();
        let class = *rng.pick(&classes);
        let of_class: Vec<&(&'static str, SpecText, i32)> =
            self.semantic.iter().filter(|s| s.0 == class).collect();
        let (class, bad, _) = (*rng.pick(&of_class)).clone();
        let mut specs = self.valid_specs(rng, 1);
        // Mostly first: the kernel stops at the first bad spec, and
        // registering the others' probes first costs 100 ms each under TCG.
        if rng.percent(80) {
            specs.insert(0, bad);
        } else {
            specs.push(bad);
            rng.shuffle(&mut specs);
        }
        let text = render_config(&specs, rng);
        Some(vec![self.plan(class, text.into_bytes())?])
    }

    /// A valid configuration with one documented parse defect.
    fn defect(&self, rng: &mut Rng) -> Option<Vec<Planned>> {
        let mut specs = self.valid_specs(rng, 2);
        let i = rng.below(specs.len());
        let stack = u64::from(self.limits.stack_size);
        let s = &mut specs[i];
        let class: &'static str = match rng.below(15) {
            0 => {
                let k = rng.pick_str(&[
                    "bogus", "func_nam", "FN", "fn_", "depth_", "sp", "w", "sample_", "x",
                ]);
                let line = format!("{} {k}=1", s.render(rng));
                return self.single("unknown_key", specs_text_with(&specs, i, &line, rng));
            }
            1 => {
                let (k, _) = rng.pick(&s.fields).clone();
                let v = boundary_value(k, rng, self);
                s.fields.push((k, v));
                "repeated_key"
            }
            2 => {
                let k = *rng.pick(&[
                    Key::FuncOffset,
                    Key::Depth,
                    Key::MaxWatch,
                    Key::SpOffset,
                    Key::WatchLen,
                    Key::AutoCanary,
                    Key::PanicOnCatch,
                ]);
                s.set(
                    k,
                    rng.pick_str(&[
                        "0x", "12g", "-1", "+1", "1.0", "0x-1", "", "0b1", "0xg", "1_000", "٣",
                    ]),
                );
                "malformed_number"
            }
            3 => {
                let v = match rng.below(7) {
                    0 => (Key::Depth, "1025".to_string()),
                    1 => (
                        Key::MaxWatch,
                        (u32::from(self.limits.hw_slots) + 1).to_string(),
                    ),
                    2 => (Key::PanicOnCatch, "2".to_string()),
                    3 => (Key::AutoCanary, "2".to_string()),
                    4 => (Key::FuncOffset, "0x100000000".to_string()),
                    5 => (Key::Depth, "99999999999999999999999".to_string()),
                    _ => (Key::SpOffset, stack.to_string()),
                };
                s.set(v.0, &v.1);
                "out_of_range"
            }
            4 => {
                s.set(Key::SpOffset, &(stack - rng.range(1, 7)).to_string());
                s.set(Key::WatchLen, "8");
                s.set(Key::AutoCanary, "0");
                "sp_offset_past_stack"
            }
            5 => {
                s.set(
                    Key::WatchLen,
                    rng.pick_str(&["3", "5", "6", "7", "9", "16", "32", "0x10"]),
                );
                "bad_watch_len"
            }
            6 => {
                s.fields.retain(|(k, _)| *k != Key::FuncName);
                if s.fields.is_empty() {
                    s.set(Key::Depth, "1");
                }
                "missing_func"
            }
            7 => {
                s.set(
                    Key::FuncName,
                    rng.pick_str(&[
                        "9abc", "a/b", "a-b", "", "a*b", "ksw test", "a;b", "a=b", "\"a\"",
                    ]),
                );
                "bad_func_name"
            }
            8 => {
                let len = rng.range(MAX_FUNC_NAME as u64 + 1, 200) as usize;
                s.set(Key::FuncName, &"k".repeat(len));
                "name_too_long"
            }
            9 => {
                s.fields
                    .retain(|(k, _)| !matches!(k, Key::WatchLen | Key::AutoCanary));
                s.set(Key::SpOffset, &(8 * rng.range(1, 64)).to_string());
                "sp_offset_without_len"
            }
            10 => {
                s.set(Key::AutoCanary, "1");
                if rng.percent(50) {
                    s.set(Key::WatchLen, "8");
                } else {
                    s.set(Key::SpOffset, "8");
                }
                "canary_conflict"
            }
            11 => {
                let t = rng.pick_str(&["fo", "ksw_test_small", "=", "fn", "==", "=1", "depth"]);
                let line = format!("{} {t}", s.render(rng));
                return self.single("not_key_value", specs_text_with(&specs, i, &line, rng));
            }
            12 => {
                let line = s.render(rng);
                let b = *rng.pick(&[0u8, 1, 0x0b, 0x1b, 0x7f, 0x08, 0x80, 0xc3, 0xff]);
                let mut bytes = line.into_bytes();
                let at = rng.below(bytes.len() + 1);
                bytes.insert(at, b);
                let mut all = Vec::new();
                for (j, other) in specs.iter().enumerate() {
                    if j == i {
                        all.extend_from_slice(&bytes);
                    } else {
                        all.extend_from_slice(other.render(rng).as_bytes());
                    }
                    all.push(b'\n');
                }
                return Some(vec![self.plan(
                    if b >= 0x80 {
                        "non_ascii"
                    } else {
                        "control_char"
                    },
                    all,
                )?]);
            }
            13 => {
                let dup = s.clone();
                specs.insert(rng.below(specs.len() + 1), dup);
                "duplicate_func"
            }
            _ => {
                let k = *rng.pick(&Key::ALL);
                let v = boundary_value(k, rng, self);
                s.set(k, &v);
                "boundary_value"
            }
        };
        let text = render_config(&specs, rng);
        self.single(class, text)
    }

    fn single(&self, class: &'static str, text: String) -> Option<Vec<Planned>> {
        Some(vec![self.plan(class, text.into_bytes())?])
    }

    /// Grammar-aware mutations of a valid or semantically wrong config.
    fn mutant(&self, rng: &mut Rng) -> Option<Vec<Planned>> {
        let mut specs = self.valid_specs(rng, 3);
        if rng.percent(20) && !self.semantic.is_empty() {
            specs.push(rng.pick(&self.semantic).1.clone());
        }
        let mut lines: Vec<Vec<String>> = specs
            .iter()
            .map(|s| s.render(rng).split(' ').map(str::to_string).collect())
            .collect();
        for _ in 0..rng.range(1, 4) {
            let l = rng.below(lines.len());
            let line = &mut lines[l];
            if line.is_empty() {
                line.push("fn=ksw_stress_nosuch".into());
            }
            let t = rng.below(line.len());
            match rng.below(12) {
                0 => {
                    line.remove(t);
                }
                1 => {
                    let tok = line[t].clone();
                    line.insert(t, tok);
                }
                2 => {
                    let k = *rng.pick(&Key::ALL);
                    let v = boundary_value(k, rng, self);
                    let name = if rng.percent(50) {
                        k.short_name()
                    } else {
                        k.long_name()
                    };
                    line.insert(t, format!("{name}={v}"));
                }
                3 => {
                    // A key turned into a near miss.
                    let tok = &mut line[t];
                    if let Some(eq) = tok.find('=') {
                        let key = tok[..eq].to_string();
                        let near = match rng.below(4) {
                            0 => key.to_uppercase(),
                            1 => format!("{key}{key}"),
                            2 => key.chars().skip(1).collect(),
                            _ => format!("{key}_"),
                        };
                        *tok = format!("{near}{}", &tok[eq..]);
                    }
                }
                4 => {
                    let tok = &mut line[t];
                    if let Some(eq) = tok.find('=') {
                        let key = Key::from_name(&tok.as_bytes()[..eq]);
                        let v =
                            key.map_or_else(|| "1".to_string(), |k| boundary_value(k, rng, self));
                        *tok = format!("{}={v}", &tok[..eq]);
                    }
                }
                5 => {
                    let tok = &mut line[t];
                    *tok = match rng.below(4) {
                        0 => tok.replacen('=', "", 1),
                        1 => tok.replacen('=', "==", 1),
                        2 => tok.replacen('=', " = ", 1),
                        _ => format!("{tok}="),
                    };
                }
                6 => {
                    let l2 = lines[l].clone();
                    lines.push(l2);
                }
                7 => {
                    if lines.len() > 1 {
                        lines.remove(l);
                    }
                }
                8 => {
                    let b = rng.pick_str(&[
                        "\0", "\x01", "\x0b", "\x0c", "\t", "\r", "#", ",", "\u{a0}", "é", "\x7f",
                        "\n", "=",
                    ]);
                    let tok = &mut line[t];
                    let at = rng.below(tok.len() + 1);
                    if tok.is_char_boundary(at) {
                        tok.insert_str(at, b);
                    }
                }
                9 => {
                    let tok = &mut line[t];
                    let cut = rng.below(tok.len() + 1);
                    if tok.is_char_boundary(cut) {
                        tok.truncate(cut);
                    }
                }
                10 => {
                    let name = rng.pick(&self.names).clone();
                    let name = match rng.below(5) {
                        0 => format!("{}:{name}", self.facts.module),
                        1 => format!("nosuchmodule:{name}"),
                        2 => format!("{name}{}", rng.below(10)),
                        3 => name.chars().rev().collect(),
                        _ => name,
                    };
                    line.insert(t, format!("fn={name}"));
                }
                _ => {
                    let j = rng.below(line.len());
                    line.swap(t, j);
                }
            }
        }
        let mut text: String = lines
            .iter()
            .map(|l| l.join(rng.pick_str(&[" ", " ", "\t"])))
            .collect::<Vec<_>>()
            .join("\n");
        if rng.percent(10) {
            let cut = rng.below(text.len() + 1);
            if text.is_char_boundary(cut) {
                text.truncate(cut);
            }
        }
        self.single("mutant", text)
    }

    /// Writes over the size limit (EFBIG), and at it.
    fn huge(&self, rng: &mut Rng) -> Option<Vec<Planned>> {
        let specs = self.valid_specs(rng, 1);
        let mut bytes = render_config(&specs, rng).into_bytes();
        bytes.push(b'\n');
        let len = match rng.below(4) {
            0 => MAX_WRITE + 1,
            1 => MAX_WRITE + 1 + rng.below(8192),
            2 => 2 * (MAX_WRITE + 1) + rng.below(65536),
            _ => MAX_WRITE - rng.below(2),
        };
        let filler = *rng.pick(b" \n#x");
        if filler == b'x' {
            bytes.push(b'#');
        }
        bytes.resize(len.max(bytes.len()), filler);
        Some(vec![self.plan("huge", bytes)?])
    }

    /// One configuration cut into pieces, each its own write().
    fn split(&self, rng: &mut Rng) -> Option<Vec<Planned>> {
        let specs = self.valid_specs(rng, 2);
        let text = render_config(&specs, rng).into_bytes();
        if text.len() < 4 {
            return None;
        }
        let mut cuts = vec![rng.range(1, text.len() as u64 - 1) as usize];
        if rng.percent(30) {
            cuts.push(rng.range(1, text.len() as u64 - 1) as usize);
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut parts = Vec::new();
        let mut start = 0;
        for c in cuts.into_iter().chain(std::iter::once(text.len())) {
            let part = text[start..c].to_vec();
            start = c;
            // A piece with no spec would switch watching off: not sent.
            if part.iter().all(|b| b.is_ascii_whitespace()) {
                return None;
            }
            parts.push(self.plan("split", part)?);
        }
        Some(parts)
    }

    /// More specs than allowed, or exactly as many.
    fn many(&self, rng: &mut Rng) -> Option<Vec<Planned>> {
        let mut specs = self.baseline.clone();
        let n = if rng.percent(70) {
            rng.range(MAX_SPECS as u64 + 1, MAX_SPECS as u64 + 8) as usize
        } else {
            MAX_SPECS
        };
        let mut i = 0;
        while specs.len() < n {
            let name = if rng.percent(50) {
                format!("ksw_stress_nosuch_{i}")
            } else {
                rng.pick(&self.names).clone()
            };
            i += 1;
            specs.push(SpecText::new(&[(Key::FuncName, &name)]));
        }
        rng.shuffle(&mut specs);
        let text = render_config(&specs, rng);
        self.single("many_specs", text)
    }

    /// Bytes with little to do with the grammar.
    fn garbage(&self, rng: &mut Rng) -> Option<Vec<Planned>> {
        let len = rng.range(1, 200) as usize;
        let alphabet = b"fn=dpmwsoalcphx_0123456789 \t\n#,:=.$\x00\x01\xff";
        let bytes: Vec<u8> = (0..len).map(|_| *rng.pick(alphabet)).collect();
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return None;
        }
        Some(vec![self.plan("garbage", bytes)?])
    }
}

/// The specs rendered, with line `i` replaced by `line`.
fn specs_text_with(specs: &[SpecText], i: usize, line: &str, rng: &mut Rng) -> String {
    specs
        .iter()
        .enumerate()
        .map(|(j, s)| {
            if j == i {
                line.to_string()
            } else {
                s.render(rng)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A value for `key` at or beyond its limits, or malformed.
pub fn boundary_value(key: Key, rng: &mut Rng, ctx: &Ctx<'_>) -> String {
    let stack = u64::from(ctx.limits.stack_size);
    let slots = u64::from(ctx.limits.hw_slots);
    let pick = |rng: &mut Rng, v: &[String]| rng.pick(v).clone();
    match key.long_name() {
        "func_name" => {
            let base = rng.pick(&ctx.names).clone();
            match rng.below(6) {
                0 => "k".repeat(MAX_FUNC_NAME),
                1 => "k".repeat(MAX_FUNC_NAME + 1),
                2 => format!("{}:{base}", ctx.facts.module),
                3 => format!("{base},{base}"),
                4 => format!("ksw_stress_nosuch_{}", rng.below(1000)),
                _ => base,
            }
        }
        "func_offset" => {
            let size = ctx
                .facts
                .func(&rng.pick(&ctx.names).clone())
                .map_or(0x100, |f| f.size as u64);
            let v = [
                "0".to_string(),
                "0x0".into(),
                format!("{:#x}", rng.range(1, size.max(2) - 1)),
                format!("{size:#x}"),
                format!("{}", size - 1),
                "0xffffffff".into(),
                "4294967295".into(),
                "4294967296".into(),
                "0x100000000".into(),
                "99999999999999999999999".into(),
                "0X10".into(),
                "010".into(),
            ];
            pick(rng, &v)
        }
        "depth" => pick(
            rng,
            &["0", "1", "1023", "1024", "1025", "65535", "0x400", "0x401"].map(String::from),
        ),
        "max_watch" => {
            let v = [
                "0".to_string(),
                "1".into(),
                slots.to_string(),
                (slots + 1).to_string(),
                "255".into(),
                "256".into(),
            ];
            pick(rng, &v)
        }
        "sp_offset" => {
            let v = [
                "0".to_string(),
                "8".into(),
                "0x40".into(),
                (stack - 8).to_string(),
                (stack - 1).to_string(),
                stack.to_string(),
                (stack + 8).to_string(),
                format!("{:#x}", 2 * stack),
            ];
            pick(rng, &v)
        }
        "watch_len" => pick(
            rng,
            &["0", "1", "2", "3", "4", "5", "8", "16", "0x8"].map(String::from),
        ),
        "auto_canary" | "panic_on_catch" => {
            pick(rng, &["0", "1", "2", "01", "0x1"].map(String::from))
        }
        _ => pick(
            rng,
            &[
                "0",
                "1",
                "2",
                "64",
                "1000000",
                "1000001",
                "4294967295",
                "18446744073709551615",
                "18446744073709551616",
            ]
            .map(String::from),
        ),
    }
}

/// The lines `/proc/kstackwatch` shows for these specs.
pub fn canonical<'s>(specs: impl Iterator<Item = &'s Spec>) -> String {
    specs.map(|s| s.to_string()).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        let kallsyms = "ffffffff81000000 T schedule\nffffffffa0000000 t ksw_test_a\t[kstackwatch_test]\nffffffffa0000040 t ksw_test_b\t[kstackwatch_test]\nffffffffa0000080 d ksw_test_data\t[kstackwatch_test]\n";
        // An ELF is needed; without one no test function is known, which
        // is enough for the parse-level checks here.
        Facts::load(kallsyms, &empty_elf(), "kstackwatch_test").unwrap()
    }

    fn empty_elf() -> Vec<u8> {
        Vec::new()
    }

    fn ctx(f: &Facts) -> Ctx<'_> {
        Ctx::new(
            Limits::X86_64,
            f,
            vec![
                SpecText::new(&[
                    (Key::FuncName, "ksw_test_a"),
                    (Key::FuncOffset, "0x10"),
                    (Key::SpOffset, "0x40"),
                    (Key::WatchLen, "8"),
                    (Key::MaxWatch, "1"),
                ]),
                SpecText::new(&[(Key::FuncName, "ksw_test_b"), (Key::MaxWatch, "2")]),
            ],
            vec!["ksw_test_b".into()],
            vec![],
            vec![],
            vec![(
                "enoent",
                SpecText::new(&[(Key::FuncName, "ksw_stress_nosuch")]),
                facts::ENOENT,
            )],
            vec!["schedule".into()],
        )
        .unwrap()
    }

    #[test]
    fn parse_outcomes_are_the_module_parsers() {
        let l = Limits::X86_64;
        assert_eq!(parse(b"fn=a bogus=1", &l).unwrap_err(), facts::EINVAL);
        assert_eq!(parse(b"fn=a mw=5", &l).unwrap_err(), facts::ERANGE);
        assert_eq!(parse(b"fn=a\nfn=a", &l).unwrap_err(), facts::EEXIST);
        assert_eq!(parse(&[b' '; MAX_WRITE + 1], &l).unwrap_err(), facts::EFBIG);
        assert!(parse(&[b' '; MAX_WRITE], &l).is_ok());
        let long = format!("fn={}", "k".repeat(MAX_FUNC_NAME + 1));
        assert_eq!(parse(long.as_bytes(), &l).unwrap_err(), facts::ENAMETOOLONG);
        let many: String = (0..=MAX_SPECS).map(|i| format!("fn=f{i}\n")).collect();
        assert_eq!(parse(many.as_bytes(), &l).unwrap_err(), facts::E2BIG);
        // A NUL in a comment is not part of the spec.
        assert!(parse(b"fn=a # \0", &l).is_ok());
        assert_eq!(parse(b"fn=a \0", &l).unwrap_err(), facts::EINVAL);
    }

    #[test]
    fn nothing_sent_can_drop_the_baseline() {
        let f = facts();
        let c = ctx(&f);
        let mut rng = Rng::new(1);
        let mut kinds = std::collections::HashMap::new();
        for _ in 0..3_000 {
            for p in c.generate(&mut rng, 20, 40) {
                assert!(!contains_splat(&p.bytes));
                if let Ok(config) = parse(&p.bytes, &c.limits) {
                    // Anything that parses keeps both baseline specs.
                    let specs: Vec<&Spec> = config.specs().collect();
                    for b in &c.baseline_specs {
                        assert!(
                            specs.contains(&b),
                            "{:?}",
                            String::from_utf8_lossy(&p.bytes)
                        );
                    }
                }
                *kinds.entry(p.class).or_insert(0) += 1;
            }
        }
        for k in [
            "valid",
            "enoent",
            "unknown_key",
            "mutant",
            "huge",
            "split",
            "many_specs",
            "garbage",
        ] {
            assert!(kinds.contains_key(k), "{k} never generated: {kinds:?}");
        }
    }

    #[test]
    fn every_parse_class_is_generated_with_its_errno() {
        let f = facts();
        let c = ctx(&f);
        let mut rng = Rng::new(2);
        let mut errnos = std::collections::HashSet::new();
        for _ in 0..3_000 {
            for p in c.generate(&mut rng, 0, 0) {
                if let Expect::Reject(e) = p.expect {
                    errnos.insert(e);
                }
            }
        }
        for e in [
            facts::EINVAL,
            facts::ERANGE,
            facts::EEXIST,
            facts::E2BIG,
            facts::ENAMETOOLONG,
            facts::EFBIG,
        ] {
            assert!(
                errnos.contains(&e),
                "{} never generated",
                facts::errno_name(e)
            );
        }
    }

    #[test]
    fn accepted_configs_read_back_canonically() {
        let f = facts();
        let c = ctx(&f);
        assert_eq!(
            c.baseline_canonical(),
            "func_name=ksw_test_a func_offset=0x10 depth=0 max_watch=1 sp_offset=64 watch_len=8 auto_canary=0 panic_on_catch=0\nfunc_name=ksw_test_b depth=0 max_watch=2 sp_offset=0 watch_len=0 auto_canary=1 panic_on_catch=0"
        );
    }
}
