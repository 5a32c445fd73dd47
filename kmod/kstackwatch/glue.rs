// SPDX-License-Identifier: GPL-2.0
//! The unsafe edge: declarations of the C layer (`ksw_glue.h`) and thin safe
//! wrappers. Nothing here decides anything.
//!
//! Types: on x86_64 Linux `unsigned long` and `size_t` are 64-bit, the
//! same as `usize`; C `bool` is Rust `bool`.

use core::ffi::{c_char, c_int, c_void};
use core::ptr::NonNull;

use crate::ksw_core::config::{FuncName, MAX_FUNC_NAME};

/// `struct pt_regs`, only ever passed back to C.
#[repr(C)]
pub(crate) struct PtRegs {
    _opaque: [u8; 0],
}

#[repr(C)]
struct RawProbe {
    _opaque: [u8; 0],
}

pub(crate) const SYM_LEN: usize = 128;

/// `struct ksw_symbol`.
#[repr(C)]
pub(crate) struct Symbol {
    pub(crate) addr: usize,
    pub(crate) offset: usize,
    pub(crate) size: usize,
    pub(crate) name: [u8; SYM_LEN],
}

impl Symbol {
    const fn zeroed() -> Symbol {
        Symbol {
            addr: 0,
            offset: 0,
            size: 0,
            name: [0; SYM_LEN],
        }
    }

    pub(crate) fn name(&self) -> &[u8] {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(SYM_LEN);
        &self.name[..end]
    }
}

extern "C" {
    fn ksw_glue_init() -> c_int;
    fn ksw_glue_exit();

    fn ksw_probe_create(
        func: *const c_char,
        offset: u32,
        owner: *mut c_void,
        sym: *mut Symbol,
        err: *mut c_int,
        kprobe_ok: *mut bool,
    ) -> *mut RawProbe;
    fn ksw_probe_enable(p: *mut RawProbe);
    fn ksw_probe_disable(p: *mut RawProbe);
    fn ksw_probe_destroy(p: *mut RawProbe);
    fn ksw_probe_missed(p: *mut RawProbe, kprobe_missed: *mut u64, fprobe_missed: *mut u64);
    fn ksw_probe_hooked_calls(p: *mut RawProbe, innermost: *mut usize) -> u32;
    fn ksw_synchronize();

    fn ksw_slots_alloc(max: u32) -> c_int;
    fn ksw_slots_free();
    fn ksw_slot_program_local(slot: u32, addr: usize, len: u8) -> bool;
    fn ksw_kick_remote();
    fn ksw_sync_all_wait();
    fn ksw_online_cpus() -> u32;
    fn ksw_slot_cpu_state(cpu: u32, slot: u32, addr: *mut usize) -> c_int;
    fn ksw_nr_cpu_ids() -> u32;

    fn ksw_current_task() -> usize;
    fn ksw_current_pid() -> c_int;
    fn ksw_current_comm(comm: *mut u8);
    fn ksw_current_stack(lo: *mut usize, hi: *mut usize);
    fn ksw_current_canary() -> u64;
    fn ksw_frame_of(regs: *mut PtRegs) -> usize;
    fn ksw_frame_on_chain(
        regs: *mut PtRegs,
        frame: usize,
        func_start: usize,
        func_end: usize,
    ) -> bool;
    fn ksw_read_nofault(addr: usize, len: u8, value: *mut u64) -> bool;
    fn ksw_read_text(addr: usize, buf: *mut u8, len: usize) -> bool;
    fn ksw_nmi_nesting() -> u32;
    fn ksw_in_this_module(ip: usize) -> bool;
    fn ksw_now_ns() -> u64;
    fn ksw_thread_size() -> u32;
    fn ksw_hw_slots() -> u32;

    fn ksw_trace_arm(
        id: u64,
        slot: u8,
        spec: u8,
        depth: u32,
        probe_ip: usize,
        addr: usize,
        len: u8,
        sp: usize,
        value: u64,
    );
    fn ksw_trace_hit(
        id: u64,
        slot: u8,
        addr: usize,
        len: u8,
        writer_ip: usize,
        old_value: u64,
        new_value: u64,
        victim_pid: c_int,
        victim_comm: *const u8,
        probe_ip: usize,
    );
    fn ksw_trace_disarm(
        id: u64,
        slot: u8,
        addr: usize,
        arm_value: u64,
        exit_value: u64,
        hits: u32,
        corrupted: bool,
        reason: u8,
    );
    fn ksw_log_hit(
        id: u64,
        addr: usize,
        writer_ip: usize,
        old_value: u64,
        new_value: u64,
        victim_pid: c_int,
        victim_comm: *const u8,
    );
    fn ksw_panic_caught(id: u64, writer_ip: usize);
}

