// SPDX-License-Identifier: GPL-2.0
//! A format file and a record: the first input byte picks the byte order,
//! the next two the length of the format text, the rest is the record.
//! Parse the format, then decode every field of the record.
#![no_main]

use ksw_perf::format::{str_of, u64_of, EventFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&order, rest)) = data.split_first() else {
        return;
    };
    let Some((len, rest)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let n = usize::from(u16::from_le_bytes(*len)).min(rest.len());
    let (text, raw) = rest.split_at(n);
    let text = String::from_utf8_lossy(text);
    let Ok(mut fmt) = EventFormat::parse("fuzz", &text) else {
        return;
    };
    fmt.big_endian = order & 1 == 1;
    for field in &fmt.fields {
        if let Ok(v) = field.value(raw, fmt.big_endian) {
            let _ = (v.to_string(), v.as_u64(), v.as_str());
        }
        let _ = u64_of(&fmt, raw, &field.name);
        let _ = str_of(&fmt, raw, &field.name);
    }
    let _ = fmt.min_record_len();
});
