// SPDX-License-Identifier: GPL-2.0
//! The `/proc/kstackwatch` configuration language.
//!
//! One watch spec per line, each a whitespace-separated list of `key=value`
//! pairs. `#` starts a comment. An input with no spec disables watching.
//! Numbers are decimal or `0x` hexadecimal. Every key has a long and a short
//! name; [`Spec`]'s `Display` prints the canonical long form, which parses
//! back to the same spec (so the file's contents can be written back).
//!
//! A spec names one function, or a comma-separated list of them (a sweep:
//! `fn=a,b,c ac=1 sample=64`, usually written by `ksw sweep`, which expands
//! globs and modules from the kernel's list of traceable functions). A list
//! watches each frame's canary; `sample` and `rate` choose which calls arm.
//!
//! Parsing is allocation-free and never panics: it is run on untrusted bytes
//! in the kernel's `write()` handler and fuzzed on the host.

use core::fmt;

/// Most watch specs active at once (each is its own kprobe + fprobe pair).
pub const MAX_SPECS: usize = 8;
/// Longest function name accepted (`module:symbol` included).
pub const MAX_FUNC_NAME: usize = 127;
/// Deepest recursion level a spec can select.
pub const MAX_DEPTH: u16 = 1024;
/// Most functions one spec (a sweep) can name.
pub const MAX_FUNCS: u32 = 4096;
/// Most bytes one write to /proc/kstackwatch (one whole configuration)
/// may carry: room for a sweep of [`MAX_FUNCS`] typical kernel names
/// (about 30 bytes each). The module copies a write with kvmalloc.
pub const MAX_CONFIG_WRITE: usize = 256 * 1024 - 1;
/// Largest `sample` and `rate`.
pub const MAX_SAMPLE: u64 = 1_000_000;

/// A configuration key, named by its canonical long name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    FuncName,
    FuncOffset,
    Depth,
    MaxWatch,
    SpOffset,
    WatchLen,
    AutoCanary,
    PanicOnCatch,
    Sample,
    Rate,
}

impl Key {
    /// All keys, in canonical print order.
    pub const ALL: [Key; 10] = [
        Key::FuncName,
        Key::FuncOffset,
        Key::Depth,
        Key::MaxWatch,
        Key::SpOffset,
        Key::WatchLen,
        Key::AutoCanary,
        Key::PanicOnCatch,
        Key::Sample,
        Key::Rate,
    ];

    pub const fn long_name(self) -> &'static str {
        match self {
            Key::FuncName => "func_name",
            Key::FuncOffset => "func_offset",
            Key::Depth => "depth",
            Key::MaxWatch => "max_watch",
            Key::SpOffset => "sp_offset",
            Key::WatchLen => "watch_len",
            Key::AutoCanary => "auto_canary",
            Key::PanicOnCatch => "panic_on_catch",
            Key::Sample => "sample",
            Key::Rate => "rate",
        }
    }

    pub const fn short_name(self) -> &'static str {
        match self {
            Key::FuncName => "fn",
            Key::FuncOffset => "fo",
            Key::Depth => "dp",
            Key::MaxWatch => "mw",
            Key::SpOffset => "so",
            Key::WatchLen => "wl",
            Key::AutoCanary => "ac",
            Key::PanicOnCatch => "ph",
            Key::Sample => "sa",
            Key::Rate => "ra",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<Key> {
        Key::ALL
            .into_iter()
            .find(|k| name == k.long_name().as_bytes() || name == k.short_name().as_bytes())
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Limits that depend on the running kernel, checked while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Size of a task's kernel stack (`THREAD_SIZE`): `sp_offset` must be below it.
    pub stack_size: u32,
    /// Hardware watch slots this CPU has (x86: 4): `max_watch` may not exceed it.
    pub hw_slots: u8,
}

impl Limits {
    /// x86_64 with 16 KiB stacks and four debug address registers.
    pub const X86_64: Limits = Limits {
        stack_size: 16384,
        hw_slots: 4,
    };
}

/// A function name, stored inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FuncName {
    len: u8,
    bytes: [u8; MAX_FUNC_NAME],
}

