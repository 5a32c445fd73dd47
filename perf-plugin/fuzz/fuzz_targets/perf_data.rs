// SPDX-License-Identifier: GPL-2.0
//! Any bytes as a perf.data file: open, walk every record, decode every
//! tracepoint field of every sample, symbolize, sort. Errors are fine,
//! panics and hangs are not; every error must name an offset.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for e in ksw_perf::check::decode_all(data.to_vec()) {
        assert!(e.offset().is_some(), "error without offset: {e}");
    }
});