/// Registers the procfs file and the task-exit hook.
pub(crate) fn init() -> Result<(), c_int> {
    // SAFETY: called once from module init, before anything else here.
    match unsafe { ksw_glue_init() } {
        0 => Ok(()),
        err => Err(err),
    }
}

/// Removes the procfs file, tears the configuration down, waits for stragglers.
pub(crate) fn exit() {
    // SAFETY: called once from module exit, after a successful init().
    unsafe { ksw_glue_exit() }
}

/// One spec's kprobe + fprobe pair; unregistered on drop.
pub(crate) struct Probe(NonNull<RawProbe>);

// SAFETY: the C object is only used through the ksw_probe_* functions, which
// may be called from any task; the handlers it triggers take shared data.
unsafe impl Send for Probe {}
// SAFETY: as above; every method takes the C side's own synchronization.
unsafe impl Sync for Probe {}

/// A failed probe registration.
pub(crate) struct ProbeError {
    pub(crate) errno: c_int,
    /// The kprobe registered, so the symbol exists and the offset is an
    /// instruction boundary: the fprobe (exit hook) part failed.
    pub(crate) kprobe_ok: bool,
}

impl Probe {
    /// Registers both probes disabled. `owner` is handed back to the
    /// handlers and must outlive the probe.
    pub(crate) fn create(
        func: &FuncName,
        offset: u32,
        owner: *mut c_void,
    ) -> Result<(Probe, Symbol), ProbeError> {
        let mut name = [0u8; MAX_FUNC_NAME + 1];
        name[..func.as_bytes().len()].copy_from_slice(func.as_bytes());
        let mut sym = Symbol::zeroed();
        let mut err: c_int = 0;
        let mut kprobe_ok = false;
        // SAFETY: `name` is NUL-terminated (FuncName is at most MAX_FUNC_NAME
        // bytes and has no NUL); the out-pointers are valid locals; C copies
        // the name before returning.
        let raw = unsafe {
            ksw_probe_create(
                name.as_ptr().cast(),
                offset,
                owner,
                &mut sym,
                &mut err,
                &mut kprobe_ok,
            )
        };
        match NonNull::new(raw) {
            Some(probe) => Ok((Probe(probe), sym)),
            None => Err(ProbeError {
                errno: err,
                kprobe_ok,
            }),
        }
    }

    pub(crate) fn enable(&self) {
        // SAFETY: self.0 is a live probe returned by ksw_probe_create.
        unsafe { ksw_probe_enable(self.0.as_ptr()) }
    }

    pub(crate) fn disable(&self) {
        // SAFETY: as in enable().
        unsafe { ksw_probe_disable(self.0.as_ptr()) }
    }

    /// (kprobe misses, fprobe misses) counted by the kernel.
    pub(crate) fn missed(&self) -> (u64, u64) {
        let (mut kp, mut fp) = (0, 0);
        // SAFETY: as in enable(); the out-pointers are valid locals.
        unsafe { ksw_probe_missed(self.0.as_ptr(), &mut kp, &mut fp) };
        (kp, fp)
    }

    /// Calls of the function with a hooked exit on the current task, and the
    /// return-address slot of the newest one.
    pub(crate) fn hooked_calls(&self) -> (u32, usize) {
        let mut innermost = 0;
        // SAFETY: as in enable(); only reads the current task's own list.
        let count = unsafe { ksw_probe_hooked_calls(self.0.as_ptr(), &mut innermost) };
        (count, innermost)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // SAFETY: self.0 is live and dropped exactly once; unregistering
        // waits for running handlers.
        unsafe { ksw_probe_destroy(self.0.as_ptr()) }
    }
}

