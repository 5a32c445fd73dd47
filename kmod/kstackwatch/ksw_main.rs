// SPDX-License-Identifier: GPL-2.0
//! kstackwatch: catch the write that corrupts a live kernel stack frame.
//!
//! A kprobe at `func+offset` arms a hardware watchpoint on a slot of the
//! running frame (a local at `sp + sp_offset`, or the stack canary); the
//! function's fprobe exit hook disarms it when that call returns. Writes
//! are reported as `kstackwatch:ksw_hit` trace events in the writer's
//! context. Configured through `/proc/kstackwatch`; see
//! Documentation/kstackwatch.md.
//!
//! Layout: `ksw_core` (shared, host-tested logic) → `engine` (handlers and
//! configuration, all policy) → `glue` (FFI to `ksw_glue.c`, mechanism).

use kernel::prelude::*;

/// The shared core, compiled into this crate from its source files
/// (kmod/core/src). Parts of it serve only the userspace tools.
#[path = "../core/src"]
#[allow(dead_code, unreachable_pub)]
mod ksw_core {
    pub(crate) mod canary;
    pub(crate) mod config;
    pub(crate) mod events;
    pub(crate) mod fmtbuf;
    pub(crate) mod frame;
    pub(crate) mod hit;
    pub(crate) mod slots;
    pub(crate) mod stats;
}

mod engine;
mod glue;

module! {
    type: KStackWatch,
    name: "kstackwatch",
    author: "The KStackWatch authors",
    description: "Hardware-watchpoint catcher of kernel stack corruption, with trace events",
    license: "GPL",
}

struct KStackWatch;

impl kernel::Module for KStackWatch {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        glue::init().map_err(Error::from_errno)?;
        pr_info!("ready: configure through /proc/kstackwatch\n");
        Ok(KStackWatch)
    }
}

impl Drop for KStackWatch {
    fn drop(&mut self) {
        glue::exit();
        pr_info!("unloaded\n");
    }
}
