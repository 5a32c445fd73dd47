// SPDX-License-Identifier: GPL-2.0
//! Raw declarations of the C layer (`ksw_glue.h`), fenced: only `glue.rs`
//! uses them. Functions that are safe whatever their arguments are
//! declared `safe fn`; the others carry their contract here and `glue.rs`
//! upholds it.
//!
//! Types: on x86_64 Linux `unsigned long` and `size_t` are 64-bit, the
//! same as `usize`; C `bool` is Rust `bool`.

use core::ffi::{c_char, c_int, c_void};

use kernel::bindings::pt_regs;

use crate::ksw_core::events::{ArmRecord, DisarmRecord, HitRecord, COMM_LEN};

pub(crate) use crate::ksw_core::abi::SYM_LEN;

/// `struct ksw_symbol`.
#[repr(C)]
pub(crate) struct Symbol {
    pub(crate) start: usize,
    pub(crate) size: usize,
    pub(crate) name: [u8; SYM_LEN],
}

/// `struct ksw_fprobe`, only ever passed back to C.
#[repr(C)]
pub(crate) struct RawFprobe {
    _opaque: [u8; 0],
}

/// `struct ksw_kprobes`, only ever passed back to C.
#[repr(C)]
pub(crate) struct RawKprobes {
    _opaque: [u8; 0],
}

/// `struct seq_file`, only ever passed back to C.
#[repr(C)]
pub(crate) struct SeqFile {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    /// `names` holds `n` NUL-terminated names back to back; `syms` and
    /// `errs` have room for `n`; process context.
    pub(crate) fn ksw_lookup_functions(
        names: *const c_char,
        n: u32,
        syms: *mut Symbol,
        errs: *mut c_int,
    );
    /// `buf` is writable for `len` bytes; any `addr` (read without faulting).
    pub(crate) fn ksw_read_text(addr: usize, buf: *mut u8, len: usize) -> bool;

    /// Process context. `starts` holds `n` addresses; `owner` must stay
    /// valid until `ksw_fprobe_destroy` returns.
    pub(crate) fn ksw_fprobe_create(
        starts: *const usize,
        n: u32,
        owner: *const c_void,
        err: *mut c_int,
    ) -> *mut RawFprobe;
    /// `p` is live (from `ksw_fprobe_create`, not destroyed).
    pub(crate) fn ksw_fprobe_enable(p: *mut RawFprobe);
    /// `p` is live; destroyed exactly once; waits for its handlers.
    pub(crate) fn ksw_fprobe_destroy(p: *mut RawFprobe);
    pub(crate) fn ksw_fprobe_missed(p: *mut RawFprobe) -> u64;
    /// Process context. `release_offs` holds `nr_release` offsets; `owner`
    /// must stay valid until the kprobes are destroyed.
    pub(crate) fn ksw_kprobes_create(
        start: usize,
        arm_off: u32,
        arm_pre: bool,
        release_offs: *const u32,
        nr_release: u32,
        owner: *const c_void,
        err: *mut c_int,
        failed_off: *mut isize,
    ) -> *mut RawKprobes;
    /// Process context. `sets` holds `n` live pointers (or nulls), each
    /// destroyed exactly once; waits for their handlers.
    pub(crate) fn ksw_kprobes_destroy_many(sets: *mut *mut RawKprobes, n: u32);
    /// `p` is live.
    pub(crate) fn ksw_kprobes_missed(p: *mut RawKprobes, arm: *mut u64, release: *mut u64);
    pub(crate) fn ksw_kprobes_optimized(p: *mut RawKprobes) -> bool;
    /// `kp` is a registered kprobe of ours.
    pub(crate) fn ksw_kprobe_origin(kp: *const c_void, ip: usize) -> usize;
    /// Sleeps: process context.
    pub(crate) fn ksw_synchronize();

    pub(crate) safe fn ksw_current_task() -> usize;
    pub(crate) safe fn ksw_current_pid() -> c_int;
    /// Writes `COMM_LEN` bytes.
    pub(crate) fn ksw_current_comm(comm: *mut u8);
    pub(crate) fn ksw_current_stack(lo: *mut usize, hi: *mut usize);
    pub(crate) safe fn ksw_current_canary() -> u64;
    pub(crate) safe fn ksw_preempt_count() -> u32;
    /// `regs` is the live register set of a probe or breakpoint handler.
    pub(crate) fn ksw_unwind_cfa(regs: *mut pt_regs) -> usize;
    /// Any `addr` (read without faulting); `value` is writable.
    pub(crate) fn ksw_read_nofault(addr: usize, len: u8, value: *mut u64) -> bool;
    pub(crate) safe fn ksw_in_this_module(ip: usize) -> bool;
    pub(crate) safe fn ksw_now_ns() -> u64;
    pub(crate) safe fn ksw_thread_size() -> u32;
    /// This CPU's sampling state; the caller runs with interrupts off and
    /// uses the pointer only until it enables them again.
    pub(crate) fn ksw_this_cpu_random() -> *mut u64;

    /// Process context, configuration lock held, nothing armed.
    pub(crate) fn ksw_slots_claim(want: u32) -> c_int;
    pub(crate) fn ksw_slots_release();
    pub(crate) safe fn ksw_hw_slots() -> u32;
    /// Any context: checks `slot`, saves and disables interrupts.
    pub(crate) safe fn ksw_slot_program_local(slot: u32, addr: usize, len: u8) -> bool;
    /// Any context: defers itself out of NMI context.
    pub(crate) safe fn ksw_kick_remote();
    /// Process context.
    pub(crate) fn ksw_sync_all_wait();
    pub(crate) safe fn ksw_online_cpus() -> u32;
    pub(crate) safe fn ksw_nr_cpu_ids() -> u32;
    pub(crate) safe fn ksw_cpu_online(cpu: u32) -> bool;
    /// Process context (takes the CPU-hotplug read lock).
    pub(crate) fn ksw_slot_cpu_state(cpu: u32, slot: u32, addr: *mut usize) -> c_int;

    /// `rec` is a valid record for the duration of the call.
    pub(crate) fn ksw_trace_arm(rec: *const ArmRecord);
    pub(crate) fn ksw_trace_hit(rec: *const HitRecord);
    pub(crate) fn ksw_trace_disarm(rec: *const DisarmRecord);
    /// `victim_comm` is NUL-terminated within `COMM_LEN` bytes.
    pub(crate) fn ksw_log_hit(id: u64, writer_ip: usize, victim_comm: *const u8, victim_pid: c_int);
    /// `regs` is the breakpoint handler's register set. Does not return.
    pub(crate) fn ksw_panic_caught(id: u64, writer_ip: usize, regs: *mut pt_regs);

    /// Module init, once; `config` outlives `ksw_glue_remove_proc`.
    pub(crate) fn ksw_glue_init(config: *const c_void) -> c_int;
    pub(crate) fn ksw_glue_remove_proc();
    pub(crate) fn ksw_glue_exit();
    /// `m` is the seq_file of a running show; `buf` readable for `len`.
    pub(crate) fn ksw_seq_write(m: *mut SeqFile, buf: *const u8, len: usize);
}

const _: () = assert!(COMM_LEN == 16);
