//! objcheck: validates `ksw_core::insn` against GNU objdump.
//!
//! `objcheck insn FILE...` decodes every function symbol (STT_FUNC with a
//! size, in an executable section) of each ELF file from its start to its
//! end and compares each instruction with `objdump -d -z -w` of the same
//! file: the boundary (length), the control-flow class (from objdump's
//! mnemonic) and the target of direct branches. `objcheck sweep` does the
//! same on a generated object holding the whole opcode space.
//!
//! Agreement: same length, flow and target; or objdump `(bad)` and the
//! decoder `Invalid`. Deliberate disagreements are classified as
//! [`check::Exception`]s and counted apart; anything else is a mismatch.
//! After any disagreement the walk continues at objdump's next boundary.
//!
//! `objcheck layout FILE...` runs the stack layout analysis
//! (`ksw_core::layout`) on every function and checks it against the
//! kernel's ORC unwind table (see [`layout`]); `objcheck orc-dump FILE`
//! prints that table in `objtool --dump=orc`'s format, to diff the parser
//! against objtool.

pub mod check;
pub mod layout;
pub mod objdump;
pub mod orc;
pub mod sweep;
