//! Kernel symbols for instruction pointers and call chains.
//!
//! Sources, first that exists wins: `--kallsyms FILE`; the copy of
//! /proc/kallsyms that `ksw record` stores in the recording; the running
//! kernel's /proc/kallsyms, only if the recording says it was made on this
//! kernel release. Without symbols, addresses are printed in hex.

use std::fmt;
use std::path::{Path, PathBuf};

use ksw_perf::Kallsyms;

use crate::events::Recording;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Recording,
    Live,
    None,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Recording => f.write_str("the recording's kallsyms"),
            Source::Live => f.write_str("/proc/kallsyms of the running kernel"),
            Source::None => f.write_str("none (addresses in hex)"),
        }
    }
}

#[derive(Debug)]
pub struct Symbols {
    table: Kallsyms,
    pub source: Source,
}

impl Symbols {
    pub fn none() -> Symbols {
        Symbols {
            table: Kallsyms::parse(""),
            source: Source::None,
        }
    }

    pub fn from_text(text: &str, source: Source) -> Symbols {
        Symbols {
            table: Kallsyms::parse(text),
            source,
        }
    }

    /// Picks the best source for `recording` (see the module docs).
    pub fn choose(recording: &Recording, explicit: Option<&Path>) -> Result<Symbols, String> {
        if let Some(path) = explicit {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(Symbols::from_text(&text, Source::File(path.to_path_buf())));
        }
        if !recording.kallsyms.is_empty() {
            return Ok(Symbols {
                table: recording.kallsyms.clone(),
                source: Source::Recording,
            });
        }
        let same_kernel = recording
            .os_release
            .as_deref()
            .is_some_and(|r| Some(r) == running_release().as_deref());
        if same_kernel {
            if let Ok(text) = std::fs::read_to_string("/proc/kallsyms") {
                let table = Kallsyms::parse(&text);
                // kptr_restrict hides addresses as zeros: useless then.
                if table.symbols().iter().any(|s| s.addr != 0) {
                    return Ok(Symbols {
                        table,
                        source: Source::Live,
                    });
                }
            }
        }
        Ok(Symbols::none())
    }

    /// `name+0xoff [module]`, or the address in hex. Rust symbols (kernel
    /// Rust uses v0 mangling) are shown demangled.
    pub fn describe(&self, addr: u64) -> String {
        match self.table.resolve(addr) {
            Some(r) => format_symbol(r.name, r.offset, r.module),
            None => format!("{addr:#x}"),
        }
    }

    /// The function an address is in, without offset.
    pub fn function(&self, addr: u64) -> Option<String> {
        self.table.resolve(addr).map(|r| demangle(r.name))
    }

    /// For a return address in a call chain: the call is the instruction
    /// before it, which matters when the call ends a function.
    pub fn describe_return(&self, addr: u64) -> String {
        match self.table.resolve(addr.saturating_sub(1)) {
            Some(r) => format_symbol(r.name, r.offset + 1, r.module),
            None => format!("{addr:#x}"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// `ksw_test_main::writer_thread` for `_RNvCs..._13ksw_test_main13writer_thread`;
/// C names unchanged.
pub fn demangle(name: &str) -> String {
    match rustc_demangle::try_demangle(name) {
        Ok(d) => format!("{d:#}"),
        Err(_) => name.to_string(),
    }
}

fn format_symbol(name: &str, offset: u64, module: Option<&str>) -> String {
    let module = module.map(|m| format!(" [{m}]")).unwrap_or_default();
    format!("{}+{offset:#x}{module}", demangle(name))
}

fn running_release() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string())
}

/// The part of a hit's call chain that belongs to the writer: the kernel
/// records the chain from the breakpoint handler, through the #DB entry,
/// into the interrupted writer; the writer's part starts at `writer_ip`.
pub fn writer_chain(callchain: &[u64], writer_ip: u64) -> &[u64] {
    match callchain.iter().position(|&a| a == writer_ip) {
        Some(i) => &callchain[i..],
        None => callchain,
    }
}

/// The victim's part of an arm's call chain: from the probed function on
/// (the probe point is `probe_ip`; the chain holds the address after the
/// probed instruction, at most 15 bytes further).
pub fn victim_chain(callchain: &[u64], probe_ip: u64) -> &[u64] {
    match callchain
        .iter()
        .position(|&a| (probe_ip..=probe_ip + 15).contains(&a))
    {
        Some(i) => &callchain[i..],
        None => callchain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KALLSYMS: &str = "ffffffffa0019220 t ksw_test_corrupt\t[kstackwatch_test]\n\
ffffffffa0019230 t ksw_test_overflow\t[kstackwatch_test]\n\
ffffffff81001660 T ret_from_fork_asm\n\
ffffffff81001680 T rewind_stack_and_make_dead\n";

    #[test]
    fn describes_module_and_kernel_addresses() {
        let s = Symbols::from_text(KALLSYMS, Source::None);
        assert_eq!(
            s.describe(0xffffffffa0019223),
            "ksw_test_corrupt+0x3 [kstackwatch_test]"
        );
        assert_eq!(
            s.function(0xffffffffa0019223).as_deref(),
            Some("ksw_test_corrupt")
        );
        assert_eq!(s.describe(0xffffffff81001671), "ret_from_fork_asm+0x11");
        assert_eq!(s.describe(0x1234), "0x1234");
        // A return address at the very start of the next symbol belongs to
        // the call before it.
        assert_eq!(
            s.describe_return(0xffffffffa0019230),
            "ksw_test_corrupt+0x10 [kstackwatch_test]"
        );
    }

    #[test]
    fn rust_symbols_are_demangled() {
        let s = Symbols::from_text(
            "ffffffffa0019500 t _RNvCs8CN0OWU7N66_13ksw_test_main13writer_thread\t[kstackwatch_test]\n",
            Source::None,
        );
        assert_eq!(
            s.describe(0xffffffffa00195b4),
            "ksw_test_main::writer_thread+0xb4 [kstackwatch_test]"
        );
    }

    #[test]
    fn chains_are_cut_where_the_writer_and_victim_start() {
        let chain = [1, 2, 0xa0, 0xb0];
        assert_eq!(writer_chain(&chain, 0xa0), &[0xa0, 0xb0]);
        assert_eq!(writer_chain(&chain, 0xff), &chain);
        assert_eq!(victim_chain(&[1, 0x107, 3], 0x100), &[0x107, 3]);
    }
}
