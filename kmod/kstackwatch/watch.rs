// SPDX-License-Identifier: GPL-2.0
//! A watched function: the spec and what the function's machine code says
//! about its frame (the probe point, the watched slot, every instruction
//! where that slot dies). Built in process context when a configuration is
//! written; shared read-only with the handlers of its probes. A spec naming
//! many functions (a sweep) has one per function.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use kernel::prelude::*;

use crate::glue::{self, Function};
use crate::ksw_core::config::{errno, Spec, WatchTarget};
use crate::ksw_core::frame::Target;
use crate::ksw_core::layout::{
    self, ArmProbe, CanaryStore, CfaRule, Entry, LayoutError, Rel, ReleasePoint,
};

/// Most places a slot can die at (returns and tail calls of one function).
pub(crate) const MAX_RELEASE_POINTS: usize = 32;
/// Largest function decoded.
const MAX_FUNCTION_SIZE: usize = 64 * 1024;

const ENOMEM: i32 = 12;
const EIO: i32 = 5;
const EILSEQ: i32 = 84;
const EOPNOTSUPP: i32 = 95;
const ENODATA: i32 = 61;
const EFBIG: i32 = 27;

/// What happened at one function, for /proc/kstackwatch and sweeps.
#[derive(Default)]
pub(crate) struct FuncStats {
    /// Calls that reached the arming probe.
    pub(crate) calls: AtomicU64,
    /// Frames armed.
    pub(crate) armed: AtomicU64,
    /// Writes reported into its frames.
    pub(crate) hits: AtomicU64,
}

impl FuncStats {
    pub(crate) fn get(&self) -> (u64, u64, u64) {
        (
            self.calls.load(Ordering::Relaxed),
            self.armed.load(Ordering::Relaxed),
            self.hits.load(Ordering::Relaxed),
        )
    }
}

pub(crate) struct Watch {
    /// Unique per module load: the per-task depth and the slot table key
    /// on it.
    pub(crate) id: u32,
    /// The configuration it belongs to: it arms only while that one is
    /// active.
    pub(crate) generation: u32,
    /// Index of the spec in the configuration.
    pub(crate) index: u8,
    pub(crate) spec: Spec,
    pub(crate) function: Function,
    /// The function's code as read before any probe of ours went into it;
    /// a later configuration watching the same function decodes this copy.
    pub(crate) code: KVVec<u8>,
    /// The probe point, and whether it was found by decoding.
    pub(crate) arm_off: u32,
    pub(crate) arm_auto: bool,
    /// Where the arming kprobe really is.
    pub(crate) arm: ArmProbe,
    /// How the arming probe finds the frame's CFA.
    pub(crate) arm_cfa: CfaRule,
    pub(crate) target: Target,
    /// The watched slot relative to the CFA (or realigned base).
    pub(crate) slot: Rel,
    pub(crate) cap: u8,
    pub(crate) stats: FuncStats,
    releases: [ReleasePoint; MAX_RELEASE_POINTS],
    nr_releases: usize,
}

impl Watch {
    /// Where the slot dies, one kprobe each.
    pub(crate) fn releases(&self) -> &[ReleasePoint] {
        &self.releases[..self.nr_releases]
    }

    pub(crate) fn release_offsets(&self) -> [u32; MAX_RELEASE_POINTS] {
        let mut offs = [0; MAX_RELEASE_POINTS];
        for (o, r) in offs.iter_mut().zip(self.releases()) {
            *o = r.off;
        }
        offs
    }

    /// The address the arming probe is at (what `ksw_arm.probe_ip` says).
    pub(crate) fn probe_ip(&self) -> usize {
        self.function.start + self.arm_off as usize
    }

    pub(crate) fn contains(&self, ip: usize) -> bool {
        ip >= self.function.start && ip - self.function.start < self.function.size
    }
}

/// A spec's functions by start address, for the fprobe hooks, which get
/// the entry ip. It points at the spec's watches, which outlive it.
pub(crate) struct FuncIndex {
    starts: KVVec<usize>,
    watches: KVVec<*const Watch>,
}

