// SPDX-License-Identifier: GPL-2.0
//! Classifying a breakpoint hit: report it, or explain why not.

use super::slots::Armed;

/// The writer's side of a hit, gathered by the #DB handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writer {
    pub task: usize,
    /// Address this CPU's debug register was programmed with.
    pub programmed_addr: usize,
    /// The writer ip lies in the kstackwatch module itself.
    pub in_this_module: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitClass {
    /// A write into a live watched frame: emit `ksw_hit`.
    Report,
    /// The victim's own exit path (return trampolines, the exit handler)
    /// reusing the dead frame before the watch is disarmed.
    ExitPath,
    /// The debug register still held a watch that was since retired or
    /// retargeted (the cross-CPU update had not arrived yet).
    Stale,
    /// kstackwatch's own code.
    ThisModule,
}

/// `frame_live()` answers whether the armed frame is still on the writer's
/// call chain; it unwinds, so it is only asked for the victim's own writes.
pub fn classify(
    armed: Option<&Armed>,
    writer: &Writer,
    frame_live: impl FnOnce(&Armed) -> bool,
) -> HitClass {
    let Some(armed) = armed else {
        return HitClass::Stale;
    };
    if armed.addr != writer.programmed_addr {
        return HitClass::Stale;
    }
    if writer.in_this_module {
        return HitClass::ThisModule;
    }
    if writer.task == armed.task && !frame_live(armed) {
        return HitClass::ExitPath;
    }
    HitClass::Report
}

/// Whether a value change between arm and disarm marks the frame corrupted.
/// `exit_value` is read from memory unless the exit path already reused the
/// slot, in which case the last value a reported hit saw stands for it.
pub fn exit_value(
    last_value: u64,
    exit_path_wrote: bool,
    read_now: impl FnOnce() -> Option<u64>,
) -> u64 {
    if exit_path_wrote {
        last_value
    } else {
        read_now().unwrap_or(last_value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn armed() -> Armed {
        Armed {
            id: 1,
            spec: 0,
            task: 10,
            frame: 0x2000,
            addr: 0x1f00,
            len: 8,
            sp: 0x1e00,
            depth: 0,
            probe_ip: 0,
            func_start: 0,
            func_end: 0,
            panic_on_catch: false,
            arm_value: 5,
            victim_pid: 1,
            victim_comm: [0; 16],
            armed_ns: 0,
        }
    }

    fn writer(task: usize) -> Writer {
        Writer {
            task,
            programmed_addr: 0x1f00,
            in_this_module: false,
        }
    }

    #[test]
    fn other_tasks_are_reported_without_unwinding() {
        let c = classify(Some(&armed()), &writer(11), |_| panic!("unwound"));
        assert_eq!(c, HitClass::Report);
    }

    #[test]
    fn victim_writes_depend_on_the_frame_being_live() {
        assert_eq!(
            classify(Some(&armed()), &writer(10), |_| true),
            HitClass::Report
        );
        assert_eq!(
            classify(Some(&armed()), &writer(10), |_| false),
            HitClass::ExitPath
        );
    }

    #[test]
    fn stale_and_self_hits() {
        assert_eq!(classify(None, &writer(11), |_| true), HitClass::Stale);
        let mut w = writer(11);
        w.programmed_addr = 0x1f08;
        assert_eq!(classify(Some(&armed()), &w, |_| true), HitClass::Stale);
        let mut w = writer(11);
        w.in_this_module = true;
        assert_eq!(classify(Some(&armed()), &w, |_| true), HitClass::ThisModule);
    }

    #[test]
    fn exit_value_prefers_memory_until_the_exit_path_wrote() {
        assert_eq!(exit_value(7, false, || Some(9)), 9);
        assert_eq!(exit_value(7, true, || panic!("read")), 7);
        assert_eq!(exit_value(7, false, || None), 7);
    }
}
