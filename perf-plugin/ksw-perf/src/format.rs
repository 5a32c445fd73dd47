// SPDX-License-Identifier: GPL-2.0
//! Trace-event `format` files (`/sys/kernel/tracing/events/<system>/<event>/format`)
//! and decoding of the records they describe.
//!
//! # The format file
//!
//! The kernel prints it in `kernel/trace/trace_events.c` (`f_show`,
//! `trace_define_field`); libtraceevent parses it in `event_read_format`.
//! It looks like this (the kernel puts tabs where this shows spaces):
//!
//! ```text
//! name: ksw_hit
//! ID: 474
//! format:
//!     field:unsigned short common_type;    offset:0;    size:2;    signed:0;
//!     ...
//!     field:int common_pid;    offset:4;    size:4;    signed:1;
//!
//!     field:u64 id;    offset:8;    size:8;    signed:0;
//!     field:char victim_comm[16];    offset:60;    size:16;    signed:0;
//!     field:__data_loc char[] filename;    offset:8;    size:4;    signed:0;
//!
//! print fmt: "id=%llu ...", REC->id, ...
//! ```
//!
//! A record (`PERF_SAMPLE_RAW` data, or an entry in a trace.dat page) is
//! the C struct the format describes: `offset`/`size` locate each field
//! from the start of the record, common fields first.
//!
//! Dynamic fields (`__string()`, `__dynamic_array()` in `TRACE_EVENT`) are
//! stored out of line:
//! * `__data_loc T[] name`: a `u32` holding `len << 16 | offset`, the
//!   offset counted from the start of the record;
//! * `__rel_loc T[] name`: the same, but the offset is counted from the end
//!   of the `u32` field itself (`include/trace/stages/stage4_event_fields.h`).
//!
//! Strings (fixed `char[N]` arrays and dynamic `char[]`) are cut at the
//! first NUL and decoded as UTF-8 (invalid bytes become U+FFFD).
//!
//! This is a small hand-written parser on purpose: the external
//! `tracepoint_decode` crate mis-decodes `__data_loc` strings (see the
//! project's research notes), and the kstackwatch events only need
//! integers and char arrays.

use std::borrow::Cow;
use std::fmt;

use thiserror::Error;

use crate::bytes::until_nul;

/// A format file that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("format of {event}, line {line}: {msg}")]
pub struct FormatError {
    /// The event's name if it was read before the error, else `?`.
    pub event: String,
    /// 1-based line number in the format text (0: the text as a whole).
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

/// A field could not be decoded from a record.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The event has no field of that name.
    #[error("event {event} has no field `{field}`")]
    NoSuchField {
        /// Event name.
        event: String,
        /// Field asked for.
        field: String,
    },
    /// The field lies (partly) outside the record.
    #[error("field `{field}` at bytes {start}..{end} is outside the {len}-byte record")]
    OutOfBounds {
        /// Field name.
        field: String,
        /// First byte of the field.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// Length of the record.
        len: usize,
    },
    /// A `__data_loc`/`__rel_loc` field points outside the record.
    #[error(
        "dynamic field `{field}` points at bytes {start}..{end}, outside the {len}-byte record"
    )]
    LocOutOfBounds {
        /// Field name.
        field: String,
        /// First byte pointed at.
        start: u64,
        /// One past the last byte pointed at.
        end: u64,
        /// Length of the record.
        len: usize,
    },
    /// A number was asked for, the field is not one.
    #[error("field `{field}` is not an integer")]
    NotInteger {
        /// Field name.
        field: String,
    },
    /// A string was asked for, the field is not one.
    #[error("field `{field}` is not a string")]
    NotString {
        /// Field name.
        field: String,
    },
}

