// SPDX-License-Identifier: GPL-2.0
//! The table of hardware watch slots: which frame each slot watches.
//!
//! The table is the single source of truth for the debug registers: a CPU
//! syncing its registers reads every slot's [`SlotTable::target`] and
//! programs that, so a late or merged IPI always installs the newest state.
//!
//! It is lock-free: slots are claimed by compare-and-swap from the probe
//! handler (NMI-like context on x86), read by the breakpoint handler (#DB)
//! and by IPI handlers on other CPUs through a per-slot sequence count, and
//! retired by exactly one of the function-exit hook, the task-exit hook or
//! a reconfiguration (whoever wins the compare-and-swap).

use core::sync::atomic::{
    fence, AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};

use super::config::MAX_SPECS;
use super::events::COMM_LEN;

/// Most hardware watch slots the table manages (x86: DR0-DR3).
pub const MAX_SLOTS: usize = 4;

const FREE: u8 = 0;
const CLAIMED: u8 = 1;
const ARMED: u8 = 2;
const RETIRING: u8 = 3;

/// Readers give up after this many torn reads instead of spinning: a reader
/// can interrupt the writer on the same CPU (#DB inside the probe handler).
const READ_RETRIES: usize = 64;

/// Everything known about an armed frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Armed {
    /// Unique per module load; ties `ksw_arm`, `ksw_hit` and `ksw_disarm`.
    pub id: u64,
    pub spec: u8,
    /// The watched function (id unique per module load: a sweep's spec
    /// watches many).
    pub func: u32,
    /// Opaque handle of the function's watch in the module (its address),
    /// for per-function counters; the module keeps it alive while armed.
    pub owner: usize,
    /// Opaque identity of the victim task (its `task_struct` address).
    pub task: usize,
    /// The armed call's return-address slot (see `frame.rs`).
    pub frame: usize,
    pub addr: usize,
    pub len: u8,
    pub sp: usize,
    pub depth: u32,
    pub probe_ip: usize,
    /// Opaque handle of the arming kprobe (alive while armed): a write by
    /// the probed instruction itself runs from the kprobe's out-of-line
    /// copy, and the hit handler maps that address back.
    pub arm_kprobe: usize,
    pub panic_on_catch: bool,
    /// The watch is the stack canary: `arm_value` is the task's canary and
    /// must not appear in events.
    pub canary: bool,
    pub arm_value: u64,
    pub victim_pid: i32,
    pub victim_comm: [u8; COMM_LEN],
    pub armed_ns: u64,
}

impl Armed {
    pub fn comm_str(&self) -> &str {
        let end = self
            .victim_comm
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(COMM_LEN);
        core::str::from_utf8(&self.victim_comm[..end]).unwrap_or("?")
    }
}

/// A retired watch: what `ksw_disarm` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retired {
    pub armed: Armed,
    pub hits: u32,
    /// Of those, writes by the victim task itself.
    pub victim_hits: u32,
    /// Last value seen by a reported hit (the arm value if none).
    pub last_value: u64,
}

/// Why no slot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimError {
    /// Every hardware slot is armed.
    NoFreeSlot,
    /// The spec already has `max_watch` frames armed.
    SpecCap,
}

