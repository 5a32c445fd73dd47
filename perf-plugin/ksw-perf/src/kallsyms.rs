// SPDX-License-Identifier: GPL-2.0
//! `/proc/kallsyms` text as a sorted symbol table.
//!
//! Each line is `address type name` with an optional `\t[module]`
//! (`kernel/kallsyms.c`, `s_show`). A symbol is taken to end where the
//! next higher address starts; the last symbol has no end. Lines with
//! address 0 (what `kptr_restrict` shows unprivileged readers), undefined
//! (`U`, `w`) and absolute (`a`, `A`) symbols are dropped, and so are lines
//! that do not parse.

use std::fmt;

/// One kallsyms line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Start address.
    pub addr: u64,
    /// Type letter (`t`, `T`, `d`, ...).
    pub kind: char,
    /// Symbol name.
    pub name: String,
    /// Module name without brackets, `None` for vmlinux.
    pub module: Option<String>,
}

/// An address resolved to `symbol+offset [module]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// Name of the symbol that holds the address.
    pub name: &'a str,
    /// Distance from its start.
    pub offset: u64,
    /// Its module, `None` for vmlinux.
    pub module: Option<&'a str>,
}

impl fmt::Display for Resolved<'_> {
    /// `ksw_test_corrupt+0x3 [kstackwatch_test]`, or `schedule+0x2a`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}", self.name, self.offset)?;
        if let Some(m) = self.module {
            write!(f, " [{m}]")?;
        }
        Ok(())
    }
}

/// A symbol table sorted by address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Kallsyms {
    syms: Vec<Symbol>,
}

impl Kallsyms {
    /// Parse kallsyms text (see the module docs for what is kept).
    pub fn parse(text: &str) -> Kallsyms {
        let mut syms: Vec<Symbol> = text.lines().filter_map(parse_line).collect();
        // Stable: aliases keep their file order; `resolve` picks the first.
        syms.sort_by_key(|s| s.addr);
        Kallsyms { syms }
    }

    /// Number of symbols kept.
    pub fn len(&self) -> usize {
        self.syms.len()
    }

    /// True if no symbol was kept.
    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The symbols, by address.
    pub fn symbols(&self) -> &[Symbol] {
        &self.syms
    }

    /// The first symbol called `name`.
    pub fn lookup(&self, name: &str) -> Option<&Symbol> {
        self.syms.iter().find(|s| s.name == name)
    }

    /// The symbol holding `addr`: the one with the highest start `<= addr`
    /// (the first listed among aliases), if `addr` is before the next
    /// symbol's start.
    pub fn resolve(&self, addr: u64) -> Option<Resolved<'_>> {
        let after = self.syms.partition_point(|s| s.addr <= addr);
        let start = self.syms.get(after.checked_sub(1)?)?.addr;
        let first = self.syms.partition_point(|s| s.addr < start);
        let s = self.syms.get(first)?;
        Some(Resolved {
            name: &s.name,
            offset: addr - s.addr,
            module: s.module.as_deref(),
        })
    }
}

fn parse_line(line: &str) -> Option<Symbol> {
    let mut it = line.split_whitespace();
    let addr = u64::from_str_radix(it.next()?, 16).ok()?;
    let mut kind_s = it.next()?.chars();
    let kind = kind_s.next()?;
    if kind_s.next().is_some() || addr == 0 || matches!(kind, 'U' | 'w' | 'a' | 'A') {
        return None;
    }
    let name = it.next()?.to_string();
    let module = match it.next() {
        Some(m) => Some(m.strip_prefix('[')?.strip_suffix(']')?.to_string()),
        None => None,
    };
    Some(Symbol {
        addr,
        kind,
        name,
        module,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves() {
        let k = Kallsyms::parse(
            "ffffffffa0019220 t ksw_test_corrupt\t[kstackwatch_test]\n\
             ffffffffa0019240 t ksw_test_next\t[kstackwatch_test]\n\
             ffffffff81001660 T ret_from_fork_asm\n\
             ffffffff81001660 T alias_of_it\n\
             0000000000000000 A fixed_percpu_data\n\
             ffffffff81001680 U undef\n\
             garbage line\n\
             ffffffff81001690 t badmod\t[oops\n",
        );
        assert_eq!(k.len(), 4);
        let r = k.resolve(0xffffffffa0019223).unwrap();
        assert_eq!(r.to_string(), "ksw_test_corrupt+0x3 [kstackwatch_test]");
        assert_eq!(r.module, Some("kstackwatch_test"));
        let r = k.resolve(0xffffffff81001671).unwrap();
        assert_eq!(r.to_string(), "ret_from_fork_asm+0x11");
        assert!(k.resolve(0xffffffff81001000).is_none());
        assert!(k.resolve(0).is_none());
        assert_eq!(k.lookup("ksw_test_next").unwrap().kind, 't');
        assert!(Kallsyms::parse("").is_empty());
    }
}