/// How a field's bytes are to be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A 1, 2, 4 or 8 byte integer (also pointers, `bool`, enums).
    Integer,
    /// A fixed `char[N]` array: a NUL-padded string.
    CharArray {
        /// N, the declared length.
        len: u32,
    },
    /// Any other fixed array `T name[N]`.
    Array {
        /// N, the declared length (0 if the declaration gave none).
        len: u32,
        /// `size / N`, or the whole size if N is 0.
        elem_size: u32,
    },
    /// `__data_loc T[] name`: `u32 len << 16 | offset from the record start`.
    DataLoc {
        /// The element type is a `char`: the data is a string.
        string: bool,
    },
    /// `__rel_loc T[] name`: `u32 len << 16 | offset from the end of this field`.
    RelLoc {
        /// The element type is a `char`: the data is a string.
        string: bool,
    },
    /// Anything else (structs, odd sizes): read as bytes.
    Other,
}

/// One `field:` line of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Field name, e.g. `victim_comm`.
    pub name: String,
    /// C type as declared, array suffix included: `u64`, `char[16]`,
    /// `__data_loc char[]`.
    pub type_name: String,
    /// Byte offset from the start of the record.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// `signed:1`.
    pub signed: bool,
    /// One of the `common_*` fields every event starts with.
    pub common: bool,
    /// How to decode it.
    pub kind: FieldKind,
}

/// A decoded field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// An unsigned integer (zero-extended to 64 bits).
    Unsigned(u64),
    /// A signed integer (sign-extended to 64 bits).
    Signed(i64),
    /// A string, cut at the first NUL; lossy UTF-8.
    Str(Cow<'a, str>),
    /// Raw bytes of arrays and other fields.
    Bytes(&'a [u8]),
}

impl Value<'_> {
    /// The integer's bits as a `u64` (signed values reinterpreted).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Unsigned(v) => Some(v),
            Value::Signed(v) => Some(v as u64),
            _ => None,
        }
    }

    /// The integer as an `i64` (unsigned values reinterpreted).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Unsigned(v) => Some(v as i64),
            Value::Signed(v) => Some(v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value<'_> {
    /// Integers in decimal, strings as they are, bytes as hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Unsigned(v) => write!(f, "{v}"),
            Value::Signed(v) => write!(f, "{v}"),
            Value::Str(s) => f.write_str(s),
            Value::Bytes(b) => {
                for (i, x) in b.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
        }
    }
}

impl Field {
    /// Decode this field from `raw`, a whole record of its event.
    /// `big_endian` is the byte order of the machine that wrote it.
    pub fn value<'r>(&self, raw: &'r [u8], big_endian: bool) -> Result<Value<'r>, DecodeError> {
        let bytes = self.bytes(raw)?;
        match self.kind {
            FieldKind::Integer => {
                let v = read_uint(bytes, big_endian);
                if self.signed {
                    let bits = 8 * bytes.len() as u32;
                    let shift = 64u32.saturating_sub(bits);
                    // Sign-extend from `bits` wide.
                    let s = ((v << shift) as i64) >> shift;
                    Ok(Value::Signed(s))
                } else {
                    Ok(Value::Unsigned(v))
                }
            }
            FieldKind::CharArray { .. } => {
                Ok(Value::Str(String::from_utf8_lossy(until_nul(bytes))))
            }
            FieldKind::Array { .. } | FieldKind::Other => Ok(Value::Bytes(bytes)),
            FieldKind::DataLoc { string } | FieldKind::RelLoc { string } => {
                if bytes.len() < 4 {
                    return Ok(Value::Bytes(bytes));
                }
                let loc = read_uint(bytes.get(..4).unwrap_or(&[]), big_endian);
                let len = loc >> 16;
                let mut start = loc & 0xffff;
                if matches!(self.kind, FieldKind::RelLoc { .. }) {
                    start += u64::from(self.offset) + u64::from(self.size);
                }
                let end = start + len;
                let data = usize::try_from(start)
                    .ok()
                    .zip(usize::try_from(end).ok())
                    .and_then(|(s, e)| raw.get(s..e))
                    .ok_or_else(|| DecodeError::LocOutOfBounds {
                        field: self.name.clone(),
                        start,
                        end,
                        len: raw.len(),
                    })?;
                if string {
                    Ok(Value::Str(String::from_utf8_lossy(until_nul(data))))
                } else {
                    Ok(Value::Bytes(data))
                }
            }
        }
    }

    /// The field's own bytes in `raw` (for dynamic fields: the `u32` locator).
    pub fn bytes<'r>(&self, raw: &'r [u8]) -> Result<&'r [u8], DecodeError> {
        let start = u64::from(self.offset);
        let end = start + u64::from(self.size);
        usize::try_from(start)
            .ok()
            .zip(usize::try_from(end).ok())
            .and_then(|(s, e)| raw.get(s..e))
            .ok_or_else(|| DecodeError::OutOfBounds {
                field: self.name.clone(),
                start,
                end,
                len: raw.len(),
            })
    }

    /// True for integers.
    pub fn is_integer(&self) -> bool {
        self.kind == FieldKind::Integer
    }

    /// True for fixed `char[N]` and dynamic `char[]` fields.
    pub fn is_string(&self) -> bool {
        matches!(
            self.kind,
            FieldKind::CharArray { .. }
                | FieldKind::DataLoc { string: true }
                | FieldKind::RelLoc { string: true }
        )
    }
}

