//! Decodes every field of every kstackwatch sample of a recording with the
//! pure-Rust decoder (ksw-perf, what `ksw report` uses) and with
//! libtraceevent (Debian's 1.7.1, through perf-plugin/traceevent), checks
//! they agree, and prints the time each took, as JSON.
//!
//!   decoders RECORDING

use std::time::Instant;

use ksw_perf::PerfFile;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: decoders RECORDING");
        std::process::exit(2);
    });
    let file = PerfFile::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let samples: Vec<_> = file
        .samples()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let formats: Vec<_> = file.tracing_data().expect("tracing data").events.clone();

    let t0 = Instant::now();
    let mut rust_sum = 0u64;
    for s in &samples {
        let f = s.format.expect("tracepoint");
        for field in f.event_fields().filter(|x| x.is_integer()) {
            rust_sum = rust_sum.wrapping_add(
                field
                    .value(s.raw, false)
                    .ok()
                    .and_then(|v| v.as_u64())
                    .unwrap_or(0),
            );
        }
    }
    let rust_ns = t0.elapsed().as_nanos() as u64;

    let mut tep = traceevent::host::Tep::new().expect("tep");
    tep.set_long_size(8);
    let mut texts = Vec::new();
    for f in &formats {
        // libtraceevent wants the format file text; rebuild it from ours.
        texts.push((f.system.clone(), f.name.clone(), format_text(f)));
    }
    for (system, _, text) in &texts {
        tep.parse_event(system, text)
            .expect("libtraceevent parses the format");
    }
    let t0 = Instant::now();
    let mut tep_sum = 0u64;
    for s in &samples {
        let f = s.format.expect("tracepoint");
        let event = tep.event(&f.system, &f.name).expect("event");
        for field in f.event_fields().filter(|x| x.is_integer()) {
            tep_sum = tep_sum.wrapping_add(event.read_number(&field.name, s.raw).unwrap_or(0));
        }
    }
    let tep_ns = t0.elapsed().as_nanos() as u64;
    assert_eq!(rust_sum, tep_sum, "the decoders disagree");
    println!(
        "{}",
        serde_json::json!({
            "samples": samples.len(),
            "rust_ns": rust_ns,
            "libtraceevent_ns": tep_ns,
            "libtraceevent_over_rust": tep_ns as f64 / rust_ns.max(1) as f64,
        })
    );
}

/// The tracefs text of a parsed format (what libtraceevent parses).
fn format_text(f: &ksw_perf::EventFormat) -> String {
    let mut t = format!("name: {}\nID: {}\nformat:\n", f.name, f.id);
    let mut common_done = false;
    for field in &f.fields {
        if !field.common && !common_done {
            t.push('\n');
            common_done = true;
        }
        let decl = match field.type_name.find('[') {
            Some(i) => format!(
                "{} {}{}",
                &field.type_name[..i],
                field.name,
                &field.type_name[i..]
            ),
            None => format!("{} {}", field.type_name, field.name),
        };
        t.push_str(&format!(
            "\tfield:{decl};\toffset:{};\tsize:{};\tsigned:{};\n",
            field.offset,
            field.size,
            u8::from(field.signed)
        ));
    }
    t.push_str(&format!("\nprint fmt: {}\n", f.print_fmt));
    t
}