impl FuncName {
    /// Checks the characters a kernel symbol (optionally `module:symbol`) can have.
    pub fn new(name: &[u8]) -> Result<FuncName, ErrorKind> {
        if name.is_empty() {
            return Err(ErrorKind::BadFuncName);
        }
        if name.len() > MAX_FUNC_NAME {
            return Err(ErrorKind::FuncNameTooLong);
        }
        let valid = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'$' | b':');
        if !name.iter().all(valid) || name[0].is_ascii_digit() {
            return Err(ErrorKind::BadFuncName);
        }
        let mut bytes = [0; MAX_FUNC_NAME];
        bytes[..name.len()].copy_from_slice(name);
        Ok(FuncName {
            // MAX_FUNC_NAME < 256, checked above.
            len: name.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII was accepted in `new`.
        core::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }
}

impl fmt::Debug for FuncName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for FuncName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a spec watches in the probed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchTarget {
    /// The stack-protector canary: the slot where the prologue stores it.
    Canary,
    /// `len` bytes at `sp + sp_offset`, where `sp` is the stack pointer at the probe.
    Local { sp_offset: u32, len: u8 },
}

/// One watch spec: where to arm, what to watch, and the filters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// The function, or the first of a list.
    pub func: FuncName,
    /// How many functions `fn=` names (more than one: a sweep).
    pub func_count: u32,
    /// The probe point, as an offset into the function; None: right after
    /// the prologue (where the frame and its canary are in place, found by
    /// decoding the function).
    pub func_offset: Option<u32>,
    /// Recursion level to arm at: 0 is the outermost active call.
    pub depth: u16,
    /// Most frames of this spec armed at once; 0 means as many as there are slots.
    pub max_watch: u8,
    pub target: WatchTarget,
    pub panic_on_catch: bool,
    /// Arm one in `sample` eligible calls, chosen at random per CPU (0 and 1:
    /// every call).
    pub sample: u32,
    /// Arm at most `rate` frames per second across CPUs (0: no limit).
    pub rate: u32,
}

impl Spec {
    /// A sweep: more than one function.
    pub fn is_sweep(&self) -> bool {
        self.func_count > 1
    }

    /// The canonical form, with `names` as the `func_name` value (the list
    /// text for a sweep, which the spec itself does not hold).
    pub fn canonical<'a>(&'a self, names: &'a str) -> impl fmt::Display + 'a {
        struct Canonical<'a>(&'a Spec, &'a str);
        impl fmt::Display for Canonical<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "func_name={}", self.1)?;
                self.0.fmt_keys(f)
            }
        }
        Canonical(self, names)
    }

    /// Every key but `func_name`, each preceded by a space.
    fn fmt_keys(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sp_offset, len, canary) = match self.target {
            WatchTarget::Canary => (0, 0, 1),
            WatchTarget::Local { sp_offset, len } => (sp_offset, len, 0),
        };
        if let Some(offset) = self.func_offset {
            write!(f, " func_offset={offset:#x}")?;
        }
        write!(
            f,
            " depth={} max_watch={} sp_offset={} watch_len={} auto_canary={} panic_on_catch={}",
            self.depth,
            self.max_watch,
            sp_offset,
            len,
            canary,
            u8::from(self.panic_on_catch)
        )?;
        if self.sample > 1 {
            write!(f, " sample={}", self.sample)?;
        }
        if self.rate > 0 {
            write!(f, " rate={}", self.rate)?;
        }
        Ok(())
    }

    /// The spec's own cap on concurrent watches: `max_watch`, or no cap
    /// beyond the hardware slots when it is 0.
    pub fn watch_cap(&self) -> u8 {
        if self.max_watch == 0 {
            u8::MAX
        } else {
            self.max_watch
        }
    }
}

