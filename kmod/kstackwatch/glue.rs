// SPDX-License-Identifier: GPL-2.0
//! The unsafe edge: safe wrappers over the C layer. The raw declarations
//! live in the private `ffi` module; nothing else in the crate reaches C
//! directly. Nothing here decides anything.

use core::ffi::{c_int, c_void};
use core::marker::PhantomData;
use core::ptr::NonNull;

use kernel::bindings::pt_regs;
use kernel::prelude::*;

use crate::ksw_core::config::FuncName;
use crate::ksw_core::events::{ArmRecord, DisarmRecord, HitRecord, COMM_LEN};

#[path = "ffi.rs"]
mod ffi;

pub(crate) use ffi::SeqFile;

/// The registers a probe or breakpoint handler was given, for the
/// duration of that handler.
pub(crate) struct Regs<'a> {
    raw: NonNull<pt_regs>,
    _handler: PhantomData<&'a mut pt_regs>,
}

impl Regs<'_> {
    /// # Safety
    ///
    /// `raw` points at the live `pt_regs` of the running kprobe, fprobe or
    /// breakpoint handler, valid and not accessed by anyone else for `'a`.
    pub(crate) unsafe fn from_raw<'a>(raw: *mut pt_regs) -> Option<Regs<'a>> {
        NonNull::new(raw).map(|raw| Regs {
            raw,
            _handler: PhantomData,
        })
    }

    fn get(&self) -> &pt_regs {
        // SAFETY: valid for the handler's duration (`from_raw`'s contract).
        unsafe { self.raw.as_ref() }
    }

    pub(crate) fn sp(&self) -> u64 {
        self.get().sp as u64
    }

    pub(crate) fn bp(&self) -> u64 {
        self.get().bp as u64
    }

    pub(crate) fn ip(&self) -> u64 {
        self.get().ip as u64
    }

    /// The CFA of the frame these registers are in (one ORC unwind step).
    pub(crate) fn unwind_cfa(&self) -> Option<u64> {
        // SAFETY: live register set of the current handler (`from_raw`).
        let cfa = unsafe { ffi::ksw_unwind_cfa(self.raw.as_ptr()) };
        (cfa != 0).then_some(cfa as u64)
    }

    fn as_ptr(&self) -> *mut pt_regs {
        self.raw.as_ptr()
    }
}

/// A kernel function as kallsyms knows it.
pub(crate) struct Function {
    pub(crate) start: usize,
    pub(crate) size: usize,
    name: [u8; ffi::SYM_LEN],
}

impl Function {
    fn from_symbol(sym: &ffi::Symbol) -> Function {
        Function {
            start: sym.start,
            size: sym.size,
            name: sym.name,
        }
    }

    /// "name" or "name [module]".
    pub(crate) fn name(&self) -> &str {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..end]).unwrap_or("?")
    }
}

fn empty_symbol() -> ffi::Symbol {
    ffi::Symbol {
        start: 0,
        size: 0,
        name: [0; ffi::SYM_LEN],
    }
}

/// Resolves many names at once (one RCU grace period for all, not one
/// each): a result per name, in order; Err(errno) as the kernel gave it.
pub(crate) fn lookup_functions<'a>(
    names: impl Iterator<Item = &'a FuncName> + Clone,
) -> Result<KVVec<Result<Function, c_int>>, kernel::alloc::AllocError> {
    let mut text = KVVec::new();
    let mut n = 0usize;
    for name in names.clone() {
        text.extend_from_slice(name.as_bytes(), GFP_KERNEL)?;
        text.push(0, GFP_KERNEL)?;
        n += 1;
    }
    let mut syms = KVVec::with_capacity(n, GFP_KERNEL)?;
    let mut errs = KVVec::from_elem(0 as c_int, n, GFP_KERNEL)?;
    for _ in 0..n {
        syms.push(empty_symbol(), GFP_KERNEL)?;
    }
    // SAFETY: `text` holds `n` NUL-terminated names (a FuncName has no
    // NUL); `syms` and `errs` have `n` elements; process context.
    unsafe {
        ffi::ksw_lookup_functions(
            text.as_ptr().cast(),
            n as u32,
            syms.as_mut_ptr(),
            errs.as_mut_ptr(),
        )
    };
    let mut out = KVVec::with_capacity(n, GFP_KERNEL)?;
    for (sym, &err) in syms.iter().zip(errs.iter()) {
        out.push(
            if err == 0 {
                Ok(Function::from_symbol(sym))
            } else {
                Err(err)
            },
            GFP_KERNEL,
        )?;
    }
    Ok(out)
}

