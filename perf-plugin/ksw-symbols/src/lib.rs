// SPDX-License-Identifier: GPL-2.0
//! The kernel symbolizer shared by `ksw report`, the libtraceevent plugin
//! and (through `ksw symbolize`) `trace-scripts/ksw-report.py`: one set of
//! rules, so every tool names an address the same way.
//!
//! Rules:
//! - Input is `/proc/kallsyms` text (`ADDR TYPE NAME [\t[MODULE]]`), read
//!   lossily (a stray non-UTF-8 byte costs one character, not the file).
//! - Only text symbols (`t`, `T`, `W`) name code. A symbol ends where the
//!   next symbol of any kind starts (so a data symbol bounds the function
//!   before it but never names an address), and at most
//!   [`MAX_FUNCTION_SIZE`] past its start: an address in a gap, or looked up
//!   in the table of another kernel, stays hex instead of getting a wrong
//!   name with a huge offset.
//! - Aliases at one address: the first listed names it.
//! - Rust symbols are demangled (`ksw_test_main::writer_thread`).
//! - Text: `name+0xoff [module]` (the offset always, the module when there
//!   is one), else `0x...`.
//! - Return addresses of a call chain are looked up one byte back (the call
//!   is the instruction before them), except on the return-hook
//!   trampolines (`return_to_handler` of function_graph,
//!   `arch_rethook_trampoline` of fprobe exits and kretprobes), which a
//!   hooked function's return address is replaced with: those are named as
//!   such, and the chain continues in the hook's own stack, not on the
//!   kernel stack the unwinder walked.

use std::fmt;
use std::sync::Arc;

/// Offsets at or beyond this are not attributed to a symbol (the largest
/// x86-64 kernel functions are well under 256 KiB).
pub const MAX_FUNCTION_SIZE: u64 = 0x40000;

/// The trampolines a return hook puts in place of a return address, and
/// what hooks with them.
pub const TRAMPOLINES: &[(&str, &str)] = &[
    ("return_to_handler", "function_graph return hook"),
    (
        "arch_rethook_trampoline",
        "rethook return hook (fprobe exit, kretprobe)",
    ),
    ("__kretprobe_trampoline", "kretprobe return hook"),
    ("kretprobe_trampoline", "kretprobe return hook"),
];

/// What a trampoline entry of a call chain says about the rest of it.
pub const TRAMPOLINE_NOTE: &str = "chain continues in the return-hook stack";

/// One kallsyms line that was kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Start address.
    pub addr: u64,
    /// Type letter (`t`, `T`, `d`, ...).
    pub kind: char,
    /// Symbol name as listed (mangled for Rust).
    pub name: String,
    /// Module name without brackets, `None` for vmlinux.
    pub module: Option<Arc<str>>,
}

impl Symbol {
    /// A text (code) symbol.
    pub fn is_text(&self) -> bool {
        matches!(self.kind, 't' | 'T' | 'W')
    }
}

/// An address resolved to a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// Name of the text symbol holding the address, as listed.
    pub name: &'a str,
    /// Distance from its start.
    pub offset: u64,
    /// Its module, `None` for vmlinux.
    pub module: Option<&'a str>,
}

impl Resolved<'_> {
    /// The name, demangled if it is a Rust symbol.
    pub fn function(&self) -> String {
        demangle(self.name)
    }

    /// The return-hook trampoline this is the entry of, if it is one.
    pub fn trampoline(&self) -> Option<&'static str> {
        if self.offset != 0 {
            return None;
        }
        TRAMPOLINES
            .iter()
            .find(|(n, _)| *n == self.name)
            .map(|(_, what)| *what)
    }
}

impl fmt::Display for Resolved<'_> {
    /// `ksw_test_corrupt+0x3 [kstackwatch_test]`, `schedule+0x2a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_location(f, self.name, self.offset, self.module)
    }
}

/// `name+0xoff [module]` with the name demangled: the one text form of a
/// location (also for names a host tool found, e.g. libtraceevent's).
pub fn format_location(name: &str, offset: u64, module: Option<&str>) -> String {
    let mut s = String::new();
    let _ = write_location(&mut s, name, offset, module);
    s
}

fn write_location(
    out: &mut impl fmt::Write,
    name: &str,
    offset: u64,
    module: Option<&str>,
) -> fmt::Result {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => write!(out, "{d:#}")?,
        Err(_) => out.write_str(name)?,
    }
    write!(out, "+{offset:#x}")?;
    if let Some(m) = module {
        write!(out, " [{m}]")?;
    }
    Ok(())
}

/// `ksw_test_main::writer_thread` for `_RNvCs..._13ksw_test_main13writer_thread`;
/// C names unchanged.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

