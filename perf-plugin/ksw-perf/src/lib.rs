// SPDX-License-Identifier: GPL-2.0
//! KStackWatch's perf.data and tracefs-format layer.
//!
//! * [`format`](mod@format): trace-event `format` files and decoding tracepoint
//!   records field by field (integers, `char[N]`, `__data_loc`, `__rel_loc`).
//! * [`read`]: perf.data files (file mode): header, attributes, feature
//!   sections, records and samples (`PERF_SAMPLE_RAW` + callchains).
//! * [`tracing_data`]: the `HEADER_TRACING_DATA` blob (formats, kallsyms,
//!   printk formats, saved cmdlines), parsed and built.
//! * [`write`](mod@write): a perf.data writer whose files Debian's perf 6.1 reads.
//! * [`kallsyms`]: `/proc/kallsyms` text as a symbol table.
//! * [`attr`], [`abi`]: `perf_event_attr` and the ABI numbers.
//! * [`check`]: decode a whole file, collecting every error.
//!
//! Pure Rust, no `unsafe`. Parsing never panics: truncated or corrupt
//! input gives a [`ReadError`] naming the byte offset of the problem.
//! Everything is little-endian except trace records, whose byte order the
//! tracing data gives.
//!
//! ```no_run
//! use ksw_perf::read::{PerfFile, Record};
//! let file = PerfFile::open("perf.data")?;
//! for rec in file.records() {
//!     if let Record::Sample(s) = rec? {
//!         if s.is_event("kstackwatch", "ksw_hit") {
//!             println!("{} wrote {:#x}", s.str("writer_comm")?, s.u64("new_value")?);
//!         }
//!     }
//! }
//! # Ok::<(), ksw_perf::ReadError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod abi;
pub mod attr;
mod bytes;
pub mod check;
pub mod format;
pub mod kallsyms;
pub mod read;
pub mod tracing_data;
pub mod write;

pub use attr::PerfEventAttr;
pub use format::{DecodeError, EventFormat, Field, FieldKind, FormatError, Value};
pub use kallsyms::Kallsyms;
pub use read::{DamagedFeature, PerfFile, ReadError, Record, Sample};
pub use write::{EventSpec, Writer, WriterConfig};