fn read_uint(b: &[u8], big_endian: bool) -> u64 {
    // The widths the kernel uses, without a byte loop: this runs for every
    // field of every event.
    match (b.len(), big_endian) {
        (8, false) => return u64::from_le_bytes(b.try_into().unwrap_or_default()),
        (8, true) => return u64::from_be_bytes(b.try_into().unwrap_or_default()),
        (4, false) => return u32::from_le_bytes(b.try_into().unwrap_or_default()).into(),
        (4, true) => return u32::from_be_bytes(b.try_into().unwrap_or_default()).into(),
        _ => {}
    }
    let mut v = 0u64;
    if big_endian {
        for &x in b.iter().take(8) {
            v = (v << 8) | u64::from(x);
        }
    } else {
        for &x in b.iter().take(8).rev() {
            v = (v << 8) | u64::from(x);
        }
    }
    v
}

/// A parsed format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFormat {
    /// Trace system (the directory above the event's), e.g. `kstackwatch`.
    pub system: String,
    /// Event name, e.g. `ksw_hit`.
    pub name: String,
    /// Event id (`perf_event_attr.config` of a tracepoint, `common_type`).
    pub id: u32,
    /// All fields, `common_*` ones included (flagged), in file order.
    pub fields: Vec<Field>,
    /// The `print fmt:` text, unevaluated.
    pub print_fmt: String,
    /// Byte order of records of this event: the host's after
    /// [`EventFormat::parse`], the recording machine's when read from a
    /// perf.data file's tracing data.
    pub big_endian: bool,
}