/// Waits until no probe or breakpoint handler started before the call runs.
pub(crate) fn synchronize() {
    // SAFETY: process context (config writes), as synchronize_rcu requires.
    unsafe { ksw_synchronize() }
}

/// Allocates up to `max` hardware slots on every CPU.
pub(crate) fn slots_alloc(max: u32) -> Result<u32, c_int> {
    // SAFETY: process context with the config lock held; no slot allocated.
    let ret = unsafe { ksw_slots_alloc(max) };
    u32::try_from(ret).map_err(|_| ret)
}

pub(crate) fn slots_free() {
    // SAFETY: process context with the config lock held, nothing armed.
    unsafe { ksw_slots_free() }
}

/// Programs this CPU's debug register for `slot` (None: the idle dummy).
pub(crate) fn program_local(slot: usize, target: Option<(usize, u8)>) -> bool {
    let (addr, len) = target.unwrap_or((0, 0));
    // SAFETY: C saves and disables interrupts and checks `slot`.
    unsafe { ksw_slot_program_local(slot as u32, addr, len) }
}

/// Makes every other online CPU sync its debug registers soon; never waits.
pub(crate) fn kick_remote() {
    // SAFETY: callable from any context; defers itself out of NMI context.
    unsafe { ksw_kick_remote() }
}

/// Makes every online CPU sync and waits for all of them.
pub(crate) fn sync_all_wait() {
    // SAFETY: process context (config writes, module exit).
    unsafe { ksw_sync_all_wait() }
}

pub(crate) fn online_cpus() -> u32 {
    // SAFETY: reads a counter.
    unsafe { ksw_online_cpus() }
}

/// What `cpu`'s register for `slot` watches: None if the CPU has no
/// breakpoint there, Some(None) when idle, Some(Some(addr)) when armed.
pub(crate) fn slot_cpu_state(cpu: u32, slot: usize) -> Option<Option<usize>> {
    let mut addr = 0;
    // SAFETY: C bounds-checks cpu and slot; `addr` is a valid local.
    match unsafe { ksw_slot_cpu_state(cpu, slot as u32, &mut addr) } {
        0 => Some(None),
        1 => Some(Some(addr)),
        _ => None,
    }
}

pub(crate) fn nr_cpu_ids() -> u32 {
    // SAFETY: reads a constant set at boot.
    unsafe { ksw_nr_cpu_ids() }
}

pub(crate) fn current_task() -> usize {
    // SAFETY: `current` is always valid.
    unsafe { ksw_current_task() }
}

pub(crate) fn current_pid() -> i32 {
    // SAFETY: `current` is always valid.
    unsafe { ksw_current_pid() }
}

pub(crate) fn current_comm() -> [u8; 16] {
    let mut comm = [0u8; 16];
    // SAFETY: C writes exactly 16 bytes into the buffer.
    unsafe { ksw_current_comm(comm.as_mut_ptr()) };
    comm
}

/// `[lo, hi)` of the current task's stack.
pub(crate) fn current_stack() -> (usize, usize) {
    let (mut lo, mut hi) = (0, 0);
    // SAFETY: the out-pointers are valid locals.
    unsafe { ksw_current_stack(&mut lo, &mut hi) };
    (lo, hi)
}

pub(crate) fn current_canary() -> u64 {
    // SAFETY: reads a field of `current`.
    unsafe { ksw_current_canary() }
}

/// The return-address slot of the frame `regs` describes, or None.
pub(crate) fn frame_of(regs: *mut PtRegs) -> Option<usize> {
    // SAFETY: `regs` came from the probe handler and is live during it.
    let frame = unsafe { ksw_frame_of(regs) };
    (frame != 0).then_some(frame)
}

/// Whether the call owning `frame` and running `[func_start, func_end)` is
/// on the call chain of `regs`.
pub(crate) fn frame_on_chain(
    regs: *mut PtRegs,
    frame: usize,
    func_start: usize,
    func_end: usize,
) -> bool {
    // SAFETY: `regs` came from the breakpoint handler and is live during it.
    unsafe { ksw_frame_on_chain(regs, frame, func_start, func_end) }
}

