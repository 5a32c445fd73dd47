// SPDX-License-Identifier: GPL-2.0
//! kstackwatch_test: stack-corruption scenarios for kstackwatch.
//!
//! Write a scenario name to `/proc/kstackwatch_test`; the write returns when
//! it has run, and reading the file gives its outcome as `key=value` words:
//!
//! - `direct`: the victim calls a writer on its own watched word.
//! - `canary`: an overflow past a buffer reaches the canary (and is undone).
//! - `silent [N [DELAY_MS]]`: N victim threads (default 1) on CPU 0 each
//!   run buggy(), which leaks the address of a local and returns, then
//!   victim(), which reuses that stack slot; a writer thread waits until
//!   all victims are ready (plus DELAY_MS), moves to the last CPU and writes
//!   through the stale pointers while victim() waits. victim() then finds
//!   its buffer changed ("unhappy"), with no call chain to the writer.
//! - `clean [N]`: the same choreography, but the writer writes nothing.
//! - `hold MS`: a watched frame that stays alive for MS milliseconds.
//! - `storm WRITES [GAP_NS]`: one victim; the writer writes its slot WRITES
//!   times, GAP_NS apart (a stream of hits for recorder benchmarks).
//! - `ipi N`: time N broadcast IPI round trips (the floor for arming), and
//!   N data-breakpoint programmings (what arming costs locally), and N/10
//!   timings of 4096 stack writes with no watch, a watch on another page
//!   and one on the same stack page (what an armed watch costs under TCG).
//! - `recursive D [MAX [hop]]`: recursion to depth MAX (default 6); the
//!   writer strikes the buffer of depth D only. With `hop`, every level
//!   sleeps and moves to another CPU first.
//! - `bench BATCHES CALLS`: time calls of `ksw_test_bench_victim`.
//! - `hardirq` / `softirq`: the victim spins with preemption off on its
//!   CPU; a pinned hrtimer (hardirq) or timer_list (softirq) there writes
//!   its watched local.
//! - `deep [D]`: a callee chain D frames deep (default 48) writes the
//!   victim's local through a pointer.
//! - `alias`: the victim's local is written through a second mapping of
//!   its stack page (vmap): no watchpoint can see that write.
//! - `loop N`: `ksw_test_small` (64-byte buffer, realigned frame, canary on
//!   top) called N times from this write.
//! - `exits N`: `ksw_test_exits` called N times, alternately leaving
//!   through a return and through a tail call.
//! - `hog on|off`: while on, every CPU coming online has all its hardware
//!   breakpoints taken first (kstackwatch then gets none there).
//! - `flat N`: `ksw_test_flat` called N times from this write: the same
//!   without the realignment, canary just under the saved registers (the
//!   frame shape that wedged QEMU TCG under the earlier design).
//! - `sweep ROUNDS [VICTIM]`: call chains through 24 look-alike
//!   canary-protected functions `ksw_test_sweep_N`; one of them (VICTIM, or
//!   one chosen at random) has its canary overwritten and put back once per
//!   round, at a depth chosen at random. The outcome names it.
//! - `bg on [PAUSE_US]` / `bg off`: background load for `tests/stress`:
//!   one kernel thread per CPU calls `ksw_test_small`, `ksw_test_exits` and
//!   `ksw_test_bench_victim` in a loop (sleeping PAUSE_US, at least 20,
//!   between rounds of 48 calls), following its CPU through hotplug, until
//!   `bg off`, which reports the calls made. Other scenarios run meanwhile.
//! - `exitcall N`: N kernel threads each exit from inside
//!   `ksw_test_exit_victim` (its watch ends with the task).
//! - `held start [MAX_MS]` / `held release`: a thread on CPU 0 sits in
//!   `ksw_test_held_victim`'s frame (at most MAX_MS, default 60 s) until
//!   released; `held release` returns its outcome. Other scenarios run
//!   meanwhile (CPU hotplug and unload while a frame is armed).
//!
//! The watched functions are C (`ksw_test_victims.c`); the writers are the
//! Rust functions below, so a caught writer is named `ksw_test_corrupt` or
//! `ksw_test_overflow`.

use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};

use kernel::c_str;
use kernel::prelude::*;

mod test_glue;

/// Shared with kstackwatch (kmod/core); only this file is needed here.
#[path = "../core/src/fmtbuf.rs"]
#[allow(dead_code, unreachable_pub)]
mod fmtbuf;

use test_glue::{Round, Thread};

module! {
    type: KStackWatchTest,
    name: "kstackwatch_test",
    author: "The KStackWatch authors",
    description: "Stack-corruption scenarios for kstackwatch",
    license: "GPL",
}

/// What the cross-thread writer stores through the stale pointer.
const WRITER_PATTERN: u64 = 0xabcd_abcd;
const DIRECT_PATTERN: u64 = 0xd1ec7;
const MAX_VICTIMS: u32 = 32;
const MAX_RECURSION: u32 = 16;
const MAX_DELAY_MS: u32 = 60_000;
/// Deepest callee chain of `deep` (each level is a small frame).
const MAX_DEEP: u32 = 128;
/// What interrupt, deep and alias writers store.
const FOREIGN_PATTERN: u64 = 0xf0e1_d2c3;
/// How long the writer waits for victims, and victims for the writer (C).
const READY_TIMEOUT_MS: u32 = 15_000;