impl EventFormat {
    /// Parse the text of a format file. `system` is not in the text (it is
    /// the directory name), so the caller gives it.
    ///
    /// Unknown lines are ignored; a missing `name:`/`ID:`, a `field:` line
    /// without `offset:`/`size:`, or numbers that do not parse are errors.
    pub fn parse(system: &str, text: &str) -> Result<EventFormat, FormatError> {
        let mut name: Option<String> = None;
        let mut id: Option<u32> = None;
        let mut fields = Vec::new();
        let mut print_fmt = String::new();
        let err = |name: &Option<String>, line: usize, msg: String| FormatError {
            event: name.clone().unwrap_or_else(|| "?".to_string()),
            line,
            msg,
        };
        let mut lines = text.lines().enumerate();
        while let Some((i, line)) = lines.next() {
            let lineno = i + 1;
            let t = line.trim();
            if let Some(v) = t.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = t.strip_prefix("ID:") {
                let v = v.trim();
                id = Some(
                    v.parse()
                        .map_err(|_| err(&name, lineno, format!("bad ID `{v}`")))?,
                );
            } else if let Some(decl) = t.strip_prefix("field:") {
                let f = parse_field(decl).map_err(|m| err(&name, lineno, m))?;
                fields.push(f);
            } else if let Some(v) = t.strip_prefix("print fmt:") {
                // The rest of the file is the print format (one line in
                // practice; keep any continuation lines).
                let mut s = v.trim_start().to_string();
                for (_, more) in lines.by_ref() {
                    if !more.trim().is_empty() {
                        s.push('\n');
                        s.push_str(more);
                    }
                }
                print_fmt = s;
            }
        }
        let name = name.ok_or_else(|| err(&None, 0, "no `name:` line".to_string()))?;
        let id = id.ok_or_else(|| err(&Some(name.clone()), 0, "no `ID:` line".to_string()))?;
        Ok(EventFormat {
            system: system.to_string(),
            name,
            id,
            fields,
            print_fmt,
            big_endian: cfg!(target_endian = "big"),
        })
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The fields that are not `common_*`.
    pub fn event_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.common)
    }

    /// `system:name`, as perf names the event.
    pub fn full_name(&self) -> String {
        format!("{}:{}", self.system, self.name)
    }

    /// Decode field `name` of `raw` (a record of this event), in this
    /// format's byte order.
    pub fn value<'r>(&self, raw: &'r [u8], name: &str) -> Result<Value<'r>, DecodeError> {
        self.field(name)
            .ok_or_else(|| DecodeError::NoSuchField {
                event: self.full_name(),
                field: name.to_string(),
            })?
            .value(raw, self.big_endian)
    }

    /// Smallest record length that holds every fixed field.
    pub fn min_record_len(&self) -> u64 {
        self.fields
            .iter()
            .map(|f| u64::from(f.offset) + u64::from(f.size))
            .max()
            .unwrap_or(0)
    }
}

/// Integer field `name` of `raw` as a `u64` (signed values reinterpreted).
pub fn u64_of(format: &EventFormat, raw: &[u8], name: &str) -> Result<u64, DecodeError> {
    format
        .value(raw, name)?
        .as_u64()
        .ok_or_else(|| DecodeError::NotInteger {
            field: name.to_string(),
        })
}

/// Integer field `name` of `raw` as an `i64` (unsigned values reinterpreted).
pub fn i64_of(format: &EventFormat, raw: &[u8], name: &str) -> Result<i64, DecodeError> {
    format
        .value(raw, name)?
        .as_i64()
        .ok_or_else(|| DecodeError::NotInteger {
            field: name.to_string(),
        })
}

/// String field `name` of `raw`.
pub fn str_of<'r>(
    format: &EventFormat,
    raw: &'r [u8],
    name: &str,
) -> Result<Cow<'r, str>, DecodeError> {
    match format.value(raw, name)? {
        Value::Str(s) => Ok(s),
        _ => Err(DecodeError::NotString {
            field: name.to_string(),
        }),
    }
}

