// SPDX-License-Identifier: GPL-2.0
//! Decode all of a file and collect every error on the way: what the
//! corruption tests and the fuzz target demand of any input is that this
//! returns (no panic, no hang) and that each error names an offset.

use crate::read::{PerfFile, ReadError, Record};

/// Open `bytes` as perf.data, walk every record, decode every tracepoint
/// field of every sample, symbolize its call chain, re-encode it, and sort
/// the samples by time. Returns the errors met, in order.
pub fn decode_all(bytes: Vec<u8>) -> Vec<ReadError> {
    let file = match PerfFile::from_bytes(bytes) {
        Ok(f) => f,
        Err(e) => return vec![e],
    };
    // Damaged feature sections were skipped: still errors of the file.
    let mut errors: Vec<ReadError> = file
        .features()
        .damaged
        .iter()
        .map(|d| ReadError::Invalid {
            what: "feature section",
            offset: d.offset,
            msg: format!("{} skipped: {}", crate::abi::feature::name(d.bit), d.error),
        })
        .collect();
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
                            Err(e) => errors.push(e),
                        }
                    }
                }
                for a in s.callchain_addresses() {
                    let _ = syms.resolve(a);
                }
                // The writer must take whatever the reader accepted.
                let _ = crate::write::encode_sample(&file.attrs()[s.attr_index].attr, &s);
            }
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if let Err(e) = file.samples_by_time() {
        errors.push(e);
    }
    errors
}