// ------------------------------------------------------------------ writers

/// The probe point marker: the watched functions call it right after
/// filling their buffer; the probe goes on the instruction after the call.
#[no_mangle]
#[inline(never)]
pub extern "C" fn ksw_test_mark(slot: *mut u64) {
    core::hint::black_box(slot);
}

/// Writes `value` to a stack slot that may belong to another task.
///
/// # Safety
///
/// `slot` is mapped, writable memory: a live local of the caller, or a
/// slot of a live victim frame that stays alive until the writer is done.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn ksw_test_corrupt(slot: *mut u64, value: u64) {
    // SAFETY: this is the bug under test. Callers pass either a live local
    // of their own or a slot in a live victim frame (the victim waits in
    // ksw_test_victim_wait until the writer is done), so the address is
    // mapped stack memory; the victim only reads it afterwards.
    unsafe { core::ptr::write_volatile(slot, value) }
}

/// Overflows `buf` by `past_end` words, then undoes the damage beyond the
/// buffer so the (canary-checked) caller still returns normally.
///
/// # Safety
///
/// `buf` is the caller's live stack buffer of `words` words, followed by
/// at least `past_end` (at most 4) words of its own live frame.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn ksw_test_overflow(buf: *mut u64, words: usize, past_end: usize) {
    let mut saved = [0u64; 4];
    let past_end = past_end.min(saved.len());
    for (i, word) in saved.iter_mut().enumerate().take(past_end) {
        // SAFETY: deliberately past the end of the caller's buffer, into its
        // canary and saved registers: that is the overflow being simulated.
        // Those words are live stack of the caller, restored below before
        // anyone reads them.
        *word = unsafe { core::ptr::read_volatile(buf.add(words + i)) };
    }
    for i in 0..words + past_end {
        // SAFETY: as above; the first `words` words are the caller's buffer.
        unsafe { core::ptr::write_volatile(buf.add(i), 0x0f0f_0f0f_0f0f_0f0f) };
    }
    for (i, word) in saved.iter().enumerate().take(past_end) {
        // SAFETY: restores the words overwritten past the end.
        unsafe { core::ptr::write_volatile(buf.add(words + i), *word) };
    }
}

// ---------------------------------------------------------------- scenarios

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Direct,
    Canary,
    Silent {
        victims: u32,
        corrupt: bool,
        delay_ms: u32,
        writes: u32,
        gap_ns: u32,
    },
    Ipi {
        rounds: u32,
    },
    Hold {
        ms: u32,
    },
    Recursive {
        corrupt_depth: u32,
        max_depth: u32,
        hop: bool,
    },
    Bench {
        batches: u32,
        calls: u32,
    },
    Irq {
        softirq: bool,
    },
    Deep {
        depth: u32,
    },
    Alias,
    Loop {
        calls: u32,
    },
    Exits {
        calls: u32,
    },
    Hog {
        on: bool,
    },
    Bg {
        on: bool,
        pause_us: u32,
    },
    ExitCall {
        threads: u32,
    },
    Held {
        start: bool,
        max_ms: u32,
    },
    Sweep {
        rounds: u32,
        victim: u32,
    },
    Flat {
        calls: u32,
    },
}

fn parse_u32(word: Option<&str>, default: u32, max: u32) -> Result<u32, c_int> {
    let Some(word) = word else {
        return Ok(default);
    };
    match word.parse::<u32>() {
        Ok(v) if v <= max => Ok(v),
        _ => Err(-(EINVAL_NR)),
    }
}

const EINVAL_NR: c_int = 22;
const ENOMEM_NR: c_int = 12;
const ETIMEDOUT_NR: c_int = 110;

