// SPDX-License-Identifier: GPL-2.0
//! `/proc/kallsyms` text as a symbol table: the project's one symbolizer,
//! `ksw-symbols` (text symbols only, bounded by the next symbol and 256 KiB,
//! module names, Rust names demangled, return-hook trampolines named),
//! re-exported so the tracing data's kallsyms copy resolves like every
//! other table.

pub use ksw_symbols::{Kallsyms, KallsymsError, Resolved, ReturnSite, Symbol};