/// Copies machine code at `addr` into `buf`.
pub(crate) fn read_text(addr: usize, buf: &mut [u8]) -> bool {
    // SAFETY: `buf` is writable for its length; C reads without faulting.
    unsafe { ffi::ksw_read_text(addr, buf.as_mut_ptr(), buf.len()) }
}

/// A failed probe registration.
pub(crate) struct ProbeError {
    pub(crate) errno: c_int,
    /// The offset the kernel refused to probe (None: the fprobe).
    pub(crate) offset: Option<u32>,
}

/// A spec's fprobe over its functions; unregistered on drop.
pub(crate) struct Fprobe(NonNull<ffi::RawFprobe>);

// SAFETY: the C object is only used through the ksw_fprobe_* functions,
// which may be called from any task.
unsafe impl Send for Fprobe {}
// SAFETY: as above; `&self` methods only flip a flag or read a counter.
unsafe impl Sync for Fprobe {}

impl Fprobe {
    /// Registers the fprobe (disabled) over the functions at `starts`.
    ///
    /// # Safety
    ///
    /// `owner` is handed to the entry and return hooks and must stay valid
    /// (and not be mutated) until the returned `Fprobe` is dropped.
    pub(crate) unsafe fn create(
        starts: &[usize],
        owner: *const c_void,
    ) -> Result<Fprobe, ProbeError> {
        let mut err: c_int = 0;
        // SAFETY: the slice gives pointer and length; `err` is a local;
        // `owner` outlives the fprobe (this function's contract); process
        // context.
        let raw = unsafe {
            ffi::ksw_fprobe_create(starts.as_ptr(), starts.len() as u32, owner, &mut err)
        };
        NonNull::new(raw).map(Fprobe).ok_or(ProbeError {
            errno: err,
            offset: None,
        })
    }

    pub(crate) fn enable(&self) {
        // SAFETY: self.0 is live (destroyed only in drop).
        unsafe { ffi::ksw_fprobe_enable(self.0.as_ptr()) }
    }

    /// Calls fprobe could not hook (return-hook pool empty, recursion).
    pub(crate) fn missed(&self) -> u64 {
        // SAFETY: as in enable().
        unsafe { ffi::ksw_fprobe_missed(self.0.as_ptr()) }
    }
}

impl Drop for Fprobe {
    fn drop(&mut self) {
        // SAFETY: self.0 is live and dropped exactly once; unregistering
        // waits for running handlers.
        unsafe { ffi::ksw_fprobe_destroy(self.0.as_ptr()) }
    }
}

/// One watched function's kprobes (release points and the arming probe);
/// unregistered on drop, or, much faster for a sweep's thousands, in one
/// batch by [`destroy_kprobes`] (which waits for handlers once).
pub(crate) struct Kprobes(NonNull<ffi::RawKprobes>);

// SAFETY: as for Fprobe.
unsafe impl Send for Kprobes {}
// SAFETY: `&self` methods only read counters and flags.
unsafe impl Sync for Kprobes {}

impl Kprobes {
    /// Registers the kprobes of the function at `start`, live (arming is
    /// gated by the generation in `state.rs`).
    ///
    /// # Safety
    ///
    /// `owner` is handed to every handler and must stay valid (and not be
    /// mutated) until the kprobes are passed to [`destroy_kprobes`].
    pub(crate) unsafe fn create(
        start: usize,
        arm_off: u32,
        arm_pre: bool,
        release_offs: &[u32],
        owner: *const c_void,
    ) -> Result<Kprobes, ProbeError> {
        let mut err: c_int = 0;
        let mut failed: isize = -1;
        // SAFETY: the slice gives pointer and length; out-pointers are
        // locals; `owner` outlives the kprobes (this function's contract);
        // process context.
        let raw = unsafe {
            ffi::ksw_kprobes_create(
                start,
                arm_off,
                arm_pre,
                release_offs.as_ptr(),
                release_offs.len() as u32,
                owner,
                &mut err,
                &mut failed,
            )
        };
        NonNull::new(raw).map(Kprobes).ok_or(ProbeError {
            errno: err,
            offset: u32::try_from(failed).ok(),
        })
    }