fn parse(cmd: &str) -> Result<Scenario, c_int> {
    let mut words = cmd.split_ascii_whitespace();
    let name = words.next().unwrap_or("");
    let first = words.next();
    let second = words.next();
    let third = words.next();
    let scenario = match name {
        "direct" => Scenario::Direct,
        "canary" => Scenario::Canary,
        "silent" => Scenario::Silent {
            victims: parse_u32(first, 1, MAX_VICTIMS)?.max(1),
            corrupt: true,
            delay_ms: parse_u32(second, 0, MAX_DELAY_MS)?,
            writes: 1,
            gap_ns: 0,
        },
        "clean" => Scenario::Silent {
            victims: parse_u32(first, 1, MAX_VICTIMS)?.max(1),
            corrupt: false,
            delay_ms: parse_u32(second, 0, MAX_DELAY_MS)?,
            writes: 0,
            gap_ns: 0,
        },
        "storm" => Scenario::Silent {
            victims: 1,
            corrupt: true,
            delay_ms: 0,
            writes: parse_u32(first, 1000, 10_000_000)?.max(1),
            gap_ns: parse_u32(second, 0, 1_000_000)?,
        },
        "ipi" => Scenario::Ipi {
            rounds: parse_u32(first, 1000, 1_000_000)?.max(1),
        },
        "hold" => Scenario::Hold {
            ms: parse_u32(first, 1000, MAX_DELAY_MS)?,
        },
        "recursive" => {
            let max_depth = parse_u32(second, 6, MAX_RECURSION)?;
            Scenario::Recursive {
                corrupt_depth: parse_u32(first, 3, max_depth)?,
                max_depth,
                hop: match third {
                    None => false,
                    Some("hop") => true,
                    Some(_) => return Err(-EINVAL_NR),
                },
            }
        }
        "bench" => Scenario::Bench {
            batches: parse_u32(first, 100, 100_000)?.max(1),
            calls: parse_u32(second, 100, 100_000)?.max(1),
        },
        "hardirq" => Scenario::Irq { softirq: false },
        "softirq" => Scenario::Irq { softirq: true },
        "deep" => Scenario::Deep {
            depth: parse_u32(first, 48, MAX_DEEP)?,
        },
        "alias" => Scenario::Alias,
        "loop" => Scenario::Loop {
            calls: parse_u32(first, 1000, 10_000_000)?,
        },
        "exits" => Scenario::Exits {
            calls: parse_u32(first, 100, 10_000_000)?,
        },
        "flat" => Scenario::Flat {
            calls: parse_u32(first, 1000, 10_000_000)?,
        },
        "sweep" => Scenario::Sweep {
            rounds: parse_u32(first, 10, 100_000)?.max(1),
            victim: parse_u32(second, u32::MAX, u32::MAX)?,
        },
        "hog" => Scenario::Hog {
            on: match first {
                Some("on") => true,
                Some("off") => false,
                _ => return Err(-EINVAL_NR),
            },
        },
        "bg" => match first {
            Some("on") => Scenario::Bg {
                on: true,
                pause_us: parse_u32(second, 0, 1_000_000)?,
            },
            Some("off") if second.is_none() => Scenario::Bg {
                on: false,
                pause_us: 0,
            },
            _ => return Err(-EINVAL_NR),
        },
        "exitcall" => Scenario::ExitCall {
            threads: parse_u32(first, 1, MAX_VICTIMS)?.max(1),
        },
        "held" => match first {
            Some("start") => Scenario::Held {
                start: true,
                max_ms: parse_u32(second, 60_000, MAX_DELAY_MS)?,
            },
            Some("release") if second.is_none() => Scenario::Held {
                start: false,
                max_ms: 0,
            },
            _ => return Err(-EINVAL_NR),
        },
        _ => return Err(-EINVAL_NR),
    };
    // Only `recursive` takes a third word.
    if words.next().is_some()
        || (third.is_some() && !matches!(scenario, Scenario::Recursive { .. }))
    {
        return Err(-EINVAL_NR);
    }
    Ok(scenario)
}

/// Runs `f` in a named kernel thread (so the victim's comm is known) and
/// returns its result and pid.
fn in_thread(name: &CStr, cpu: Option<u32>, f: fn() -> i32) -> Result<(i32, i32), c_int> {
    struct Job {
        f: fn() -> i32,
        result: AtomicI32,
        pid: AtomicI32,
    }
    /// # Safety
    ///
    /// `arg` is the Job below, alive until join() returns.
    unsafe extern "C" fn run(arg: *mut c_void) -> c_int {
        // SAFETY: the function's contract.
        let job = unsafe { &*arg.cast::<Job>() };
        job.pid.store(test_glue::pid(), Ordering::Relaxed);
        job.result.store((job.f)(), Ordering::Relaxed);
        0
    }
    let job = Job {
        f,
        result: AtomicI32::new(0),
        pid: AtomicI32::new(0),
    };
    let arg = &job as *const Job as *mut c_void;
    // SAFETY: `job` outlives the thread: we join before returning.
    let thread = unsafe { Thread::start(run, arg, name, cpu) }.ok_or(-ENOMEM_NR)?;
    thread.join();
    Ok((
        job.result.load(Ordering::Relaxed),
        job.pid.load(Ordering::Relaxed),
    ))
}

struct Victim {
    round: Round,
    pid: AtomicI32,
}

struct Writer<'a> {
    victims: &'a [Victim],
    corrupt: bool,
    delay_ms: u32,
    /// Writes per victim slot, `gap_ns` apart.
    writes: u32,
    gap_ns: u32,
    cpu: u32,
    pid: AtomicI32,
    ran_on: AtomicI32,
    written: AtomicU32,
    timeouts: AtomicU32,
}

/// # Safety
///
/// `arg` is a Victim in silent()'s vector, alive until joined.
unsafe extern "C" fn victim_thread(arg: *mut c_void) -> c_int {
    // SAFETY: the function's contract.
    let victim = unsafe { &*arg.cast::<Victim>() };
    victim.pid.store(test_glue::pid(), Ordering::Relaxed);
    victim.round.run_victim();
    0
}