#[derive(Debug)]
struct Slot {
    state: AtomicU8,
    seq: AtomicU32,
    id: AtomicU64,
    spec: AtomicU8,
    func: AtomicU32,
    owner: AtomicUsize,
    task: AtomicUsize,
    frame: AtomicUsize,
    addr: AtomicUsize,
    len: AtomicU8,
    sp: AtomicUsize,
    depth: AtomicU32,
    probe_ip: AtomicUsize,
    arm_kprobe: AtomicUsize,
    panic_on_catch: AtomicBool,
    canary: AtomicBool,
    arm_value: AtomicU64,
    victim_pid: AtomicI32,
    victim_comm: [AtomicU64; 2],
    armed_ns: AtomicU64,
    // Mutable while armed:
    last_value: AtomicU64,
    hits: AtomicU32,
    victim_hits: AtomicU32,
    remote_pending: AtomicU32,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            state: AtomicU8::new(FREE),
            seq: AtomicU32::new(0),
            id: AtomicU64::new(0),
            spec: AtomicU8::new(0),
            func: AtomicU32::new(0),
            owner: AtomicUsize::new(0),
            task: AtomicUsize::new(0),
            frame: AtomicUsize::new(0),
            addr: AtomicUsize::new(0),
            len: AtomicU8::new(0),
            sp: AtomicUsize::new(0),
            depth: AtomicU32::new(0),
            probe_ip: AtomicUsize::new(0),
            arm_kprobe: AtomicUsize::new(0),
            panic_on_catch: AtomicBool::new(false),
            canary: AtomicBool::new(false),
            arm_value: AtomicU64::new(0),
            victim_pid: AtomicI32::new(0),
            victim_comm: [AtomicU64::new(0), AtomicU64::new(0)],
            armed_ns: AtomicU64::new(0),
            last_value: AtomicU64::new(0),
            hits: AtomicU32::new(0),
            victim_hits: AtomicU32::new(0),
            remote_pending: AtomicU32::new(0),
        }
    }

    fn write_fields(&self, a: &Armed) {
        let r = Ordering::Relaxed;
        self.id.store(a.id, r);
        self.spec.store(a.spec, r);
        self.func.store(a.func, r);
        self.owner.store(a.owner, r);
        self.task.store(a.task, r);
        self.frame.store(a.frame, r);
        self.addr.store(a.addr, r);
        self.len.store(a.len, r);
        self.sp.store(a.sp, r);
        self.depth.store(a.depth, r);
        self.probe_ip.store(a.probe_ip, r);
        self.arm_kprobe.store(a.arm_kprobe, r);
        self.panic_on_catch.store(a.panic_on_catch, r);
        self.canary.store(a.canary, r);
        self.arm_value.store(a.arm_value, r);
        self.victim_pid.store(a.victim_pid, r);
        let (lo, hi) = a.victim_comm.split_at(8);
        self.victim_comm[0].store(u64::from_ne_bytes(lo.try_into().unwrap_or([0; 8])), r);
        self.victim_comm[1].store(u64::from_ne_bytes(hi.try_into().unwrap_or([0; 8])), r);
        self.armed_ns.store(a.armed_ns, r);
        self.last_value.store(a.arm_value, r);
        self.hits.store(0, r);
        self.victim_hits.store(0, r);
    }

    fn read_fields(&self) -> Armed {
        let r = Ordering::Relaxed;
        let mut comm = [0u8; COMM_LEN];
        comm[..8].copy_from_slice(&self.victim_comm[0].load(r).to_ne_bytes());
        comm[8..].copy_from_slice(&self.victim_comm[1].load(r).to_ne_bytes());
        Armed {
            id: self.id.load(r),
            spec: self.spec.load(r),
            func: self.func.load(r),
            owner: self.owner.load(r),
            task: self.task.load(r),
            frame: self.frame.load(r),
            addr: self.addr.load(r),
            len: self.len.load(r),
            sp: self.sp.load(r),
            depth: self.depth.load(r),
            probe_ip: self.probe_ip.load(r),
            arm_kprobe: self.arm_kprobe.load(r),
            panic_on_catch: self.panic_on_catch.load(r),
            canary: self.canary.load(r),
            arm_value: self.arm_value.load(r),
            victim_pid: self.victim_pid.load(r),
            victim_comm: comm,
            armed_ns: self.armed_ns.load(r),
        }
    }

    /// Sequence-count read of the fields, if the slot is armed throughout.
    fn read_armed(&self) -> Option<Armed> {
        for _ in 0..READ_RETRIES {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            if self.state.load(Ordering::Acquire) != ARMED {
                return None;
            }
            let fields = self.read_fields();
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return Some(fields);
            }
        }
        None
    }
}

/// The slot table. One static instance lives in the module.
#[derive(Debug)]
pub struct SlotTable {
    slots: [Slot; MAX_SLOTS],
    /// Slots backed by hardware on every CPU (set when breakpoints are allocated).
    available: AtomicUsize,
    per_spec: [AtomicU8; MAX_SPECS],
    next_id: AtomicU64,
}

impl Default for SlotTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SlotTable {
    pub const fn new() -> SlotTable {
        SlotTable {
            slots: [Slot::new(), Slot::new(), Slot::new(), Slot::new()],
            available: AtomicUsize::new(0),
            per_spec: [const { AtomicU8::new(0) }; MAX_SPECS],
            next_id: AtomicU64::new(1),
        }
    }

    /// Number of usable slots; set only while nothing is armed.
    pub fn set_available(&self, slots: usize) {
        self.available
            .store(slots.min(MAX_SLOTS), Ordering::Release);
    }

    pub fn available(&self) -> usize {
        self.available.load(Ordering::Acquire)
    }

