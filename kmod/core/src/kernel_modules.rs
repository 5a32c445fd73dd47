// SPDX-License-Identifier: GPL-2.0
// The ksw-core modules the kernel module compiles in (by `include!`, in
// lib.rs and in kmod/kstackwatch/ksw_main.rs): the one list of them.

/// Sizes the C and Rust halves agree on.
pub mod abi;
/// The `/proc/kstackwatch` configuration language.
pub mod config;
/// The trace events' records, enums and field table.
pub mod events;
/// Formatting into fixed buffers.
pub mod fmtbuf;
/// Placing a watch in the probed frame; the arm decision.
pub mod frame;
/// Classifying breakpoint hits; what events may say about values.
pub mod hit;
/// x86-64 instruction decoder.
pub mod insn;
/// A function's stack layout from its machine code.
pub mod layout;
/// Which eligible calls a sampling spec arms.
pub mod sample;
/// The hardware slot table.
pub mod slots;
/// A heap sort core's sorts cannot replace in the module (objtool).
pub mod sort;
/// Counters and histograms.
pub mod stats;
/// Per-task call depth.
pub mod tasks;
