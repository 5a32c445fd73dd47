// SPDX-License-Identifier: GPL-2.0
//! The `HEADER_TRACING_DATA` blob: everything libtraceevent needs to decode
//! tracepoint records, copied from tracefs by `perf record`.
//!
//! Written by `tools/perf/util/trace-event-info.c` (`tracing_data_get`),
//! read by `tools/perf/util/trace-event-read.c` (`trace_report`). Numbers
//! are in the recording machine's byte order, given by the `big_endian`
//! byte near the start:
//!
//! ```text
//! u8[3]   23 8 68                      ("\x17\x08D", magic)
//! u8[7]   "tracing"
//! char[]  version, NUL-terminated      ("0.6")
//! u8      big_endian
//! u8      sizeof(long)
//! u32     page_size
//! char[12] "header_page\0"    u64 size, bytes   (events/header_page)
//! char[13] "header_event\0"   u64 size, bytes   (events/header_event)
//! u32 count; count × { u64 size, bytes }        (events/ftrace/*/format)
//! u32 systems; systems × {
//!     char[] system, NUL-terminated
//!     u32 count; count × { u64 size, bytes }    (events/<system>/*/format)
//! }
//! u32 size, bytes                               (/proc/kallsyms; perf 6.1 writes size 0)
//! u32 size, bytes                               (printk_formats)
//! u64 size, bytes                               (saved_cmdlines; version ≥ 0.6 only)
//! ```
//!
//! [`TracingData::parse`] reads it; [`build`] and [`build_from_formats`]
//! write it.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use crate::bytes::Cursor;
use crate::format::EventFormat;
use crate::kallsyms::Kallsyms;
use crate::read::ReadError;

/// The magic bytes that open the blob.
pub const MAGIC: &[u8; 10] = b"\x17\x08\x44tracing";
/// The version perf 6.1 writes, and so do we.
pub const VERSION: &str = "0.6";
/// Page size recorded by [`build`] (only used to parse ftrace ring-buffer
/// pages, never by perf.data readers).
pub const PAGE_SIZE: u32 = 4096;

/// A parsed `HEADER_TRACING_DATA` blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracingData {
    /// Version string, `0.6` for recent perf.
    pub version: String,
    /// Byte order of the recording machine (of trace records too).
    pub big_endian: bool,
    /// `sizeof(long)` on the recording machine.
    pub long_size: u8,
    /// Page size of the recording machine.
    pub page_size: u32,
    /// Text of `events/header_page`.
    pub header_page: String,
    /// Text of `events/header_event`.
    pub header_event: String,
    /// Texts of the `events/ftrace/*/format` files perf copied (usually none).
    pub ftrace_formats: Vec<String>,
    /// The recorded events' formats, with their systems.
    pub events: Vec<EventFormat>,
    /// The kallsyms copy: empty from perf 6.1, which does not use it either
    /// (`perf script` prints `%pS` fields as addresses); files written with
    /// [`build`] may carry one for this crate's reader.
    pub kallsyms: String,
    /// `printk_formats` (address : "format" lines).
    pub printk_formats: String,
    /// `saved_cmdlines` (`pid comm` lines).
    pub saved_cmdlines: String,
}

