//! `ksw-watch` is `ksw watch` (see `ksw watch --help`).

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "ksw-watch",
    version,
    about = "Watch a variable by name: kstackwatch's probe point and sp offset from DWARF"
)]
struct Cli {
    #[command(flatten)]
    args: ksw_dwarf::cli::WatchArgs,
}

fn main() -> ExitCode {
    match ksw_dwarf::cli::run(&Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ksw: {e}");
            ExitCode::FAILURE
        }
    }
}