impl fmt::Display for Spec {
    /// Canonical long form: every key, in [`Key::ALL`] order
    /// (`func_offset`, `sample` and `rate` only when set). A sweep's list
    /// is not in the spec: it prints as `func_name=FIRST,...`; use
    /// [`Spec::canonical`] with the list text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "func_name={}", self.func)?;
        if self.is_sweep() {
            f.write_str(",...")?;
        }
        self.fmt_keys(f)
    }
}

/// A parsed configuration: zero specs means "watch nothing".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    specs: [Option<Spec>; MAX_SPECS],
    lines: [u32; MAX_SPECS],
    /// Byte range of each spec's `fn=` value in the parsed input.
    names: [(u32, u32); MAX_SPECS],
    count: usize,
}

impl Config {
    pub const EMPTY: Config = Config {
        specs: [None; MAX_SPECS],
        lines: [0; MAX_SPECS],
        names: [(0, 0); MAX_SPECS],
        count: 0,
    };

    pub fn specs(&self) -> impl Iterator<Item = &Spec> + '_ {
        self.specs[..self.count].iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn get(&self, index: usize) -> Option<&Spec> {
        self.specs.get(index).and_then(Option::as_ref)
    }

    /// Hardware slots this configuration claims from the CPU: the sum of
    /// the specs' `max_watch`, or all `hw` when a spec leaves it at 0 (as
    /// many as there are). What is not claimed stays free for gdb, ptrace
    /// and `perf record -e mem:`.
    pub fn slots_to_claim(&self, hw: u8) -> u8 {
        let mut total = 0u32;
        for spec in self.specs() {
            if spec.max_watch == 0 {
                return hw;
            }
            total += u32::from(spec.max_watch);
        }
        total.min(u32::from(hw)) as u8
    }

    /// The input line spec `index` came from (for error messages).
    pub fn line_of(&self, index: usize) -> u32 {
        self.lines.get(index).copied().unwrap_or(0)
    }

    /// The names of spec `index`'s functions (one, or a sweep's list);
    /// `input` is what [`Config::parse`] was given.
    pub fn functions<'a>(&self, index: usize, input: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let value = self.names.get(index).and_then(|&(start, len)| {
            let start = start as usize;
            input.get(start..start + len as usize)
        });
        value.into_iter().flat_map(|v| v.split(|&b| b == b','))
    }

    /// Parses a whole configuration write. Nothing is applied on error.
    pub fn parse(input: &[u8], limits: &Limits) -> Result<Config, ConfigError> {
        let mut config = Config::EMPTY;
        let mut line_start = 0usize;
        for (index, raw_line) in input.split(|&b| b == b'\n').enumerate() {
            let base = line_start;
            line_start += raw_line.len() + 1;
            let line_no = u32::try_from(index + 1).unwrap_or(u32::MAX);
            let line = match raw_line.iter().position(|&b| b == b'#') {
                Some(hash) => &raw_line[..hash],
                None => raw_line,
            };
            let at = |kind, token: &[u8]| ConfigError::new(line_no, kind, token);
            if let Some(bad) = line
                .iter()
                .find(|b| !b.is_ascii() || b.is_ascii_control() && !b.is_ascii_whitespace())
            {
                return Err(at(ErrorKind::NotAscii, core::slice::from_ref(bad)));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (spec, names) =
                parse_spec(line, base, limits).map_err(|(kind, token)| at(kind, token))?;
            if config.specs().any(|s| s.func == spec.func) {
                return Err(at(ErrorKind::DuplicateFunc, spec.func.as_bytes()));
            }
            if config.count == MAX_SPECS {
                return Err(at(ErrorKind::TooManySpecs, b""));
            }
            config.specs[config.count] = Some(spec);
            config.lines[config.count] = line_no;
            config.names[config.count] = names;
            config.count += 1;
        }
        Ok(config)
    }
}

