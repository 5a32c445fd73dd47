use clap::Parser;

fn main() -> std::process::ExitCode {
    ksw::cli::run(ksw::cli::Cli::parse())
}
