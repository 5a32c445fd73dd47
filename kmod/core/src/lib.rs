// SPDX-License-Identifier: GPL-2.0
//! KStackWatch core: every decision of the kernel module that does not need
//! the kernel, kept `no_std`, allocation-free and panic-free so the module
//! can include it (by path, see `kmod/kstackwatch/ksw_main.rs`) and the
//! host can test and fuzz it. The `ksw` tools share its event vocabulary and
//! config parser.
//!
//! Modules refer to each other with `super::`, so the same files compile as
//! this crate and as a module tree inside the kernel module's crate.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

// The modules the kernel module compiles too, listed once.
include!("kernel_modules.rs");

/// Generates the module's C header (host only).
pub mod c_header;
