// SPDX-License-Identifier: GPL-2.0
//! Generates `kmod/kstackwatch/ksw_shared.h`: the C view of everything the
//! module's C and Rust halves share (event records, their `TRACE_EVENT`
//! fields and assignments, enum values, limits). The kernel build cannot
//! run Rust code, so the header is generated here and committed; a test
//! fails when the committed file differs from what this produces.
//!
//! Host-only: the kernel module does not include this file.

use core::fmt::{self, Write};

use super::abi::{CALL_DATA, SYM_LEN};
use super::config::{MAX_CONFIG_WRITE, MAX_FUNC_NAME, MAX_SPECS};
use super::events::{
    flags, ArmRecord, DisarmReason, DisarmRecord, ExitState, FieldDesc, FieldKind, HitRecord,
    WriterContext, COMM_LEN,
};
use super::slots::MAX_SLOTS;

/// The command that regenerates the header (printed in the header and by
/// the staleness test).
pub const REGENERATE: &str =
    "cargo run -q -p ksw-core --example c-header > kmod/kstackwatch/ksw_shared.h";

fn record(out: &mut impl Write, event: &str, fields: &[FieldDesc], size: usize) -> fmt::Result {
    let upper = Upper(event);
    writeln!(out, "struct {event}_record {{")?;
    for f in fields {
        match f.kind {
            FieldKind::Comm => writeln!(out, "\tchar {}[{COMM_LEN}];", f.name)?,
            k => writeln!(out, "\t{} {};", k.c_type(), f.name)?,
        }
    }
    writeln!(out, "}};")?;
    writeln!(
        out,
        "static_assert(sizeof(struct {event}_record) == {size});"
    )?;
    for f in fields {
        writeln!(
            out,
            "static_assert(offsetof(struct {event}_record, {}) == {});",
            f.name, f.offset
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "/* TP_STRUCT__entry() of {event}: the record's fields, in order. */"
    )?;
    write!(out, "#define {upper}_FIELDS")?;
    for f in fields {
        match f.kind {
            FieldKind::Comm => write!(out, " \\\n\t__array(char, {}, {COMM_LEN})", f.name)?,
            k => write!(out, " \\\n\t__field({}, {})", k.c_type(), f.name)?,
        }
    }
    writeln!(out)?;
    writeln!(out)?;
    writeln!(
        out,
        "/* TP_fast_assign() of {event} from a record pointer. */"
    )?;
    write!(out, "#define {upper}_ASSIGN(rec)")?;
    for f in fields {
        match f.kind {
            FieldKind::Comm => write!(
                out,
                " \\\n\tmemcpy(__entry->{0}, (rec)->{0}, {COMM_LEN});",
                f.name
            )?,
            _ => write!(out, " \\\n\t__entry->{0} = (rec)->{0};", f.name)?,
        }
    }
    writeln!(out)?;
    writeln!(out)?;
    writeln!(
        out,
        "/* The ring-buffer entry has the record's layout after its common header. */"
    )?;
    write!(out, "#define {upper}_CHECK_ENTRY(entry)")?;
    for f in fields {
        write!(
            out,
            " \\\n\tstatic_assert(offsetof(entry, {0}) - offsetof(entry, {1}) == {2});",
            f.name,
            fields.first().map_or("", |f| f.name),
            f.offset
        )?;
    }
    writeln!(out)?;
    writeln!(out)
}

/// `{ value, "name" }, ...` for `__print_symbolic`.
fn symbolic<T: Copy>(
    out: &mut impl Write,
    name: &str,
    all: &[T],
    raw: impl Fn(T) -> u8,
    text: impl Fn(T) -> &'static str,
) -> fmt::Result {
    write!(out, "#define {name}")?;
    for (i, &v) in all.iter().enumerate() {
        let sep = if i + 1 == all.len() { "" } else { "," };
        write!(out, " \\\n\t{{ {}, \"{}\" }}{sep}", raw(v), text(v))?;
    }
    writeln!(out)
}

/// Writes the whole header.
pub fn write(out: &mut impl Write) -> fmt::Result {
    writeln!(out, "/* SPDX-License-Identifier: GPL-2.0 */")?;
    writeln!(out, "/*")?;
    writeln!(
        out,
        " * Generated from kmod/core/src (abi.rs, config.rs, events.rs, slots.rs): do not edit."
    )?;
    writeln!(out, " * Regenerate with:")?;
    writeln!(out, " *   {REGENERATE}")?;
    writeln!(out, " * (cargo test fails while this file is stale).")?;
    writeln!(out, " */")?;
    writeln!(out, "#ifndef KSW_SHARED_H")?;
    writeln!(out, "#define KSW_SHARED_H")?;
    writeln!(out)?;
    writeln!(out, "#include <linux/build_bug.h>")?;
    writeln!(out, "#include <linux/stddef.h>")?;
    writeln!(out, "#include <linux/types.h>")?;
    writeln!(out)?;
    writeln!(out, "#define KSW_MAX_SLOTS {MAX_SLOTS}")?;
    writeln!(out, "#define KSW_MAX_SPECS {MAX_SPECS}")?;
    writeln!(out, "#define KSW_MAX_FUNC_NAME {MAX_FUNC_NAME}")?;
    writeln!(out, "#define KSW_MAX_CONFIG_WRITE {MAX_CONFIG_WRITE}")?;
    writeln!(out, "#define KSW_COMM_LEN {COMM_LEN}")?;
    writeln!(out, "#define KSW_SYM_LEN {SYM_LEN}")?;
    writeln!(out, "#define KSW_CALL_DATA {CALL_DATA}")?;
    writeln!(out)?;
    writeln!(out, "#define KSW_ARM_CANARY {}", flags::ARM_CANARY)?;
    writeln!(out, "#define KSW_HIT_BY_VICTIM {}", flags::HIT_BY_VICTIM)?;
    writeln!(out, "#define KSW_HIT_OLD_CANARY {}", flags::HIT_OLD_CANARY)?;
    writeln!(out, "#define KSW_HIT_NEW_CANARY {}", flags::HIT_NEW_CANARY)?;
    writeln!(
        out,
        "#define KSW_HIT_OUT_OF_LINE {}",
        flags::HIT_OUT_OF_LINE
    )?;
    writeln!(out, "#define KSW_DISARM_CANARY {}", flags::DISARM_CANARY)?;
    writeln!(
        out,
        "#define KSW_DISARM_EXIT_CANARY {}",
        flags::DISARM_EXIT_CANARY
    )?;
    writeln!(out)?;
    symbolic(
        out,
        "KSW_DISARM_REASONS",
        DisarmReason::ALL,
        |v| v as u8,
        DisarmReason::as_str,
    )?;
    symbolic(
        out,
        "KSW_EXIT_STATES",
        ExitState::ALL,
        |v| v as u8,
        ExitState::as_str,
    )?;
    symbolic(
        out,
        "KSW_WRITER_CONTEXTS",
        WriterContext::ALL,
        |v| v as u8,
        WriterContext::as_str,
    )?;
    writeln!(out)?;
    record(
        out,
        ArmRecord::EVENT,
        ArmRecord::FIELDS,
        core::mem::size_of::<ArmRecord>(),
    )?;
    record(
        out,
        HitRecord::EVENT,
        HitRecord::FIELDS,
        core::mem::size_of::<HitRecord>(),
    )?;
    record(
        out,
        DisarmRecord::EVENT,
        DisarmRecord::FIELDS,
        core::mem::size_of::<DisarmRecord>(),
    )?;
    writeln!(out, "#endif /* KSW_SHARED_H */")
}

/// Upper-case of an event name, for macro names (`ksw_arm` -> `KSW_ARM`).
struct Upper<'a>(&'a str);

impl fmt::Display for Upper<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            f.write_char(c.to_ascii_uppercase())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::string::String;

    #[test]
    fn committed_header_is_current() {
        let mut generated = String::new();
        super::write(&mut generated).unwrap();
        let committed = include_str!("../../kstackwatch/ksw_shared.h");
        assert!(
            generated == committed,
            "kmod/kstackwatch/ksw_shared.h is stale: run `{}`",
            super::REGENERATE
        );
    }
}