/// Waits until every victim sits in victim(), armed, then writes through
/// every stale pointer at once: more victims than slots are live together.
///
/// # Safety
///
/// `arg` is the Writer in silent(), alive until joined.
unsafe extern "C" fn writer_thread(arg: *mut c_void) -> c_int {
    // SAFETY: the function's contract.
    let writer = unsafe { &*arg.cast::<Writer<'_>>() };
    writer.pid.store(test_glue::pid(), Ordering::Relaxed);
    for v in writer.victims {
        if !v.round.wait_ready(READY_TIMEOUT_MS) {
            writer.timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }
    if writer.delay_ms > 0 {
        test_glue::sleep_ms(writer.delay_ms);
    }
    // Unbound until now, so CPU hotplug tests can cycle the target CPU.
    let cpu = test_glue::move_to_cpu(writer.cpu).unwrap_or_else(|_| test_glue::cpu());
    writer.ran_on.store(cpu as i32, Ordering::Relaxed);
    if writer.corrupt {
        for v in writer.victims {
            let slot = v.round.published();
            if slot.is_null() {
                continue;
            }
            for k in 0..writer.writes {
                // SAFETY: `slot` is the published slot of a victim that
                // waits in its frame until writer_done() below.
                unsafe { ksw_test_corrupt(slot, WRITER_PATTERN + u64::from(k)) };
                if writer.gap_ns > 0 {
                    test_glue::spin_ns(writer.gap_ns);
                }
            }
            writer.written.fetch_add(writer.writes, Ordering::Relaxed);
        }
    }
    for v in writer.victims {
        v.round.writer_done();
    }
    0
}

fn silent(
    victims: u32,
    corrupt: bool,
    delay_ms: u32,
    writes: (u32, u32),
    out: &mut impl Write,
) -> Result<(), c_int> {
    let mut list = KVec::with_capacity(victims as usize, GFP_KERNEL).map_err(|_| -ENOMEM_NR)?;
    for n in 0..victims {
        let round = Round::new(0xdead_beef + u64::from(n) * 0x100).ok_or(-ENOMEM_NR)?;
        list.push(
            Victim {
                round,
                pid: AtomicI32::new(0),
            },
            GFP_KERNEL,
        )
        .map_err(|_| -ENOMEM_NR)?;
    }
    let cpus = test_glue::online_cpus();
    // Victims on CPU 0, the writer on the last CPU: the write crosses CPUs.
    let writer_cpu = cpus.saturating_sub(1);
    let writer = Writer {
        victims: &list,
        corrupt,
        delay_ms,
        writes: writes.0,
        gap_ns: writes.1,
        cpu: writer_cpu,
        pid: AtomicI32::new(0),
        ran_on: AtomicI32::new(-1),
        written: AtomicU32::new(0),
        timeouts: AtomicU32::new(0),
    };
    let mut threads = KVec::with_capacity(victims as usize, GFP_KERNEL).map_err(|_| -ENOMEM_NR)?;
    for v in list.iter() {
        let arg = v as *const Victim as *mut c_void;
        // SAFETY: `list` outlives every thread: all are joined below.
        let t = unsafe { Thread::start(victim_thread, arg, c_str!("ksw-victim"), Some(0)) };
        if let Some(t) = t {
            // Capacity reserved above.
            let _ = threads.push(t, GFP_KERNEL);
        }
    }
    let writer_arg = &writer as *const Writer<'_> as *mut c_void;
    // SAFETY: `writer` outlives the thread: joined below.
    let writer_thread =
        unsafe { Thread::start(writer_thread, writer_arg, c_str!("ksw-writer"), None) };
    if let Some(t) = writer_thread {
        t.join();
    } else {
        // No writer: release the victims ourselves.
        for v in list.iter() {
            v.round.writer_done();
        }
    }
    let started = threads.len();
    for t in threads {
        t.join();
    }

    let unhappy = list.iter().filter(|v| v.round.bad_words() > 0).count();
    let overlap = list.iter().filter(|v| v.round.overlap()).count();
    let bad_words: i32 = list.iter().map(|v| v.round.bad_words()).sum();
    let _ = write!(
        out,
        "scenario={} victims={} started={} overlap={} happy={} unhappy={} bad_words={} written={} timeouts={} writer_pid={} writer_cpu={} victim_pids=",
        if corrupt { "silent" } else { "clean" },
        victims,
        started,
        overlap,
        list.len() - unhappy,
        unhappy,
        bad_words,
        writer.written.load(Ordering::Relaxed),
        writer.timeouts.load(Ordering::Relaxed),
        writer.pid.load(Ordering::Relaxed),
        writer.ran_on.load(Ordering::Relaxed)
    );
    for (i, v) in list.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{}{}", sep, v.pid.load(Ordering::Relaxed));
    }
    if writer.timeouts.load(Ordering::Relaxed) != 0 {
        return Err(-ETIMEDOUT_NR);
    }
    Ok(())
}

/// Shell sort: core's slice sort pulls in panic paths objtool cannot
/// follow in a module, and a few thousand samples need nothing faster.
fn sort(v: &mut [u64]) {
    let mut gap = v.len() / 2;
    while gap > 0 {
        for i in gap..v.len() {
            let mut j = i;
            while j >= gap && v[j - gap] > v[j] {
                v.swap(j - gap, j);
                j -= gap;
            }
        }
        gap /= 2;
    }
}

/// Percentile of sorted samples (per mille).
fn percentile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * per_mille).div_ceil(1000).max(1);
    sorted[rank - 1]
}