fn parse_num(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// Parse what follows `field:` on a format line.
fn parse_field(decl_and_rest: &str) -> Result<Field, String> {
    let mut parts = decl_and_rest.split(';');
    let decl = parts.next().unwrap_or("").trim();
    let (mut offset, mut size, mut signed) = (None, None, None);
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let Some((k, v)) = p.split_once(':') else {
            continue;
        };
        let n = || parse_num(v).ok_or_else(|| format!("bad number in `{p}`"));
        match k.trim() {
            "offset" => offset = Some(n()?),
            "size" => size = Some(n()?),
            "signed" => signed = Some(n()? != 0),
            _ => {}
        }
    }
    let offset = offset.ok_or_else(|| format!("field `{decl}` has no offset"))?;
    let size = size.ok_or_else(|| format!("field `{decl}` has no size"))?;
    let offset = u32::try_from(offset).map_err(|_| format!("field `{decl}`: offset too large"))?;
    let size = u32::try_from(size).map_err(|_| format!("field `{decl}`: size too large"))?;

    // Split `type name[N]`.
    let mut d = decl;
    let mut array: Option<&str> = None;
    if d.ends_with(']') {
        if let Some(lb) = d.rfind('[') {
            array = d.get(lb + 1..d.len() - 1);
            d = d.get(..lb).unwrap_or("").trim_end();
        }
    }
    let cut = d
        .rfind(|c: char| c.is_whitespace() || c == '*')
        .ok_or_else(|| format!("cannot split type and name in `{decl}`"))?;
    let name = d.get(cut + 1..).unwrap_or("").trim();
    let base_type = d.get(..=cut).unwrap_or("").trim();
    if name.is_empty() || base_type.is_empty() {
        return Err(format!("cannot split type and name in `{decl}`"));
    }
    let type_name = match array {
        Some(n) => format!("{base_type}[{n}]"),
        None => base_type.to_string(),
    };
    let is_char = |t: &str| {
        let t = t.trim();
        let last = t.rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
        last == "char" && !t.contains('*')
    };
    let kind = if let Some(elem) = base_type.strip_prefix("__data_loc") {
        FieldKind::DataLoc {
            string: is_char(elem.trim().trim_end_matches("[]")),
        }
    } else if let Some(elem) = base_type.strip_prefix("__rel_loc") {
        FieldKind::RelLoc {
            string: is_char(elem.trim().trim_end_matches("[]")),
        }
    } else if let Some(n) = array {
        let len = parse_num(n)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        if is_char(base_type) {
            FieldKind::CharArray { len }
        } else {
            FieldKind::Array {
                len,
                elem_size: size.checked_div(len).unwrap_or(size),
            }
        }
    } else if matches!(size, 1 | 2 | 4 | 8) {
        FieldKind::Integer
    } else {
        FieldKind::Other
    };
    Ok(Field {
        name: name.to_string(),
        type_name,
        offset,
        size,
        signed: signed.unwrap_or(false),
        common: name.starts_with("common_"),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXEC: &str = "name: sched_process_exec\nID: 316\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n\
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\
\n\
\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n\
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n\
\tfield:__rel_loc u8[] blob;\toffset:20;\tsize:4;\tsigned:0;\n\
\tfield:const char * ptr;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:s8 small;\toffset:32;\tsize:1;\tsigned:1;\n\
\tfield:u32 words[2];\toffset:36;\tsize:8;\tsigned:0;\n\
\n\
print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pid\n";

    fn exec_record() -> Vec<u8> {
        let mut r = vec![0u8; 44];
        r[0..2].copy_from_slice(&316u16.to_le_bytes());
        r[4..8].copy_from_slice(&(-1i32).to_le_bytes());
        // filename: "/bin/true\0" at 44, 10 bytes.
        r[8..12].copy_from_slice(&((10u32 << 16) | 44).to_le_bytes());
        r[12..16].copy_from_slice(&42i32.to_le_bytes());
        r[16..20].copy_from_slice(&(-7i32).to_le_bytes());
        // blob: 3 bytes at 54, relative to the end of the field (24).
        r[20..24].copy_from_slice(&((3u32 << 16) | 30).to_le_bytes());
        r[24..32].copy_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
        r[32] = 0xfe;
        r[36..40].copy_from_slice(&1u32.to_le_bytes());
        r[40..44].copy_from_slice(&2u32.to_le_bytes());
        r.extend_from_slice(b"/bin/true\0");
        r.extend_from_slice(&[7, 8, 9]);
        r
    }

    #[test]
    fn parses_sched_exec() {
        let f = EventFormat::parse("sched", EXEC).unwrap();
        assert_eq!(f.name, "sched_process_exec");
        assert_eq!(f.id, 316);
        assert_eq!(f.fields.len(), 11);
        assert_eq!(f.fields.iter().filter(|f| f.common).count(), 4);
        let fname = f.field("filename").unwrap();
        assert_eq!(fname.type_name, "__data_loc char[]");
        assert_eq!(fname.kind, FieldKind::DataLoc { string: true });
        assert_eq!(
            f.field("blob").unwrap().kind,
            FieldKind::RelLoc { string: false }
        );
        assert_eq!(f.field("ptr").unwrap().type_name, "const char *");
        assert_eq!(f.field("ptr").unwrap().kind, FieldKind::Integer);
        assert_eq!(
            f.field("words").unwrap().kind,
            FieldKind::Array {
                len: 2,
                elem_size: 4
            }
        );
        assert!(f.print_fmt.starts_with("\"filename=%s"));
        assert_eq!(f.full_name(), "sched:sched_process_exec");
        assert_eq!(f.min_record_len(), 44);
    }

    #[test]
    fn decodes_dynamic_and_signed() {
        let mut f = EventFormat::parse("sched", EXEC).unwrap();
        f.big_endian = false;
        let r = exec_record();
        assert_eq!(str_of(&f, &r, "filename").unwrap(), "/bin/true");
        assert_eq!(f.value(&r, "pid").unwrap(), Value::Signed(42));
        assert_eq!(f.value(&r, "old_pid").unwrap(), Value::Signed(-7));
        assert_eq!(f.value(&r, "common_pid").unwrap(), Value::Signed(-1));
        assert_eq!(f.value(&r, "small").unwrap(), Value::Signed(-2));
        assert_eq!(f.value(&r, "blob").unwrap(), Value::Bytes(&[7, 8, 9]));
        assert_eq!(u64_of(&f, &r, "ptr").unwrap(), 0xffff_ffff_8100_0000);
        assert_eq!(u64_of(&f, &r, "common_type").unwrap(), 316);
        assert_eq!(i64_of(&f, &r, "old_pid").unwrap(), -7);
        assert_eq!(
            f.value(&r, "words").unwrap().to_string(),
            "01 00 00 00 02 00 00 00"
        );
        assert!(matches!(
            u64_of(&f, &r, "filename"),
            Err(DecodeError::NotInteger { .. })
        ));
        assert!(matches!(
            str_of(&f, &r, "pid"),
            Err(DecodeError::NotString { .. })
        ));
        assert!(matches!(
            f.value(&r, "nope"),
            Err(DecodeError::NoSuchField { .. })
        ));
        // Truncated record: fixed field out of bounds, locator out of bounds.
        let e = f.value(&r[..30], "ptr").unwrap_err();
        assert_eq!(
            e.to_string(),
            "field `ptr` at bytes 24..32 is outside the 30-byte record"
        );
        let e = f.value(&r[..50], "filename").unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::LocOutOfBounds {
                    start: 44,
                    end: 54,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn big_endian_integers() {
        let f = EventFormat::parse("sched", EXEC).unwrap();
        let field = f.field("pid").unwrap();
        let mut r = vec![0u8; 16];
        r[12..16].copy_from_slice(&(-3i32).to_be_bytes());
        assert_eq!(field.value(&r, true).unwrap(), Value::Signed(-3));
    }

    #[test]
    fn errors_name_the_line() {
        let e = EventFormat::parse("s", "name: x\nID: zz\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.to_string(), "format of x, line 2: bad ID `zz`");
        let e = EventFormat::parse("s", "name: x\nID: 1\nformat:\n\tfield:int a;\tsize:4;\n")
            .unwrap_err();
        assert_eq!(e.line, 4);
        assert!(e.msg.contains("no offset"));
        let e = EventFormat::parse("s", "ID: 1\n").unwrap_err();
        assert!(e.msg.contains("name"));
        let e = EventFormat::parse("s", "name: y\n").unwrap_err();
        assert!(e.msg.contains("ID"));
        let e = EventFormat::parse("s", "name: y\nID: 1\n\tfield:int;\toffset:0;\tsize:4;\n")
            .unwrap_err();
        assert!(e.msg.contains("cannot split"), "{e}");
    }

    #[test]
    fn odd_fields_do_not_panic() {
        for decl in [
            "]",
            "[",
            "a[",
            "x y[]",
            "x y[0x10]",
            "__data_loc y",
            "struct foo bar",
            "int a[99999999999999999999]",
            "* *",
        ] {
            let text = format!("name: e\nID: 3\n\tfield:{decl};\toffset:0;\tsize:3;\tsigned:1;\n");
            if let Ok(f) = EventFormat::parse("s", &text) {
                for fl in &f.fields {
                    let _ = fl.value(&[0xff; 2], false);
                    let _ = fl.value(&[0xff; 8], true);
                }
            }
        }
    }
}
