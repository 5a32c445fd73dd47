// SPDX-License-Identifier: GPL-2.0
//! Any bytes as a perf.data file: open, walk every record, decode every
//! tracepoint field of every sample, symbolize, sort. Errors are fine,
//! panics and hangs are not; every error must name an offset.
#![no_main]

use ksw_perf::read::{PerfFile, ReadError, Record};
use libfuzzer_sys::fuzz_target;

fn located(e: &ReadError) {
    assert!(e.offset().is_some(), "error without offset: {e}");
}

fuzz_target!(|data: &[u8]| {
    let file = match PerfFile::from_bytes(data.to_vec()) {
        Ok(f) => f,
        Err(e) => return located(&e),
    };
    let syms = file.kallsyms();
    if let Some(td) = file.tracing_data() {
        let _ = td.cmdlines();
    }
    for rec in file.records() {
        match rec {
            Ok(Record::Sample(s)) => {
                if let Some(fmt) = s.format {
                    for field in &fmt.fields {
                        match s.value(&field.name) {
                            Ok(v) => {
                                let _ = v.to_string();
                            }
                            Err(e) => located(&e),
                        }
                    }
                }
                for a in s.callchain_addresses() {
                    let _ = syms.resolve(a);
                }
                let _ = ksw_perf::write::encode_sample(&file.attrs()[s.attr_index].attr, &s);
            }
            Ok(_) => {}
            Err(e) => located(&e),
        }
    }
    if let Err(e) = file.samples_by_time() {
        located(&e);
    }
});
