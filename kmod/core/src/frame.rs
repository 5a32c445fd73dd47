// SPDX-License-Identifier: GPL-2.0
//! Where a watch goes in the probed frame, and whether a probe hit may arm.
//!
//! Terms (x86_64, stack grows down):
//! - `sp`: the stack pointer at the probe (`func+func_offset`).
//! - `frame`: the address of the probed call's return-address slot. Every
//!   byte of the live frame lies in `[sp, frame)`; the return hook records
//!   the same address for the call, which is how a probe hit is paired with
//!   exactly one function exit.

use super::config::WatchTarget;

/// Bytes in a stack word (x86_64).
pub const WORD: usize = 8;
/// Longest frame the canary scan walks (words), whatever the frame size.
pub const MAX_CANARY_SCAN_WORDS: usize = 2048;

/// The probed frame as seen from the probe handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    pub sp: usize,
    /// Address of the return-address slot of the probed call.
    pub frame: usize,
    /// The current task's stack: `[stack_lo, stack_hi)`.
    pub stack_lo: usize,
    pub stack_hi: usize,
    /// The current task's stack-protector canary value.
    pub canary: u64,
}

/// Reads stack words for the canary scan. The kernel reads its own stack;
/// host tests read a slice.
pub trait StackReader {
    fn read_word(&self, addr: usize) -> Option<u64>;
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
    /// No word of the probed frame holds the canary.
    CanaryNotFound,
    /// `sp`/`frame` do not describe a frame on this stack (unwind failed).
    BadFrame,
}

/// Computes the watched range for `target` in `frame`.
pub fn place(
    target: WatchTarget,
    frame: &Frame,
    stack: &impl StackReader,
) -> Result<WatchRange, PlaceError> {
    let on_stack = |addr: usize| frame.stack_lo <= addr && addr < frame.stack_hi;
    if !on_stack(frame.sp) || !on_stack(frame.frame) || frame.frame < frame.sp {
        return Err(PlaceError::BadFrame);
    }
    let range = match target {
        WatchTarget::Local { sp_offset, len } => {
            let addr = frame
                .sp
                .checked_add(sp_offset as usize)
                .ok_or(PlaceError::OutsideStack)?;
            WatchRange { addr, len }
        }
        WatchTarget::Canary => find_canary(frame, stack).ok_or(PlaceError::CanaryNotFound)?,
    };
    if range.addr < frame.stack_lo || range.end() > frame.stack_hi {
        return Err(PlaceError::OutsideStack);
    }
    if range.addr % usize::from(range.len) != 0 {
        return Err(PlaceError::Misaligned);
    }
    Ok(range)
}

/// Scans the probed frame from its top down: the compiler puts the canary
/// right below the saved registers, above every local, so the first match
/// from the top is the canary and not a copy of its value in a local.
fn find_canary(frame: &Frame, stack: &impl StackReader) -> Option<WatchRange> {
    let lowest = frame.sp & !(WORD - 1);
    let mut addr = (frame.frame & !(WORD - 1)).checked_sub(WORD)?;
    for _ in 0..MAX_CANARY_SCAN_WORDS {
        if addr < lowest {
            break;
        }
        if stack.read_word(addr)? == frame.canary {
            return Some(WatchRange {
                addr,
                len: WORD as u8,
            });
        }
        addr = addr.checked_sub(WORD)?;
    }
    None
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

/// The facts the return hook gives about the current task: how many calls
/// of the watched function it has active with a hooked exit, and the frame of
/// the innermost one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookedCalls {
    pub count: u32,
    pub innermost: usize,
}

/// Decides whether this probe hit arms. `already_armed(frame)` asks the slot
/// table; `probed_frame()` unwinds one frame and is only called when the
/// depth could match, which keeps the common non-arming hit cheap.
pub fn decide(
    wanted_depth: u16,
    hooked: HookedCalls,
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

    fn stack_with(canary_at: Option<usize>, copy_at: Option<usize>) -> FakeStack {
        let mut words = std::vec![0xdead_beefu64; 2048];
        if let Some(i) = copy_at {
            words[i] = CANARY;
        }
        if let Some(i) = canary_at {
            words[i] = CANARY;
        }
        FakeStack { base: BASE, words }
    }

    fn frame(sp_word: usize, frame_word: usize) -> Frame {
        Frame {
            sp: BASE + sp_word * WORD,
            frame: BASE + frame_word * WORD,
            stack_lo: BASE,
            stack_hi: BASE + 2048 * WORD,
            canary: CANARY,
        }
    }

    #[test]
    fn local_is_sp_plus_offset() {
        let f = frame(100, 140);
        let target = WatchTarget::Local {
            sp_offset: 64,
            len: 8,
        };
        let range = place(target, &f, &stack_with(None, None)).unwrap();
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
        let past_end = WatchTarget::Local {
            sp_offset: 64,
            len: 8,
        };
        assert_eq!(
            place(past_end, &f, &stack_with(None, None)),
            Err(PlaceError::OutsideStack)
        );
        let odd = WatchTarget::Local {
            sp_offset: 3,
            len: 4,
        };
        assert_eq!(
            place(odd, &frame(100, 140), &stack_with(None, None)),
            Err(PlaceError::Misaligned)
        );
        let byte = WatchTarget::Local {
            sp_offset: 3,
            len: 1,
        };
        assert!(place(byte, &frame(100, 140), &stack_with(None, None)).is_ok());
    }

    #[test]
    fn canary_found_from_the_top_of_the_frame() {
        // The canary at word 138 (just below saved registers), a stale copy
        // lower in the frame at 110: the scan must pick 138.
        let range = place(
            WatchTarget::Canary,
            &frame(100, 140),
            &stack_with(Some(138), Some(110)),
        )
        .unwrap();
        assert_eq!(
            range,
            WatchRange {
                addr: BASE + 138 * WORD,
                len: 8
            }
        );
    }

    #[test]
    fn canary_search_stays_inside_the_frame() {
        // A canary value above the return slot belongs to the caller.
        assert_eq!(
            place(
                WatchTarget::Canary,
                &frame(100, 140),
                &stack_with(Some(141), None)
            ),
            Err(PlaceError::CanaryNotFound)
        );
        // ...and one below sp belongs to a dead callee.
        assert_eq!(
            place(
                WatchTarget::Canary,
                &frame(100, 140),
                &stack_with(Some(99), None)
            ),
            Err(PlaceError::CanaryNotFound)
        );
        // The word at sp itself is part of the frame.
        assert!(place(
            WatchTarget::Canary,
            &frame(100, 140),
            &stack_with(Some(100), None)
        )
        .is_ok());
    }

    #[test]
    fn frame_not_on_this_stack_is_rejected() {
        let mut f = frame(100, 140);
        f.frame = f.stack_hi + 64;
        assert_eq!(
            place(WatchTarget::Canary, &f, &stack_with(Some(138), None)),
            Err(PlaceError::BadFrame)
        );
        let mut g = frame(100, 140);
        g.frame = g.sp - 8;
        assert_eq!(
            place(WatchTarget::Canary, &g, &stack_with(Some(138), None)),
            Err(PlaceError::BadFrame)
        );
    }

    fn hooked(count: u32, innermost: usize) -> HookedCalls {
        HookedCalls { count, innermost }
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