    /// Misses the kernel counted: (arming probe, release probes).
    pub(crate) fn missed(&self) -> (u64, u64) {
        let (mut arm, mut release) = (0, 0);
        // SAFETY: self.0 is live until destroy_kprobes; out-pointers are locals.
        unsafe { ffi::ksw_kprobes_missed(self.0.as_ptr(), &mut arm, &mut release) };
        (arm, release)
    }

    /// The kernel jump-optimized the arming probe.
    pub(crate) fn optimized(&self) -> bool {
        // SAFETY: as in missed().
        unsafe { ffi::ksw_kprobes_optimized(self.0.as_ptr()) }
    }
}

impl Drop for Kprobes {
    fn drop(&mut self) {
        let mut one = self.0.as_ptr();
        // SAFETY: self.0 is live and destroyed exactly once, here;
        // unregistering waits for running handlers.
        unsafe { ffi::ksw_kprobes_destroy_many(&mut one, 1) };
    }
}

/// Unregisters and frees many functions' kprobes at once.
pub(crate) fn destroy_kprobes(sets: KVVec<Kprobes>) {
    let Ok(mut raw) = KVVec::<*mut ffi::RawKprobes>::with_capacity(sets.len(), GFP_KERNEL) else {
        // No memory for the batch: each drops (and unregisters) alone.
        return;
    };
    for k in sets {
        // Within the capacity reserved above: cannot fail.
        let _ = raw.push(k.0.as_ptr(), GFP_KERNEL);
        // Destroyed below, in the batch, not by its Drop.
        core::mem::forget(k);
    }
    // SAFETY: every pointer is live (from a Kprobes given up above) and
    // destroyed exactly once; process context.
    unsafe { ffi::ksw_kprobes_destroy_many(raw.as_mut_ptr(), raw.len() as u32) };
}

/// A `KBox` shared with C as a raw pointer: never mutated, freed on drop.
/// Whoever hands the pointer out must make sure its users are gone first
/// (for a watch: its `Probes` are dropped before it).
pub(crate) struct Shared<T>(NonNull<T>);

// SAFETY: only `&T` is ever given out.
unsafe impl<T: Sync> Sync for Shared<T> {}
// SAFETY: as above; dropping frees a KBox, which any task may do.
unsafe impl<T: Sync + Send> Send for Shared<T> {}

impl<T> Shared<T> {
    pub(crate) fn new(value: T) -> Result<Shared<T>, kernel::alloc::AllocError> {
        let boxed = KBox::new(value, GFP_KERNEL)?;
        // SAFETY: KBox::into_raw never returns null.
        Ok(Shared(unsafe {
            NonNull::new_unchecked(KBox::into_raw(boxed))
        }))
    }

    pub(crate) fn as_ptr(&self) -> *const T {
        self.0.as_ptr()
    }

    pub(crate) fn get(&self) -> &T {
        // SAFETY: the pointer came from a KBox that lives until drop; only
        // shared references are ever made from it.
        unsafe { self.0.as_ref() }
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from KBox::into_raw and is freed once.
        drop(unsafe { KBox::from_raw(self.0.as_ptr()) });
    }
}

/// Waits until no probe or breakpoint handler started before the call runs.
pub(crate) fn synchronize() {
    // SAFETY: process context (configuration writes).
    unsafe { ffi::ksw_synchronize() }
}

pub(crate) fn current_task() -> usize {
    ffi::ksw_current_task()
}

pub(crate) fn current_pid() -> i32 {
    ffi::ksw_current_pid()
}