// SAFETY: the pointers are to watches that are never mutated (atomics
// aside) and outlive the index (see configure.rs: the index, and the
// fprobe using it, go before the watches); any task may read them.
unsafe impl Sync for FuncIndex {}
// SAFETY: as above.
unsafe impl Send for FuncIndex {}

impl FuncIndex {
    /// `watches` must be sorted by start address.
    pub(crate) fn new(watches: &[&Watch]) -> Result<FuncIndex, kernel::alloc::AllocError> {
        let mut starts = KVVec::with_capacity(watches.len(), GFP_KERNEL)?;
        let mut ptrs = KVVec::with_capacity(watches.len(), GFP_KERNEL)?;
        for w in watches {
            starts.push(w.function.start, GFP_KERNEL)?;
            ptrs.push(*w as *const Watch, GFP_KERNEL)?;
        }
        Ok(FuncIndex {
            starts,
            watches: ptrs,
        })
    }

    pub(crate) fn starts(&self) -> &[usize] {
        &self.starts
    }

    /// The watched function containing `ip`.
    pub(crate) fn lookup(&self, ip: usize) -> Option<&Watch> {
        let i = match self.starts.binary_search(&ip) {
            Ok(i) => i,
            Err(0) => return None,
            Err(i) => i - 1,
        };
        // SAFETY: the pointer is to a watch that outlives `self` (type docs).
        let watch = unsafe { &**self.watches.get(i)? };
        watch.contains(ip).then_some(watch)
    }
}

/// What a failed name lookup means.
pub(crate) fn lookup_error(errno: i32) -> WatchError {
    match -errno {
        ENOMEM => WatchError::NoMemory,
        e => WatchError::NotFound(e),
    }
}

/// Why a spec cannot be watched.
pub(crate) enum WatchError {
    NoMemory,
    NotFound(i32),
    TooLarge(usize),
    Unreadable,
    Layout(LayoutError),
    OutsideFunction { offset: u32, size: usize },
    NoFrame,
    NoCanary,
    CanaryAfterProbe { store: u32, probe: u32 },
    CanaryOutOfReach,
    Probe { errno: i32, offset: Option<u32> },
}

impl WatchError {
    pub(crate) fn errno(&self) -> i32 {
        match self {
            WatchError::NoMemory => ENOMEM,
            WatchError::NotFound(e) => *e,
            WatchError::TooLarge(_) => EFBIG,
            WatchError::Unreadable => EIO,
            WatchError::Layout(LayoutError::NotInstructionStart { .. }) => EILSEQ,
            WatchError::Layout(
                LayoutError::Unreached { .. } | LayoutError::ProbeOnBranch { .. },
            ) => errno::EINVAL,
            WatchError::Layout(_) => EOPNOTSUPP,
            WatchError::OutsideFunction { .. } => errno::ERANGE,
            WatchError::NoFrame | WatchError::CanaryAfterProbe { .. } => errno::EINVAL,
            WatchError::NoCanary => ENODATA,
            WatchError::CanaryOutOfReach => EOPNOTSUPP,
            WatchError::Probe { errno, .. } => *errno,
        }
    }
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchError::NoMemory => f.write_str("out of memory"),
            WatchError::NotFound(e) => write!(f, "function not found (error {e})"),
            WatchError::TooLarge(size) => write!(
                f,
                "function is {size} bytes, more than the {MAX_FUNCTION_SIZE} decoded"
            ),
            WatchError::Unreadable => f.write_str("cannot read the function's code"),
            WatchError::Layout(e) => write!(f, "{e}: its frame cannot be watched safely"),
            WatchError::OutsideFunction { offset, size } => {
                write!(f, "func_offset {offset:#x} is outside the function (size {size:#x})")
            }
            WatchError::NoFrame => f.write_str(
                "the function sets up no stack frame: give func_offset (and sp_offset/watch_len)",
            ),
            WatchError::NoCanary => f.write_str(
                "no stack-protector canary store in the function's code: watch a local with sp_offset and watch_len",
            ),
            WatchError::CanaryAfterProbe { store, probe } => write!(
                f,
                "func_offset {probe:#x} runs before the canary is stored (at +{store:#x}): probe at or after it"
            ),
            WatchError::CanaryOutOfReach => f.write_str(
                "the canary's slot cannot be located from the probe point's registers",
            ),
            WatchError::Probe {
                errno,
                offset: Some(off),
            } => write!(f, "the kernel refused a kprobe at +{off:#x} (error {errno})"),
            WatchError::Probe {
                errno,
                offset: None,
            } => write!(
                f,
                "the function has no ftrace entry (notrace, inlined or Rust code): its calls cannot be tracked (error {errno})"
            ),
        }
    }
}