type SpecError<'a> = (ErrorKind, &'a [u8]);

/// Checks one function name or a comma-separated list: how many.
fn parse_list(value: &[u8]) -> Result<u32, SpecError<'_>> {
    let mut count = 0u32;
    for name in value.split(|&b| b == b',') {
        if name.is_empty() && value.contains(&b',') {
            return Err((ErrorKind::EmptyListItem, value));
        }
        FuncName::new(name).map_err(|kind| (kind, name))?;
        count += 1;
        if count > MAX_FUNCS {
            return Err((ErrorKind::TooManyFuncs, value));
        }
    }
    Ok(count)
}

/// A spec, and the byte range of its `fn=` value in the whole input.
fn parse_spec<'a>(
    line: &'a [u8],
    base: usize,
    limits: &Limits,
) -> Result<(Spec, (u32, u32)), SpecError<'a>> {
    let mut seen: u16 = 0;
    let mut func = None;
    let mut names = None;
    let mut sample = 0u32;
    let mut rate = 0u32;
    let mut func_offset = None;
    let mut depth = 0u16;
    let mut max_watch = 0u8;
    let mut sp_offset = None;
    let mut watch_len = 0u8;
    let mut auto_canary = false;
    let mut panic_on_catch = false;

    for token in line
        .split(u8::is_ascii_whitespace)
        .filter(|t| !t.is_empty())
    {
        let eq = token
            .iter()
            .position(|&b| b == b'=')
            .ok_or((ErrorKind::NotKeyValue, token))?;
        let (name, value) = (&token[..eq], &token[eq + 1..]);
        let key = Key::from_name(name).ok_or((ErrorKind::UnknownKey, name))?;
        if seen & key.bit() != 0 {
            return Err((ErrorKind::RepeatedKey(key), name));
        }
        seen |= key.bit();
        let number = |max: u64| parse_number(value, max).map_err(|kind| (kind(key), token));
        match key {
            Key::FuncName => {
                let start = base + (value.as_ptr() as usize - line.as_ptr() as usize);
                let count = parse_list(value)?;
                let first = value.split(|&b| b == b',').next().unwrap_or(value);
                func = Some(FuncName::new(first).map_err(|kind| (kind, first))?);
                names = Some((count, (start as u32, value.len() as u32)));
            }
            Key::FuncOffset => func_offset = Some(number(u64::from(u32::MAX))? as u32),
            Key::Depth => depth = number(u64::from(MAX_DEPTH))? as u16,
            Key::MaxWatch => max_watch = number(u64::from(limits.hw_slots))? as u8,
            Key::SpOffset => sp_offset = Some(number(u64::from(limits.stack_size) - 1)? as u32),
            Key::WatchLen => {
                let len = number(u64::MAX)?;
                if !matches!(len, 0 | 1 | 2 | 4 | 8) {
                    return Err((ErrorKind::BadWatchLen, token));
                }
                watch_len = len as u8;
            }
            Key::AutoCanary => auto_canary = number(1)? == 1,
            Key::PanicOnCatch => panic_on_catch = number(1)? == 1,
            Key::Sample => sample = number(MAX_SAMPLE)? as u32,
            Key::Rate => rate = number(MAX_SAMPLE)? as u32,
        }
    }

    let (func, (func_count, span)) = match (func, names) {
        (Some(f), Some(n)) => (f, n),
        _ => return Err((ErrorKind::MissingFunc, trim(line))),
    };
    let target = match (auto_canary, watch_len, sp_offset) {
        (true, 0, None | Some(0)) | (false, 0, None | Some(0)) => WatchTarget::Canary,
        (true, _, _) => return Err((ErrorKind::CanaryConflict, trim(line))),
        (false, 0, Some(_)) => return Err((ErrorKind::OffsetWithoutLen, trim(line))),
        (false, len, offset) => WatchTarget::Local {
            sp_offset: offset.unwrap_or(0),
            len,
        },
    };
    if let WatchTarget::Local { sp_offset, len } = target {
        if u64::from(sp_offset) + u64::from(len) > u64::from(limits.stack_size) {
            return Err((ErrorKind::OutOfRange(Key::SpOffset), trim(line)));
        }
    }
    // A local or a probe offset means one function's frame.
    if func_count > 1 && (target != WatchTarget::Canary || func_offset.is_some()) {
        return Err((ErrorKind::ListNeedsCanary, trim(line)));
    }
    let spec = Spec {
        func,
        func_count,
        sample,
        rate,
        func_offset,
        depth,
        max_watch,
        target,
        panic_on_catch,
    };
    Ok((spec, span))
}

