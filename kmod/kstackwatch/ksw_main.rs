// SPDX-License-Identifier: GPL-2.0
//! kstackwatch: catch the write that corrupts a live kernel stack frame.
//!
//! A kprobe at `func+offset` arms a hardware watchpoint on a slot of the
//! running frame (a local at `sp + sp_offset`, or the stack canary);
//! kprobes on every instruction where that slot stops belonging to the
//! frame disarm it and read the value the frame died with. Writes are
//! reported as `kstackwatch:ksw_hit` trace events in the writer's context.
//! Configured through `/proc/kstackwatch`; see Documentation/kstackwatch.md
//! and, for how the pieces fit, Documentation/architecture.md.
//!
//! Layout:
//! - `ksw_core` (kmod/core, shared with the tools and host-tested): every
//!   decision that does not need the kernel.
//! - `arm` (arming probe), `hits` (breakpoint handler), `exits` (release
//!   probes, call depth, task exit), `configure` (/proc/kstackwatch),
//!   `watch` (what a function's code says about its frame), `state`
//!   (lock-free shared tables).
//! - `glue` (safe wrappers; the raw `ffi` declarations are private to it)
//!   over the C layer (`ksw_probes.c`, `ksw_slots.c`, `ksw_procfs.c`,
//!   `ksw_trace.c`), which registers and touches hardware only.

use kernel::new_mutex;
use kernel::prelude::*;
use kernel::sync::Mutex;

/// The shared core, compiled into this crate from its source files
/// (kmod/core/src). Parts of it serve only the userspace tools.
#[path = "../core/src"]
#[allow(dead_code, unreachable_pub)]
mod ksw_core {
    include!("../core/src/kernel_modules.rs");
}

mod arm;
mod configure;
mod exits;
mod glue;
mod hits;
mod state;
mod watch;

use configure::ConfigState;

module! {
    type: KStackWatch,
    name: "kstackwatch",
    author: "The KStackWatch authors",
    description: "Hardware-watchpoint catcher of kernel stack corruption, with trace events",
    license: "GPL",
}

struct KStackWatch {
    /// The configuration and its lock; the procfs handlers get its address.
    config: Pin<KBox<Mutex<ConfigState>>>,
}

impl kernel::Module for KStackWatch {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let config = KBox::pin_init(
            new_mutex!(ConfigState::new(), "kstackwatch_config"),
            GFP_KERNEL,
        )?;
        let ptr: *const Mutex<ConfigState> = &*config;
        // SAFETY: called once, here; the mutex is pinned in `config`, which
        // lives until `drop`, where the procfs file is removed first.
        unsafe { glue::init(ptr.cast()) }.map_err(Error::from_errno)?;
        pr_info!("ready: configure through /proc/kstackwatch\n");
        Ok(KStackWatch { config })
    }
}

impl Drop for KStackWatch {
    fn drop(&mut self) {
        glue::remove_proc();
        // The empty configuration is the one teardown path.
        let _ = configure::write(&self.config, b"");
        glue::exit();
        pr_info!("unloaded\n");
    }
}
