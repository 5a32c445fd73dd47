//! Every way `ksw` fails, as one typed error. Each message is one line and
//! names the file it is about.

use std::io;
use std::path::PathBuf;

use ksw_symbols::KallsymsError;

use crate::events::LoadError;
use crate::graph::GraphError;
use crate::record::RecordError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The recording cannot be read (the message has the offset).
    #[error("{}: {source}", path.display())]
    Load { path: PathBuf, source: LoadError },
    /// A file cannot be opened or read.
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: io::Error },
    /// `--kallsyms` is not a kallsyms file.
    #[error("{}: {source}", path.display())]
    Kallsyms {
        path: PathBuf,
        source: KallsymsError,
    },
    /// `--kallsyms` is of another kernel or boot than the recording.
    #[error("{}: kallsyms of another kernel or boot: its _text is {file:#x}, the recording's kernel map starts at {recording:#x} (use a copy of the recording machine's /proc/kallsyms, taken since its last boot)", path.display())]
    KallsymsMismatch {
        path: PathBuf,
        file: u64,
        recording: u64,
    },
    /// `--graph` is not function_graph text.
    #[error("{}: {source}", path.display())]
    Graph { path: PathBuf, source: GraphError },
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Output(io::Error),
    /// `ksw record` failed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// `ksw check-config`: the module would refuse the configuration.
    #[error("{message} (errno {errno})")]
    Config { message: String, errno: i32 },
    /// Bad input to `ksw symbolize`.
    #[error("{0}")]
    Usage(String),
}