fn bench(batches: u32, calls: u32, out: &mut impl Write) -> Result<(), c_int> {
    let mut sink = 0u64;
    let mut batch = 0u32;
    let per_call = samples(batches, || {
        let t0 = test_glue::now_ns();
        for c in 0..calls {
            sink = sink.wrapping_add(test_glue::bench_victim(u64::from(batch ^ c)));
        }
        batch += 1;
        test_glue::now_ns().saturating_sub(t0) / u64::from(calls)
    })?;
    core::hint::black_box(sink);
    let mean = per_call.iter().sum::<u64>() / u64::from(batches);
    let _ = write!(
        out,
        "scenario=bench batches={} calls={} per_call_ns_p50={} per_call_ns_p99={} per_call_ns_mean={} per_call_ns_min={}",
        batches,
        calls,
        percentile(&per_call, 500),
        percentile(&per_call, 990),
        mean,
        per_call.first().copied().unwrap_or(0)
    );
    Ok(())
}

fn ipi(rounds: u32, out: &mut impl Write) -> Result<(), c_int> {
    use test_glue::TaxedWatch;
    let ns = samples(rounds, test_glue::ipi_roundtrip_ns)?;
    let dr = samples(rounds, || test_glue::dr_program_ns(0))?;
    let dr_busy = samples(rounds, || test_glue::dr_program_ns(3))?;
    let tax_none = samples(rounds / 10, || test_glue::watch_tax_ns(TaxedWatch::None))?;
    let tax_other = samples(rounds / 10, || {
        test_glue::watch_tax_ns(TaxedWatch::OtherPage)
    })?;
    let tax_same = samples(rounds / 10, || {
        test_glue::watch_tax_ns(TaxedWatch::SameStackPage)
    })?;
    let mean = ns.iter().sum::<u64>() / u64::from(rounds.max(1));
    let _ = write!(
        out,
        "scenario=ipi rounds={} cpus={} roundtrip_ns_p50={} roundtrip_ns_p99={} roundtrip_ns_mean={} roundtrip_ns_min={} dr_program_ns_p50={} dr_program_ns_p99={} dr_program_3_others_ns_p50={} stack_4096_writes_ns_p50={} stack_4096_writes_watch_other_page_ns_p50={} stack_4096_writes_watch_same_page_ns_p50={}",
        rounds,
        test_glue::online_cpus(),
        percentile(&ns, 500),
        percentile(&ns, 990),
        mean,
        ns.first().copied().unwrap_or(0),
        percentile(&dr, 500),
        percentile(&dr, 990),
        percentile(&dr_busy, 500),
        percentile(&tax_none, 500),
        percentile(&tax_other, 500),
        percentile(&tax_same, 500)
    );
    Ok(())
}

/// `n` results of `measure`, sorted.
fn samples(n: u32, mut measure: impl FnMut() -> u64) -> Result<KVec<u64>, c_int> {
    let mut v = KVec::with_capacity(n as usize, GFP_KERNEL).map_err(|_| -ENOMEM_NR)?;
    for _ in 0..n {
        // Capacity reserved above.
        let _ = v.push(measure(), GFP_KERNEL);
    }
    sort(&mut v);
    Ok(v)
}

