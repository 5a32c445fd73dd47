//! Command-line interface: `ksw record`, `ksw report`, `ksw sweep`,
//! `ksw completions`, `ksw check-config`, `ksw symbolize`. `ksw-report` is
//! `ksw report`.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::error::Error;
use crate::events;
use crate::graph::Graph;
use crate::record;
use crate::report;
use crate::sweep;
use crate::symbols::Symbols;

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
    /// Watch a variable by name: probe point and sp offset from DWARF.
    Watch(ksw_dwarf::cli::WatchArgs),
    /// Find the victim when you do not know it: watch the canaries of many
    /// functions (a module's, globs), sampled, while a command runs.
    Sweep(SweepArgs),
    /// Name kernel addresses (hex, from the arguments or one per line on
    /// stdin) with the rules of `ksw report` and the plugin.
    Symbolize(SymbolizeArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// How a recording is made: `ksw record`'s and `ksw sweep`'s options.
#[derive(Clone, Debug, Args)]
pub struct RecordingOptions {
    /// Output file (perf.data format).
    #[arg(short, long, default_value = "perf.data")]
    pub output: PathBuf,
    /// Record kernel call chains (the writer's, for hits).
    #[arg(short = 'g', long = "call-graph")]
    pub callchain: bool,
    /// Also capture ftrace function_graph (mono clock, own tracefs
    /// instance) into OUTPUT.graph: of the watched functions, or of
    /// `ksw record --graph-filter`'s.
    #[arg(long)]
    pub function_graph: bool,
    /// Ring buffer size per CPU, in pages (a power of two).
    #[arg(short = 'm', long, default_value_t = 64)]
    pub mmap_pages: usize,
    /// Command to run while recording; without one, record until Ctrl-C.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub recording: RecordingOptions,
    /// Functions to graph (set_ftrace_filter syntax, e.g. ':mod:foo');
    /// default: the watched functions.
    #[arg(long = "graph-filter", value_name = "PATTERN")]
    pub graph_filter: Vec<String>,
    /// Watch a variable while recording, as `ksw watch` words ('FUNC VAR
    /// [--at FILE:LINE] [--module FILE.ko]...'); repeatable. Applied before
    /// recording, the previous configuration restored after.
    #[arg(long = "watch", value_name = "'FUNC VAR ...'")]
    pub watch: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  ksw sweep --module my_module -- ./reproducer\n  ksw sweep --function 'ext4_*' --sample 64 -g -- ./reproducer\n  ksw sweep --functions-from suspects.txt --print"
)]
pub struct SweepArgs {
    /// Every traceable function of this module; repeatable. With
    /// --function, only its functions matching a glob.
    #[arg(long = "module", value_name = "NAME")]
    pub modules: Vec<String>,
    /// Functions matching GLOB (`*`, `?`; `MODULE:GLOB` for one module's);
    /// repeatable. Each must match something.
    #[arg(long = "function", value_name = "GLOB")]
    pub functions: Vec<String>,
    /// Functions named in FILE, one per line: `name`, `name [module]` (as
    /// in available_filter_functions), `module:name` or a glob; `#`
    /// comments.
    #[arg(long, value_name = "FILE")]
    pub functions_from: Option<PathBuf>,
    /// Arm one in N eligible calls per CPU, at random (default 16; 1:
    /// every call).
    #[arg(long, value_name = "N", conflicts_with = "rate")]
    pub sample: Option<u32>,
    /// Arm at most R frames per second instead of sampling.
    #[arg(long, value_name = "R")]
    pub rate: Option<u32>,
    /// Arm only this recursion level of each function (0: the outermost
    /// call in the task).
    #[arg(long, value_name = "N")]
    pub depth: Option<u16>,
    /// Most functions to sweep; more matching is an error (the module
    /// takes at most 4096 in one spec).
    #[arg(long, value_name = "N", default_value_t = ksw_core::config::MAX_FUNCS as usize)]
    pub max_functions: usize,
    /// The traceable functions (default: tracefs
    /// available_filter_functions of the running kernel).
    #[arg(long, value_name = "FILE")]
    pub available_functions: Option<PathBuf>,
    /// Print the sweep's spec line and exit: nothing is written to
    /// /proc/kstackwatch, nothing recorded.
    #[arg(long)]
    pub print: bool,
    #[command(flatten)]
    pub recording: RecordingOptions,
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
pub struct SymbolizeArgs {
    /// Kernel symbols (default: /proc/kallsyms).
    #[arg(long)]
    pub kallsyms: Option<PathBuf>,
    /// The addresses are return addresses of a call chain.
    #[arg(long = "return")]
    pub return_address: bool,
    /// Addresses (hex, 0x optional); none: read them from stdin.
    pub addresses: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Configuration file; `-` or nothing reads standard input.
    pub file: Option<PathBuf>,
}

/// `ksw record`, with its `--watch` specs applied around it.
fn record_watched(args: &RecordArgs) -> Result<u8, String> {
    // Before --watch configures anything: see catch_stop_signals.
    record::catch_stop_signals();
    ksw_dwarf::cli::with_watches(&args.watch, || {
        if record::stop_requested() && !args.watch.is_empty() {
            return Err("interrupted before recording started".to_string());
        }
        record::run(args).map_err(|e| e.to_string())
    })
}

/// Runs a parsed command line; errors become one line on stderr.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        // The recorded command's exit status is ksw record's.
        Command::Record(args) => match record_watched(&args) {
            Ok(status) => return ExitCode::from(status),
            Err(e) => Err(e),
        },
        Command::Sweep(args) => match sweep::run(&args) {
            Ok(status) => return ExitCode::from(status),
            Err(e) => Err(e),
        },
        Command::Report(args) => run_report(&args).map_err(|e| e.to_string()),
        Command::CheckConfig(args) => check_config(&args).map_err(|e| e.to_string()),
        Command::Watch(args) => ksw_dwarf::cli::run(&args),
        Command::Symbolize(args) => symbolize(&args).map_err(|e| e.to_string()),
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

pub fn run_report(args: &ReportArgs) -> Result<(), Error> {
    let recording = events::open(&args.input).map_err(|source| Error::Load {
        path: args.input.clone(),
        source,
    })?;
    let symbols = Symbols::choose(&recording, args.kallsyms.as_deref())?;
    let graph_path = args.graph.clone().or_else(|| default_graph(&args.input));
    let graph = match &graph_path {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|source| Error::File {
                path: p.clone(),
                source,
            })?;
            Some(Graph::parse_bytes(&bytes).map_err(|source| Error::Graph {
                path: p.clone(),
                source,
            })?)
        }
        None => None,
    };
    let path_text = graph_path.as_ref().map(|p| p.display().to_string());
    let renderer = report::Renderer::new(&symbols, path_text.as_deref().zip(graph.as_ref()));
    let mut stdout = io::BufWriter::with_capacity(1 << 17, io::stdout().lock());
    let written = match args.format {
        Format::Text => report::run_text(&mut stdout, &recording, &renderer, args.max_frames),
        Format::Json => report::run_json(&mut stdout, &recording, &renderer),
    };
    // A closed pipe (`ksw report | head`) is not an error worth a message.
    match written.and_then(|r| stdout.flush().map(|()| r)) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Output(e)),
        // The report of what was read is out; the damage is still an error.
        Ok(Err(source)) => Err(Error::Load {
            path: args.input.clone(),
            source,
        }),
        Ok(Ok(())) => Ok(()),
    }
}

