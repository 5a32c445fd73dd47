// SPDX-License-Identifier: GPL-2.0
//! Per-task call depth of the watched functions, kept by the module's own
//! fprobe entry and exit handlers (no walking of fprobe internals).
//!
//! For every task inside a watched function, one entry holds how many
//! calls of it are active with a hooked exit, and the frame of the newest
//! one. Each call's fprobe entry data keeps the previous newest frame, so
//! the exit handler restores it: the entry works as a stack whose links
//! live in the return hooks.
//!
//! Concurrency: an entry is only ever written in its own task's context
//! (entry/exit handlers and the task-exit hook, all run with interrupts
//! off; calls in NMI context are not tracked), so its fields need no
//! ordering among themselves. Other tasks only race to claim free entries,
//! which a compare-and-swap on the key settles.

use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};


/// Entries in the table: tasks that can be inside watched functions at
/// once (with a hooked exit each, so also bounded by the return hooks).
pub const TASK_ENTRIES: usize = 2048;
/// Entries probed from a key's hash before giving up.
const WINDOW: usize = 32;
/// A frame this close above the newest recorded one, on the same stack,
/// means the recorded call has returned unseen (its exit hook missed).
const SAME_STACK: usize = 16384;

#[derive(Debug)]
struct TaskEntry {
    /// The task, 0 when free. Claimed by compare-and-swap; then only the
    /// task itself writes the entry.
    task: AtomicUsize,
    /// The watched function (its id, unique per module load).
    func: AtomicU32,
    depth: AtomicU32,
    innermost: AtomicUsize,
    /// The frame last counted as not armed for lack of a slot (so a probe
    /// in a loop counts a frame once).
    dropped: AtomicUsize,
}

impl TaskEntry {
    const fn new() -> TaskEntry {
        TaskEntry {
            task: AtomicUsize::new(0),
            func: AtomicU32::new(0),
            depth: AtomicU32::new(0),
            innermost: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }
}

/// What a function entry hands to the matching exit (fprobe entry data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CallLink {
    /// The newest hooked frame before this call.
    pub prev_innermost: usize,
}

/// The active hooked calls of one function in one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    pub count: u32,
    pub innermost: usize,
}

/// Outcome of [`TaskTable::enter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enter {
    /// Tracked: give the link to the exit handler.
    Tracked(CallLink),
    /// Tracked, after dropping calls whose exits were never seen.
    Resynced(CallLink),
    /// No free entry near the task's hash: not tracked (no exit hook).
    Full,
}

/// The table. One static instance lives in the module.
#[derive(Debug)]
pub struct TaskTable {
    entries: [TaskEntry; TASK_ENTRIES],
    /// Entries claimed: lets the task-exit hook (every exiting task in
    /// the system) skip the scan when nothing is tracked.
    claimed: AtomicUsize,
}

impl Default for TaskTable {
    fn default() -> Self {
        Self::new()
    }
}

fn home(task: usize, func: u32) -> usize {
    // Fibonacci hashing of the pointer bits above the alignment and the id.
    let key = (task >> 3) ^ (func as usize).wrapping_mul(0x2545_f491);
    (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) % TASK_ENTRIES
}

impl TaskTable {
    pub const fn new() -> TaskTable {
        TaskTable {
            entries: [const { TaskEntry::new() }; TASK_ENTRIES],
            claimed: AtomicUsize::new(0),
        }
    }

