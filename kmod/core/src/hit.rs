// SPDX-License-Identifier: GPL-2.0
//! Classifying a breakpoint hit, and what the events may say about values.
//!
//! The rule: a write is reported unless it is *proven* harmless. A watch is
//! armed exactly while its slot belongs to a live frame (armed at the probe
//! point, disarmed at the instruction that releases the slot, see
//! `layout.rs`), so any write the debug register catches for the current
//! watch is a write into a live frame: by another task, by an interrupt on
//! the victim's own CPU, by a callee through a pointer, at any depth, on
//! any stack. Only two kinds are not reported: a debug register still
//! holding a watch that has since been retired or moved (the cross-CPU
//! update had not arrived: the frame it watched is gone), and kstackwatch's
//! own code.

use super::events::{flags, ExitState, WriterContext};
use super::slots::Armed;

/// The writer's side of a hit, gathered by the #DB handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writer {
    pub task: usize,
    /// Address this CPU's debug register was programmed with.
    pub programmed_addr: usize,
    /// The writer ip lies in the kstackwatch module itself.
    pub in_this_module: bool,
    /// `preempt_count()` in the #DB handler.
    pub preempt_count: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitClass {
    /// A write into a live watched frame: emit `ksw_hit`.
    Report {
        context: WriterContext,
        /// The writer is the victim task (its own code or an interrupt
        /// that came in while it ran).
        by_victim: bool,
    },
    /// The debug register still held a watch that was since retired or
    /// retargeted (the cross-CPU update had not arrived yet).
    Stale,
    /// kstackwatch's own code.
    ThisModule,
}

pub fn classify(armed: Option<&Armed>, writer: &Writer) -> HitClass {
    let Some(armed) = armed else {
        return HitClass::Stale;
    };
    if armed.addr != writer.programmed_addr {
        return HitClass::Stale;
    }
    if writer.in_this_module {
        return HitClass::ThisModule;
    }
    HitClass::Report {
        context: WriterContext::of(writer.preempt_count),
        by_victim: writer.task == armed.task,
    }
}

/// A value as an event may carry it: the task's stack canary is never put
/// in an event (it would help an attacker); `canary` is the canary when the
/// watch is a canary watch. Returns the value to emit and whether it was
/// withheld.
pub fn withhold(value: u64, canary: Option<u64>) -> (u64, bool) {
    match canary {
        Some(c) if c == value => (0, true),
        _ => (value, false),
    }
}

/// `ksw_hit.flags` for a reported write.
pub fn hit_flags(
    by_victim: bool,
    old_withheld: bool,
    new_withheld: bool,
    out_of_line: bool,
) -> u8 {
    let mut f = 0;
    if out_of_line {
        f |= flags::HIT_OUT_OF_LINE;
    }
    if by_victim {
        f |= flags::HIT_BY_VICTIM;
    }
    if old_withheld {
        f |= flags::HIT_OLD_CANARY;
    }
    if new_withheld {
        f |= flags::HIT_NEW_CANARY;
    }
    f
}

/// How the frame died: the value read at the moment the slot stopped
/// belonging to it, against the value at arm. `exit_value` is None when it
/// could not be read then (the frame was disarmed after it died, or the
/// read faulted): then nothing can be said, and "clean" must not be.
pub fn exit_state(arm_value: u64, exit_value: Option<u64>) -> ExitState {
    match exit_value {
        Some(v) if v == arm_value => ExitState::Intact,
        Some(_) => ExitState::Changed,
        None => ExitState::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::preempt::{HARDIRQ_OFFSET, NMI_OFFSET, SOFTIRQ_OFFSET};

    const DB: u32 = NMI_OFFSET + HARDIRQ_OFFSET;

    fn armed() -> Armed {
        Armed {
            id: 1,
            spec: 0,
            func: 0,
            owner: 0,
            task: 10,
            frame: 0x2000,
            addr: 0x1f00,
            len: 8,
            sp: 0x1e00,
            depth: 0,
            probe_ip: 0,
            arm_kprobe: 0,
            panic_on_catch: false,
            canary: false,
            arm_value: 5,
            victim_pid: 1,
            victim_comm: [0; 16],
            armed_ns: 0,
        }
    }

    fn writer(task: usize, preempt_count: u32) -> Writer {
        Writer {
            task,
            programmed_addr: 0x1f00,
            in_this_module: false,
            preempt_count,
        }
    }

    #[test]
    fn every_write_to_the_current_watch_is_reported_with_its_context() {
        assert_eq!(
            classify(Some(&armed()), &writer(11, DB)),
            HitClass::Report {
                context: WriterContext::Task,
                by_victim: false
            }
        );
        // The victim's own task, in a hardirq on its CPU: reported.
        assert_eq!(
            classify(Some(&armed()), &writer(10, DB + HARDIRQ_OFFSET)),
            HitClass::Report {
                context: WriterContext::Hardirq,
                by_victim: true
            }
        );
        assert_eq!(
            classify(Some(&armed()), &writer(10, DB + SOFTIRQ_OFFSET)),
            HitClass::Report {
                context: WriterContext::Softirq,
                by_victim: true
            }
        );
    }

    #[test]
    fn stale_and_self_hits() {
        assert_eq!(classify(None, &writer(11, DB)), HitClass::Stale);
        let mut w = writer(11, DB);
        w.programmed_addr = 0x1f08;
        assert_eq!(classify(Some(&armed()), &w), HitClass::Stale);
        let mut w = writer(11, DB);
        w.in_this_module = true;
        assert_eq!(classify(Some(&armed()), &w), HitClass::ThisModule);
    }

    #[test]
    fn the_canary_never_leaves_the_kernel() {
        assert_eq!(withhold(0x1234, Some(0x1234)), (0, true));
        assert_eq!(withhold(0x5678, Some(0x1234)), (0x5678, false));
        assert_eq!(withhold(0x1234, None), (0x1234, false));
        assert_eq!(
            hit_flags(true, true, false, false),
            flags::HIT_BY_VICTIM | flags::HIT_OLD_CANARY
        );
    }

    #[test]
    fn no_clean_verdict_without_the_exit_value() {
        assert_eq!(exit_state(7, Some(7)), ExitState::Intact);
        assert_eq!(exit_state(7, Some(9)), ExitState::Changed);
        assert_eq!(exit_state(7, None), ExitState::Unknown);
    }
}
