// SPDX-License-Identifier: GPL-2.0
//! function_graph text (tracefs or `trace-cmd report`), any bytes: parse it,
//! then ask it what `ksw report` asks (anchor an event by id and by time,
//! the stack and the calls of every task at every line).
#![no_main]

// The parser itself, compiled in (the ksw crate is a whole program).
#[allow(dead_code)]
#[path = "../../ksw/src/graph.rs"]
mod graph;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(g) = graph::Graph::parse_bytes(data) else {
        return;
    };
    let range = g.time_range();
    let lines = g.lines.len().min(64);
    for i in 0..lines {
        let l = &g.lines[i];
        let (pid, time) = (l.pid, l.time_ns);
        if let Some((at, _)) = g.locate(("ksw_arm", 1, 0), pid, time) {
            let _ = g.stack_at(pid, at, time);
            let _ = g.calls_between(pid, at, g.lines.len());
        }
        let _ = g.locate(("ksw_hit", 6, 0xffff88800047fe50), pid, time.wrapping_add(1_000));
    }
    let _ = range;
});