fn symbolize(args: &SymbolizeArgs) -> Result<(), Error> {
    let path = args
        .kallsyms
        .clone()
        .unwrap_or_else(|| PathBuf::from("/proc/kallsyms"));
    let table = Symbols::load_file(&path)?;
    let mut words = args.addresses.clone();
    if words.is_empty() {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::Usage(format!("stdin: {e}")))?;
        words = text.split_whitespace().map(str::to_string).collect();
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    for w in &words {
        let hex = w.trim_start_matches("0x");
        let addr = u64::from_str_radix(hex, 16)
            .map_err(|_| Error::Usage(format!("not a hex address: {w:?}")))?;
        let text = if args.return_address {
            table.describe_return(addr)
        } else {
            table.describe(addr)
        };
        writeln!(out, "{text}").map_err(Error::Output)?;
    }
    out.flush().map_err(Error::Output)
}

fn check_config(args: &CheckConfigArgs) -> Result<(), Error> {
    let mut text = Vec::new();
    let read = match args.file.as_deref() {
        None => io::stdin().read_to_end(&mut text).map(drop),
        Some(p) if p == Path::new("-") => io::stdin().read_to_end(&mut text).map(drop),
        Some(p) => std::fs::read(p).map(|t| text = t),
    };
    read.map_err(|source| Error::File {
        path: args.file.clone().unwrap_or_else(|| PathBuf::from("-")),
        source,
    })?;
    let config = ksw_core::config::Config::parse(&text, &ksw_core::config::Limits::X86_64)
        .map_err(|e| Error::Config {
            message: e.to_string(),
            errno: e.errno(),
        })?;
    if config.is_empty() {
        println!("# disables watching");
    }
    for spec in config.specs() {
        println!("{spec}");
    }
    Ok(())
}
