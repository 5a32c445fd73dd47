// SPDX-License-Identifier: GPL-2.0
//! Where a watch goes in the probed frame, and whether a probe hit may arm.
//!
//! Terms (x86_64, stack grows down):
//! - `sp`: the stack pointer at the probe (`func+func_offset`).
//! - `frame`: the address of the probed call's return-address slot. Every
//!   byte of the live frame lies in `[sp, frame)`; the return hook records
//!   the same address for the call, which is how a probe hit is paired with
//!   exactly one function exit.

use super::layout::RegAddr;
use super::tasks::Active;

/// Bytes in a stack word (x86_64).
pub const WORD: usize = 8;

/// The probed frame as seen from the probe handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub sp: usize,
    /// Frame pointer register at the probe (meaningful when the function
    /// keeps one; the canary may be addressed from it).
    pub bp: usize,
    /// Address of the return-address slot of the probed call.
    pub frame: usize,
    /// The current task's stack: `[stack_lo, stack_hi)`.
    pub stack_lo: usize,
    pub stack_hi: usize,
    /// The current task's stack-protector canary value.
    pub canary: u64,
}

/// Reads stack words to check the canary. The kernel reads its own stack;
/// host tests read a slice.
pub trait StackReader {
    fn read_word(&self, addr: usize) -> Option<u64>;
}

/// A spec's watch target with the function's code taken into account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `len` bytes at `sp + sp_offset`.
    Local { sp_offset: u32, len: u8 },
    /// The canary, at the slot the function's prologue stores it to, in
    /// terms of the registers at the probe (from `layout.rs`).
    Canary(RegAddr),
}

/// The bytes a hardware slot will watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchRange {
    pub addr: usize,
    pub len: u8,
}

impl WatchRange {
    pub fn end(&self) -> usize {
        self.addr + usize::from(self.len)
    }

    pub fn overlaps(&self, addr: usize, len: usize) -> bool {
        addr < self.end() && self.addr < addr.saturating_add(len)
    }
}

/// Why a probe hit could not be turned into a watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// The range leaves the current task's stack.
    OutsideStack,
    /// x86 debug registers watch naturally aligned ranges only.
    Misaligned,
    /// The canary slot is outside the probed frame or does not hold the
    /// canary (the probe point is before the prologue stored it).
    CanaryNotFound,
    /// `sp`/`frame` do not describe a frame on this stack (unwind failed).
    BadFrame,
}

/// Computes the watched range for `target` in `frame`.
pub fn place(
    target: Target,
    frame: &Frame,
    stack: &impl StackReader,
) -> Result<WatchRange, PlaceError> {
    let on_stack = |addr: usize| frame.stack_lo <= addr && addr < frame.stack_hi;
    if !on_stack(frame.sp) || !on_stack(frame.frame) || frame.frame < frame.sp {
        return Err(PlaceError::BadFrame);
    }
    let range = match target {
        Target::Local { sp_offset, len } => {
            let addr = frame
                .sp
                .checked_add(sp_offset as usize)
                .ok_or(PlaceError::OutsideStack)?;
            WatchRange { addr, len }
        }
        Target::Canary(slot) => {
            let addr = slot
                .resolve(frame.sp as u64, frame.bp as u64)
                .map(|a| a as usize)
                .filter(|&a| frame.sp <= a && a + WORD <= frame.frame)
                .ok_or(PlaceError::CanaryNotFound)?;
            if stack.read_word(addr) != Some(frame.canary) {
                return Err(PlaceError::CanaryNotFound);
            }
            WatchRange {
                addr,
                len: WORD as u8,
            }
        }
    };
    if range.addr < frame.stack_lo || range.end() > frame.stack_hi {
        return Err(PlaceError::OutsideStack);
    }
    if range.addr % usize::from(range.len) != 0 {
        return Err(PlaceError::Misaligned);
    }
    Ok(range)
}

/// What the probe handler should do with a hit at `func+func_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeDecision {
    /// Arm a watch on this call, at this recursion depth.
    Arm { depth: u32, frame: usize },
    /// The call is at another recursion depth.
    OtherDepth,
    /// This call already holds a watch (the probe sits in a loop).
    AlreadyArmed,
    /// The call's exit is not hooked (return-hook pool exhausted or
    /// recursion guard), so a watch could never be disarmed: never arm.
    ExitUnobservable,
    /// The probed frame could not be identified (unwind failed).
    BadFrame,
}

