//! A read-only memory mapping of a recording, so a report's memory does not
//! grow with the file: pages are read on demand and handed back to the
//! kernel (`MADV_DONTNEED`) once the records in them have been used.
//!
//! Like perf, which maps perf.data too, this assumes nobody rewrites the
//! file while it is being read.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

struct Inner {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and never moves; sharing the pointer
// between threads only shares reads.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `open` mapped, once, when the last
        // holder (and so the last borrowed slice) is gone.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A shared, read-only mapping of a whole file.
#[derive(Clone)]
pub struct Mapping(Arc<Inner>);

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mapping({} bytes)", self.0.len)
    }
}

impl Mapping {
    pub fn open(path: &Path) -> io::Result<Mapping> {
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::other("file too large"))?;
        if len == 0 || !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular, non-empty file"));
        }
        // SAFETY: a private read-only mapping of a file we opened; the
        // kernel validates the arguments. The pages stay valid until munmap
        // (in Drop), whatever happens to the descriptor.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Mapping(Arc::new(Inner { ptr, len })))
    }

    /// Gives back to the kernel the pages from the one holding `from` up to
    /// the last one wholly before `to`: the caller has used everything
    /// before `to` (a page straddling `from` was only partly done when the
    /// previous call left it, and is done now). The pages stay mapped: a
    /// later read faults them in again from the file, with the same bytes,
    /// so slices into them remain valid.
    pub fn release(&self, from: u64, to: u64) {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        let start = from / page * page;
        let end = (to / page * page).min(self.0.len as u64);
        if start >= end {
            return;
        }
        // SAFETY: [start, end) is page-aligned and inside the mapping. On a
        // private read-only file mapping, MADV_DONTNEED only drops clean
        // pages, which refault from the unchanged file.
        unsafe {
            libc::madvise(
                self.0.ptr.as_ptr().add(start as usize).cast(),
                (end - start) as usize,
                libc::MADV_DONTNEED,
            )
        };
    }
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for as long as `self`
        // (an Arc holder) lives; nothing writes to it.
        unsafe { std::slice::from_raw_parts(self.0.ptr.as_ptr(), self.0.len) }
    }
}
