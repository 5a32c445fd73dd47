//! Kernel symbols for instruction pointers and call chains, through the
//! project's one symbolizer (`ksw-symbols`: the plugin and `ksw symbolize`
//! use the same rules).
//!
//! Sources, first that exists wins: `--kallsyms FILE` (checked: it must be
//! kallsyms, and of the recording's kernel and boot when the recording
//! says where its kernel text starts); the copy of /proc/kallsyms that
//! `ksw record` stores in the recording; the running kernel's
//! /proc/kallsyms, only if the recording was made on this kernel release
//! and boot. Without symbols, addresses are printed in hex.

use std::cell::RefCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ksw_symbols::{Kallsyms, ReturnSite};
use rustc_hash::FxHashMap;

use crate::error::Error;
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

/// A symbol table with the text of every address it was asked for kept, so
/// a report names each address once however often it comes.
#[derive(Debug)]
pub struct Symbols {
    table: Kallsyms,
    pub source: Source,
    /// Why a table that was there is not used (shown in the report).
    pub rejected: Option<String>,
    cache: RefCell<FxHashMap<(u64, u8), Rc<str>>>,
}

const IP: u8 = 0;
const RETURN: u8 = 1;
const FUNCTION: u8 = 2;
const FUNCTION_NAME: u8 = 3;

impl Symbols {
    pub fn new(table: Kallsyms, source: Source) -> Symbols {
        Symbols {
            table,
            source,
            rejected: None,
            cache: RefCell::new(FxHashMap::default()),
        }
    }

    pub fn none() -> Symbols {
        Symbols::new(Kallsyms::default(), Source::None)
    }

    pub fn from_text(text: &str, source: Source) -> Symbols {
        Symbols::new(Kallsyms::parse(text), source)
    }

    /// Reads and checks a kallsyms file named on the command line.
    pub fn load_file(path: &Path) -> Result<Kallsyms, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::File {
            path: path.to_path_buf(),
            source,
        })?;
        Kallsyms::load(&bytes).map_err(|source| Error::Kallsyms {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Picks the best source for `recording` (see the module docs).
    pub fn choose(recording: &Recording, explicit: Option<&Path>) -> Result<Symbols, Error> {
        if let Some(path) = explicit {
            let table = Symbols::load_file(path)?;
            if let (Some(file), Some(rec)) = (table.kernel_text(), recording.kernel_text) {
                if file != rec {
                    return Err(Error::KallsymsMismatch {
                        path: path.to_path_buf(),
                        file,
                        recording: rec,
                    });
                }
            }
            return Ok(Symbols::new(table, Source::File(path.to_path_buf())));
        }
        if !recording.kallsyms_text.is_empty() {
            let table = Kallsyms::parse(&recording.kallsyms_text);
            if !table.has_no_text() {
                return Ok(Symbols::new(table, Source::Recording));
            }
        }
        let same_kernel = recording
            .os_release
            .as_deref()
            .is_some_and(|r| Some(r) == running_release().as_deref());
        let mut rejected = None;
        if same_kernel {
            if let Ok(bytes) = std::fs::read("/proc/kallsyms") {
                // kptr_restrict hides addresses as zeros: useless then.
                if let Ok(table) = Kallsyms::load(&bytes) {
                    match (table.kernel_text(), recording.kernel_text) {
                        (Some(live), Some(rec)) if live != rec => {
                            rejected = Some(format!(
                                "/proc/kallsyms is of another boot of this kernel (its _text is {live:#x}, the recording's kernel map starts at {rec:#x}): not used"
                            ));
                        }
                        _ => return Ok(Symbols::new(table, Source::Live)),
                    }
                }
            }
        }
        let mut none = Symbols::none();
        none.rejected = rejected;
        Ok(none)
    }

    fn cached(&self, addr: u64, kind: u8, make: impl FnOnce() -> String) -> Rc<str> {
        if let Some(s) = self.cache.borrow().get(&(addr, kind)) {
            return s.clone();
        }
        let s: Rc<str> = Rc::from(make());
        self.cache.borrow_mut().insert((addr, kind), s.clone());
        s
    }

    /// `name+0xoff [module]`, or the address in hex.
    pub fn describe(&self, addr: u64) -> Rc<str> {
        self.cached(addr, IP, || self.table.describe(addr))
    }

    /// The function an address is in, without offset (hex if none).
    pub fn function(&self, addr: u64) -> Rc<str> {
        self.cached(addr, FUNCTION, || {
            self.table
                .function(addr)
                .unwrap_or_else(|| format!("{addr:#x}"))
        })
    }

    /// The function an address is in, if the table knows it.
    pub fn function_name(&self, addr: u64) -> Option<Rc<str>> {
        // Cached like the others; "" stands for "not in the table" (no
        // function is named "").
        let name = self.cached(addr, FUNCTION_NAME, || {
            self.table
                .resolve(addr)
                .map(|_| self.function(addr).to_string())
                .unwrap_or_default()
        });
        (!name.is_empty()).then_some(name)
    }

    /// For a return address in a call chain (see `ksw_symbols`).
    pub fn describe_return(&self, addr: u64) -> Rc<str> {
        self.cached(addr, RETURN, || self.table.describe_return(addr))
    }

    /// True if this return address is a return hook's trampoline.
    pub fn is_trampoline(&self, addr: u64) -> bool {
        matches!(self.table.return_site(addr), ReturnSite::Trampoline { .. })
    }

    pub fn is_empty(&self) -> bool {
        self.table.has_no_text()
    }

    pub fn table(&self) -> &Kallsyms {
        &self.table
    }
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
            &*s.describe(0xffffffffa0019223),
            "ksw_test_corrupt+0x3 [kstackwatch_test]"
        );
        assert_eq!(&*s.function(0xffffffffa0019223), "ksw_test_corrupt");
        assert_eq!(&*s.describe(0xffffffff81001671), "ret_from_fork_asm+0x11");
        assert_eq!(&*s.describe(0x1234), "0x1234");
        assert_eq!(
            &*s.describe_return(0xffffffffa0019230),
            "ksw_test_corrupt+0x10 [kstackwatch_test]"
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
