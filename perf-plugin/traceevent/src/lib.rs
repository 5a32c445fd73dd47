//! Rust bindings to libtraceevent 1.7.1 (Debian 12, `libtraceevent-dev`).
//!
//! No maintained crate wraps libtraceevent, so this one covers what the
//! KStackWatch tools need, in three layers:
//!
//! * [`sys`]: raw `extern "C"` declarations, split into
//!   [`sys::perf61`] (the `tep_*` symbols Debian's perf 6.1 exports, the
//!   only ones a plugin may use) and [`sys::libtraceevent`] (the rest, for
//!   programs that link libtraceevent.so.1).
//! * [`plugin`]: a safe API for libtraceevent plugins built on
//!   [`sys::perf61`] only, with opaque host structures: handler
//!   registration, field access by name, function look-up, output.
//! * [`host`]: a [`host::Tep`] handle for programs linking the system
//!   library: parse an event `format` file, read fields from raw records,
//!   render `print fmt`.
//!
//! # Hand-written declarations, not bindgen
//!
//! The declarations are written by hand rather than generated at build time:
//!
//! * A plugin must reference *only* the symbols its host exports. perf 6.1
//!   exports 24 of libtraceevent's ~200 functions; generated bindings would
//!   make the others look just as callable. Hand-written modules name the
//!   boundary ([`sys::perf61`]) and the plugin crate's tests check the built
//!   `.so` against it.
//! * Host structures must stay opaque on the plugin side, because perf's
//!   bundled copy and libtraceevent.so.1 may lay them out differently;
//!   bindgen would emit full layouts of `tep_event` and friends.
//! * Building needs no libclang (the plugin builds on any machine).
//!
//! The cost, drift from the C header, is covered by `tests/bindings.rs`: it
//! runs `bindgen` (0.69, when installed) on `event-parse.h` and requires
//! every declaration here, and every mirrored struct layout, to match.
//!
//! # Linking
//!
//! This crate never asks Cargo to link libtraceevent into its dependents:
//! a plugin's `tep_*` references must stay undefined so that they resolve
//! to the host program's copy, without a `DT_NEEDED` entry pulling in the
//! system library next to perf's bundled one. Its build script links the
//! library only into this package's own tests (`cargo:rustc-link-arg`, which
//! Cargo does not propagate). A host program using [`host`] adds the link
//! itself, e.g. `println!("cargo:rustc-link-lib=traceevent")` in its build
//! script (`pkg-config --libs libtraceevent` gives the flags).

pub mod host;
pub mod plugin;
pub mod sys;