/// Why a file is not usable as kallsyms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KallsymsError {
    /// Nothing in it looks like kallsyms.
    #[error("line {line}: not a kallsyms line (ADDRESS TYPE NAME [[MODULE]]): {text:?}")]
    NotKallsyms {
        /// 1-based line number of the first line that does not parse.
        line: usize,
        /// That line (shortened).
        text: String,
    },
    /// Every address is zero: read without privilege (`kptr_restrict`).
    #[error("every address is 0 (read without privilege? kernel.kptr_restrict hides them): copy /proc/kallsyms as root")]
    Hidden,
    /// Symbols, but no function among them.
    #[error("no text (function) symbols")]
    NoText,
    /// Empty.
    #[error("empty")]
    Empty,
}

/// A text symbol with its end.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Text {
    addr: u64,
    /// First address past it.
    end: u64,
    /// Index into `Kallsyms::syms`.
    sym: usize,
}

/// A kallsyms table: every symbol kept, and the text symbols with their ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kallsyms {
    syms: Vec<Symbol>,
    text: Vec<Text>,
    /// Lines that did not parse (line number, text), the first few.
    bad: Vec<(usize, String)>,
    bad_count: usize,
    lines: usize,
    zero: usize,
}

/// How many unparsable lines a table remembers.
const BAD_KEPT: usize = 4;

impl Kallsyms {
    /// Parses kallsyms text, keeping what parses: undefined (`U`, `w`),
    /// absolute (`a`, `A`) and zero-address lines are dropped.
    pub fn parse(text: &str) -> Kallsyms {
        Kallsyms::from_bytes(text.as_bytes())
    }

    /// [`Kallsyms::parse`] of bytes, decoded line by line, lossily.
    pub fn from_bytes(bytes: &[u8]) -> Kallsyms {
        let mut k = Kallsyms::default();
        let mut modules: Vec<Arc<str>> = Vec::new();
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = String::from_utf8_lossy(raw);
            if line.trim().is_empty() {
                continue;
            }
            k.lines += 1;
            match parse_line(&line, &mut modules) {
                Line::Symbol(s) => k.syms.push(s),
                Line::Dropped => {}
                Line::Zero => k.zero += 1,
                Line::Bad => {
                    k.bad_count += 1;
                    if k.bad.len() < BAD_KEPT {
                        let mut text: String = line.chars().take(60).collect();
                        if text.len() < line.len() {
                            text.push_str("...");
                        }
                        k.bad.push((i + 1, text));
                    }
                }
            }
        }
        // Stable: aliases keep their file order; the first names an address.
        k.syms.sort_by_key(|s| s.addr);
        k.index();
        k
    }

    /// Parses and checks that the text is kallsyms: most lines parse, some
    /// are functions, addresses are real.
    pub fn load(bytes: &[u8]) -> Result<Kallsyms, KallsymsError> {
        let k = Kallsyms::from_bytes(bytes);
        if k.lines == 0 {
            return Err(KallsymsError::Empty);
        }
        if k.zero == k.lines {
            return Err(KallsymsError::Hidden);
        }
        // A real kallsyms parses whole; allow a few odd lines.
        if k.bad_count * 10 > k.lines || k.syms.is_empty() {
            let (line, text) = k.bad.first().cloned().unwrap_or((1, String::new()));
            return Err(KallsymsError::NotKallsyms { line, text });
        }
        if k.text.is_empty() {
            return Err(KallsymsError::NoText);
        }
        Ok(k)
    }

    fn index(&mut self) {
        self.text.clear();
        let syms = &self.syms;
        let mut i = 0;
        while i < syms.len() {
            let addr = syms[i].addr;
            // The group of symbols at this address; the next start ends them.
            let mut j = i;
            while j < syms.len() && syms[j].addr == addr {
                j += 1;
            }
            let next = syms.get(j).map_or(u64::MAX, |s| s.addr);
            if let Some(first_text) = (i..j).find(|&k| syms[k].is_text()) {
                self.text.push(Text {
                    addr,
                    end: next.min(addr.saturating_add(MAX_FUNCTION_SIZE)),
                    sym: first_text,
                });
            }
            i = j;
        }
    }

    /// Number of symbols kept.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// True if no symbol was kept.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// True if there is no function to name addresses with.
    pub fn has_no_text(&self) -> bool {
        self.text.is_empty()
    }

    /// The symbols, by address.
    pub fn symbols(&self) -> &[Symbol] {
        &self.syms
    }

    /// Lines that did not parse: how many, and the first few (line, text).
    pub fn bad_lines(&self) -> (usize, &[(usize, String)]) {
        (self.bad_count, &self.bad)
    }

    /// The first symbol called `name`.
    pub fn lookup(&self, name: &str) -> Option<&Symbol> {
        self.syms.iter().find(|s| s.name == name)
    }

    /// Where the kernel's text starts (`_text`, else `_stext`): compared with
    /// a recording's kernel map, it tells whether the table is of the same
    /// kernel and boot (KASLR).
    pub fn kernel_text(&self) -> Option<u64> {
        ["_text", "_stext"]
            .iter()
            .find_map(|n| {
                self.syms
                    .iter()
                    .find(|s| s.name == *n && s.module.is_none())
            })
            .map(|s| s.addr)
    }

    /// The function holding `addr` (see the crate docs for the rules).
    pub fn resolve(&self, addr: u64) -> Option<Resolved<'_>> {
        let after = self.text.partition_point(|t| t.addr <= addr);
        let t = self.text.get(after.checked_sub(1)?)?;
        if addr >= t.end {
            return None;
        }
        let s = &self.syms[t.sym];
        Some(Resolved {
            name: &s.name,
            offset: addr - t.addr,
            module: s.module.as_deref(),
        })
    }

    /// `name+0xoff [module]`, or the address in hex.
    pub fn describe(&self, addr: u64) -> String {
        match self.resolve(addr) {
            Some(r) => r.to_string(),
            None => format!("{addr:#x}"),
        }
    }

    /// The function an address is in (demangled), without offset.
    pub fn function(&self, addr: u64) -> Option<String> {
        self.resolve(addr).map(|r| r.function())
    }

    /// A return address of a call chain: the call is the instruction before
    /// it, so it is looked up at `addr - 1` (and shown at `addr`), unless it
    /// is the entry of a return-hook trampoline.
    pub fn describe_return(&self, addr: u64) -> String {
        match self.return_site(addr) {
            ReturnSite::Trampoline { name, what } => {
                format!("{name} ({what}: {TRAMPOLINE_NOTE})")
            }
            ReturnSite::Call(r) => r.to_string(),
            ReturnSite::Unknown => format!("{addr:#x}"),
        }
    }

    /// What a return address of a call chain is.
    pub fn return_site(&self, addr: u64) -> ReturnSite<'_> {
        if let Some(r) = self.resolve(addr) {
            if let Some(what) = r.trampoline() {
                return ReturnSite::Trampoline { name: r.name, what };
            }
        }
        match self.resolve(addr.wrapping_sub(1)) {
            Some(r) => ReturnSite::Call(Resolved {
                offset: r.offset + 1,
                ..r
            }),
            None => ReturnSite::Unknown,
        }
    }
}