pub(crate) fn current_comm() -> [u8; COMM_LEN] {
    let mut comm = [0u8; COMM_LEN];
    // SAFETY: C writes exactly COMM_LEN bytes into the buffer.
    unsafe { ffi::ksw_current_comm(comm.as_mut_ptr()) };
    comm
}

/// `[lo, hi)` of the current task's stack.
pub(crate) fn current_stack() -> (usize, usize) {
    let (mut lo, mut hi) = (0, 0);
    // SAFETY: the out-pointers are locals.
    unsafe { ffi::ksw_current_stack(&mut lo, &mut hi) };
    (lo, hi)
}

pub(crate) fn current_canary() -> u64 {
    ffi::ksw_current_canary()
}

pub(crate) fn preempt_count() -> u32 {
    ffi::ksw_preempt_count()
}

/// Reads `len` (at most 8) bytes at `addr` without faulting.
pub(crate) fn read_nofault(addr: usize, len: u8) -> Option<u64> {
    let mut value = 0;
    // SAFETY: any address is accepted; `value` is a local.
    unsafe { ffi::ksw_read_nofault(addr, len, &mut value) }.then_some(value)
}

/// Where `ip` is in the function's own text, if it lies in the out-of-line
/// copy the arming kprobe `arm_kprobe` runs its probed instruction from.
///
/// # Safety
///
/// `arm_kprobe` is a kprobe of ours that stays registered for the call
/// (an armed slot's kprobe: unregistered only after its slots retire).
pub(crate) unsafe fn kprobe_origin(arm_kprobe: usize, ip: usize) -> Option<usize> {
    // SAFETY: the function's contract; the C side reads the copy nofault.
    let origin = unsafe { ffi::ksw_kprobe_origin(arm_kprobe as *const c_void, ip) };
    (origin != 0).then_some(origin)
}

pub(crate) fn in_this_module(ip: usize) -> bool {
    ffi::ksw_in_this_module(ip)
}

/// Monotonic nanoseconds, NMI-safe.
pub(crate) fn now_ns() -> u64 {
    ffi::ksw_now_ns()
}

pub(crate) fn thread_size() -> u32 {
    ffi::ksw_thread_size()
}

/// Runs `f` on this CPU's sampling state. Handlers only: they run with
/// interrupts off, so nothing else on this CPU touches the state meanwhile.
pub(crate) fn with_cpu_random<R>(f: impl FnOnce(&mut u64) -> R) -> R {
    // SAFETY: C returns this CPU's per-CPU word; interrupts are off in
    // every handler calling this, so the CPU cannot change and no other
    // context on it uses the word until we return.
    let state = unsafe { &mut *ffi::ksw_this_cpu_random() };
    f(state)
}

/// Claims `want` hardware slots on every CPU: how many were claimed.
pub(crate) fn slots_claim(want: u32) -> Result<u32, c_int> {
    // SAFETY: process context, configuration lock held, nothing armed
    // (the caller, configure.rs, tears down before).
    let ret = unsafe { ffi::ksw_slots_claim(want) };
    u32::try_from(ret).map_err(|_| ret)
}

pub(crate) fn slots_release() {
    // SAFETY: as in slots_claim().
    unsafe { ffi::ksw_slots_release() }
}

pub(crate) fn hw_slots() -> u32 {
    ffi::ksw_hw_slots()
}

/// Programs this CPU's debug register for `slot` (None: parked).
pub(crate) fn program_local(slot: usize, target: Option<(usize, u8)>) -> bool {
    let (addr, len) = target.unwrap_or((0, 0));
    ffi::ksw_slot_program_local(slot as u32, addr, len)
}

/// Makes every other online CPU sync its debug registers soon; never waits.
pub(crate) fn kick_remote() {
    ffi::ksw_kick_remote()
}

/// Makes every online CPU sync and waits for all of them.
pub(crate) fn sync_all_wait() {
    // SAFETY: process context (configuration writes, module exit).
    unsafe { ffi::ksw_sync_all_wait() }
}

pub(crate) fn online_cpus() -> u32 {
    ffi::ksw_online_cpus()
}

