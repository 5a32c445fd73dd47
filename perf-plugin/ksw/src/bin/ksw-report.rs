//! `ksw-report [ARGS]` is `ksw report [ARGS]`.

use clap::Parser;
use ksw::cli::{run_report, ReportArgs};

#[derive(Debug, Parser)]
#[command(name = "ksw-report", version, about = "Same as `ksw report`")]
struct Cli {
    #[command(flatten)]
    report: ReportArgs,
}

fn main() -> std::process::ExitCode {
    match run_report(&Cli::parse().report) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ksw-report: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
