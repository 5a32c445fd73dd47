//! Makes a large perf.data for the report benchmark by repeating the
//! samples of a real recording COPIES times (times shifted, watch ids
//! renumbered so every copy is its own set of frames).
//!
//!   big-recording INPUT COPIES OUTPUT

use std::fs::File;
use std::io::BufWriter;

use ksw_perf::{PerfFile, Writer, WriterConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, copies, output] = args.as_slice() else {
        eprintln!("usage: big-recording INPUT COPIES OUTPUT");
        std::process::exit(2);
    };
    let copies: u64 = copies.parse().expect("COPIES is a number");
    let file = PerfFile::open(input).unwrap_or_else(|e| panic!("{input}: {e}"));
    let samples = file
        .samples_by_time()
        .unwrap_or_else(|e| panic!("{input}: {e}"));
    let span = samples.last().and_then(|s| s.time).unwrap_or(0)
        - samples.first().and_then(|s| s.time).unwrap_or(0)
        + 1_000_000;
    let max_id = samples
        .iter()
        .filter_map(|s| s.u64("id").ok())
        .max()
        .unwrap_or(0)
        + 1;
    let config = WriterConfig {
        nr_cpus_online: 2,
        nr_cpus_avail: 2,
        cmdline: vec!["big-recording".into()],
        clock_res_ns: Some(1),
        ..WriterConfig::from_recording(&file)
    };
    let out = File::create(output).unwrap_or_else(|e| panic!("{output}: {e}"));
    let mut writer = Writer::create(BufWriter::new(out), config).expect("writer");
    for copy in 0..copies {
        for s in &samples {
            let mut s = s.clone();
            s.time = s.time.map(|t| t + copy * span);
            // Renumber the watch id in the raw record (a u64 field "id").
            let f = s
                .format
                .expect("tracepoint sample")
                .field("id")
                .expect("id field")
                .clone();
            let mut raw = s.raw.to_vec();
            let id = u64::from_le_bytes(
                raw[f.offset as usize..f.offset as usize + 8]
                    .try_into()
                    .expect("8 bytes"),
            );
            raw[f.offset as usize..f.offset as usize + 8]
                .copy_from_slice(&(id + copy * max_id).to_le_bytes());
            let s = ksw_perf::Sample { raw: &raw, ..s };
            writer.write_sample(&s).expect("write sample");
        }
        if copy % 64 == 63 {
            writer.write_finished_round().expect("write");
        }
    }
    writer.finish().expect("finish");
    println!("{} samples", copies * samples.len() as u64);
}