/// The machine code of `function`: `cached` if a watch of the current
/// configuration has it (our own probes are in the live text now), else
/// read from memory.
fn code_of(function: &Function, cached: Option<&[u8]>) -> Result<KVVec<u8>, WatchError> {
    if function.size > MAX_FUNCTION_SIZE {
        return Err(WatchError::TooLarge(function.size));
    }
    let mut code =
        KVVec::from_elem(0u8, function.size, GFP_KERNEL).map_err(|_| WatchError::NoMemory)?;
    match cached {
        Some(c) if c.len() == code.len() => code.copy_from_slice(c),
        _ => {
            if !glue::read_text(function.start, &mut code) {
                return Err(WatchError::Unreadable);
            }
        }
    }
    Ok(code)
}

/// Works out where one function of `spec` arms and where its slot dies.
/// `cached` finds the pristine code of a function the current
/// configuration watches.
pub(crate) fn plan<'c>(
    index: u8,
    generation: u32,
    spec: &Spec,
    function: Function,
    cached: impl Fn(usize) -> Option<&'c [u8]>,
) -> Result<Watch, WatchError> {
    let code = code_of(&function, cached(function.start))?;
    let mut work = KVVec::from_elem(Entry::EMPTY, code.len().max(1), GFP_KERNEL)
        .map_err(|_| WatchError::NoMemory)?;
    let layout = layout::analyze(&code, &mut work).map_err(WatchError::Layout)?;

    let arm_auto = spec.func_offset.is_none();
    let mut arm_off = match spec.func_offset {
        Some(off) if off as usize >= function.size => {
            return Err(WatchError::OutsideFunction {
                offset: off,
                size: function.size,
            })
        }
        Some(off) => off,
        None => layout.prologue_end().ok_or(WatchError::NoFrame)?,
    };
    // On an IBT kernel kprobes move a probe at +0 past the ENDBR.
    if arm_off == 0 && code.starts_with(&[0xf3, 0x0f, 0x1e, 0xfa]) {
        arm_off = 4;
    }
    let site = layout.probe_site(arm_off).map_err(WatchError::Layout)?;
    let (target, slot) = match spec.target {
        WatchTarget::Local { sp_offset, len } => (
            Target::Local { sp_offset, len },
            site.after.sp.plus(sp_offset as i32),
        ),
        WatchTarget::Canary => {
            let store: CanaryStore = layout.canary().ok_or(WatchError::NoCanary)?;
            if store.off > arm_off {
                return Err(WatchError::CanaryAfterProbe {
                    store: store.off,
                    probe: arm_off,
                });
            }
            let addr = site
                .addr_of(store.slot)
                .ok_or(WatchError::CanaryOutOfReach)?;
            (Target::Canary(addr), store.slot)
        }
    };
    let mut releases = [ReleasePoint::NONE; MAX_RELEASE_POINTS];
    let nr_releases = layout
        .release_points(slot, &mut releases)
        .map_err(WatchError::Layout)?;
    let arm = layout.arm_probe(&site, &releases[..nr_releases]);
    drop(work);
    Ok(Watch {
        id: crate::state::new_func_id(),
        generation,
        index,
        spec: *spec,
        function,
        code,
        arm_off,
        arm_auto,
        arm,
        arm_cfa: site.cfa,
        target,
        slot,
        cap: spec.watch_cap(),
        stats: FuncStats::default(),
        releases,
        nr_releases,
    })
}
