// SPDX-License-Identifier: GPL-2.0
//! The vocabulary of the `kstackwatch` trace events, shared by the module
//! (which emits them) and the `ksw` tools (which decode them by name from
//! the kernel's format files, never by offset).

use core::fmt;

/// Trace system of all events.
pub const SYSTEM: &str = "kstackwatch";
/// A watch was armed on a frame (victim's context).
pub const ARM: &str = "ksw_arm";
/// A watched slot was written (writer's context).
pub const HIT: &str = "ksw_hit";
/// A watch was disarmed (victim's context, or the reconfiguring task's).
pub const DISARM: &str = "ksw_disarm";
/// All events, in the order they happen to a frame.
pub const ALL: [&str; 3] = [ARM, HIT, DISARM];

/// Field names, as in the TRACE_EVENT definitions (`kmod/kstackwatch/ksw_trace.h`).
pub mod field {
    pub const ID: &str = "id";
    pub const SLOT: &str = "slot";
    pub const SPEC: &str = "spec";
    pub const DEPTH: &str = "depth";
    pub const PROBE_IP: &str = "probe_ip";
    pub const ADDR: &str = "addr";
    pub const LEN: &str = "len";
    pub const SP: &str = "sp";
    pub const VALUE: &str = "value";
    pub const WRITER_IP: &str = "writer_ip";
    pub const OLD_VALUE: &str = "old_value";
    pub const NEW_VALUE: &str = "new_value";
    pub const VICTIM_PID: &str = "victim_pid";
    pub const VICTIM_COMM: &str = "victim_comm";
    pub const WRITER_COMM: &str = "writer_comm";
    pub const ARM_VALUE: &str = "arm_value";
    pub const EXIT_VALUE: &str = "exit_value";
    pub const HITS: &str = "hits";
    pub const CORRUPTED: &str = "corrupted";
    pub const REASON: &str = "reason";
}

/// Why a watch ended (`ksw_disarm.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DisarmReason {
    /// The watched call returned (fprobe exit handler).
    Return = 0,
    /// The victim task exited inside the watched call.
    TaskExit = 1,
    /// The configuration changed or the module is unloading.
    Teardown = 2,
}

impl DisarmReason {
    pub fn from_raw(raw: u64) -> Option<DisarmReason> {
        match raw {
            0 => Some(DisarmReason::Return),
            1 => Some(DisarmReason::TaskExit),
            2 => Some(DisarmReason::Teardown),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DisarmReason::Return => "return",
            DisarmReason::TaskExit => "task_exit",
            DisarmReason::Teardown => "teardown",
        }
    }
}

impl fmt::Display for DisarmReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to a watched frame, from its disarm event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Nothing wrote the slot and its value is unchanged.
    Clean,
    /// Writes were caught (the writer is known), value restored or not.
    Hit,
    /// The value changed but no write was caught (e.g. during the
    /// cross-CPU arming window, or by a device).
    SilentCorruption,
}

impl Verdict {
    pub fn of(hits: u64, corrupted: bool) -> Verdict {
        if hits > 0 {
            Verdict::Hit
        } else if corrupted {
            Verdict::SilentCorruption
        } else {
            Verdict::Clean
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Hit => "hit",
            Verdict::SilentCorruption => "silently corrupted",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(Verdict::of(0, false), Verdict::Clean);
        assert_eq!(Verdict::of(2, false), Verdict::Hit);
        assert_eq!(Verdict::of(1, true), Verdict::Hit);
        assert_eq!(Verdict::of(0, true), Verdict::SilentCorruption);
    }

    #[test]
    fn reasons_round_trip() {
        for r in [
            DisarmReason::Return,
            DisarmReason::TaskExit,
            DisarmReason::Teardown,
        ] {
            assert_eq!(DisarmReason::from_raw(r as u64), Some(r));
        }
        assert_eq!(DisarmReason::from_raw(9), None);
    }
}