fn run(scenario: Scenario, out: &mut impl Write) -> Result<(), c_int> {
    let last_cpu = Some(test_glue::online_cpus().saturating_sub(1));
    match scenario {
        Scenario::Direct => {
            let (bad, pid) = in_thread(c_str!("ksw-direct"), last_cpu, || {
                test_glue::direct_victim(DIRECT_PATTERN)
            })?;
            let _ = write!(out, "scenario=direct bad_words={bad} victim_pids={pid}");
        }
        Scenario::Canary => {
            let (bad, pid) = in_thread(c_str!("ksw-canary"), last_cpu, test_glue::canary_victim)?;
            let _ = write!(out, "scenario=canary bad_words={bad} victim_pids={pid}");
        }
        Scenario::Silent {
            victims,
            corrupt,
            delay_ms,
            writes,
            gap_ns,
        } => silent(victims, corrupt, delay_ms, (writes, gap_ns), out)?,
        Scenario::Ipi { rounds } => ipi(rounds, out)?,
        Scenario::Hold { ms } => {
            HOLD_MS.store(ms, Ordering::Relaxed);
            let (bad, pid) = in_thread(c_str!("ksw-hold"), Some(0), || {
                test_glue::hold_victim(HOLD_MS.load(Ordering::Relaxed))
            })?;
            let _ = write!(
                out,
                "scenario=hold ms={ms} bad_words={bad} victim_pids={pid}"
            );
        }
        Scenario::Recursive {
            corrupt_depth,
            max_depth,
            hop,
        } => {
            // A fn pointer cannot capture: pass the arguments through statics.
            RECURSE_ARGS[0].store(corrupt_depth, Ordering::Relaxed);
            RECURSE_ARGS[1].store(max_depth, Ordering::Relaxed);
            RECURSE_ARGS[2].store(u32::from(hop), Ordering::Relaxed);
            // A hopping recursion must be free to move between CPUs.
            let cpu = if hop { None } else { last_cpu };
            let (bad, pid) = in_thread(c_str!("ksw-recurse"), cpu, || {
                let corrupt = RECURSE_ARGS[0].load(Ordering::Relaxed);
                let max = RECURSE_ARGS[1].load(Ordering::Relaxed);
                let hop = RECURSE_ARGS[2].load(Ordering::Relaxed) != 0;
                test_glue::recurse(max, corrupt, hop)
            })?;
            let _ = write!(
                out,
                "scenario=recursive corrupt_depth={corrupt_depth} max_depth={max_depth} hop={} bad_words={bad} victim_pids={pid}",
                u8::from(hop)
            );
        }
        Scenario::Bench { batches, calls } => bench(batches, calls, out)?,
        Scenario::Irq { softirq } => {
            let (bad, pid) = if softirq {
                in_thread(c_str!("ksw-softirq"), last_cpu, || {
                    test_glue::irq_victim(true, FOREIGN_PATTERN)
                })?
            } else {
                in_thread(c_str!("ksw-hardirq"), last_cpu, || {
                    test_glue::irq_victim(false, FOREIGN_PATTERN)
                })?
            };
            if bad < 0 {
                return Err(bad);
            }
            let _ = write!(
                out,
                "scenario={} bad_words={bad} victim_pids={pid}",
                if softirq { "softirq" } else { "hardirq" }
            );
        }
        Scenario::Deep { depth } => {
            DEEP.store(depth, Ordering::Relaxed);
            let (bad, pid) = in_thread(c_str!("ksw-deep"), last_cpu, || {
                test_glue::deep_victim(DEEP.load(Ordering::Relaxed), FOREIGN_PATTERN)
            })?;
            let _ = write!(
                out,
                "scenario=deep depth={depth} bad_words={bad} victim_pids={pid}"
            );
        }
        Scenario::Alias => {
            let (bad, pid) = in_thread(c_str!("ksw-alias"), last_cpu, || {
                test_glue::alias_victim(FOREIGN_PATTERN)
            })?;
            if bad < 0 {
                return Err(bad);
            }
            let _ = write!(out, "scenario=alias bad_words={bad} victim_pids={pid}");
        }
        Scenario::Loop { calls } => {
            let sum = test_glue::small_loop(calls);
            let _ = write!(
                out,
                "scenario=loop calls={calls} sum={sum:#x} pid={}",
                test_glue::pid()
            );
        }
        Scenario::Exits { calls } => {
            let sum = test_glue::exits_loop(calls);
            let _ = write!(
                out,
                "scenario=exits calls={calls} sum={sum:#x} pid={}",
                test_glue::pid()
            );
        }
        Scenario::Flat { calls } => {
            let sum = test_glue::flat_loop(calls);
            let _ = write!(
                out,
                "scenario=flat calls={calls} sum={sum:#x} pid={}",
                test_glue::pid()
            );
        }
        Scenario::Sweep { rounds, victim } => {
            SWEEP_ARGS[0].store(rounds, Ordering::Relaxed);
            SWEEP_ARGS[1].store(victim, Ordering::Relaxed);
            let (index, pid) = in_thread(c_str!("ksw-sweep"), last_cpu, || {
                let (v, depth, corruptions) = test_glue::sweep_run(
                    SWEEP_ARGS[0].load(Ordering::Relaxed),
                    SWEEP_ARGS[1].load(Ordering::Relaxed),
                );
                SWEEP_ARGS[2].store(depth, Ordering::Relaxed);
                SWEEP_ARGS[3].store(corruptions, Ordering::Relaxed);
                v as i32
            })?;
            let _ = write!(
                out,
                "scenario=sweep rounds={rounds} victim=ksw_test_sweep_{index} victim_depth={} corruptions={} victim_pids={pid}",
                SWEEP_ARGS[2].load(Ordering::Relaxed),
                SWEEP_ARGS[3].load(Ordering::Relaxed)
            );
        }
        Scenario::Hog { on } => {
            test_glue::hog(on)?;
            let _ = write!(out, "scenario=hog on={}", u8::from(on));
        }
        Scenario::Bg { on: true, pause_us } => {
            // SAFETY: C holds ksw_test_lock (scenarios run under it).
            let workers = unsafe { bg_start(pause_us) }?;
            let _ = write!(
                out,
                "scenario=bg on=1 workers={workers} pause_us={pause_us}"
            );
        }
        Scenario::Bg { on: false, .. } => {
            // SAFETY: as above.
            let (workers, calls) = unsafe { bg_stop() };
            let _ = write!(out, "scenario=bg on=0 workers={workers} calls={calls}");
        }
        Scenario::ExitCall { threads } => {
            let ran = test_glue::exit_inside(threads);
            if ran < 0 {
                return Err(ran);
            }
            let _ = write!(out, "scenario=exitcall threads={threads} exited={ran}");
        }
        Scenario::Held {
            start: true,
            max_ms,
        } => {
            // SAFETY: C holds ksw_test_lock (scenarios run under it).
            unsafe { held_start(max_ms) }?;
            let _ = write!(out, "scenario=held start=1 max_ms={max_ms}");
        }
        Scenario::Held { start: false, .. } => {
            // SAFETY: as above.
            let (bad, pid) = unsafe { held_release() }?;
            let _ = write!(
                out,
                "scenario=held start=0 bad_words={bad} victim_pids={pid}"
            );
        }
    }
    Ok(())
}

