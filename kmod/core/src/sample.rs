// SPDX-License-Identifier: GPL-2.0
//! Which eligible calls arm, when a spec samples (`sample=N`, `rate=R`).
//!
//! A sweep watches many functions with a few hardware slots, so it arms a
//! sample of their calls, as production memory-error detectors do (KFENCE
//! samples one allocation in many). Each eligible call (right function,
//! right depth) arms with probability 1/N, drawn from a per-CPU random
//! generator: no periodic call pattern can line up with the sampling and
//! hide. `rate` caps the frames armed per second across CPUs.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// One step of xorshift64* on a per-CPU state (never 0).
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = if *state == 0 { 0x9e37_79b9_7f4a_7c15 } else { *state };
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Whether this eligible call is sampled: one in `every` (0 and 1: all).
pub fn sampled(state: &mut u64, every: u32) -> bool {
    every <= 1 || next_random(state) % u64::from(every) == 0
}

const SECOND_NS: u64 = 1_000_000_000;

/// At most `rate` frames per one-second window.
#[derive(Debug)]
pub struct RateLimit {
    window_start: AtomicU64,
    count: AtomicU32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    pub const fn new() -> RateLimit {
        RateLimit {
            window_start: AtomicU64::new(0),
            count: AtomicU32::new(0),
        }
    }

    /// Whether one more frame may arm at `now_ns` (0 `rate`: no limit).
    pub fn allow(&self, now_ns: u64, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let start = self.window_start.load(Ordering::Acquire);
        if now_ns.saturating_sub(start) >= SECOND_NS
            && self
                .window_start
                .compare_exchange(start, now_ns, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.count.store(0, Ordering::Release);
        }
        self.count.fetch_add(1, Ordering::AcqRel) < rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_n_on_average_and_never_periodic() {
        let mut state = 12345;
        let n = 200_000;
        let hits = (0..n).filter(|_| sampled(&mut state, 16)).count();
        // 12500 expected; 5 sigma is ~560.
        assert!((11_900..13_100).contains(&hits), "{hits}");
        // Every call when sampling is off.
        assert!((0..100).all(|_| sampled(&mut state, 1)));
        assert!((0..100).all(|_| sampled(&mut state, 0)));
        // No fixed period: gaps between samples vary.
        let mut gaps = std::collections::BTreeSet::new();
        let mut last = 0;
        for i in 0..10_000 {
            if sampled(&mut state, 16) {
                gaps.insert(i - last);
                last = i;
            }
        }
        assert!(gaps.len() > 20, "{gaps:?}");
    }

    #[test]
    fn rate_caps_each_second() {
        let r = RateLimit::new();
        let allowed = (0..100).filter(|i| r.allow(SECOND_NS + i, 10)).count();
        assert_eq!(allowed, 10);
        // The next second opens a new window.
        let allowed = (0..100).filter(|i| r.allow(2 * SECOND_NS + 5 + i, 10)).count();
        assert_eq!(allowed, 10);
        assert!((0..1000).all(|i| r.allow(i, 0)));
    }
}