impl TracingData {
    /// Parse a blob whose first byte is at file offset `base` (used in
    /// error messages only).
    pub fn parse(bytes: &[u8], base: u64) -> Result<TracingData, ReadError> {
        let mut c = Cursor::new(bytes, base);
        let magic_at = c.offset();
        let magic = c.take(10, "tracing data magic")?;
        if magic != MAGIC {
            return Err(ReadError::Invalid {
                what: "tracing data",
                offset: magic_at,
                msg: "no \\x17\\x08Dtracing magic".to_string(),
            });
        }
        let version = String::from_utf8_lossy(c.cstr("tracing data version")?).into_owned();
        let big_endian = c.u8("tracing data endianness")? != 0;
        c.set_big_endian(big_endian);
        let long_size = c.u8("tracing data long size")?;
        let page_size = c.u32("tracing data page size")?;

        let tag_at = c.offset();
        if c.take(12, "header_page tag")? != b"header_page\0" {
            return Err(ReadError::Invalid {
                what: "tracing data",
                offset: tag_at,
                msg: "expected \"header_page\"".to_string(),
            });
        }
        let header_page = text(&mut c, 8, "header_page")?;
        let tag_at = c.offset();
        if c.take(13, "header_event tag")? != b"header_event\0" {
            return Err(ReadError::Invalid {
                what: "tracing data",
                offset: tag_at,
                msg: "expected \"header_event\"".to_string(),
            });
        }
        let header_event = text(&mut c, 8, "header_event")?;

        let n = c.u32("ftrace format count")?;
        let mut ftrace_formats = Vec::new();
        for _ in 0..n {
            ftrace_formats.push(text(&mut c, 8, "ftrace format")?);
        }

        let systems = c.u32("event system count")?;
        let mut events = Vec::new();
        for _ in 0..systems {
            let system = String::from_utf8_lossy(c.cstr("event system name")?).into_owned();
            let n = c.u32("event format count")?;
            for _ in 0..n {
                let size = c.u64("event format size")?;
                let at = c.offset();
                let raw = c.take(size, "event format")?;
                let mut f = EventFormat::parse(&system, &String::from_utf8_lossy(raw)).map_err(
                    |source| ReadError::Format {
                        offset: at,
                        system: system.clone(),
                        source,
                    },
                )?;
                f.big_endian = big_endian;
                events.push(f);
            }
        }

        let kallsyms = text(&mut c, 4, "kallsyms")?;
        let printk_formats = text(&mut c, 4, "printk formats")?;
        let saved_cmdlines = if version.trim().parse::<f64>().unwrap_or(0.0) >= 0.6 {
            text(&mut c, 8, "saved cmdlines")?
        } else {
            String::new()
        };
        Ok(TracingData {
            version,
            big_endian,
            long_size,
            page_size,
            header_page,
            header_event,
            ftrace_formats,
            events,
            kallsyms,
            printk_formats,
            saved_cmdlines,
        })
    }

    /// The format of the event with this id (`perf_event_attr.config`).
    pub fn event_by_id(&self, id: u64) -> Option<&EventFormat> {
        self.events.iter().find(|e| u64::from(e.id) == id)
    }

    /// The format of `system:name`.
    pub fn event(&self, system: &str, name: &str) -> Option<&EventFormat> {
        self.events
            .iter()
            .find(|e| e.system == system && e.name == name)
    }

    /// The kallsyms copy as a symbol table (empty if none was stored).
    pub fn kallsyms(&self) -> Kallsyms {
        Kallsyms::parse(&self.kallsyms)
    }

    /// `saved_cmdlines` as `(pid, comm)` pairs (malformed lines skipped).
    pub fn cmdlines(&self) -> Vec<(i32, String)> {
        self.saved_cmdlines
            .lines()
            .filter_map(|l| {
                let (pid, comm) = l.trim().split_once(' ')?;
                Some((pid.parse().ok()?, comm.to_string()))
            })
            .collect()
    }
}

/// Read a `size`-prefixed text whose size field is `size_len` (4 or 8) bytes.
fn text(c: &mut Cursor<'_>, size_len: u8, what: &'static str) -> Result<String, ReadError> {
    let size = if size_len == 4 {
        u64::from(c.u32(what)?)
    } else {
        c.u64(what)?
    };
    Ok(String::from_utf8_lossy(c.take(size, what)?).into_owned())
}

/// The text of one event's format file, with its system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFormatText {
    /// Trace system, e.g. `kstackwatch`.
    pub system: String,
    /// The whole `format` file.
    pub text: String,
}

