//! A kernel text symbol table read from a `/proc/kallsyms`-style file, for
//! addresses the host's libtraceevent cannot name (perf 6.1 registers no
//! module symbols).
//!
//! Pure Rust, no FFI: tests include this file directly.

/// Offsets at or beyond this are not attributed to a symbol: such an
/// address lies in a gap of the table (between the kernel's last symbol and
/// the first module, or the table is from another kernel), not in a
/// function. The largest x86-64 kernel functions are well under 256 KiB.
pub const MAX_FUNCTION_SIZE: u64 = 0x40000;

/// One text symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub addr: u64,
    pub name: String,
    /// The module, for `name\t[module]` lines.
    pub module: Option<String>,
}

/// Text symbols sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymTab {
    syms: Vec<Symbol>,
}

/// Where an address falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    pub name: &'a str,
    pub offset: u64,
    pub module: Option<&'a str>,
}

impl Location<'_> {
    /// `name+0xoff`, plus ` [module]` when asked and known.
    pub fn describe(&self, with_module: bool) -> String {
        let mut s = if self.offset == 0 {
            self.name.to_owned()
        } else {
            format!("{}+{:#x}", self.name, self.offset)
        };
        if let (true, Some(m)) = (with_module, self.module) {
            s.push_str(" [");
            s.push_str(m);
            s.push(']');
        }
        s
    }
}

impl SymTab {
    /// Parses `ADDR TYPE NAME [\t[MODULE]]` lines, keeping text symbols
    /// (`t`/`T`) with a non-zero address. Other lines are skipped: a
    /// `/proc/kallsyms` read without privilege (all addresses zero) gives an
    /// empty table.
    pub fn parse(text: &str) -> SymTab {
        let mut syms: Vec<Symbol> = text
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                let addr = u64::from_str_radix(words.next()?, 16).ok()?;
                let kind = words.next()?;
                let name = words.next()?;
                if addr == 0 || !matches!(kind, "t" | "T") {
                    return None;
                }
                let module = words
                    .next()
                    .and_then(|m| m.strip_prefix('[')?.strip_suffix(']'))
                    .map(str::to_owned);
                Some(Symbol {
                    addr,
                    name: name.to_owned(),
                    module,
                })
            })
            .collect();
        syms.sort_by_key(|s| s.addr);
        SymTab { syms }
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The symbol holding `addr`: the last one starting at or below it,
    /// if a later symbol (its end) starts above `addr` and the offset is
    /// below [`MAX_FUNCTION_SIZE`]. An address past the last symbol has no
    /// known end and is not matched.
    pub fn lookup(&self, addr: u64) -> Option<Location<'_>> {
        let idx = self.syms.partition_point(|s| s.addr <= addr);
        let sym_end = self.syms.get(idx)?.addr;
        let sym = self.syms.get(idx.checked_sub(1)?)?;
        // Symbols sharing an address: report the first one listed.
        let first = self.syms[..idx]
            .iter()
            .rposition(|s| s.addr != sym.addr)
            .map_or(0, |i| i + 1);
        let sym = &self.syms[first];
        let offset = addr - sym.addr;
        if addr >= sym_end || offset >= MAX_FUNCTION_SIZE {
            return None;
        }
        Some(Location {
            name: &sym.name,
            offset,
            module: sym.module.as_deref(),
        })
    }

    /// The module of the symbol `name` starting at `start` (0: any start).
    pub fn module_of(&self, name: &str, start: u64) -> Option<&str> {
        self.syms
            .iter()
            .find(|s| s.name == name && (start == 0 || s.addr == start))
            .and_then(|s| s.module.as_deref())
    }
}
