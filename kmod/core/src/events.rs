// SPDX-License-Identifier: GPL-2.0
//! The `kstackwatch` trace events, defined once.
//!
//! Each event is one `#[repr(C)]` record ([`ArmRecord`], [`HitRecord`],
//! [`DisarmRecord`]): the module fills it in Rust and hands a pointer to
//! the `TRACE_EVENT`, whose fields and assignments come from the generated
//! C header `kmod/kstackwatch/ksw_shared.h` (see `c_header.rs`), so the ring
//! buffer entry has the record's layout field for field. Each record's
//! field table ([`ArmRecord::FIELDS`], ...) is what the C header, the
//! `ksw` decoder and the plugin work from; the decoders still find fields
//! by name in the kernel's own format files, never by offset, so
//! recordings of older modules decode.
//!
//! Adding a field: add it to the record below, regenerate the header
//! (`cargo run -p ksw-core --example c-header > kmod/kstackwatch/ksw_shared.h`;
//! `cargo test` fails while it is stale), print it in `ksw_trace.h`'s
//! `TP_printk`, and describe it in `Documentation/events.md`.

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

/// Length of a task name (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;

/// The type of a record field, as the C side declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    U8,
    U32,
    I32,
    U64,
    /// A NUL-padded task name, `char[16]`.
    Comm,
}

impl FieldKind {
    pub const fn size(self) -> usize {
        match self {
            FieldKind::U8 => 1,
            FieldKind::U32 | FieldKind::I32 => 4,
            FieldKind::U64 => 8,
            FieldKind::Comm => COMM_LEN,
        }
    }

    /// The C type in the record struct and the `__field`/`__array` entry.
    pub const fn c_type(self) -> &'static str {
        match self {
            FieldKind::U8 => "u8",
            FieldKind::U32 => "u32",
            FieldKind::I32 => "int",
            FieldKind::U64 => "u64",
            FieldKind::Comm => "char",
        }
    }
}

/// One field of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldDesc {
    pub name: &'static str,
    pub kind: FieldKind,
    /// Offset in the record (the trace entry puts its 8-byte common
    /// header first).
    pub offset: usize,
    pub doc: &'static str,
}

/// True if the fields follow each other without padding and fill `size`:
/// then the `TRACE_EVENT` entry declared from the same list has the same
/// layout after its common header.
pub const fn fields_are_packed(fields: &[FieldDesc], size: usize) -> bool {
    let mut next = 0;
    let mut i = 0;
    while i < fields.len() {
        if fields[i].offset != next {
            return false;
        }
        next += fields[i].kind.size();
        i += 1;
    }
    next == size && size % 8 == 0
}

