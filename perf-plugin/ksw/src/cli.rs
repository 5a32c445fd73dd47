//! Command-line interface: `ksw record`, `ksw report`, `ksw completions`,
//! `ksw check-config`. `ksw-report` is `ksw report`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::correlate;
use crate::events;
use crate::graph::Graph;
use crate::record;
use crate::report;
use crate::symbols::{self, Symbols};

#[derive(Debug, Parser)]
#[command(
    name = "ksw",
    version,
    about = "Record kstackwatch events and report every caught stack write with its writer and its victim",
    after_help = "Typical use:\n  ksw record -g -- sh -c 'echo silent > /proc/kstackwatch_test'\n  ksw report"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record kstackwatch:* trace events on every CPU into a perf.data file.
    Record(RecordArgs),
    /// Tie every hit to its victim frame and writer, with verdicts.
    Report(ReportArgs),
    /// Check a /proc/kstackwatch configuration without a kernel.
    CheckConfig(CheckConfigArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Output file (perf.data format).
    #[arg(short, long, default_value = "perf.data")]
    pub output: PathBuf,
    /// Record kernel call chains (the writer's, for hits).
    #[arg(short = 'g', long = "call-graph")]
    pub callchain: bool,
    /// Also capture ftrace function_graph (mono clock, own tracefs
    /// instance) into OUTPUT.graph.
    #[arg(long)]
    pub function_graph: bool,
    /// Functions to graph (set_ftrace_filter syntax, e.g. ':mod:foo');
    /// default: the watched functions.
    #[arg(long = "graph-filter", value_name = "PATTERN")]
    pub graph_filter: Vec<String>,
    /// Ring buffer size per CPU, in pages (a power of two).
    #[arg(short = 'm', long, default_value_t = 64)]
    pub mmap_pages: usize,
    /// Command to run while recording; without one, record until Ctrl-C.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Input file: from `ksw record` or `perf record -e 'kstackwatch:*' -k mono [-g]`.
    #[arg(short, long, default_value = "perf.data")]
    pub input: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// ftrace function_graph text (tracefs `trace` with funcgraph-abstime
    /// and funcgraph-proc, or `trace-cmd report`). Default: INPUT.graph if
    /// it exists.
    #[arg(long)]
    pub graph: Option<PathBuf>,
    /// Kernel symbols (a copy of the recording machine's /proc/kallsyms).
    #[arg(long)]
    pub kallsyms: Option<PathBuf>,
    /// Frames listed one by one in text; the rest are counted by function
    /// and verdict (0: list all). JSON always has every frame.
    #[arg(long, default_value_t = 50)]
    pub max_frames: usize,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Configuration file; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
}

/// Runs a parsed command line; errors become one line on stderr.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Record(args) => record::run(&args),
        Command::Report(args) => run_report(&args),
        Command::CheckConfig(args) => check_config(&args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ksw", &mut io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ksw: {message}");
            ExitCode::FAILURE
        }
    }
}

fn default_graph(input: &Path) -> Option<PathBuf> {
    let mut p = input.as_os_str().to_owned();
    p.push(".graph");
    let p = PathBuf::from(p);
    p.is_file().then_some(p)
}

pub fn run_report(args: &ReportArgs) -> Result<(), String> {
    let recording = events::open(&args.input).map_err(|e| e.to_string())?;
    let symbols = Symbols::choose(&recording, args.kallsyms.as_deref())?;
    let graph_path = args.graph.clone().or_else(|| default_graph(&args.input));
    let graph = match &graph_path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Some(Graph::parse(&text).map_err(|e| format!("{}: {e}", p.display()))?)
        }
        None => None,
    };
    let path_text = graph_path.as_ref().map(|p| p.display().to_string());
    let renderer = report::Renderer {
        symbols: &symbols,
        graph: path_text.as_deref().zip(graph.as_ref()),
    };
    let chain =
        |h: &crate::events::Hit| symbols::writer_chain(&h.ctx.callchain, h.writer_ip).to_vec();
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let written = match args.format {
        Format::Text => {
            let mut listing = report::FrameListing::default();
            let mut correlator =
                correlate::Correlator::new(chain, |f| listing.add(&f, &renderer, args.max_frames));
            let stats = recording
                .stream(|e| correlator.push(e))
                .map_err(|e| e.to_string())?;
            let outcome = correlator.finish();
            let tail = renderer.tail(&recording, stats, &outcome);
            stdout.write_all(report::render_text(&tail, &listing).as_bytes())
        }
        Format::Json => {
            // Frames stream out as they close, so memory stays flat; the
            // totals come after them.
            let mut error: Option<io::Error> = None;
            let mut first = true;
            let result = stdout.write_all(b"{\"victims\": [\n");
            let mut correlator = correlate::Correlator::new(chain, |f| {
                if error.is_some() {
                    return;
                }
                let sep: &[u8] = if first { b"" } else { b",\n" };
                first = false;
                let r = stdout.write_all(sep).and_then(|()| {
                    serde_json::to_writer(&mut stdout, &renderer.frame(&f)).map_err(io::Error::from)
                });
                error = r.err();
            });
            let stats = recording
                .stream(|e| correlator.push(e))
                .map_err(|e| e.to_string())?;
            let outcome = correlator.finish();
            let tail = renderer.tail(&recording, stats, &outcome);
            let mut rest = serde_json::to_value(&tail).map_err(|e| e.to_string())?;
            let body = serde_json::to_string_pretty(&rest.take()).map_err(|e| e.to_string())?;
            // `{"victims": [...], <the tail's fields>}`
            let fields = body.trim_start_matches('{');
            result
                .and(error.map_or(Ok(()), Err))
                .and_then(|()| stdout.write_all(b"\n],"))
                .and_then(|()| stdout.write_all(fields.as_bytes()))
                .and_then(|()| stdout.write_all(b"\n"))
        }
    };
    // A closed pipe (`ksw report | head`) is not an error worth a message.
    match written.and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.to_string()),
        _ => Ok(()),
    }
}

fn check_config(args: &CheckConfigArgs) -> Result<(), String> {
    let mut text = Vec::new();
    match args.file.as_deref() {
        None => io::stdin().read_to_end(&mut text).map(drop),
        Some(p) if p == Path::new("-") => io::stdin().read_to_end(&mut text).map(drop),
        Some(p) => std::fs::read(p).map(|t| text = t),
    }
    .map_err(|e| e.to_string())?;
    let config = ksw_core::config::Config::parse(&text, &ksw_core::config::Limits::X86_64)
        .map_err(|e| format!("{e} (errno {})", e.errno()))?;
    if config.is_empty() {
        println!("# disables watching");
    }
    for spec in config.specs() {
        println!("{spec}");
    }
    Ok(())
}