/// Decides whether this probe hit arms. `hooked` is what the task table
/// knows (calls of the function active in this task with a hooked exit);
/// `already_armed(frame)` asks the slot table; `probed_frame()` finds the
/// probed call's frame and is only called when the depth could match,
/// which keeps the common non-arming hit cheap.
pub fn decide(
    wanted_depth: u16,
    hooked: Active,
    already_armed: impl Fn(usize) -> bool,
    probed_frame: impl FnOnce() -> Option<usize>,
) -> ProbeDecision {
    let wanted = u32::from(wanted_depth);
    if hooked.count == 0 {
        // Not even this call is hooked: its exit cannot be seen.
        return if wanted == 0 {
            ProbeDecision::ExitUnobservable
        } else {
            ProbeDecision::OtherDepth
        };
    }
    // If this call is hooked it is the innermost one, at depth count-1;
    // if its hook was missed it sits at depth count, above all hooked ones.
    let depth_if_hooked = hooked.count - 1;
    if wanted != depth_if_hooked && wanted != hooked.count {
        return ProbeDecision::OtherDepth;
    }
    if wanted == depth_if_hooked && already_armed(hooked.innermost) {
        return ProbeDecision::AlreadyArmed;
    }
    let Some(frame) = probed_frame() else {
        return ProbeDecision::BadFrame;
    };
    match (frame == hooked.innermost, wanted == depth_if_hooked) {
        (true, true) => ProbeDecision::Arm {
            depth: depth_if_hooked,
            frame,
        },
        (false, false) => ProbeDecision::ExitUnobservable,
        _ => ProbeDecision::OtherDepth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake stack: `words[i]` lives at `base + 8*i`.
    struct FakeStack {
        base: usize,
        words: std::vec::Vec<u64>,
    }

    impl StackReader for FakeStack {
        fn read_word(&self, addr: usize) -> Option<u64> {
            let index = addr.checked_sub(self.base)? / WORD;
            self.words.get(index).copied()
        }
    }

    const BASE: usize = 0xffff_c900_0000_0000;
    const CANARY: u64 = 0x1b2c_3d4e_5f60_7a8b;

    fn stack_with(canary_at: &[usize]) -> FakeStack {
        let mut words = std::vec![0xdead_beefu64; 2048];
        for &i in canary_at {
            words[i] = CANARY;
        }
        FakeStack { base: BASE, words }
    }

    fn frame(sp_word: usize, frame_word: usize) -> Frame {
        Frame {
            sp: BASE + sp_word * WORD,
            bp: BASE + (frame_word - 1) * WORD,
            frame: BASE + frame_word * WORD,
            stack_lo: BASE,
            stack_hi: BASE + 2048 * WORD,
            canary: CANARY,
        }
    }

    #[test]
    fn local_is_sp_plus_offset() {
        let f = frame(100, 140);
        let target = Target::Local {
            sp_offset: 64,
            len: 8,
        };
        let range = place(target, &f, &stack_with(&[])).unwrap();
        assert_eq!(
            range,
            WatchRange {
                addr: f.sp + 64,
                len: 8
            }
        );
    }

    #[test]
    fn local_must_stay_on_stack_and_be_aligned() {
        let f = frame(2040, 2046);
        let past_end = Target::Local {
            sp_offset: 64,
            len: 8,
        };
        assert_eq!(
            place(past_end, &f, &stack_with(&[])),
            Err(PlaceError::OutsideStack)
        );
        let odd = Target::Local {
            sp_offset: 3,
            len: 4,
        };
        assert_eq!(
            place(odd, &frame(100, 140), &stack_with(&[])),
            Err(PlaceError::Misaligned)
        );
        let byte = Target::Local {
            sp_offset: 3,
            len: 1,
        };
        assert!(place(byte, &frame(100, 140), &stack_with(&[])).is_ok());
    }

    #[test]
    fn canary_is_where_the_prologue_put_it_not_a_stale_copy() {
        // The real canary at sp+0x80 (word 116), stale copies above and below.
        let slot = RegAddr::Sp(0x80);
        let stack = stack_with(&[110, 116, 118]);
        let range = place(Target::Canary(slot), &frame(100, 140), &stack).unwrap();
        assert_eq!(
            range,
            WatchRange {
                addr: BASE + 116 * WORD,
                len: 8
            }
        );
        // Addressed from the frame pointer.
        let slot = RegAddr::Bp(-0x18);
        let range = place(Target::Canary(slot), &frame(100, 140), &stack_with(&[136])).unwrap();
        assert_eq!(range.addr, BASE + 136 * WORD);
    }

    #[test]
    fn canary_slot_must_hold_the_canary_inside_the_frame() {
        let slot = RegAddr::Sp(0x80);
        // Not stored yet (probe before the prologue's store).
        assert_eq!(
            place(Target::Canary(slot), &frame(100, 140), &stack_with(&[])),
            Err(PlaceError::CanaryNotFound)
        );
        // Slot computed outside the frame.
        let far = RegAddr::Sp(0x400);
        assert_eq!(
            place(Target::Canary(far), &frame(100, 140), &stack_with(&[228])),
            Err(PlaceError::CanaryNotFound)
        );
        let below = RegAddr::Sp(-8);
        assert_eq!(
            place(Target::Canary(below), &frame(100, 140), &stack_with(&[99])),
            Err(PlaceError::CanaryNotFound)
        );
    }

    #[test]
    fn frame_not_on_this_stack_is_rejected() {
        let slot = Target::Canary(RegAddr::Sp(0x80));
        let mut f = frame(100, 140);
        f.frame = f.stack_hi + 64;
        assert_eq!(
            place(slot, &f, &stack_with(&[116])),
            Err(PlaceError::BadFrame)
        );
        let mut g = frame(100, 140);
        g.frame = g.sp - 8;
        assert_eq!(
            place(slot, &g, &stack_with(&[116])),
            Err(PlaceError::BadFrame)
        );
    }

    fn hooked(count: u32, innermost: usize) -> Active {
        Active { count, innermost }
    }

    #[test]
    fn arms_the_hooked_call_at_the_wanted_depth() {
        let d = decide(0, hooked(1, 0x1000), |_| false, || Some(0x1000));
        assert_eq!(
            d,
            ProbeDecision::Arm {
                depth: 0,
                frame: 0x1000
            }
        );
        let d = decide(2, hooked(3, 0x1000), |_| false, || Some(0x1000));
        assert_eq!(
            d,
            ProbeDecision::Arm {
                depth: 2,
                frame: 0x1000
            }
        );
    }

    #[test]
    fn other_depths_do_not_unwind() {
        let d = decide(
            3,
            hooked(1, 0x1000),
            |_| false,
            || panic!("unwound on a depth mismatch"),
        );
        assert_eq!(d, ProbeDecision::OtherDepth);
        let d = decide(
            0,
            hooked(3, 0x1000),
            |_| false,
            || panic!("unwound on a depth mismatch"),
        );
        assert_eq!(d, ProbeDecision::OtherDepth);
    }

    #[test]
    fn a_call_whose_exit_hook_was_missed_never_arms() {
        // No hooked call at all: depth 0 wanted, exit unobservable.
        assert_eq!(
            decide(0, hooked(0, 0), |_| false, || Some(0x900)),
            ProbeDecision::ExitUnobservable
        );
        // Two hooked outer calls, this one (depth 2) missed its hook.
        let d = decide(2, hooked(2, 0x1000), |_| false, || Some(0x900));
        assert_eq!(d, ProbeDecision::ExitUnobservable);
        // Same situation but depth 1 wanted: that is an outer call, not this one.
        let d = decide(1, hooked(2, 0x1000), |_| false, || Some(0x900));
        assert_eq!(d, ProbeDecision::OtherDepth);
    }

    #[test]
    fn a_loop_over_the_probe_arms_once() {
        let d = decide(
            0,
            hooked(1, 0x1000),
            |f| f == 0x1000,
            || panic!("no unwind needed"),
        );
        assert_eq!(d, ProbeDecision::AlreadyArmed);
    }

    #[test]
    fn failed_unwind_is_reported() {
        assert_eq!(
            decide(0, hooked(1, 0x1000), |_| false, || None),
            ProbeDecision::BadFrame
        );
    }

    #[test]
    fn watch_range_overlap() {
        let r = WatchRange { addr: 100, len: 8 };
        assert!(r.overlaps(107, 1));
        assert!(r.overlaps(96, 8));
        assert!(!r.overlaps(108, 4));
        assert!(!r.overlaps(92, 8));
    }
}