/// A return address, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnSite<'a> {
    /// In a function (the call before it).
    Call(Resolved<'a>),
    /// A return hook's trampoline replaced the real return address.
    Trampoline {
        /// Its symbol.
        name: &'a str,
        /// Which hook.
        what: &'static str,
    },
    /// Not in any function of the table.
    Unknown,
}

enum Line {
    Symbol(Symbol),
    Dropped,
    Zero,
    Bad,
}

fn parse_line(line: &str, modules: &mut Vec<Arc<str>>) -> Line {
    let mut it = line.split_whitespace();
    let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
        return Line::Bad;
    };
    let Ok(addr) = u64::from_str_radix(addr, 16) else {
        return Line::Bad;
    };
    let mut kind_chars = kind.chars();
    let (Some(kind), None) = (kind_chars.next(), kind_chars.next()) else {
        return Line::Bad;
    };
    if !kind.is_ascii_alphabetic() {
        return Line::Bad;
    }
    let module = match it.next() {
        Some(m) => match m.strip_prefix('[').and_then(|m| m.strip_suffix(']')) {
            Some(m) => Some(match modules.iter().find(|k| &***k == m) {
                Some(k) => k.clone(),
                None => {
                    let k: Arc<str> = Arc::from(m);
                    modules.push(k.clone());
                    k
                }
            }),
            None => return Line::Bad,
        },
        None => None,
    };
    if it.next().is_some() {
        return Line::Bad;
    }
    if addr == 0 {
        return Line::Zero;
    }
    if matches!(kind, 'U' | 'w' | 'a' | 'A') {
        return Line::Dropped;
    }
    Line::Symbol(Symbol {
        addr,
        kind,
        name: name.to_string(),
        module,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "ffffffffa0019220 t ksw_test_corrupt\t[kstackwatch_test]\n\
ffffffffa0019230 t ksw_test_overflow\t[kstackwatch_test]\n\
ffffffffa0019500 t _RNvCs8CN0OWU7N66_13ksw_test_main13writer_thread\t[kstackwatch_test]\n\
ffffffffa0019600 t ksw_test_end\t[kstackwatch_test]\n\
ffffffff81000000 T _text\n\
ffffffff81000000 T startup_64\n\
ffffffff81001660 T ret_from_fork_asm\n\
ffffffff81001680 T rewind_stack_and_make_dead\n\
ffffffff810016a0 T return_to_handler\n\
ffffffff810016c0 T after_return\n\
ffffffff81002000 D some_data\n\
ffffffff82000000 D __stop_runtime_ptr_USER_PTR_MAX\n";

    #[test]
    fn names_module_and_kernel_addresses() {
        let k = Kallsyms::parse(TABLE);
        assert_eq!(
            k.describe(0xffffffffa0019223),
            "ksw_test_corrupt+0x3 [kstackwatch_test]"
        );
        assert_eq!(
            k.function(0xffffffffa0019223).as_deref(),
            Some("ksw_test_corrupt")
        );
        assert_eq!(k.describe(0xffffffff81001671), "ret_from_fork_asm+0x11");
        assert_eq!(k.describe(0xffffffff81000000), "_text+0x0");
        assert_eq!(k.describe(0x1234), "0x1234");
        assert_eq!(k.kernel_text(), Some(0xffffffff81000000));
        // A return address at the start of the next symbol belongs to the
        // call before it.
        assert_eq!(
            k.describe_return(0xffffffffa0019230),
            "ksw_test_corrupt+0x10 [kstackwatch_test]"
        );
    }

    #[test]
    fn rust_symbols_are_demangled() {
        let k = Kallsyms::parse(TABLE);
        assert_eq!(
            k.describe(0xffffffffa00195b4),
            "ksw_test_main::writer_thread+0xb4 [kstackwatch_test]"
        );
    }

    #[test]
    fn data_symbols_never_name_code_and_gaps_stay_hex() {
        let k = Kallsyms::parse(TABLE);
        // Past after_return, the data symbol ends it: no name.
        assert_eq!(k.describe(0xffffffff81002010), "0xffffffff81002010");
        // 474 MB past a data symbol: hex, not __stop_runtime_ptr_...+0x1c4f7173.
        assert_eq!(k.describe(0xffffffff9c4f7173), "0xffffffff9c4f7173");
        // The last module function has no known end: capped.
        assert!(k
            .resolve(0xffffffffa0019600 + MAX_FUNCTION_SIZE - 1)
            .is_some());
        assert!(k.resolve(0xffffffffa0019600 + MAX_FUNCTION_SIZE).is_none());
    }

    #[test]
    fn trampolines_are_named_as_such() {
        let k = Kallsyms::parse(TABLE);
        assert_eq!(
            k.describe_return(0xffffffff810016a0),
            "return_to_handler (function_graph return hook: chain continues in the return-hook stack)"
        );
        assert!(matches!(
            k.return_site(0xffffffff810016a0),
            ReturnSite::Trampoline {
                name: "return_to_handler",
                ..
            }
        ));
        // Inside it, an ordinary location.
        assert_eq!(k.describe(0xffffffff810016a4), "return_to_handler+0x4");
    }

    #[test]
    fn aliases_name_by_the_first_listed() {
        let k = Kallsyms::parse(
            "ffffffff81000000 T a\nffffffff81000000 T a_alias\nffffffff81000100 T b\n",
        );
        assert_eq!(k.describe(0xffffffff81000010), "a+0x10");
    }

    #[test]
    fn validation() {
        assert!(Kallsyms::load(TABLE.as_bytes()).is_ok());
        let passwd =
            b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n";
        assert_eq!(
            Kallsyms::load(passwd),
            Err(KallsymsError::NotKallsyms {
                line: 1,
                text: "root:x:0:0:root:/root:/bin/bash".into()
            })
        );
        assert_eq!(
            Kallsyms::load(b"0000000000000000 T _stext\n0000000000000000 t f\t[m]\n"),
            Err(KallsymsError::Hidden)
        );
        assert_eq!(Kallsyms::load(b""), Err(KallsymsError::Empty));
        assert_eq!(
            Kallsyms::load(b"ffffffff81000000 D data\n"),
            Err(KallsymsError::NoText)
        );
        // A stray non-UTF-8 byte costs a character, not the file.
        let mut odd = TABLE.as_bytes().to_vec();
        odd.extend_from_slice(b"ffffffffa0019700 t bad\xffname\t[kstackwatch_test]\n");
        let k = Kallsyms::load(&odd).unwrap();
        assert_eq!(
            k.describe(0xffffffffa0019701),
            "bad\u{fffd}name+0x1 [kstackwatch_test]"
        );
    }

    #[test]
    fn dropped_lines() {
        let k = Kallsyms::parse(
            "ffffffffa0019220 t ksw_test_corrupt\t[kstackwatch_test]\n\
             0000000000000000 A fixed_percpu_data\n\
             ffffffff81001680 U undef\n\
             garbage line\n\
             ffffffff81001690 t badmod\t[oops\n",
        );
        assert_eq!(k.len(), 1);
        assert_eq!(k.bad_lines().0, 2);
        assert_eq!(k.bad_lines().1[0].0, 4);
    }
}