/// `line` without leading and trailing ASCII whitespace (`<[u8]>::trim_ascii`
/// is newer than the kernel's minimum Rust).
fn trim(line: &[u8]) -> &[u8] {
    let start = line.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |i| i + 1);
    &line[start..end]
}

/// Parses decimal or `0x` hex; a malformed number and one above `max` are
/// different errors (EINVAL vs ERANGE), both reported against the key.
fn parse_number(text: &[u8], max: u64) -> Result<u64, fn(Key) -> ErrorKind> {
    let (digits, radix) = match text {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (text, 10),
    };
    if digits.is_empty() {
        return Err(ErrorKind::BadNumber);
    }
    let mut value: u64 = 0;
    let mut overflow = false;
    for &c in digits {
        let digit = char::from(c)
            .to_digit(radix)
            .ok_or(ErrorKind::BadNumber as fn(Key) -> ErrorKind)?;
        match value
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(digit)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if overflow || value > max {
        return Err(ErrorKind::OutOfRange);
    }
    Ok(value)
}

/// Why a configuration was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotAscii,
    NotKeyValue,
    UnknownKey,
    RepeatedKey(Key),
    BadNumber(Key),
    OutOfRange(Key),
    BadWatchLen,
    BadFuncName,
    FuncNameTooLong,
    MissingFunc,
    CanaryConflict,
    OffsetWithoutLen,
    DuplicateFunc,
    TooManySpecs,
    EmptyListItem,
    TooManyFuncs,
    ListNeedsCanary,
}

/// Linux errno values used by the module (asm-generic/errno-base.h).
pub mod errno {
    pub const EINVAL: i32 = 22;
    pub const ERANGE: i32 = 34;
    pub const EEXIST: i32 = 17;
    pub const E2BIG: i32 = 7;
    pub const ENAMETOOLONG: i32 = 36;
}

impl ErrorKind {
    /// The errno a rejected `write()` fails with.
    pub fn errno(self) -> i32 {
        match self {
            ErrorKind::OutOfRange(_) => errno::ERANGE,
            ErrorKind::DuplicateFunc => errno::EEXIST,
            ErrorKind::TooManySpecs | ErrorKind::TooManyFuncs => errno::E2BIG,
            ErrorKind::FuncNameTooLong => errno::ENAMETOOLONG,
            _ => errno::EINVAL,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::NotAscii => f.write_str("non-ASCII or control character"),
            ErrorKind::NotKeyValue => f.write_str("expected key=value"),
            ErrorKind::UnknownKey => f.write_str("unknown key"),
            ErrorKind::RepeatedKey(k) => write!(f, "key {} given twice", k.long_name()),
            ErrorKind::BadNumber(k) => write!(f, "{} is not a decimal or 0x number", k.long_name()),
            ErrorKind::OutOfRange(k) => write!(f, "{} out of range", k.long_name()),
            ErrorKind::BadWatchLen => f.write_str("watch_len must be 0 (canary), 1, 2, 4 or 8"),
            ErrorKind::BadFuncName => f.write_str("func_name is not a symbol name"),
            ErrorKind::FuncNameTooLong => write!(f, "func_name longer than {MAX_FUNC_NAME} bytes"),
            ErrorKind::MissingFunc => f.write_str("func_name (fn) is required"),
            ErrorKind::CanaryConflict => {
                f.write_str("auto_canary=1 watches the canary: drop watch_len/sp_offset")
            }
            ErrorKind::OffsetWithoutLen => f.write_str(
                "sp_offset needs watch_len 1, 2, 4 or 8 (watch_len=0 watches the canary)",
            ),
            ErrorKind::DuplicateFunc => f.write_str("function already watched by an earlier line"),
            ErrorKind::TooManySpecs => write!(f, "more than {MAX_SPECS} watch specs"),
            ErrorKind::EmptyListItem => f.write_str("empty name in the func_name list"),
            ErrorKind::TooManyFuncs => write!(f, "more than {MAX_FUNCS} functions in one spec"),
            ErrorKind::ListNeedsCanary => f.write_str(
                "a list of functions watches each frame's canary: func_offset, sp_offset and watch_len need a single function",
            ),
        }
    }
}