    fn window(&self, task: usize, func: u32) -> impl Iterator<Item = &TaskEntry> + '_ {
        let start = home(task, func);
        (0..WINDOW).map(move |i| &self.entries[(start + i) % TASK_ENTRIES])
    }

    fn find(&self, task: usize, func: u32) -> Option<&TaskEntry> {
        // Another task's entries never match `task`; the task's own ones
        // are written only by itself, so `func` is stable when `task` is.
        self.window(task, func).find(|e| {
            e.task.load(Ordering::Relaxed) == task && e.func.load(Ordering::Relaxed) == func
        })
    }

    /// A call of function `func` starts in `task` with its return address
    /// at `frame`.
    pub fn enter(&self, task: usize, func: u32, frame: usize) -> Enter {
        let entry = match self.find(task, func) {
            Some(e) => e,
            None => {
                let claimed = self.window(task, func).find(|e| {
                    e.task
                        .compare_exchange(0, task, Ordering::AcqRel, Ordering::Relaxed)
                        .is_ok()
                });
                let Some(e) = claimed else {
                    return Enter::Full;
                };
                self.claimed.fetch_add(1, Ordering::Relaxed);
                e.func.store(func, Ordering::Relaxed);
                e.depth.store(0, Ordering::Relaxed);
                e.innermost.store(0, Ordering::Relaxed);
                e.dropped.store(0, Ordering::Relaxed);
                e
            }
        };
        let innermost = entry.innermost.load(Ordering::Relaxed);
        let depth = entry.depth.load(Ordering::Relaxed);
        // A new call's frame lies below every active caller's on the same
        // stack; at or above the newest one, that call is gone unseen.
        let stale = depth > 0 && frame >= innermost && frame - innermost < SAME_STACK;
        let (depth, prev) = if stale { (0, 0) } else { (depth, innermost) };
        entry.depth.store(depth + 1, Ordering::Relaxed);
        entry.innermost.store(frame, Ordering::Relaxed);
        let link = CallLink {
            prev_innermost: prev,
        };
        if stale {
            Enter::Resynced(link)
        } else {
            Enter::Tracked(link)
        }
    }

    /// A tracked call ends; `link` is what its entry returned.
    pub fn exit(&self, task: usize, func: u32, link: CallLink) {
        let Some(entry) = self.find(task, func) else {
            return;
        };
        let depth = entry.depth.load(Ordering::Relaxed).saturating_sub(1);
        entry.depth.store(depth, Ordering::Relaxed);
        entry
            .innermost
            .store(link.prev_innermost, Ordering::Relaxed);
        if depth == 0 {
            self.release(entry);
        }
    }

    fn release(&self, entry: &TaskEntry) {
        entry.task.store(0, Ordering::Release);
        self.claimed.fetch_sub(1, Ordering::Relaxed);
    }

    /// The active hooked calls of function `func` in `task`.
    pub fn active(&self, task: usize, func: u32) -> Active {
        self.find(task, func).map_or(
            Active {
                count: 0,
                innermost: 0,
            },
            |e| Active {
                count: e.depth.load(Ordering::Relaxed),
                innermost: e.innermost.load(Ordering::Relaxed),
            },
        )
    }

    /// Notes that `frame` was not armed for lack of a slot; true the first
    /// time for that frame (a probe in a loop hits once per iteration).
    pub fn note_dropped(&self, task: usize, func: u32, frame: usize) -> bool {
        match self.find(task, func) {
            Some(e) => e.dropped.swap(frame, Ordering::Relaxed) != frame,
            None => true,
        }
    }

    /// `task` exits: its calls never return. Runs in `task`, the only
    /// writer of its entries; a sweep's many functions make a scan of the
    /// whole table simpler than probing a window per function.
    pub fn forget_task(&self, task: usize) {
        if self.claimed.load(Ordering::Relaxed) == 0 {
            return;
        }
        for e in &self.entries {
            if e.task.load(Ordering::Relaxed) == task {
                self.release(e);
            }
        }
    }

    /// Forgets everything (a new configuration: nothing is hooked).
    pub fn clear(&self) {
        for e in &self.entries {
            e.task.store(0, Ordering::Release);
        }
        self.claimed.store(0, Ordering::Relaxed);
    }

    /// Entries in use (for /proc/kstackwatch).
    pub fn in_use(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.task.load(Ordering::Relaxed) != 0)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    const T1: usize = 0xffff_8880_0100_0040;
    const T2: usize = 0xffff_8880_0200_0080;
    const STACK: usize = 0xffff_c900_0001_4000;

    fn link(e: Enter) -> CallLink {
        match e {
            Enter::Tracked(l) | Enter::Resynced(l) => l,
            Enter::Full => panic!("table full"),
        }
    }

    #[test]
    fn depth_follows_nested_calls_and_is_per_task_and_spec() {
        let t = Box::new(TaskTable::new());
        let outer = link(t.enter(T1, 0, STACK - 0x100));
        assert_eq!(
            t.active(T1, 0),
            Active {
                count: 1,
                innermost: STACK - 0x100
            }
        );
        let inner = link(t.enter(T1, 0, STACK - 0x300));
        assert_eq!(
            t.active(T1, 0),
            Active {
                count: 2,
                innermost: STACK - 0x300
            }
        );
        assert_eq!(t.active(T1, 1).count, 0);
        assert_eq!(t.active(T2, 0).count, 0);
        t.exit(T1, 0, inner);
        assert_eq!(
            t.active(T1, 0),
            Active {
                count: 1,
                innermost: STACK - 0x100
            }
        );
        t.exit(T1, 0, outer);
        assert_eq!(t.active(T1, 0).count, 0);
        assert_eq!(t.in_use(), 0);
    }

    #[test]
    fn a_missed_exit_is_healed_by_the_next_call_at_the_same_place() {
        let t = Box::new(TaskTable::new());
        let _lost = t.enter(T1, 0, STACK - 0x100);
        // Its exit never comes; the next call reuses the same frame.
        assert!(matches!(t.enter(T1, 0, STACK - 0x100), Enter::Resynced(_)));
        assert_eq!(t.active(T1, 0).count, 1);
    }

    #[test]
    fn dropped_counts_once_per_frame() {
        let t = Box::new(TaskTable::new());
        let _ = t.enter(T1, 2, STACK - 0x100);
        assert!(t.note_dropped(T1, 2, STACK - 0x100));
        assert!(!t.note_dropped(T1, 2, STACK - 0x100));
        assert!(t.note_dropped(T1, 2, STACK - 0x200));
    }

    #[test]
    fn task_exit_and_clear_free_entries() {
        let t = Box::new(TaskTable::new());
        let _ = t.enter(T1, 0, STACK - 0x100);
        let _ = t.enter(T1, 3, STACK - 0x100);
        let _ = t.enter(T2, 0, STACK - 0x100);
        t.forget_task(T1);
        assert_eq!(t.in_use(), 1);
        t.clear();
        assert_eq!(t.in_use(), 0);
    }

    #[test]
    fn a_full_window_is_reported_not_overwritten() {
        let t = Box::new(TaskTable::new());
        // Tasks colliding on one home entry: WINDOW of them fit.
        let base = T1;
        let mut tasks = std::vec::Vec::new();
        let mut probe = base;
        while tasks.len() < WINDOW + 1 {
            probe += 8;
            if home(probe, 0) == home(base, 0) {
                tasks.push(probe);
            }
        }
        for &task in &tasks[..WINDOW] {
            assert!(matches!(t.enter(task, 0, STACK), Enter::Tracked(_)));
        }
        assert_eq!(t.enter(tasks[WINDOW], 0, STACK), Enter::Full);
        for &task in &tasks[..WINDOW] {
            assert_eq!(t.active(task, 0).count, 1);
        }
    }
}
