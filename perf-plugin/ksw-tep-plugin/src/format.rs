//! The readable lines for the kstackwatch events, from field values.
//!
//! Pure Rust, no FFI: the plugin feeds it fields read through libtraceevent,
//! tests feed it maps.

use ksw_core::events::{field, flags, DisarmReason, ExitState, Verdict, WriterContext};

/// Field access by the names of `ksw_core::events::field`.
pub trait Fields {
    /// A numeric field, `None` if the event has no such field.
    fn num(&self, name: &str) -> Option<u64>;
    /// A `char[]` field up to its NUL, `None` if absent.
    fn text(&self, name: &str) -> Option<String>;
}

/// Address to `sym+0xoff [module]` (the rules of `ksw-symbols`).
pub trait Symbolize {
    fn symbolize(&self, addr: u64) -> String;
}

/// A field the line needs is missing from the event's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing(pub &'static str);

fn need(f: &impl Fields, name: &'static str) -> Result<u64, Missing> {
    f.num(name).ok_or(Missing(name))
}

/// `ksw_arm`: `watch 1 slot 0 armed at ksw_test_victim+0xd7: 8 bytes at
/// 0xffff8880003cfe50 hold 0xdeadbef7 (sp 0xffff8880003cfe10, depth 0, spec 0)`
pub fn arm(f: &impl Fields, sym: &impl Symbolize) -> Result<String, Missing> {
    let id = need(f, field::ID)?;
    let slot = need(f, field::SLOT)?;
    let probe = need(f, field::PROBE_IP)?;
    let addr = need(f, field::ADDR)?;
    let len = need(f, field::LEN)?;
    let value = need(f, field::VALUE)?;
    let flag = |bit| f.num(field::FLAGS).is_some_and(|v| v as u8 & bit != 0);
    let held = if flag(flags::ARM_CANARY) {
        "the canary".to_owned()
    } else {
        format!("{value:#x}")
    };
    let mut line = format!(
        "watch {id} slot {slot} armed at {}: {len} bytes at {addr:#x} hold {held}",
        sym.symbolize(probe)
    );
    let extra: Vec<String> = [
        (field::SP, "sp"),
        (field::DEPTH, "depth"),
        (field::SPEC, "spec"),
    ]
    .into_iter()
    .filter_map(|(name, label)| {
        let v = f.num(name)?;
        Some(if name == field::SP {
            format!("{label} {v:#x}")
        } else {
            format!("{label} {v}")
        })
    })
    .collect();
    if !extra.is_empty() {
        line.push_str(&format!(" ({})", extra.join(", ")));
    }
    Ok(line)
}

/// `ksw_hit`: `watch 1 slot 0: ksw-writer wrote 0xabcdabcd over 0xdeadbef7
/// at 0xffff8880003cfe50 by ksw_test_corrupt+0x3 [kstackwatch_test]; victim
/// ksw-victim/84 armed at ksw_test_victim+0xd7`
pub fn hit(f: &impl Fields, sym: &impl Symbolize) -> Result<String, Missing> {
    let id = need(f, field::ID)?;
    let slot = need(f, field::SLOT)?;
    let addr = need(f, field::ADDR)?;
    let writer_ip = need(f, field::WRITER_IP)?;
    let old = need(f, field::OLD_VALUE)?;
    let new = need(f, field::NEW_VALUE)?;
    let writer = f
        .text(field::WRITER_COMM)
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "a writer".to_owned());
    let flag = |bit| f.num(field::FLAGS).is_some_and(|v| v as u8 & bit != 0);
    let shown = |v: u64, canary: bool| {
        if canary {
            "the canary".to_owned()
        } else {
            format!("{v:#x}")
        }
    };
    let context = match f.num(field::CONTEXT).and_then(WriterContext::from_raw) {
        Some(WriterContext::Task) | None => String::new(),
        Some(c) if flag(flags::HIT_BY_VICTIM) => format!(" (in {c}, on the victim's CPU)"),
        Some(c) => format!(" (in {c})"),
    };
    let mut line = format!(
        "watch {id} slot {slot}: {writer}{context} wrote {} over {} at {addr:#x} by {}{}",
        shown(new, flag(flags::HIT_NEW_CANARY)),
        shown(old, flag(flags::HIT_OLD_CANARY)),
        sym.symbolize(writer_ip),
        if flag(flags::HIT_OUT_OF_LINE) {
            " (the probed instruction, run out of line)"
        } else {
            ""
        }
    );
    let victim_comm = f.text(field::VICTIM_COMM);
    let victim_pid = f.num(field::VICTIM_PID).map(|p| p as u32 as i32);
    match (victim_comm, victim_pid) {
        (Some(c), Some(p)) => line.push_str(&format!("; victim {c}/{p}")),
        (None, Some(p)) => line.push_str(&format!("; victim pid {p}")),
        (Some(c), None) => line.push_str(&format!("; victim {c}")),
        (None, None) => line.push_str("; victim unknown"),
    }
    if let Some(probe) = f.num(field::PROBE_IP) {
        line.push_str(" armed at ");
        line.push_str(&sym.symbolize(probe));
    }
    Ok(line)
}

/// `ksw_disarm`: `watch 1 slot 0 disarmed on return: hit (1 write caught;
/// 0xdeadbef7 -> 0xabcdabcd at 0xffff8880003cfe50)`, the verdict word being
/// `ksw_core::events::Verdict`'s (clean, hit, silently corrupted, unknown).
pub fn disarm(f: &impl Fields) -> Result<String, Missing> {
    let id = need(f, field::ID)?;
    let slot = need(f, field::SLOT)?;
    let addr = need(f, field::ADDR)?;
    let arm_value = need(f, field::ARM_VALUE)?;
    let exit_value = need(f, field::EXIT_VALUE)?;
    let hits = need(f, field::HITS)?;
    let exit = ExitState::from_raw(need(f, field::CORRUPTED)?).unwrap_or(ExitState::Unknown);
    let flag = |bit| f.num(field::FLAGS).is_some_and(|v| v as u8 & bit != 0);
    let reason = match f.num(field::REASON) {
        Some(r) => match DisarmReason::from_raw(r) {
            Some(r) => r.as_str().to_owned(),
            None => format!("reason {r}"),
        },
        None => "unknown reason".to_owned(),
    };
    let verdict = Verdict::of(hits, exit);
    let caught = match hits {
        0 => "no write caught".to_owned(),
        1 => "1 write caught".to_owned(),
        n => format!("{n} writes caught"),
    };
    let at_arm = if flag(flags::DISARM_CANARY) {
        "the canary".to_owned()
    } else {
        format!("{arm_value:#x}")
    };
    let value = match exit {
        ExitState::Unknown => format!("{at_arm} -> value at death unknown"),
        ExitState::Intact => format!("{at_arm} kept"),
        ExitState::Changed if flag(flags::DISARM_EXIT_CANARY) => format!("{at_arm} -> the canary"),
        ExitState::Changed => format!("{at_arm} -> {exit_value:#x}"),
    };
    Ok(format!(
        "watch {id} slot {slot} disarmed on {reason}: {verdict} ({caught}; {value} at {addr:#x})"
    ))
}