    /// Takes a free slot for a frame of `spec`, within the spec's `cap`.
    pub fn claim(&self, spec: u8, cap: u8) -> Result<usize, ClaimError> {
        let count = &self.per_spec[usize::from(spec) % MAX_SPECS];
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .map_err(|_| ClaimError::SpecCap)?;
        for (index, slot) in self.slots[..self.available()].iter().enumerate() {
            if slot
                .state
                .compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(index);
            }
        }
        count.fetch_sub(1, Ordering::AcqRel);
        Err(ClaimError::NoFreeSlot)
    }

    /// Fills a claimed slot and makes it armed; returns the watch id.
    /// `remote_cpus` is how many other CPUs must still program it.
    pub fn publish(&self, index: usize, mut armed: Armed, remote_cpus: u32) -> u64 {
        let slot = &self.slots[index];
        armed.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        slot.write_fields(&armed);
        slot.remote_pending.store(remote_cpus, Ordering::Relaxed);
        slot.seq.store(seq.wrapping_add(2), Ordering::Release);
        slot.state.store(ARMED, Ordering::Release);
        armed.id
    }

    /// The armed watch in `index`, read consistently, or `None`.
    pub fn armed(&self, index: usize) -> Option<Armed> {
        self.slots.get(index)?.read_armed()
    }

    /// What a CPU's debug register for `index` should watch now.
    pub fn target(&self, index: usize) -> Option<(usize, u8)> {
        self.armed(index).map(|a| (a.addr, a.len))
    }

    /// The slot holding the watch on `frame` of `task` for function
    /// `func`, if any.
    pub fn find(&self, func: u32, task: usize, frame: usize) -> Option<usize> {
        (0..self.available()).find(|&i| {
            self.armed(i)
                .is_some_and(|a| a.func == func && a.task == task && a.frame == frame)
        })
    }

    /// Whether `spec` has any armed frame (cheap test for the exit hook).
    pub fn spec_has_armed(&self, spec: u8) -> bool {
        self.per_spec[usize::from(spec) % MAX_SPECS].load(Ordering::Acquire) != 0
    }

    /// Indices of armed slots, for teardown and task exit.
    pub fn armed_indices(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_SLOTS).filter(|&i| self.slots[i].state.load(Ordering::Acquire) == ARMED)
    }

    /// Counts a reported hit on watch `id`; returns (value before, hits so
    /// far). `by_victim`: the victim task wrote its own frame.
    pub fn record_hit(
        &self,
        index: usize,
        id: u64,
        new_value: u64,
        by_victim: bool,
    ) -> Option<(u64, u32)> {
        let slot = self.slots.get(index)?;
        if slot.id.load(Ordering::Acquire) != id {
            return None;
        }
        let old = slot.last_value.swap(new_value, Ordering::AcqRel);
        let hits = slot.hits.fetch_add(1, Ordering::AcqRel) + 1;
        if by_victim {
            slot.victim_hits.fetch_add(1, Ordering::AcqRel);
        }
        Some((old, hits))
    }

    /// A remote CPU programmed watch `id`; returns true for the last one.
    pub fn remote_applied(&self, index: usize, id: u64) -> bool {
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        if slot.id.load(Ordering::Acquire) != id {
            return false;
        }
        slot.remote_pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok_and(|before| before == 1)
    }

    /// Disarms `index` if it is still armed; exactly one caller wins.
    pub fn retire(&self, index: usize) -> Option<Retired> {
        let slot = self.slots.get(index)?;
        let armed = slot.read_armed()?;
        slot.state
            .compare_exchange(ARMED, RETIRING, Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        let retired = Retired {
            armed,
            hits: slot.hits.load(Ordering::Acquire),
            victim_hits: slot.victim_hits.load(Ordering::Acquire),
            last_value: slot.last_value.load(Ordering::Acquire),
        };
        self.per_spec[usize::from(armed.spec) % MAX_SPECS].fetch_sub(1, Ordering::AcqRel);
        slot.state.store(FREE, Ordering::Release);
        Some(retired)
    }

    /// Resets per-spec accounting for a new configuration (nothing armed).
    pub fn reset_specs(&self) {
        for count in &self.per_spec {
            count.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn armed(task: usize, frame: usize, addr: usize) -> Armed {
        Armed {
            id: 0,
            spec: 0,
            func: 0,
            owner: 0,
            task,
            frame,
            addr,
            len: 8,
            sp: addr - 64,
            depth: 0,
            probe_ip: 0xffff_ffff_8100_0000,
            arm_kprobe: 0,
            panic_on_catch: false,
            canary: false,
            arm_value: 0xdead_beef,
            victim_pid: 42,
            victim_comm: *b"victim\0\0\0\0\0\0\0\0\0\0",
            armed_ns: 1,
        }
    }

    fn table(slots: usize) -> SlotTable {
        let t = SlotTable::new();
        t.set_available(slots);
        t
    }

    #[test]
    fn claim_publish_find_retire() {
        let t = table(4);
        let i = t.claim(0, 4).unwrap();
        let id = t.publish(i, armed(7, 0x1000, 0x0f40), 1);
        let a = t.armed(i).unwrap();
        assert_eq!(a.id, id);
        assert_eq!(a.comm_str(), "victim");
        assert_eq!(t.target(i), Some((0x0f40, 8)));
        assert_eq!(t.find(0, 7, 0x1000), Some(i));
        assert_eq!(t.find(0, 8, 0x1000), None);
        assert!(t.spec_has_armed(0));
        let r = t.retire(i).unwrap();
        assert_eq!(r.armed.id, id);
        assert_eq!(r.hits, 0);
        assert_eq!(r.last_value, 0xdead_beef);
        assert_eq!(t.target(i), None);
        assert!(t.retire(i).is_none(), "retired twice");
        assert!(!t.spec_has_armed(0));
    }

    #[test]
    fn ids_are_unique_and_increasing() {
        let t = table(1);
        let mut last = 0;
        for _ in 0..10 {
            let i = t.claim(0, 1).unwrap();
            let id = t.publish(i, armed(1, 2, 0x100), 0);
            assert!(id > last);
            last = id;
            t.retire(i).unwrap();
        }
    }

    #[test]
    fn slots_and_spec_caps_run_out() {
        let t = table(3);
        assert_eq!(t.claim(0, 2).map(|_| ()), Ok(()));
        assert_eq!(t.claim(0, 2).map(|_| ()), Ok(()));
        assert_eq!(t.claim(0, 2), Err(ClaimError::SpecCap));
        assert_eq!(t.claim(1, 4).map(|_| ()), Ok(()));
        assert_eq!(t.claim(1, 4), Err(ClaimError::NoFreeSlot));
        // A failed claim does not leak the spec's count.
        assert_eq!(t.per_spec[1].load(Ordering::Relaxed), 1);
    }

    #[test]
    fn hits_track_values_and_ignore_stale_ids() {
        let t = table(1);
        let i = t.claim(0, 1).unwrap();
        let id = t.publish(i, armed(1, 2, 0x100), 0);
        assert_eq!(t.record_hit(i, id, 0xabcd, false), Some((0xdead_beef, 1)));
        assert_eq!(t.record_hit(i, id, 0x1234, true), Some((0xabcd, 2)));
        assert_eq!(t.record_hit(i, id + 1, 0x9999, true), None);
        let r = t.retire(i).unwrap();
        assert_eq!((r.hits, r.victim_hits, r.last_value), (2, 1, 0x1234));
    }

    #[test]
    fn remote_acks_complete_once() {
        let t = table(1);
        let i = t.claim(0, 1).unwrap();
        let id = t.publish(i, armed(1, 2, 0x100), 3);
        assert!(!t.remote_applied(i, id));
        assert!(!t.remote_applied(i, id + 7));
        assert!(!t.remote_applied(i, id));
        assert!(t.remote_applied(i, id));
        assert!(!t.remote_applied(i, id));
    }

    #[test]
    fn concurrent_arming_never_double_books_a_slot() {
        let t = Arc::new(table(4));
        let threads: std::vec::Vec<_> = (0..8)
            .map(|n| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    let mut armed_count = 0;
                    for k in 0..20_000usize {
                        if let Ok(i) = t.claim((n % 2) as u8, 4) {
                            let frame = (n << 32) | k;
                            let spec = (n % 2) as u8;
                            let id = t.publish(
                                i,
                                Armed {
                                    spec,
                                    func: n as u32,
                                    ..armed(n, frame, 0x1000 + 8 * n)
                                },
                                0,
                            );
                            // Our slot must still be ours.
                            let a = t.armed(i).unwrap();
                            assert_eq!((a.id, a.task, a.frame), (id, n, frame));
                            assert_eq!(t.find(n as u32, n, frame), Some(i));
                            assert!(t.retire(i).is_some());
                            armed_count += 1;
                        }
                    }
                    armed_count
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
        assert!(total > 0);
        assert_eq!(t.armed_indices().count(), 0);
        assert!(!t.spec_has_armed(0) && !t.spec_has_armed(1));
    }

    #[test]
    fn readers_never_see_torn_watches() {
        let t = Arc::new(table(1));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(a) = t.armed(0) {
                        // Every published watch has addr == frame - 64.
                        assert_eq!(a.addr, a.frame - 64, "torn read");
                        seen += 1;
                    }
                }
                seen
            })
        };
        for k in 1..200_000usize {
            let i = t.claim(0, 1).unwrap();
            t.publish(i, armed(1, 0x10_0000 + k * 16, 0x10_0000 + k * 16 - 64), 0);
            t.retire(i).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap();
    }
}
