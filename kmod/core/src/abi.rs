// SPDX-License-Identifier: GPL-2.0
//! Sizes the module's C and Rust halves agree on. Defined here, emitted
//! into the generated `ksw_shared.h` for C (see `c_header.rs`).

/// Longest function name the C side keeps from kallsyms (`"name [module]"`).
pub const SYM_LEN: usize = 128;
/// Per-call storage the fprobe keeps between a call's entry and exit hooks
/// (holds a `tasks::CallLink`).
pub const CALL_DATA: usize = 16;

const _: () = assert!(core::mem::size_of::<super::tasks::CallLink>() <= CALL_DATA);
