//! Command line of objcheck, see the library documentation.

use objcheck::check::{check_file, Stats};
use objcheck::{layout, sweep};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: objcheck insn [--objdump PATH] [--examples N] FILE...\n       objcheck sweep [--objdump PATH] [--examples N] [--random N] [--keep FILE.o]\n       objcheck layout [--objdump PATH] [--examples N] [--threads N] [--kallsyms-size] [--list-rejected] FILE...\n       objcheck orc-dump FILE";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("objcheck: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<bool, String> {
    let mut args = std::env::args().skip(1);
    let cmd = args.next().ok_or(USAGE)?;
    let mut objdump = String::from("objdump");
    let mut files = Vec::new();
    let mut random = 200_000usize;
    let mut keep = None;
    let mut examples = objcheck::check::MAX_EXAMPLES;
    let mut threads = 0usize;
    let mut kallsyms_size = false;
    let mut list_rejected = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--objdump" => objdump = args.next().ok_or(USAGE)?,
            "--random" => random = args.next().and_then(|n| n.parse().ok()).ok_or(USAGE)?,
            "--keep" => keep = Some(args.next().ok_or(USAGE)?),
            "--examples" => examples = args.next().and_then(|n| n.parse().ok()).ok_or(USAGE)?,
            "--threads" => threads = args.next().and_then(|n| n.parse().ok()).ok_or(USAGE)?,
            "--kallsyms-size" => kallsyms_size = true,
            "--list-rejected" => list_rejected = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(true);
            }
            _ if a.starts_with('-') => return Err(format!("unknown option {a}\n{USAGE}")),
            _ => files.push(a),
        }
    }
    let start = Instant::now();
    match cmd.as_str() {
        "layout" => {
            if files.is_empty() {
                return Err(USAGE.into());
            }
            let opts = layout::Options {
                objdump,
                examples,
                threads,
                kallsyms_size,
                list_rejected,
            };
            let mut ok = true;
            for f in &files {
                let s = layout::check_file(f, &opts)?;
                print!("{}", s.text(f));
                ok &= !s.failed();
            }
            println!("elapsed {:.1}s", start.elapsed().as_secs_f64());
            return Ok(ok);
        }
        "orc-dump" => {
            let [f] = files.as_slice() else {
                return Err(USAGE.into());
            };
            let out = std::io::stdout();
            let mut out = std::io::BufWriter::new(out.lock());
            layout::dump_orc(f, &mut out)?;
            return Ok(true);
        }
        _ => {}
    }
    let total = match cmd.as_str() {
        "insn" => {
            if files.is_empty() {
                return Err(USAGE.into());
            }
            let mut total = Stats::new(examples);
            for f in &files {
                let st = check_file(f, &objdump, examples)?;
                print!("{}", st.summary(f));
                total.add(st);
            }
            if files.len() > 1 {
                print!("{}", total.summary("total"));
            }
            total
        }
        "sweep" => {
            let cands = sweep::candidates(random);
            let obj = sweep::write_object(&cands)?;
            let path = keep.clone().unwrap_or_else(|| {
                std::env::temp_dir()
                    .join(format!("objcheck-sweep-{}.o", std::process::id()))
                    .to_string_lossy()
                    .into_owned()
            });
            std::fs::write(&path, obj).map_err(|e| format!("{path}: {e}"))?;
            let st = check_file(&path, &objdump, examples);
            if keep.is_none() {
                let _ = std::fs::remove_file(&path);
            }
            let st = st?;
            print!(
                "{}",
                st.summary(&format!("sweep ({} candidates)", cands.len()))
            );
            st
        }
        _ => return Err(USAGE.into()),
    };
    println!("elapsed {:.1}s", start.elapsed().as_secs_f64());
    Ok(total.mismatches == 0)
}