macro_rules! record {
    (
        $(#[$meta:meta])*
        pub struct $name:ident = $event:ident {
            $( $(#[doc = $doc:literal])+ pub $field:ident : $kind:ident, )*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: record!(@ty $kind), )*
        }

        impl $name {
            /// The event's name.
            pub const EVENT: &'static str = $event;
            /// The fields, in layout order.
            pub const FIELDS: &'static [FieldDesc] = &[
                $( FieldDesc {
                    name: stringify!($field),
                    kind: FieldKind::$kind,
                    offset: core::mem::offset_of!($name, $field),
                    doc: concat!($($doc),+),
                }, )*
            ];
        }

        const _: () = assert!(fields_are_packed($name::FIELDS, core::mem::size_of::<$name>()));
    };
    (@ty U8) => { u8 };
    (@ty U32) => { u32 };
    (@ty I32) => { i32 };
    (@ty U64) => { u64 };
    (@ty Comm) => { [u8; COMM_LEN] };
}

record! {
    /// `ksw_arm`: a watch went live on this CPU (victim's context).
    pub struct ArmRecord = ARM {
        /// Watch id, unique per module load: ties arm, hits and disarm.
        pub id: U64,
        /// Where the watch was armed (func+func_offset).
        pub probe_ip: U64,
        /// First watched byte.
        pub addr: U64,
        /// Stack pointer at the probe (after its instruction).
        pub sp: U64,
        /// Value of the slot at arm (0 for a canary watch: withheld).
        pub value: U64,
        /// Recursion depth of the armed call (0: outermost).
        pub depth: U32,
        /// Hardware slot (debug register).
        pub slot: U8,
        /// Index of the spec in /proc/kstackwatch.
        pub spec: U8,
        /// Bytes watched.
        pub len: U8,
        /// `flags::ARM_*`.
        pub flags: U8,
        /// The victim task's name (the arming task: a kernel thread named
        /// at its creation has no COMM record to name it otherwise).
        pub victim_comm: Comm,
    }
}

record! {
    /// `ksw_hit`: something wrote the watched slot of a live frame
    /// (writer's context: a call chain recorded with it is the writer's).
    pub struct HitRecord = HIT {
        /// Watch id.
        pub id: U64,
        /// First watched byte.
        pub addr: U64,
        /// Instruction after the write (data breakpoints trap after it).
        pub writer_ip: U64,
        /// Value before the write (as last seen; 0 if it was the canary).
        pub old_value: U64,
        /// Value after the write (0 if it is the canary).
        pub new_value: U64,
        /// Where the victim frame was armed.
        pub probe_ip: U64,
        /// The victim task's pid.
        pub victim_pid: I32,
        /// The victim task's name.
        pub victim_comm: Comm,
        /// The writer task's name (the interrupted task for interrupts).
        pub writer_comm: Comm,
        /// Hardware slot.
        pub slot: U8,
        /// Bytes watched.
        pub len: U8,
        /// `WriterContext`: task, softirq, hardirq or NMI.
        pub context: U8,
        /// `flags::HIT_*`.
        pub flags: U8,
    }
}

record! {
    /// `ksw_disarm`: a watch ended, and how the frame died.
    pub struct DisarmRecord = DISARM {
        /// Watch id.
        pub id: U64,
        /// First watched byte.
        pub addr: U64,
        /// Value at arm (0 for a canary watch: withheld).
        pub arm_value: U64,
        /// Value when the frame died (0 if it is the canary: intact).
        pub exit_value: U64,
        /// Writes reported for this frame (ksw_hit events emitted).
        pub hits: U32,
        /// Hardware slot.
        pub slot: U8,
        /// `ExitState`: the value when the frame died vs at arm.
        pub corrupted: U8,
        /// `DisarmReason`.
        pub reason: U8,
        /// `flags::DISARM_*`.
        pub flags: U8,
    }
}

/// Bits of the records' `flags` fields.
pub mod flags {
    /// The watch is the stack canary: its value is never put in an event.
    pub const ARM_CANARY: u8 = 1;
    /// The writer is the victim task itself: its own code, or an
    /// interrupt on its CPU while it ran.
    pub const HIT_BY_VICTIM: u8 = 1;
    /// `old_value` was the canary (withheld).
    pub const HIT_OLD_CANARY: u8 = 2;
    /// `new_value` is the canary (withheld).
    pub const HIT_NEW_CANARY: u8 = 4;
    /// The writing instruction is the one the arming kprobe replaced; it
    /// ran from the kprobe's out-of-line copy, and `writer_ip` is mapped
    /// back to the function's own text.
    pub const HIT_OUT_OF_LINE: u8 = 8;
    /// The watch is the stack canary (`arm_value` withheld).
    pub const DISARM_CANARY: u8 = 1;
    /// `exit_value` is the canary, intact (withheld).
    pub const DISARM_EXIT_CANARY: u8 = 2;
}

/// Field names, as the records define them (decoders look them up by name
/// in the kernel's format files).
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
    pub const FLAGS: &str = "flags";
    pub const WRITER_IP: &str = "writer_ip";
    pub const OLD_VALUE: &str = "old_value";
    pub const NEW_VALUE: &str = "new_value";
    pub const VICTIM_PID: &str = "victim_pid";
    pub const VICTIM_COMM: &str = "victim_comm";
    pub const WRITER_COMM: &str = "writer_comm";
    pub const CONTEXT: &str = "context";
    pub const ARM_VALUE: &str = "arm_value";
    pub const EXIT_VALUE: &str = "exit_value";
    pub const HITS: &str = "hits";
    pub const CORRUPTED: &str = "corrupted";
    pub const REASON: &str = "reason";
}

/// Defines a `#[repr(u8)]` enum with its raw values and names, listed once
/// (the C header's `__print_symbolic` tables come from `ALL`).
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])+ $variant:ident = $value:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name {
            $( $(#[doc = $doc])+ $variant = $value, )*
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            pub fn from_raw(raw: u64) -> Option<$name> {
                match raw {
                    $( $value => Some($name::$variant), )*
                    _ => None,
                }
            }

            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum! {
    /// Why a watch ended (`ksw_disarm.reason`).
    pub enum DisarmReason {
        /// The frame released the slot (the epilogue probe), or the call ended.
        Return = 0 => "return",
        /// The victim task exited inside the watched call.
        TaskExit = 1 => "task_exit",
        /// The configuration changed or the module is unloading.
        Teardown = 2 => "teardown",
        /// The epilogue probe did not run (a kprobe missed in a nested
        /// probe context): the return hook disarmed it after the frame
        /// died, so the exit value is not known.
        Backstop = 3 => "backstop",
    }
}

named_enum! {
    /// The value when the frame died, against the value at arm
    /// (`ksw_disarm.corrupted`).
    pub enum ExitState {
        /// Same value.
        Intact = 0 => "intact",
        /// Different value: the frame died corrupted.
        Changed = 1 => "changed",
        /// Not read while the frame lived (backstop disarm).
        Unknown = 2 => "unknown",
    }
}

named_enum! {
    /// What the writer was running as (`ksw_hit.context`).
    pub enum WriterContext {
        /// A task (process context, including kernel threads).
        Task = 0 => "task",
        /// A softirq (on irq exit or in ksoftirqd).
        Softirq = 1 => "softirq",
        /// A hardirq handler.
        Hardirq = 2 => "hardirq",
        /// An NMI.
        Nmi = 3 => "nmi",
    }
}

/// `preempt_count()` bits (include/linux/preempt.h), for [`WriterContext::of`].
pub mod preempt {
    pub const SOFTIRQ_OFFSET: u32 = 1 << 8;
    pub const HARDIRQ_MASK: u32 = 0xf << 16;
    pub const NMI_MASK: u32 = 0xf << 20;
    pub const HARDIRQ_OFFSET: u32 = 1 << 16;
    pub const NMI_OFFSET: u32 = 1 << 20;
}

impl WriterContext {
    /// The writer's context from `preempt_count()` read in the breakpoint
    /// handler. The #DB entry itself counts as an NMI (`irqentry_nmi_enter`
    /// adds `NMI_OFFSET + HARDIRQ_OFFSET`), so that is taken off first.
    pub fn of(preempt_count: u32) -> WriterContext {
        use preempt::*;
        let interrupted = preempt_count.wrapping_sub(NMI_OFFSET + HARDIRQ_OFFSET);
        if interrupted & NMI_MASK != 0 {
            WriterContext::Nmi
        } else if interrupted & HARDIRQ_MASK != 0 {
            WriterContext::Hardirq
        } else if interrupted & SOFTIRQ_OFFSET != 0 {
            WriterContext::Softirq
        } else {
            WriterContext::Task
        }
    }
}

/// What happened to a watched frame, from its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Nothing wrote the slot and its value at death is the value at arm.
    Clean,
    /// Writes were caught (the writer is known), value restored or not.
    Hit,
    /// The value changed but no write was caught (the cross-CPU arming
    /// window, a device, or a write through another mapping).
    SilentCorruption,
    /// No write was caught and the value at death is not known (the frame
    /// was disarmed after it died): neither clean nor corrupted.
    Unknown,
}

impl Verdict {
    pub fn of(hits: u64, exit: ExitState) -> Verdict {
        match (hits, exit) {
            (1.., _) => Verdict::Hit,
            (0, ExitState::Changed) => Verdict::SilentCorruption,
            (0, ExitState::Unknown) => Verdict::Unknown,
            (0, ExitState::Intact) => Verdict::Clean,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Hit => "hit",
            Verdict::SilentCorruption => "silently corrupted",
            Verdict::Unknown => "unknown",
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
        assert_eq!(Verdict::of(0, ExitState::Intact), Verdict::Clean);
        assert_eq!(Verdict::of(2, ExitState::Intact), Verdict::Hit);
        assert_eq!(Verdict::of(1, ExitState::Changed), Verdict::Hit);
        assert_eq!(
            Verdict::of(0, ExitState::Changed),
            Verdict::SilentCorruption
        );
        assert_eq!(Verdict::of(0, ExitState::Unknown), Verdict::Unknown);
    }

    #[test]
    fn enums_round_trip() {
        for r in DisarmReason::ALL {
            assert_eq!(DisarmReason::from_raw(*r as u64), Some(*r));
        }
        for s in ExitState::ALL {
            assert_eq!(ExitState::from_raw(*s as u64), Some(*s));
        }
        assert_eq!(DisarmReason::from_raw(9), None);
    }

    #[test]
    fn records_have_the_sizes_the_c_side_asserts() {
        assert_eq!(core::mem::size_of::<ArmRecord>(), 64);
        assert_eq!(core::mem::size_of::<HitRecord>(), 88);
        assert_eq!(core::mem::size_of::<DisarmRecord>(), 40);
    }

    #[test]
    fn every_named_field_exists() {
        let all = [ArmRecord::FIELDS, HitRecord::FIELDS, DisarmRecord::FIELDS];
        for name in [
            field::ID,
            field::SLOT,
            field::SPEC,
            field::DEPTH,
            field::PROBE_IP,
            field::ADDR,
            field::LEN,
            field::SP,
            field::VALUE,
            field::FLAGS,
            field::WRITER_IP,
            field::OLD_VALUE,
            field::NEW_VALUE,
            field::VICTIM_PID,
            field::VICTIM_COMM,
            field::WRITER_COMM,
            field::CONTEXT,
            field::ARM_VALUE,
            field::EXIT_VALUE,
            field::HITS,
            field::CORRUPTED,
            field::REASON,
        ] {
            assert!(
                all.iter().any(|f| f.iter().any(|d| d.name == name)),
                "{name} is in no record"
            );
        }
    }

    #[test]
    fn writer_context_from_preempt_count() {
        use preempt::*;
        let db = NMI_OFFSET + HARDIRQ_OFFSET;
        assert_eq!(WriterContext::of(db), WriterContext::Task);
        // Preemption disabled, bh disabled: still a task.
        assert_eq!(
            WriterContext::of(db + 3 + 2 * SOFTIRQ_OFFSET),
            WriterContext::Task
        );
        assert_eq!(
            WriterContext::of(db + SOFTIRQ_OFFSET),
            WriterContext::Softirq
        );
        assert_eq!(
            WriterContext::of(db + HARDIRQ_OFFSET),
            WriterContext::Hardirq
        );
        assert_eq!(
            WriterContext::of(db + HARDIRQ_OFFSET + SOFTIRQ_OFFSET),
            WriterContext::Hardirq
        );
        assert_eq!(
            WriterContext::of(db + NMI_OFFSET + HARDIRQ_OFFSET),
            WriterContext::Nmi
        );
    }
}
