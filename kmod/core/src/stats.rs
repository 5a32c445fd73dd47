// SPDX-License-Identifier: GPL-2.0
//! Counters and latency histograms, lock-free and readable at any time.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// What the module counts; printed by name in `/proc/kstackwatch`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Counter { $(#[doc = $doc] $variant,)* }

        impl Counter {
            pub const ALL: &'static [Counter] = &[$(Counter::$variant,)*];

            pub const fn name(self) -> &'static str {
                match self { $(Counter::$variant => $name,)* }
            }
        }
    };
}

counters! {
    Arms => "arms": "Watches armed.",
    Disarms => "disarms": "Watches disarmed (any reason).",
    Hits => "hits": "Writes into a live watched frame, reported as ksw_hit.",
    Corrupted => "corrupted": "Frames that died with a value different from the value at arm.",
    UnknownExit => "unknown_exit": "Frames whose value at death could not be read (backstop disarms).",
    DroppedNoSlot => "dropped_no_slot": "Frames not armed: every claimed hardware slot busy (counted once per frame).",
    DroppedMaxWatch => "dropped_max_watch": "Frames not armed: the spec's max_watch reached (once per frame).",
    CanaryNotFound => "canary_not_found": "Frames not armed: no canary in the probed frame.",
    OutsideStack => "outside_stack": "Frames not armed: range not inside the task's stack.",
    Misaligned => "misaligned": "Frames not armed: range not aligned to its length.",
    ExitUnobservable => "exit_unobservable": "Frames not armed: the call has no return hook (rethook pool empty), so no backstop.",
    BadFrame => "bad_frame": "Frames not armed: the probed frame could not be located.",
    NmiContext => "nmi_context": "Probe hits inside an NMI, never armed.",
    OtherDepth => "other_depth": "Probe hits at a recursion depth not selected.",
    NotSampled => "not_sampled": "Eligible calls the spec's sample/rate did not pick.",
    DepthUntracked => "depth_untracked": "Calls not tracked: the per-task table had no room (never armed).",
    DepthResync => "depth_resync": "Per-task depth reset after calls whose exit was never seen.",
    BackstopDisarms => "backstop_disarms": "Frames disarmed by the return hook because the epilogue probe did not run.",
    LateReleases => "late_releases": "Epilogue probes that found the slot already below sp (should stay 0).",
    ExitPathHits => "exit_path_hits": "Writes by the victim itself on frames later disarmed by the backstop: possibly after death; reported.",
    StaleHits => "stale_hits": "Hits on a debug register not yet updated after a disarm, ignored.",
    SelfHits => "self_hits": "Hits from kstackwatch's own code, ignored.",
    RemoteKicks => "remote_kicks": "Cross-CPU debug-register updates sent.",
    CpusWithoutSlots => "cpus_without_slots": "CPUs that came online but could not get the breakpoints (writes there are not seen).",
}

pub const NR_COUNTERS: usize = Counter::ALL.len();

/// A set of counters.
#[derive(Debug)]
pub struct Counters {
    values: [AtomicU64; NR_COUNTERS],
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

impl Counters {
    pub const fn new() -> Counters {
        Counters {
            values: [const { AtomicU64::new(0) }; NR_COUNTERS],
        }
    }

    pub fn add(&self, counter: Counter, n: u64) {
        self.values[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self, counter: Counter) {
        self.add(counter, 1);
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize].load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        for v in &self.values {
            v.store(0, Ordering::Relaxed);
        }
    }

    /// `name value` pairs separated by spaces, in [`Counter::ALL`] order.
    pub fn display(&self) -> impl fmt::Display + '_ {
        struct Show<'a>(&'a Counters);
        impl fmt::Display for Show<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for (i, &c) in Counter::ALL.iter().enumerate() {
                    let sep = if i == 0 { "" } else { " " };
                    write!(f, "{sep}{}={}", c.name(), self.0.get(c))?;
                }
                Ok(())
            }
        }
        Show(self)
    }
}

/// Sub-buckets per power of two: values are kept within 1/4 (25%) of
/// their magnitude, enough for medians and tails of latencies.
const SUB_BITS: u32 = 2;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = 64 * SUB;

/// A log-linear histogram of nanosecond latencies.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let log = 63 - value.leading_zeros();
    let sub = (value >> (log - SUB_BITS)) as usize & (SUB - 1);
    (log as usize - SUB_BITS as usize + 1) * SUB + sub
}

/// Largest value that falls into `bucket` (the value a quantile reports).
fn bucket_upper(bucket: usize) -> u64 {
    if bucket < SUB {
        return bucket as u64;
    }
    let log = (bucket / SUB) as u32 + SUB_BITS - 1;
    let sub = (bucket % SUB) as u64;
    let base = 1u64 << log;
    let step = base >> SUB_BITS;
    (base - 1).saturating_add(step * (sub + 1))
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        self.buckets[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    pub fn mean(&self) -> u64 {
        self.sum
            .load(Ordering::Relaxed)
            .checked_div(self.count())
            .unwrap_or(0)
    }

    /// The value below which `per_mille`/1000 of the samples fall (bucket
    /// upper bound, capped at the maximum seen).
    pub fn quantile(&self, per_mille: u64) -> u64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = (count * per_mille).div_ceil(1000).max(1);
        let mut seen = 0;
        for (bucket, n) in self.buckets.iter().enumerate() {
            seen += n.load(Ordering::Relaxed);
            if seen >= rank {
                return bucket_upper(bucket).min(self.max());
            }
        }
        self.max()
    }

    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.count.store(0, Ordering::Relaxed);
        self.sum.store(0, Ordering::Relaxed);
        self.max.store(0, Ordering::Relaxed);
    }

    /// `count=N p50=… p99=… max=… mean=…` (nanoseconds).
    pub fn display(&self) -> impl fmt::Display + '_ {
        struct Show<'a>(&'a Histogram);
        impl fmt::Display for Show<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let h = self.0;
                write!(
                    f,
                    "count={} p50={} p99={} max={} mean={}",
                    h.count(),
                    h.quantile(500),
                    h.quantile(990),
                    h.max(),
                    h.mean()
                )
            }
        }
        Show(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn counters_print_by_name() {
        let c = Counters::new();
        c.inc(Counter::Arms);
        c.add(Counter::Hits, 3);
        let text = c.display().to_string();
        assert!(text.starts_with("arms=1 disarms=0 hits=3 "), "{text}");
        assert!(text.ends_with("cpus_without_slots=0"), "{text}");
        c.reset();
        assert_eq!(c.get(Counter::Hits), 0);
    }

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b >= last, "bucket order at {v}");
            assert!(b < BUCKETS);
            let upper = bucket_upper(b);
            assert!(upper >= v, "upper {upper} < {v}");
            assert!(upper - v <= v / 4 + 1, "bucket of {v} too wide: {upper}");
            last = b;
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::new();
        assert_eq!(h.quantile(500), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(500);
        let p99 = h.quantile(990);
        assert!((500_000..=640_000).contains(&p50), "p50 {p50}");
        assert!((990_000..=1_000_000).contains(&p99), "p99 {p99}");
        assert_eq!(h.max(), 1_000_000);
        assert_eq!(h.mean(), 500_500);
    }
}
