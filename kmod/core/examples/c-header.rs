// SPDX-License-Identifier: GPL-2.0
//! Prints `kmod/kstackwatch/ksw_shared.h` (see `ksw_core::c_header`).

fn main() {
    let mut out = String::new();
    ksw_core::c_header::write(&mut out).expect("formatting into a String");
    print!("{out}");
}
