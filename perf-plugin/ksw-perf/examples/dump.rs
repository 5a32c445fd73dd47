// SPDX-License-Identifier: GPL-2.0
//! Print what ksw-perf reads from a perf.data file:
//! `cargo run -p ksw-perf --example dump -- perf.data [kallsyms.txt]`.

use ksw_perf::read::{PerfFile, Record};
use ksw_perf::Kallsyms;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: dump PERF.DATA [KALLSYMS]")?;
    let syms = match args.next() {
        Some(k) => Kallsyms::parse(&std::fs::read_to_string(k)?),
        None => Kallsyms::default(),
    };
    let file = PerfFile::open(&path)?;
    let f = file.features();
    println!(
        "host {:?} release {:?} version {:?} arch {:?} cpus {:?} clockid {:?} clock_data {:?}",
        f.hostname,
        f.os_release,
        f.version,
        f.arch,
        f.nr_cpus,
        file.clockid(),
        f.clock_data
    );
    println!("cmdline {:?}", f.cmdline);
    for (i, a) in file.attrs().iter().enumerate() {
        println!(
            "event {i}: {} type {} config {:#x} sample_type {:#x} ids {:?}",
            a.name.as_deref().unwrap_or("?"),
            a.attr.type_,
            a.attr.config,
            a.attr.sample_type,
            a.ids
        );
    }
    for rec in file.records() {
        match rec? {
            Record::Sample(s) => {
                print!(
                    "{:#x} sample {} pid {:?} tid {:?} cpu {:?} time {:?}:",
                    s.offset,
                    s.event_name().unwrap_or_default(),
                    s.pid,
                    s.tid,
                    s.cpu,
                    s.time
                );
                if let Some(fmt) = s.format {
                    for field in fmt.event_fields() {
                        print!(" {}={}", field.name, s.value(&field.name)?);
                    }
                }
                println!();
                for ip in s.callchain_addresses() {
                    match syms.resolve(ip) {
                        Some(r) => println!("\t{ip:016x} {r}"),
                        None => println!("\t{ip:016x}"),
                    }
                }
            }
            Record::Other { .. } | Record::FinishedRound => {}
            other => println!("{other:?}"),
        }
    }
    Ok(())
}