/// Build the blob as `perf record` does, from texts instead of tracefs.
///
/// The blob records the host's byte order and `sizeof(long)`, page size
/// [`PAGE_SIZE`], no ftrace formats, one system group per distinct system
/// (in order of first appearance, events in the given order), the kallsyms
/// text if given (perf 6.1 skips it when reading, but this crate's reader
/// symbolizes with it), empty printk formats and empty saved cmdlines.
pub fn build_from_formats(
    header_page: &str,
    header_event: &str,
    events: &[EventFormatText],
    kallsyms: Option<&str>,
) -> Vec<u8> {
    build_parts(&Parts {
        header_page: header_page.as_bytes(),
        header_event: header_event.as_bytes(),
        events: events
            .iter()
            .map(|e| (e.system.as_str(), e.text.as_bytes()))
            .collect(),
        kallsyms: kallsyms.map(str::as_bytes).unwrap_or(&[]),
        printk_formats: &[],
        saved_cmdlines: &[],
    })
}

struct Parts<'a> {
    header_page: &'a [u8],
    header_event: &'a [u8],
    events: Vec<(&'a str, &'a [u8])>,
    kallsyms: &'a [u8],
    printk_formats: &'a [u8],
    saved_cmdlines: &'a [u8],
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_ne_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_ne_bytes());
}

/// A length that must fit a `u32` size field: longer inputs are cut, which
/// only happens for multi-GiB texts.
fn len32(b: &[u8]) -> (u32, &[u8]) {
    let n = u32::try_from(b.len()).unwrap_or(u32::MAX);
    (n, b.get(..n as usize).unwrap_or(b))
}

fn build_parts(p: &Parts<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(VERSION.as_bytes());
    out.push(0);
    out.push(u8::from(cfg!(target_endian = "big")));
    out.push(std::mem::size_of::<usize>() as u8);
    put_u32(&mut out, PAGE_SIZE);
    out.extend_from_slice(b"header_page\0");
    put_u64(&mut out, p.header_page.len() as u64);
    out.extend_from_slice(p.header_page);
    out.extend_from_slice(b"header_event\0");
    put_u64(&mut out, p.header_event.len() as u64);
    out.extend_from_slice(p.header_event);
    // No ftrace formats.
    put_u32(&mut out, 0);
    // Group by system, keeping first-appearance order.
    let mut systems: Vec<&str> = Vec::new();
    let mut by_system: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for &(sys, text) in &p.events {
        if !systems.contains(&sys) {
            systems.push(sys);
        }
        by_system.entry(sys).or_default().push(text);
    }
    put_u32(&mut out, systems.len() as u32);
    for sys in systems {
        out.extend_from_slice(sys.as_bytes());
        out.push(0);
        let texts = by_system.get(sys).map(Vec::as_slice).unwrap_or(&[]);
        put_u32(&mut out, texts.len() as u32);
        for t in texts {
            put_u64(&mut out, t.len() as u64);
            out.extend_from_slice(t);
        }
    }
    let (n, k) = len32(p.kallsyms);
    put_u32(&mut out, n);
    out.extend_from_slice(k);
    let (n, k) = len32(p.printk_formats);
    put_u32(&mut out, n);
    out.extend_from_slice(k);
    put_u64(&mut out, p.saved_cmdlines.len() as u64);
    out.extend_from_slice(p.saved_cmdlines);
    out
}