pub(crate) fn nr_cpu_ids() -> u32 {
    ffi::ksw_nr_cpu_ids()
}

pub(crate) fn cpu_online(cpu: u32) -> bool {
    ffi::ksw_cpu_online(cpu)
}

/// What `cpu`'s register for `slot` watches: None if the CPU has no
/// breakpoint there (offline, or it could not get one), Some(None) when
/// parked, Some(Some(addr)) when armed.
pub(crate) fn slot_cpu_state(cpu: u32, slot: usize) -> Option<Option<usize>> {
    let mut addr = 0;
    // SAFETY: C bounds-checks cpu and slot; `addr` is a local; process
    // context (reading /proc/kstackwatch).
    match unsafe { ffi::ksw_slot_cpu_state(cpu, slot as u32, &mut addr) } {
        0 => Some(None),
        1 => Some(Some(addr)),
        _ => None,
    }
}

pub(crate) fn trace_arm(rec: &ArmRecord) {
    // SAFETY: `rec` is a valid record for the call.
    unsafe { ffi::ksw_trace_arm(rec) }
}

pub(crate) fn trace_hit(rec: &HitRecord) {
    // SAFETY: as in trace_arm().
    unsafe { ffi::ksw_trace_hit(rec) }
}

pub(crate) fn trace_disarm(rec: &DisarmRecord) {
    // SAFETY: as in trace_arm().
    unsafe { ffi::ksw_trace_disarm(rec) }
}

/// The rate-limited dmesg line for a caught write.
pub(crate) fn log_hit(id: u64, writer_ip: usize, victim_comm: &[u8; COMM_LEN], victim_pid: i32) {
    let mut comm = *victim_comm;
    comm[COMM_LEN - 1] = 0;
    // SAFETY: `comm` is NUL-terminated within COMM_LEN bytes.
    unsafe { ffi::ksw_log_hit(id, writer_ip, comm.as_ptr(), victim_pid) }
}

/// `panic_on_catch=1`: stop the machine with the writer named.
pub(crate) fn panic_caught(id: u64, writer_ip: usize, regs: &Regs<'_>) {
    // SAFETY: `regs` is the breakpoint handler's live register set.
    unsafe { ffi::ksw_panic_caught(id, writer_ip, regs.as_ptr()) }
}

/// Registers the procfs file (whose handlers get `config` back) and the
/// task-exit hook.
///
/// # Safety
///
/// Called once from module init. `config` stays valid until
/// `remove_proc()` has returned.
pub(crate) unsafe fn init(config: *const c_void) -> Result<(), c_int> {
    // SAFETY: the caller's contract.
    match unsafe { ffi::ksw_glue_init(config) } {
        0 => Ok(()),
        err => Err(err),
    }
}

/// Removes /proc/kstackwatch, waiting for running reads and writes.
pub(crate) fn remove_proc() {
    // SAFETY: called once from module exit, after a successful init().
    unsafe { ffi::ksw_glue_remove_proc() }
}

/// Unhooks task exit and waits for every queued kick and IPI of ours.
pub(crate) fn exit() {
    // SAFETY: called once from module exit, after remove_proc() and the
    // teardown of every watch.
    unsafe { ffi::ksw_glue_exit() }
}

/// A `seq_file` being filled by a show callback.
pub(crate) struct SeqWriter<'a> {
    m: NonNull<SeqFile>,
    _show: PhantomData<&'a mut SeqFile>,
}

impl SeqWriter<'_> {
    /// # Safety
    ///
    /// `m` is the seq_file passed to the running show callback.
    pub(crate) unsafe fn from_raw<'a>(m: *mut SeqFile) -> Option<SeqWriter<'a>> {
        NonNull::new(m).map(|m| SeqWriter {
            m,
            _show: PhantomData,
        })
    }
}

impl core::fmt::Write for SeqWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        // SAFETY: `m` is the running show's seq_file (`from_raw`); the
        // string is readable for its length. seq_file grows its buffer
        // and reruns the show when it fills, so nothing is cut off.
        unsafe { ffi::ksw_seq_write(self.m.as_ptr(), s.as_ptr(), s.len()) };
        Ok(())
    }
}
