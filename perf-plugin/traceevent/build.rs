//! Links libtraceevent into this package's own test binaries only.
//!
//! `cargo:rustc-link-arg` (unlike `rustc-link-lib`) is not passed on to
//! dependents, so a plugin `cdylib` that depends on this crate never gets a
//! `DT_NEEDED` on libtraceevent.so: its `tep_*` references must resolve to
//! the host program's copy (perf 6.1 bundles its own). Host programs that use
//! [`Tep`](src/host.rs) link the library themselves; see the crate docs.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let libs = Command::new("pkg-config")
        .args(["--libs", "libtraceevent"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
    match libs {
        Some(libs) => {
            for arg in libs.split_whitespace() {
                println!("cargo:rustc-link-arg={arg}");
            }
        }
        None => {
            println!(
                "cargo:warning=pkg-config does not know libtraceevent (apt install libtraceevent-dev); trying -ltraceevent"
            );
            println!("cargo:rustc-link-arg=-ltraceevent");
        }
    }
}