fn read_optional(path: &Path) -> io::Result<Vec<u8>> {
    match read_named(path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Reads a tracefs file with large reads: `header_page` and `header_event`
/// answer only a read at offset 0 (a second, continuing read returns EOF),
/// so `std::fs::read`'s small first read would truncate them.
fn read_named(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut file = std::fs::File::open(path).map_err(named)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0;
    loop {
        let n = file.read(&mut buf[len..]).map_err(named)?;
        if n == 0 {
            break;
        }
        len += n;
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
    buf.truncate(len);
    Ok(buf)
}

/// Build the blob from a mounted tracefs (`/sys/kernel/tracing`), as
/// `perf record` does for the listed `(system, name)` events: header_page,
/// header_event, no ftrace formats, the events' `format` files, the given
/// kallsyms text (or an empty section), `printk_formats` and
/// `saved_cmdlines` (each empty if tracefs lacks it).
pub fn build(
    tracefs_root: &Path,
    events: &[(&str, &str)],
    kallsyms: Option<&str>,
) -> io::Result<Vec<u8>> {
    let ev = tracefs_root.join("events");
    let header_page = read_named(&ev.join("header_page"))?;
    let header_event = read_named(&ev.join("header_event"))?;
    let mut formats = Vec::with_capacity(events.len());
    for &(sys, name) in events {
        if sys.contains('/') || name.contains('/') || sys.contains("..") || name.contains("..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad event name {sys}:{name}"),
            ));
        }
        formats.push((sys, read_named(&ev.join(sys).join(name).join("format"))?));
    }
    let printk = read_optional(&tracefs_root.join("printk_formats"))?;
    let cmdlines = read_optional(&tracefs_root.join("saved_cmdlines"))?;
    Ok(build_parts(&Parts {
        header_page: &header_page,
        header_event: &header_event,
        events: formats.iter().map(|(s, t)| (*s, t.as_slice())).collect(),
        kallsyms: kallsyms.map(str::as_bytes).unwrap_or(&[]),
        printk_formats: &printk,
        saved_cmdlines: &cmdlines,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FMT: &str = "name: e1\nID: 7\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:u32 x;\toffset:4;\tsize:4;\tsigned:0;\n\nprint fmt: \"x=%u\", REC->x\n";

    #[test]
    fn build_and_parse() {
        let blob = build_from_formats(
            "hp",
            "he",
            &[
                EventFormatText {
                    system: "a".into(),
                    text: FMT.into(),
                },
                EventFormatText {
                    system: "b".into(),
                    text: FMT.replace("e1", "e2").replace("ID: 7", "ID: 8"),
                },
                EventFormatText {
                    system: "a".into(),
                    text: FMT.replace("e1", "e3").replace("ID: 7", "ID: 9"),
                },
            ],
            Some("ffffffff81000000 T _text\n"),
        );
        let td = TracingData::parse(&blob, 0).unwrap();
        assert_eq!(td.version, "0.6");
        assert_eq!(td.header_page, "hp");
        assert_eq!(td.header_event, "he");
        let names: Vec<_> = td.events.iter().map(|e| e.full_name()).collect();
        assert_eq!(names, ["a:e1", "a:e3", "b:e2"]);
        assert_eq!(td.event_by_id(8).unwrap().name, "e2");
        assert_eq!(td.event("a", "e3").unwrap().id, 9);
        assert_eq!(td.kallsyms().len(), 1);
        assert!(td.cmdlines().is_empty());
        // Every cut is an error that names an offset.
        for cut in 0..blob.len() {
            let e = TracingData::parse(&blob[..cut], 0x1000).unwrap_err();
            assert!(e.to_string().contains("offset 0x"), "{e}");
        }
    }

    #[test]
    fn build_from_a_tracefs_tree() {
        let dir = std::env::temp_dir().join(format!("ksw-perf-tracefs-{}", std::process::id()));
        let ev = dir.join("events/s/e1");
        std::fs::create_dir_all(&ev).unwrap();
        std::fs::write(dir.join("events/header_page"), "hp").unwrap();
        std::fs::write(dir.join("events/header_event"), "he").unwrap();
        std::fs::write(ev.join("format"), FMT).unwrap();
        std::fs::write(dir.join("saved_cmdlines"), "42 ksw-victim\nbogus\n").unwrap();
        let blob = build(&dir, &[("s", "e1")], None).unwrap();
        let td = TracingData::parse(&blob, 0).unwrap();
        assert_eq!(td.events[0].full_name(), "s:e1");
        assert_eq!(td.cmdlines(), [(42, "ksw-victim".to_string())]);
        assert!(td.printk_formats.is_empty());
        let e = build(&dir, &[("s", "missing")], None).unwrap_err();
        assert!(e.to_string().contains("missing/format"), "{e}");
        assert!(build(&dir, &[("..", "x")], None).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