/// Reads `len` (≤ 8) bytes at `addr` without faulting.
pub(crate) fn read_nofault(addr: usize, len: u8) -> Option<u64> {
    let mut value = 0;
    // SAFETY: copy_from_kernel_nofault handles any address; `value` is a local.
    unsafe { ksw_read_nofault(addr, len, &mut value) }.then_some(value)
}

/// Copies machine code at `addr` into `buf`.
pub(crate) fn read_text(addr: usize, buf: &mut [u8]) -> bool {
    // SAFETY: `buf` is writable for its length; C reads with
    // copy_from_kernel_nofault, which tolerates any address.
    unsafe { ksw_read_text(addr, buf.as_mut_ptr(), buf.len()) }
}

pub(crate) fn nmi_nesting() -> u32 {
    // SAFETY: reads preempt_count.
    unsafe { ksw_nmi_nesting() }
}

pub(crate) fn in_this_module(ip: usize) -> bool {
    // SAFETY: compares an address with this module's layout.
    unsafe { ksw_in_this_module(ip) }
}

/// Monotonic nanoseconds, NMI-safe.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: ktime_get_mono_fast_ns is NMI-safe.
    unsafe { ksw_now_ns() }
}

pub(crate) fn thread_size() -> u32 {
    // SAFETY: returns a constant.
    unsafe { ksw_thread_size() }
}

pub(crate) fn hw_slots() -> u32 {
    // SAFETY: returns a constant.
    unsafe { ksw_hw_slots() }
}

/// `ksw_arm` trace event.
#[allow(clippy::too_many_arguments)]
pub(crate) fn trace_arm(
    id: u64,
    slot: usize,
    spec: u8,
    depth: u32,
    probe_ip: usize,
    addr: usize,
    len: u8,
    sp: usize,
    value: u64,
) {
    // SAFETY: plain values; tracepoints may fire in any context.
    unsafe { ksw_trace_arm(id, slot as u8, spec, depth, probe_ip, addr, len, sp, value) }
}

/// `ksw_hit` trace event.
#[allow(clippy::too_many_arguments)]
pub(crate) fn trace_hit(
    id: u64,
    slot: usize,
    addr: usize,
    len: u8,
    writer_ip: usize,
    old_value: u64,
    new_value: u64,
    victim_pid: i32,
    victim_comm: &[u8; 16],
    probe_ip: usize,
) {
    // SAFETY: `victim_comm` points at 16 readable bytes, as C copies.
    unsafe {
        ksw_trace_hit(
            id,
            slot as u8,
            addr,
            len,
            writer_ip,
            old_value,
            new_value,
            victim_pid,
            victim_comm.as_ptr(),
            probe_ip,
        )
    }
}

/// `ksw_disarm` trace event.
#[allow(clippy::too_many_arguments)]
pub(crate) fn trace_disarm(
    id: u64,
    slot: usize,
    addr: usize,
    arm_value: u64,
    exit_value: u64,
    hits: u32,
    corrupted: bool,
    reason: u8,
) {
    // SAFETY: plain values.
    unsafe {
        ksw_trace_disarm(
            id, slot as u8, addr, arm_value, exit_value, hits, corrupted, reason,
        )
    }
}

/// The rate-limited dmesg line for a hit.
pub(crate) fn log_hit(
    id: u64,
    addr: usize,
    writer_ip: usize,
    old_value: u64,
    new_value: u64,
    victim_pid: i32,
    victim_comm: &[u8; 16],
) {
    // SAFETY: `victim_comm` is NUL-terminated within 16 bytes (ksw_current_comm).
    unsafe {
        ksw_log_hit(
            id,
            addr,
            writer_ip,
            old_value,
            new_value,
            victim_pid,
            victim_comm.as_ptr(),
        )
    }
}

/// `panic_on_catch=1`: stop the machine with the writer named. Declared
/// as returning so objtool does not see a call falling off the function.
pub(crate) fn panic_caught(id: u64, writer_ip: usize) {
    // SAFETY: panic() may be called from any context.
    unsafe { ksw_panic_caught(id, writer_ip) }
}
