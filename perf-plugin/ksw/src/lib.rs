//! ksw: the userspace half of KStackWatch.
//!
//! One pipeline, whatever recorded the data (samply's model): a perf.data
//! file from `ksw record` or `perf record -e 'kstackwatch:*'` is decoded
//! into typed events ([`events`]), hits are tied to the frames they hit
//! ([`correlate`]), an optional ftrace function_graph capture is lined up
//! with them ([`graph`]), and one report model is printed as text or JSON
//! ([`report`]). [`record`] writes perf.data files that `perf script` and
//! `perf report` read too. [`sweep`] watches many functions' canaries at
//! once to find a victim that is not known.

pub mod cli;
pub mod correlate;
pub mod error;
pub mod events;
pub mod graph;
pub mod mapping;
pub mod pipeline;
pub mod record;
pub mod report;
pub mod sweep;
pub mod symbols;