// -------------------------------------------------------------------- held

static HELD_MAX_MS: AtomicU32 = AtomicU32::new(0);
static HELD_BAD: AtomicI32 = AtomicI32::new(0);
static HELD_PID: AtomicI32 = AtomicI32::new(0);
const EBUSY_NR: c_int = 16;

struct HeldThread(UnsafeCell<Option<Thread>>);

// SAFETY: only reached from held_start/held_release, whose callers hold
// ksw_test_lock or are the module's exit (no scenario runs then).
unsafe impl Sync for HeldThread {}

static HELD: HeldThread = HeldThread(UnsafeCell::new(None));

/// # Safety
///
/// `_arg` is unused: always safe.
unsafe extern "C" fn held_thread(_arg: *mut c_void) -> c_int {
    HELD_PID.store(test_glue::pid(), Ordering::Relaxed);
    let bad = test_glue::held_victim(HELD_MAX_MS.load(Ordering::Relaxed));
    HELD_BAD.store(bad, Ordering::Relaxed);
    0
}

/// Starts the held victim on CPU 0 (one at a time).
///
/// # Safety
///
/// The caller holds ksw_test_lock, or is the module's exit.
unsafe fn held_start(max_ms: u32) -> Result<(), c_int> {
    // SAFETY: the function's contract: nobody else touches HELD.
    let slot = unsafe { &mut *HELD.0.get() };
    if slot.is_some() {
        return Err(-EBUSY_NR);
    }
    HELD_MAX_MS.store(max_ms, Ordering::Relaxed);
    test_glue::held_set_release(false);
    // SAFETY: the thread takes no argument.
    let t = unsafe {
        Thread::start(
            held_thread,
            core::ptr::null_mut(),
            c_str!("ksw-held"),
            Some(0),
        )
    };
    *slot = Some(t.ok_or(-ENOMEM_NR)?);
    Ok(())
}

/// Lets the held victim return and joins it: (bad words, pid).
///
/// # Safety
///
/// As for [`held_start`].
unsafe fn held_release() -> Result<(i32, i32), c_int> {
    // SAFETY: the function's contract.
    let slot = unsafe { &mut *HELD.0.get() };
    let t = slot.take().ok_or(-EINVAL_NR)?;
    test_glue::held_set_release(true);
    t.join();
    Ok((
        HELD_BAD.load(Ordering::Relaxed),
        HELD_PID.load(Ordering::Relaxed),
    ))
}

// --------------------------------------------------------------- background

/// Calls of watched functions one background round makes (3 x 16).
const BG_ROUND_CALLS: u64 = 48;
/// Shortest sleep between rounds.
const BG_MIN_PAUSE_US: u32 = 20;

static BG_STOP: AtomicBool = AtomicBool::new(false);
static BG_PAUSE_US: AtomicU32 = AtomicU32::new(0);
static BG_CALLS: AtomicU64 = AtomicU64::new(0);

struct BgThreads(UnsafeCell<Option<KVec<Thread>>>);

// SAFETY: only reached from bg_start/bg_stop, whose callers hold
// ksw_test_lock or are the module's exit (after the procfs file is gone, so
// no scenario runs).
unsafe impl Sync for BgThreads {}

static BG_THREADS: BgThreads = BgThreads(UnsafeCell::new(None));

/// A background worker: watched calls in a loop, on CPU `arg` whenever
/// that CPU is online, until `bg off`.
///
/// # Safety
///
/// `arg` is a CPU number, not a pointer: always safe.
unsafe extern "C" fn bg_worker(arg: *mut c_void) -> c_int {
    let cpu = arg as usize as u32;
    let mut sink = 0u64;
    let mut round = 0u32;
    while !BG_STOP.load(Ordering::Relaxed) {
        if test_glue::cpu() != cpu && test_glue::cpu_online(cpu) {
            // Back to our CPU after it was re-onlined (or a failed move:
            // the next round tries again).
            let _ = test_glue::move_to_cpu(cpu);
        }
        sink = sink.wrapping_add(test_glue::small_loop(16));
        sink = sink.wrapping_add(test_glue::exits_loop(16));
        for c in 0..16u32 {
            sink = sink.wrapping_add(test_glue::bench_victim(u64::from(round ^ c)));
        }
        BG_CALLS.fetch_add(BG_ROUND_CALLS, Ordering::Relaxed);
        round = round.wrapping_add(1);
        // Always a real sleep: a kernel thread that never blocks holds up
        // RCU Tasks (preemption is not a quiescent state for it), and
        // with it kprobe optimization and ftrace updates, which hold the
        // text mutex meanwhile: every other text patch would wait forever.
        test_glue::sleep_us(BG_PAUSE_US.load(Ordering::Relaxed).max(BG_MIN_PAUSE_US));
    }
    core::hint::black_box(sink);
    0
}

