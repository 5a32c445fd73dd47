//! DWARF for kstackwatch: `ksw watch FUNC VAR` finds, from a vmlinux or a
//! module's debug info and the function's machine code, the probe point,
//! the variable's offset from `%rsp` there and the bytes to watch, and
//! writes the `/proc/kstackwatch` spec (see `watch` for how a DWARF
//! location becomes an offset from `%rsp`).
//!
//! - `elf`: the file, its symbols and code, DWARF with a relocatable
//!   file's relocations applied;
//! - `func`: one function's variables, scopes, locations and line rows;
//! - `types`: type names and sizes, member paths (`.field`, `[index]`);
//! - `location`: what a location expression says (memory relative to the
//!   CFA, `%rsp` or `%rbp`, a register, a value);
//! - `watch`: the resolution and its explanation, `--list`;
//! - `lines`: file:line and inlining chains of `FUNC+OFF [MODULE]` addresses;
//! - `cli`: the `ksw watch` command line, `/proc/kstackwatch`.

pub mod cli;
pub mod elf;
pub mod func;
pub mod lines;
pub mod location;
pub mod types;
pub mod watch;