/// A rejected configuration: the line, the reason and the offending text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ConfigError {
    pub line: u32,
    pub kind: ErrorKind,
    token_len: u8,
    token: [u8; 40],
}

impl ConfigError {
    fn new(line: u32, kind: ErrorKind, token: &[u8]) -> ConfigError {
        let mut copy = [0; 40];
        let len = token.len().min(copy.len());
        copy[..len].copy_from_slice(&token[..len]);
        ConfigError {
            line,
            kind,
            token_len: len as u8,
            token: copy,
        }
    }

    /// The offending token, truncated to 40 bytes.
    pub fn token(&self) -> &[u8] {
        &self.token[..usize::from(self.token_len)]
    }

    pub fn errno(&self) -> i32 {
        self.kind.errno()
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfigError({self})")
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.kind)?;
        if self.token_len > 0 {
            f.write_str(" at '")?;
            for &b in self.token() {
                if b.is_ascii_graphic() || b == b' ' {
                    write!(f, "{}", char::from(b))?;
                } else {
                    write!(f, "\\x{b:02x}")?;
                }
            }
            f.write_str("'")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text.as_bytes(), &Limits::X86_64)
    }

    fn one(text: &str) -> Spec {
        let config = parse(text).unwrap();
        assert_eq!(config.len(), 1);
        *config.get(0).unwrap()
    }

    fn kind(text: &str) -> ErrorKind {
        parse(text).unwrap_err().kind
    }

    #[test]
    fn short_and_long_names_mean_the_same() {
        let short = one("fn=test_victim fo=0x4c so=64 wl=8 dp=2 mw=3 ph=1");
        let long = one(
            "func_name=test_victim func_offset=76 sp_offset=0x40 watch_len=8 depth=2 max_watch=3 panic_on_catch=1",
        );
        assert_eq!(short, long);
        assert_eq!(short.func.as_str(), "test_victim");
        assert_eq!(short.func_offset, Some(0x4c));
        assert_eq!(one("fn=f").func_offset, None);
        assert_eq!(
            short.target,
            WatchTarget::Local {
                sp_offset: 64,
                len: 8
            }
        );
        assert_eq!(short.depth, 2);
        assert_eq!(short.max_watch, 3);
        assert!(short.panic_on_catch);
    }

    #[test]
    fn canary_is_the_default_and_explicit() {
        assert_eq!(one("fn=f fo=1").target, WatchTarget::Canary);
        assert_eq!(one("fn=f fo=1 wl=0").target, WatchTarget::Canary);
        assert_eq!(one("fn=f fo=1 ac=1").target, WatchTarget::Canary);
        assert_eq!(one("fn=f fo=1 ac=1 wl=0 so=0").target, WatchTarget::Canary);
        assert_eq!(kind("fn=f ac=1 wl=8"), ErrorKind::CanaryConflict);
        assert_eq!(kind("fn=f ac=1 so=8"), ErrorKind::CanaryConflict);
        assert_eq!(kind("fn=f so=8"), ErrorKind::OffsetWithoutLen);
    }

    #[test]
    fn canonical_form_round_trips() {
        for text in [
            "fn=a fo=0x10 so=8 wl=4",
            "fn=b fo=3 dp=7 mw=1 ph=1",
            "fn=mod:c.isra.0 fo=0 ac=1",
            "fn=d so=8 wl=8",
        ] {
            let spec = one(text);
            let printed = spec.to_string();
            assert!(printed.starts_with("func_name="), "{printed}");
            assert_eq!(one(&printed), spec, "{printed}");
        }
    }

    #[test]
    fn several_specs_comments_and_blank_lines() {
        let config = parse("# two watches\nfn=a fo=1\n\n  fn=b fo=2 so=0 wl=8 # local\n").unwrap();
        let names: std::vec::Vec<_> = config.specs().map(|s| s.func.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!((config.line_of(0), config.line_of(1)), (2, 4));
    }

    #[test]
    fn empty_input_disables() {
        for text in ["", "\n", "   \n\t\n", "# nothing\n"] {
            assert!(parse(text).unwrap().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn each_bad_input_class_has_its_error() {
        assert_eq!(kind("fn=f bogus=1"), ErrorKind::UnknownKey);
        assert_eq!(
            kind("fn=f fo=1 fo=2"),
            ErrorKind::RepeatedKey(Key::FuncOffset)
        );
        assert_eq!(
            kind("fn=f func_offset=1 fo=2"),
            ErrorKind::RepeatedKey(Key::FuncOffset)
        );
        assert_eq!(kind("fn=f fo=12z"), ErrorKind::BadNumber(Key::FuncOffset));
        assert_eq!(kind("fn=f fo=0x"), ErrorKind::BadNumber(Key::FuncOffset));
        assert_eq!(kind("fn=f fo=-1"), ErrorKind::BadNumber(Key::FuncOffset));
        assert_eq!(kind("fn=f fo="), ErrorKind::BadNumber(Key::FuncOffset));
        assert_eq!(
            kind("fn=f fo=0x100000000"),
            ErrorKind::OutOfRange(Key::FuncOffset)
        );
        assert_eq!(
            kind("fn=f fo=99999999999999999999999"),
            ErrorKind::OutOfRange(Key::FuncOffset)
        );
        assert_eq!(kind("fn=f mw=5"), ErrorKind::OutOfRange(Key::MaxWatch));
        assert_eq!(kind("fn=f ph=2"), ErrorKind::OutOfRange(Key::PanicOnCatch));
        assert_eq!(
            kind("fn=f so=16384 wl=8"),
            ErrorKind::OutOfRange(Key::SpOffset)
        );
        assert_eq!(
            kind("fn=f so=16380 wl=8"),
            ErrorKind::OutOfRange(Key::SpOffset)
        );
        assert_eq!(kind("fn=f wl=3"), ErrorKind::BadWatchLen);
        assert_eq!(kind("fn=f wl=16"), ErrorKind::BadWatchLen);
        assert_eq!(
            kind("fn=f wl=99999999999999999999"),
            ErrorKind::OutOfRange(Key::WatchLen)
        );
        assert_eq!(kind("fo=1 wl=8"), ErrorKind::MissingFunc);
        assert_eq!(kind("fn=9abc"), ErrorKind::BadFuncName);
        assert_eq!(kind("fn=a/b"), ErrorKind::BadFuncName);
        assert_eq!(kind("fn="), ErrorKind::BadFuncName);
        assert_eq!(kind("fn=f fo"), ErrorKind::NotKeyValue);
        assert_eq!(kind("fn=a\nfn=a fo=2"), ErrorKind::DuplicateFunc);
        assert_eq!(kind("fn=f\u{e9}"), ErrorKind::NotAscii);
        assert_eq!(kind("fn=f\0"), ErrorKind::NotAscii);
        let long = std::format!("fn={}", "x".repeat(MAX_FUNC_NAME + 1));
        assert_eq!(kind(&long), ErrorKind::FuncNameTooLong);
        let many: std::string::String =
            (0..=MAX_SPECS).map(|i| std::format!("fn=f{i}\n")).collect();
        assert_eq!(kind(&many), ErrorKind::TooManySpecs);
    }

    #[test]
    fn errno_per_class() {
        assert_eq!(kind("fn=f bogus=1").errno(), errno::EINVAL);
        assert_eq!(kind("fn=f mw=9").errno(), errno::ERANGE);
        assert_eq!(kind("fn=a\nfn=a").errno(), errno::EEXIST);
    }

    #[test]
    fn error_message_names_line_and_token() {
        let err = parse("fn=a fo=1\nfn=b bogus=3\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(err.to_string(), "line 2: unknown key at 'bogus'");
        let err = parse("fn=a wl=3").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 1: watch_len must be 0 (canary), 1, 2, 4 or 8 at 'wl=3'"
        );
    }

    #[test]
    fn a_spec_can_name_many_functions() {
        let input = "fn=a,b_2,mod:c ac=1 sa=64 ra=100\nfn=d so=8 wl=8";
        let config = parse(input).unwrap();
        let sweep = config.get(0).unwrap();
        assert_eq!(sweep.func.as_str(), "a");
        assert_eq!(sweep.func_count, 3);
        assert_eq!((sweep.sample, sweep.rate), (64, 100));
        let names: std::vec::Vec<_> = config.functions(0, input.as_bytes()).collect();
        assert_eq!(names, [&b"a"[..], b"b_2", b"mod:c"]);
        let names: std::vec::Vec<_> = config.functions(1, input.as_bytes()).collect();
        assert_eq!(names, [&b"d"[..]]);
        assert_eq!(
            sweep.canonical("a,b_2,mod:c").to_string(),
            "func_name=a,b_2,mod:c depth=0 max_watch=0 sp_offset=0 watch_len=0 auto_canary=1 panic_on_catch=0 sample=64 rate=100"
        );
        let again = parse(&sweep.canonical("a,b_2,mod:c").to_string()).unwrap();
        assert_eq!(again.get(0).unwrap(), sweep);
        assert_eq!(kind("fn=a,,b"), ErrorKind::EmptyListItem);
        assert_eq!(kind("fn=a,"), ErrorKind::EmptyListItem);
        assert_eq!(kind("fn=a,9b"), ErrorKind::BadFuncName);
        assert_eq!(kind("fn=a,b so=8 wl=8"), ErrorKind::ListNeedsCanary);
        assert_eq!(kind("fn=a,b fo=4"), ErrorKind::ListNeedsCanary);
        assert_eq!(kind("fn=a sa=1000001"), ErrorKind::OutOfRange(Key::Sample));
        let many: std::string::String = (0..=MAX_FUNCS).map(|i| std::format!("f{i},")).collect();
        assert_eq!(kind(&std::format!("fn={}", many.trim_end_matches(','))), ErrorKind::TooManyFuncs);
    }

    #[test]
    fn slots_claimed_are_the_sum_of_max_watch() {
        assert_eq!(parse("fn=a mw=1\nfn=b mw=2").unwrap().slots_to_claim(4), 3);
        assert_eq!(parse("fn=a mw=3\nfn=b mw=4").unwrap().slots_to_claim(4), 4);
        assert_eq!(parse("fn=a mw=1\nfn=b").unwrap().slots_to_claim(4), 4);
        assert_eq!(parse("").unwrap().slots_to_claim(4), 0);
    }

    #[test]
    fn max_watch_zero_means_only_the_slots_limit() {
        assert_eq!(one("fn=f").watch_cap(), u8::MAX);
        assert_eq!(one("fn=f mw=2").watch_cap(), 2);
    }
}
