//! A read-only memory mapping of a recording (memmap2), so a report's
//! memory does not grow with the file: the kernel is told the file is read
//! sequentially, pages are read on demand and handed back
//! (`MADV_DONTNEED`) once the records in them have been used.
//!
//! Like perf, which maps perf.data too, this assumes nobody rewrites the
//! file while it is being read.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use memmap2::{Advice, Mmap, UncheckedAdvice};

/// A shared, read-only mapping of a whole file.
#[derive(Clone)]
pub struct Mapping(Arc<Mmap>);

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mapping({} bytes)", self.0.len())
    }
}

impl Mapping {
    pub fn open(path: &Path) -> io::Result<Mapping> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if meta.len() == 0 || !meta.is_file() {
            return Err(io::Error::other("not a regular, non-empty file"));
        }
        // SAFETY: a private read-only mapping of a file we opened. Like perf,
        // this relies on nobody truncating or rewriting the recording while
        // it is read (a truncation would fault, not give wrong bytes).
        let map = unsafe { Mmap::map(&file)? };
        // Only a hint: the kernel reads ahead more.
        let _ = map.advise(Advice::Sequential);
        Ok(Mapping(Arc::new(map)))
    }

    /// Gives back to the kernel the pages from the one holding `from` up to
    /// the last one wholly before `to`: the caller has used everything
    /// before `to` (a page straddling `from` was only partly done when the
    /// previous call left it, and is done now). The pages stay mapped: a
    /// later read faults them in again from the file, with the same bytes,
    /// so slices into them remain valid.
    pub fn release(&self, from: u64, to: u64) {
        let page = page_size();
        let start = from / page * page;
        let end = (to / page * page).min(self.0.len() as u64);
        if start >= end {
            return;
        }
        // SAFETY: the range is page-aligned and inside the mapping. On a
        // private read-only file mapping, MADV_DONTNEED only drops clean
        // pages, which refault from the unchanged file with the same bytes:
        // no reference into the mapping sees a change.
        let _ = unsafe {
            self.0.unchecked_advise_range(
                UncheckedAdvice::DontNeed,
                start as usize,
                (end - start) as usize,
            )
        };
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).unwrap_or(4096).max(1)
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