/// Starts one worker per possible CPU (none if already running); returns
/// how many run.
///
/// # Safety
///
/// The caller holds ksw_test_lock, or is the module's exit.
unsafe fn bg_start(pause_us: u32) -> Result<usize, c_int> {
    // SAFETY: the function's contract: nobody else touches BG_THREADS.
    let slot = unsafe { &mut *BG_THREADS.0.get() };
    BG_PAUSE_US.store(pause_us, Ordering::Relaxed);
    if let Some(threads) = slot {
        return Ok(threads.len());
    }
    let cpus = test_glue::possible_cpus();
    let mut threads = KVec::with_capacity(cpus as usize, GFP_KERNEL).map_err(|_| -ENOMEM_NR)?;
    BG_STOP.store(false, Ordering::Relaxed);
    BG_CALLS.store(0, Ordering::Relaxed);
    for cpu in 0..cpus {
        let arg = cpu as usize as *mut c_void;
        let bound = test_glue::cpu_online(cpu).then_some(cpu);
        // SAFETY: `arg` is a number; the worker never dereferences it.
        if let Some(t) = unsafe { Thread::start(bg_worker, arg, c_str!("ksw-bg"), bound) } {
            // Capacity reserved above.
            let _ = threads.push(t, GFP_KERNEL);
        }
    }
    let n = threads.len();
    *slot = Some(threads);
    Ok(n)
}

/// Stops and joins the workers; returns how many there were and the
/// watched calls they made.
///
/// # Safety
///
/// As for [`bg_start`].
unsafe fn bg_stop() -> (usize, u64) {
    // SAFETY: the function's contract.
    let slot = unsafe { &mut *BG_THREADS.0.get() };
    let Some(threads) = slot.take() else {
        return (0, 0);
    };
    BG_STOP.store(true, Ordering::Relaxed);
    let n = threads.len();
    for t in threads {
        t.join();
    }
    (n, BG_CALLS.load(Ordering::Relaxed))
}

static RECURSE_ARGS: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
static HOLD_MS: AtomicU32 = AtomicU32::new(0);
static DEEP: AtomicU32 = AtomicU32::new(0);
static SWEEP_ARGS: [AtomicU32; 4] = [const { AtomicU32::new(0) }; 4];

// ------------------------------------------------------------------ procfs

const RESULT_LEN: usize = 1024;

type Outcome = fmtbuf::Truncating<[u8; RESULT_LEN]>;

struct OutcomeCell(UnsafeCell<Outcome>);

// SAFETY: only reached from ksw_test_rs_run/_result, which C calls with
// ksw_test_lock held.
unsafe impl Sync for OutcomeCell {}

static OUTCOME: OutcomeCell = OutcomeCell(UnsafeCell::new(Outcome::new([0; RESULT_LEN])));

/// Runs the scenario written to /proc/kstackwatch_test.
///
/// # Safety
///
/// - `cmd` is readable for `len` bytes (C's kernel copy of the write).
/// - C holds `ksw_test_lock` (the outcome buffer is not shared).
#[no_mangle]
unsafe extern "C" fn ksw_test_rs_run(cmd: *const u8, len: usize) -> isize {
    // SAFETY: the function's contract.
    let bytes = unsafe { core::slice::from_raw_parts(cmd, len) };
    let Ok(text) = core::str::from_utf8(bytes) else {
        return -(EINVAL_NR as isize);
    };
    let scenario = match parse(text) {
        Ok(s) => s,
        Err(e) => {
            pr_err!(
                "unknown scenario {:?}: try direct, canary, silent [N [MS]], clean [N [MS]], recursive D [MAX], hold MS, storm W [GAP_NS], ipi N, bench B C, hardirq, softirq, deep [D], alias, loop N, exits N, hog on|off, bg on [PAUSE_US]|off, exitcall N, held start [MS]|release, sweep R [VICTIM], flat N\n",
                text.trim()
            );
            return e as isize;
        }
    };
    // SAFETY: C holds ksw_test_lock.
    let outcome = unsafe { &mut *OUTCOME.0.get() };
    outcome.clear();
    match run(scenario, outcome) {
        Ok(()) => {
            let _ = outcome.write_str("\n");
            pr_info!(
                "{}",
                core::str::from_utf8(outcome.as_bytes()).unwrap_or("?")
            );
            len as isize
        }
        Err(e) => {
            pr_err!("scenario {:?} failed: error {}\n", scenario, e);
            e as isize
        }
    }
}

/// Copies the last outcome into `buf`; returns its length.
///
/// # Safety
///
/// - `buf` is writable for `size` bytes.
/// - C holds `ksw_test_lock`.
#[no_mangle]
unsafe extern "C" fn ksw_test_rs_result(buf: *mut u8, size: usize) -> usize {
    // SAFETY: the function's contract.
    let (outcome, out) = unsafe {
        (
            &*OUTCOME.0.get(),
            core::slice::from_raw_parts_mut(buf, size),
        )
    };
    let text = outcome.as_bytes();
    let n = text.len().min(size);
    out[..n].copy_from_slice(&text[..n]);
    n
}

struct KStackWatchTest;

impl kernel::Module for KStackWatchTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        test_glue::init().map_err(Error::from_errno)?;
        Ok(KStackWatchTest)
    }
}

impl Drop for KStackWatchTest {
    fn drop(&mut self) {
        // The procfs file first: no scenario runs after it is gone.
        test_glue::exit();
        // SAFETY: module exit, no scenario can run any more.
        let _ = unsafe { bg_stop() };
        // SAFETY: as above.
        let _ = unsafe { held_release() };
    }
}
