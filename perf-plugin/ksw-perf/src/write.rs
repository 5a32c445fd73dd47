// SPDX-License-Identifier: GPL-2.0
//! Writing perf.data files that `perf script` and `perf report` read.
//!
//! The layout is the one `perf record` writes in file mode
//! (`tools/perf/util/header.c`, `perf_session__do_write_header` and
//! `perf_header__adds_write`; see [`crate::read`] for the picture):
//! header, the ids of each event, the attributes (128-byte
//! `perf_event_attr` + ids section each, as perf 6.1), the records, then
//! the feature index and the feature payloads. [`Writer::create`] writes
//! everything up to the data section (with a header whose `data.size` is
//! 0, which perf reads with a warning and this crate's reader as an
//! unfinished file); [`Writer::finish`] appends the features and rewrites
//! the header.
//!
//! Features written: `TRACING_DATA` (when given), `HOSTNAME`, `OSRELEASE`,
//! `VERSION`, `ARCH`, `NRCPUS`, `CMDLINE`, `EVENT_DESC`, `CLOCKID` and
//! `CLOCK_DATA` (when given). Perf 6.1 refuses tracepoint events without
//! their format in `TRACING_DATA` ("incompatible file format", checked by
//! [`Writer::create`]), reads the `CLOCKID` feature as the clock's
//! resolution (not its id), and needs `CLOCK_DATA` for `perf script -F
//! tod` (wall-clock times); it ignores the kallsyms copy in the tracing
//! data, so `%pS` fields stay hex addresses in `perf script`.

use std::collections::HashMap;
use std::io::{self, Seek, SeekFrom, Write};

use crate::abi::{
    attr_flag, event_type, feature, misc, record_type, sample_type, ATTR_SIZE_VER7,
    FILE_HEADER_SIZE, PERF_MAGIC,
};
use crate::attr::PerfEventAttr;
use crate::read::{ClockData, Comm, Mmap, Sample, SampleId};
use crate::tracing_data::TracingData;

/// One event of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSpec {
    /// Its attribute, as given to `perf_event_open`.
    pub attr: PerfEventAttr,
    /// Its name, e.g. `kstackwatch:ksw_hit` (the `EVENT_DESC` name perf shows).
    pub name: String,
    /// The ids the kernel gave its file descriptors (`PERF_EVENT_IOC_ID`),
    /// found in samples' `ID`/`IDENTIFIER`.
    pub ids: Vec<u64>,
}

/// What to put in the file besides records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterConfig {
    /// The events, in the order samples refer to them (at least one).
    pub events: Vec<EventSpec>,
    /// The `TRACING_DATA` blob ([`crate::tracing_data::build`]); empty: none.
    pub tracing_data: Vec<u8>,
    /// `HOSTNAME`.
    pub hostname: String,
    /// `OSRELEASE` (`uname -r` of the recorded kernel).
    pub os_release: String,
    /// `VERSION`: the writing tool, `ksw <crate version>` by default.
    pub version: String,
    /// `ARCH` (`uname -m`), the host's by default.
    pub arch: String,
    /// `NRCPUS`: CPUs online.
    pub nr_cpus_online: u32,
    /// `NRCPUS`: CPUs available.
    pub nr_cpus_avail: u32,
    /// `CMDLINE`: the recorder's argv (perf puts its own path first).
    pub cmdline: Vec<String>,
    /// `CLOCKID`: resolution of the sample clock in ns (this feature holds
    /// the resolution, not the clock id, which is in the attributes and in
    /// `CLOCK_DATA`). `None`: not written.
    pub clock_res_ns: Option<u64>,
    /// `CLOCK_DATA`. `None`: not written.
    pub clock_data: Option<ClockData>,
    /// [`feature::KSW_COUNTERS`] text; `None`: not written. Can also be
    /// set once the recording is done ([`Writer::set_ksw_counters`]).
    pub ksw_counters: Option<String>,
}

impl Default for WriterConfig {
    fn default() -> WriterConfig {
        WriterConfig {
            events: Vec::new(),
            tracing_data: Vec::new(),
            hostname: String::new(),
            os_release: String::new(),
            version: format!("ksw {}", env!("CARGO_PKG_VERSION")),
            arch: std::env::consts::ARCH.to_string(),
            nr_cpus_online: 1,
            nr_cpus_avail: 1,
            cmdline: Vec::new(),
            clock_res_ns: None,
            clock_data: None,
            ksw_counters: None,
        }
    }
}

impl WriterConfig {
    /// A configuration describing the same events, tracing data and host
    /// as `file`, the rest default: for writing records derived from it.
    pub fn from_recording(file: &crate::read::PerfFile) -> WriterConfig {
        let features = file.features();
        WriterConfig {
            events: file
                .attrs()
                .iter()
                .map(|a| EventSpec {
                    attr: a.attr.clone(),
                    name: a.name.clone().unwrap_or_default(),
                    ids: a.ids.clone(),
                })
                .collect(),
            tracing_data: file
                .feature_section(feature::TRACING_DATA)
                .map(<[u8]>::to_vec)
                .unwrap_or_default(),
            hostname: features.hostname.clone().unwrap_or_default(),
            os_release: features.os_release.clone().unwrap_or_default(),
            ..WriterConfig::default()
        }
    }
}

/// Size of the record whose `perf_event_header` starts at `at` in `bytes`,
/// checked to be a whole record inside `bytes`.
fn record_size_at(bytes: &[u8], at: usize) -> io::Result<usize> {
    let size = bytes
        .get(at + 6..at + 8)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        .ok_or_else(|| {
            bad(format!(
                "record at byte {at} shorter than its 8-byte header"
            ))
        })?;
    if size < 8 || at + size > bytes.len() {
        return Err(bad(format!(
            "record at byte {at} says {size} bytes, {} left",
            bytes.len() - at
        )));
    }
    Ok(size)
}
fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

/// Writes a perf.data file to `W` (wrap a `File` in a `BufWriter`).
#[derive(Debug)]
pub struct Writer<W: Write + Seek> {
    out: W,
    config: WriterConfig,
    attrs_offset: u64,
    data_offset: u64,
    pos: u64,
    ids: HashMap<u64, usize>,
}

/// Check what perf checks when it opens a file (`evlist__valid_sample_type`,
/// `evlist__valid_sample_id_all`, `perf_attr_check`,
/// `evlist__prepare_tracepoint_events`): perf 6.1 refuses a file whose
/// tracepoint events have no format in the tracing data ("incompatible
/// file format").
fn check_events(events: &[EventSpec], tracing_data: &[u8]) -> io::Result<()> {
    let Some(first) = events.first() else {
        return Err(bad("a perf.data file needs at least one event"));
    };
    let td = if tracing_data.is_empty() {
        None
    } else {
        Some(
            TracingData::parse(tracing_data, 0)
                .map_err(|e| bad(format!("tracing data does not parse: {e}")))?,
        )
    };
    for e in events {
        let a = &e.attr;
        if a.type_ == event_type::TRACEPOINT
            && td
                .as_ref()
                .and_then(|td| td.event_by_id(a.config))
                .is_none()
        {
            return Err(bad(format!(
                "{}: no format for tracepoint id {} in the tracing data (perf would refuse the file)",
                e.name, a.config
            )));
        }
        if a.flags & attr_flag::RESERVED != 0 {
            return Err(bad(format!("{}: reserved attr flag bits set", e.name)));
        }
        if a.config3 != 0 {
            return Err(bad(format!(
                "{}: config3 does not fit the 128-byte attr perf 6.1 reads",
                e.name
            )));
        }
        if a.sample_id_all() != first.attr.sample_id_all() {
            return Err(bad("all events must agree on sample_id_all"));
        }
        if events.len() > 1 {
            if a.sample_id_pos().is_none() {
                return Err(bad(format!(
                    "{}: with several events, sample_type needs ID or IDENTIFIER",
                    e.name
                )));
            }
            if a.sample_id_pos() != first.attr.sample_id_pos()
                || a.trailer_id_pos() != first.attr.trailer_id_pos()
            {
                return Err(bad(format!(
                    "{}: the id is not where the first event has it",
                    e.name
                )));
            }
        }
    }
    Ok(())
}

/// `do_write_string`: `u32 len` (strlen + 1 rounded up to 64), bytes, NULs.
fn put_string(out: &mut Vec<u8>, s: &str) {
    let s = s.split('\0').next().unwrap_or("");
    let len = (s.len() + 1).next_multiple_of(64);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    out.resize(out.len() + (len - s.len()), 0);
}

/// Append `s` (up to any NUL), a NUL, and zeros up to a multiple of 8.
fn put_padded_str(p: &mut Vec<u8>, s: &str) {
    let s = s.split('\0').next().unwrap_or("");
    p.extend_from_slice(s.as_bytes());
    p.push(0);
    p.resize(p.len().next_multiple_of(8), 0);
}

/// Append a `sample_id` trailer for `attr` (nothing without
/// `sample_id_all`); absent fields are written as 0.
pub fn encode_sample_id(attr: &PerfEventAttr, sid: &SampleId, out: &mut Vec<u8>) {
    if !attr.sample_id_all() {
        return;
    }
    let st = attr.sample_type;
    let mut put = |v: u64| out.extend_from_slice(&v.to_le_bytes());
    if st & sample_type::TID != 0 {
        put(u64::from(sid.pid.unwrap_or(0) as u32) | u64::from(sid.tid.unwrap_or(0) as u32) << 32);
    }
    if st & sample_type::TIME != 0 {
        put(sid.time.unwrap_or(0));
    }
    if st & sample_type::ID != 0 {
        put(sid.id.unwrap_or(0));
    }
    if st & sample_type::STREAM_ID != 0 {
        put(sid.stream_id.unwrap_or(0));
    }
    if st & sample_type::CPU != 0 {
        put(u64::from(sid.cpu.unwrap_or(0)));
    }
    if st & sample_type::IDENTIFIER != 0 {
        put(sid.id.unwrap_or(0));
    }
}

fn finish_record(kind: u32, misc: u16, payload: Vec<u8>) -> io::Result<Vec<u8>> {
    let size = u16::try_from(payload.len() + 8).map_err(|_| {
        bad(format!(
            "record of {} bytes exceeds 65535",
            payload.len() + 8
        ))
    })?;
    let mut r = Vec::with_capacity(payload.len() + 8);
    r.extend_from_slice(&kind.to_le_bytes());
    r.extend_from_slice(&misc.to_le_bytes());
    r.extend_from_slice(&size.to_le_bytes());
    r.extend_from_slice(&payload);
    Ok(r)
}

/// Encode `sample` as a `PERF_RECORD_SAMPLE` laid out for `attr`'s
/// `sample_type` (absent fields written as 0; `ID` and `IDENTIFIER` both
/// from `sample.id`; the raw data padded with zeros so the record stays
/// 8-byte aligned, as the kernel does). Fails for sample_type bits this
/// crate does not support and for records over 64 KiB.
pub fn encode_sample(attr: &PerfEventAttr, sample: &Sample<'_>) -> io::Result<Vec<u8>> {
    let st = attr.sample_type;
    let unsupported = st & !sample_type::SUPPORTED;
    if unsupported != 0 {
        let bit = unsupported & unsupported.wrapping_neg();
        return Err(bad(format!(
            "sample_type bit {} is not supported",
            sample_type::name(bit)
        )));
    }
    let mut p = Vec::new();
    let put = |p: &mut Vec<u8>, v: u64| p.extend_from_slice(&v.to_le_bytes());
    if st & sample_type::IDENTIFIER != 0 {
        put(&mut p, sample.id.unwrap_or(0));
    }
    if st & sample_type::IP != 0 {
        put(&mut p, sample.ip.unwrap_or(0));
    }
    if st & sample_type::TID != 0 {
        p.extend_from_slice(&sample.pid.unwrap_or(0).to_le_bytes());
        p.extend_from_slice(&sample.tid.unwrap_or(0).to_le_bytes());
    }
    if st & sample_type::TIME != 0 {
        put(&mut p, sample.time.unwrap_or(0));
    }
    if st & sample_type::ADDR != 0 {
        put(&mut p, sample.addr.unwrap_or(0));
    }
    if st & sample_type::ID != 0 {
        put(&mut p, sample.id.unwrap_or(0));
    }
    if st & sample_type::STREAM_ID != 0 {
        put(&mut p, sample.stream_id.unwrap_or(0));
    }
    if st & sample_type::CPU != 0 {
        put(&mut p, u64::from(sample.cpu.unwrap_or(0)));
    }
    if st & sample_type::PERIOD != 0 {
        put(&mut p, sample.period.unwrap_or(0));
    }
    if st & sample_type::CALLCHAIN != 0 {
        put(&mut p, sample.callchain.len() as u64);
        for &ip in &sample.callchain {
            put(&mut p, ip);
        }
    }
    if st & sample_type::RAW != 0 {
        // u32 size + data, padded so that size + 4 is a multiple of 8; the
        // padding is counted in size (kernel: perf_prepare_sample).
        let padded = (sample.raw.len() + 4).next_multiple_of(8) - 4;
        let n = u32::try_from(padded).map_err(|_| bad("raw data too large"))?;
        p.extend_from_slice(&n.to_le_bytes());
        p.extend_from_slice(sample.raw);
        p.resize(p.len() + (padded - sample.raw.len()), 0);
    }
    finish_record(record_type::SAMPLE, sample.misc, p)
}

impl<W: Write + Seek> Writer<W> {
    /// Start a file: checks the events as perf would, writes a provisional
    /// header, the ids and the attributes. `out` should be empty and at
    /// position 0.
    pub fn create(mut out: W, config: WriterConfig) -> io::Result<Writer<W>> {
        check_events(&config.events, &config.tracing_data)?;
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&[0u8; FILE_HEADER_SIZE as usize])?;
        let mut pos = FILE_HEADER_SIZE;
        let mut id_sections = Vec::with_capacity(config.events.len());
        for e in &config.events {
            let mut b = Vec::with_capacity(e.ids.len() * 8);
            for id in &e.ids {
                b.extend_from_slice(&id.to_le_bytes());
            }
            out.write_all(&b)?;
            id_sections.push((pos, b.len() as u64));
            pos += b.len() as u64;
        }
        let attrs_offset = pos;
        for (e, (off, size)) in config.events.iter().zip(&id_sections) {
            out.write_all(&e.attr.to_bytes())?;
            out.write_all(&off.to_le_bytes())?;
            out.write_all(&size.to_le_bytes())?;
            pos += u64::from(ATTR_SIZE_VER7) + 16;
        }
        let mut ids = HashMap::new();
        for (i, e) in config.events.iter().enumerate() {
            for &id in &e.ids {
                ids.entry(id).or_insert(i);
            }
        }
        let mut w = Writer {
            out,
            config,
            attrs_offset,
            data_offset: pos,
            pos,
            ids,
        };
        w.write_header(0, &[])?;
        w.out.seek(SeekFrom::Start(w.pos))?;
        Ok(w)
    }

    fn write_header(&mut self, data_size: u64, features: &[u32]) -> io::Result<()> {
        let mut h = Vec::with_capacity(FILE_HEADER_SIZE as usize);
        let attr_entry = u64::from(ATTR_SIZE_VER7) + 16;
        for v in [
            PERF_MAGIC,
            FILE_HEADER_SIZE,
            attr_entry,
            self.attrs_offset,
            attr_entry * self.config.events.len() as u64,
            self.data_offset,
            data_size,
            0,
            0,
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        let mut bits = [0u64; 4];
        for &f in features {
            if let Some(w) = bits.get_mut((f / 64) as usize) {
                *w |= 1 << (f % 64);
            }
        }
        for w in bits {
            h.extend_from_slice(&w.to_le_bytes());
        }
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&h)
    }

    /// The events' attributes, by index.
    pub fn events(&self) -> &[EventSpec] {
        &self.config.events
    }

    /// The event that owns `id` (the first event for unknown ids, as perf
    /// does for id 0).
    fn attr_for_id(&self, id: u64) -> Option<&PerfEventAttr> {
        let i = self.ids.get(&id).copied().unwrap_or(0);
        self.config
            .events
            .get(i)
            .or_else(|| self.config.events.first())
            .map(|e| &e.attr)
    }

    /// Append a record exactly as read from a perf mmap ring buffer:
    /// `perf_event_header` + payload, `header.size == record.len()`.
    pub fn write_raw_record(&mut self, record: &[u8]) -> io::Result<()> {
        let size = record_size_at(record, 0)?;
        if size != record.len() {
            return Err(bad(format!(
                "record header says {size} bytes, {} given",
                record.len()
            )));
        }
        self.write_checked(record)
    }

    /// Append a run of whole records exactly as read from a perf mmap ring
    /// buffer, in one write: every header's size must land on the next
    /// header and the last record must end with `records`.
    pub fn write_raw_records(&mut self, records: &[u8]) -> io::Result<()> {
        let mut at = 0usize;
        while at < records.len() {
            at += record_size_at(records, at)?;
        }
        self.write_checked(records)
    }

    fn write_checked(&mut self, records: &[u8]) -> io::Result<()> {
        self.out.write_all(records)?;
        self.pos += records.len() as u64;
        Ok(())
    }

    /// Append a `PERF_RECORD_LOST` for event id `id`, with a `sample_id`
    /// trailer laid out for that event (when it has `sample_id_all`).
    pub fn write_lost(&mut self, id: u64, lost: u64, sample_id: &SampleId) -> io::Result<()> {
        let mut p = Vec::with_capacity(64);
        p.extend_from_slice(&id.to_le_bytes());
        p.extend_from_slice(&lost.to_le_bytes());
        let sid = SampleId {
            id: sample_id.id.or(Some(id)),
            ..*sample_id
        };
        self.put_trailer(&sid, &mut p);
        let r = finish_record(record_type::LOST, 0, p)?;
        self.write_raw_record(&r)
    }

    /// Append a `PERF_RECORD_COMM` (so perf shows the name of
    /// `comm.pid`/`comm.tid`), with a trailer laid out for the event owning
    /// `comm.sample_id.id`.
    pub fn write_comm(&mut self, comm: &Comm<'_>) -> io::Result<()> {
        let mut p = Vec::with_capacity(64);
        p.extend_from_slice(&comm.pid.to_le_bytes());
        p.extend_from_slice(&comm.tid.to_le_bytes());
        put_padded_str(&mut p, &comm.comm);
        self.put_trailer(&comm.sample_id, &mut p);
        let misc = if comm.exec { misc::COMM_EXEC } else { 0 };
        let r = finish_record(record_type::COMM, misc, p)?;
        self.write_raw_record(&r)
    }

    /// Append a `PERF_RECORD_MMAP`. perf wants one for the kernel
    /// (`pid` -1, `filename` `[kernel.kallsyms]_text`, `addr` and `pgoff`
    /// the address of `_text`, `cpumode` kernel) before it resolves kernel
    /// addresses, and one per module (`[name]`, `pgoff` 0).
    pub fn write_mmap(&mut self, map: &Mmap<'_>) -> io::Result<()> {
        let mut p = Vec::with_capacity(96);
        p.extend_from_slice(&map.pid.to_le_bytes());
        p.extend_from_slice(&map.tid.to_le_bytes());
        p.extend_from_slice(&map.addr.to_le_bytes());
        p.extend_from_slice(&map.len.to_le_bytes());
        p.extend_from_slice(&map.pgoff.to_le_bytes());
        put_padded_str(&mut p, &map.filename);
        self.put_trailer(&map.sample_id, &mut p);
        let r = finish_record(record_type::MMAP, map.cpumode & misc::CPUMODE_MASK, p)?;
        self.write_raw_record(&r)
    }

    fn put_trailer(&self, sample_id: &SampleId, p: &mut Vec<u8>) {
        if let Some(attr) = self.attr_for_id(sample_id.id.unwrap_or(0)) {
            encode_sample_id(attr, sample_id, p);
        }
    }

    /// Append `sample`, encoded for event `sample.attr_index`
    /// ([`encode_sample`]).
    pub fn write_sample(&mut self, sample: &Sample<'_>) -> io::Result<()> {
        let e = self.config.events.get(sample.attr_index).ok_or_else(|| {
            bad(format!(
                "sample of event {} but the file has {} events",
                sample.attr_index,
                self.config.events.len()
            ))
        })?;
        let r = encode_sample(&e.attr, sample)?;
        self.write_raw_record(&r)
    }

    /// Append a `PERF_RECORD_FINISHED_ROUND` (records before it are
    /// time-ordered with respect to records after it).
    pub fn write_finished_round(&mut self) -> io::Result<()> {
        let r = finish_record(record_type::FINISHED_ROUND, 0, Vec::new())?;
        self.write_raw_record(&r)
    }

    /// Sets the [`feature::KSW_COUNTERS`] text written by [`Writer::finish`].
    pub fn set_ksw_counters(&mut self, text: String) {
        self.config.ksw_counters = Some(text);
    }

    /// Bytes of records written so far.
    pub fn data_size(&self) -> u64 {
        self.pos - self.data_offset
    }

    fn feature_payloads(&self) -> Vec<(u32, Vec<u8>)> {
        let c = &self.config;
        let mut f: Vec<(u32, Vec<u8>)> = Vec::new();
        if !c.tracing_data.is_empty() {
            f.push((feature::TRACING_DATA, c.tracing_data.clone()));
        }
        let string = |s: &str| {
            let mut b = Vec::new();
            put_string(&mut b, s);
            b
        };
        f.push((feature::HOSTNAME, string(&c.hostname)));
        f.push((feature::OSRELEASE, string(&c.os_release)));
        f.push((feature::VERSION, string(&c.version)));
        f.push((feature::ARCH, string(&c.arch)));
        let mut b = Vec::new();
        b.extend_from_slice(&c.nr_cpus_avail.to_le_bytes());
        b.extend_from_slice(&c.nr_cpus_online.to_le_bytes());
        f.push((feature::NRCPUS, b));
        let mut b = Vec::new();
        b.extend_from_slice(&(c.cmdline.len() as u32).to_le_bytes());
        for a in &c.cmdline {
            put_string(&mut b, a);
        }
        f.push((feature::CMDLINE, b));
        let mut b = Vec::new();
        b.extend_from_slice(&(c.events.len() as u32).to_le_bytes());
        b.extend_from_slice(&ATTR_SIZE_VER7.to_le_bytes());
        for e in &c.events {
            b.extend_from_slice(&e.attr.to_bytes());
            b.extend_from_slice(&(e.ids.len() as u32).to_le_bytes());
            put_string(&mut b, &e.name);
            for id in &e.ids {
                b.extend_from_slice(&id.to_le_bytes());
            }
        }
        f.push((feature::EVENT_DESC, b));
        if let Some(res) = c.clock_res_ns {
            f.push((feature::CLOCKID, res.to_le_bytes().to_vec()));
        }
        if let Some(cd) = c.clock_data {
            let mut b = Vec::new();
            b.extend_from_slice(&1u32.to_le_bytes());
            b.extend_from_slice(&cd.clockid.to_le_bytes());
            b.extend_from_slice(&cd.wall_clock_ns.to_le_bytes());
            b.extend_from_slice(&cd.clockid_time_ns.to_le_bytes());
            f.push((feature::CLOCK_DATA, b));
        }
        if let Some(text) = &c.ksw_counters {
            f.push((feature::KSW_COUNTERS, text.as_bytes().to_vec()));
        }
        f
    }

    /// Write the feature sections after the records, rewrite the header
    /// with the data size and feature bits, flush, and hand back `W`.
    pub fn finish(mut self) -> io::Result<W> {
        let data_size = self.data_size();
        let feats = self.feature_payloads();
        let index_at = self.pos;
        let mut at = index_at + 16 * feats.len() as u64;
        let mut index = Vec::with_capacity(16 * feats.len());
        for (_, payload) in &feats {
            index.extend_from_slice(&at.to_le_bytes());
            index.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            at += payload.len() as u64;
        }
        self.out.seek(SeekFrom::Start(index_at))?;
        self.out.write_all(&index)?;
        for (_, payload) in &feats {
            self.out.write_all(payload)?;
        }
        let bits: Vec<u32> = feats.iter().map(|(b, _)| *b).collect();
        self.write_header(data_size, &bits)?;
        self.out.seek(SeekFrom::Start(at))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::{PerfFile, Record};
    use crate::tracing_data::{build_from_formats, EventFormatText};
    use std::io::Cursor;

    const FMT: &str = "name: e\nID: 5\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:u8 x;\toffset:2;\tsize:1;\tsigned:0;\n\nprint fmt: \"x=%u\", REC->x\n";

    fn config() -> WriterConfig {
        WriterConfig {
            events: vec![EventSpec {
                attr: PerfEventAttr::tracepoint(5, false),
                name: "s:e".into(),
                ids: vec![9],
            }],
            tracing_data: build_from_formats(
                "",
                "",
                &[EventFormatText {
                    system: "s".into(),
                    text: FMT.into(),
                }],
                None,
            ),
            ..WriterConfig::default()
        }
    }

    fn sample() -> Sample<'static> {
        Sample {
            id: Some(9),
            pid: Some(3),
            tid: Some(4),
            time: Some(77),
            cpu: Some(1),
            raw: &[5, 0, 42, 0, 0],
            ..Sample::default()
        }
    }

    #[test]
    fn raw_is_padded_like_the_kernel() {
        let attr = PerfEventAttr::tracepoint(5, false);
        let r = encode_sample(&attr, &sample()).unwrap();
        assert_eq!(r.len() % 8, 0);
        // id, tid, time, cpu: 32 bytes after the header, then the raw size.
        assert_eq!(u32::from_le_bytes(r[40..44].try_into().unwrap()), 12);
        assert_eq!(&r[44..49], &[5, 0, 42, 0, 0]);
        assert_eq!(u16::from_le_bytes([r[6], r[7]]) as usize, r.len());
    }

    #[test]
    fn strings_pad_to_64() {
        let mut b = Vec::new();
        put_string(&mut b, "abc");
        assert_eq!(b.len(), 68);
        assert_eq!(u32::from_le_bytes(b[..4].try_into().unwrap()), 64);
        let mut b = Vec::new();
        put_string(&mut b, &"x".repeat(64));
        assert_eq!(u32::from_le_bytes(b[..4].try_into().unwrap()), 128);
    }

    #[test]
    fn unfinished_file_is_readable() {
        let mut out = Cursor::new(Vec::new());
        let mut w = Writer::create(&mut out, config()).unwrap();
        w.write_sample(&sample()).unwrap();
        assert_eq!(w.data_size(), 56);
        drop(w);
        let f = PerfFile::from_bytes(out.into_inner()).unwrap();
        assert!(f.tracing_data().is_none());
        let s: Vec<_> = f.samples().map(Result::unwrap).collect();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].pid, s[0].time, s[0].cpu),
            (Some(3), Some(77), Some(1))
        );
    }

    #[test]
    fn finished_file_round_trips() {
        let mut out = Cursor::new(Vec::new());
        let mut w = Writer::create(&mut out, config()).unwrap();
        w.write_sample(&sample()).unwrap();
        w.write_finished_round().unwrap();
        w.finish().unwrap();
        let f = PerfFile::from_bytes(out.into_inner()).unwrap();
        let recs: Vec<_> = f.records().map(Result::unwrap).collect();
        assert_eq!(recs.len(), 2);
        let Record::Sample(s) = &recs[0] else {
            panic!("{recs:?}")
        };
        assert_eq!(s.u64("x").unwrap(), 42);
        assert_eq!(s.event_name().as_deref(), Some("s:e"));
        assert_eq!(recs[1], Record::FinishedRound);
        assert_eq!(
            f.features().version,
            Some(format!("ksw {}", env!("CARGO_PKG_VERSION")))
        );
        assert!(f.features().clock_data.is_none());
        assert!(!f.has_feature(feature::CLOCKID));
    }

    #[test]
    fn tracepoints_need_their_format() {
        let mut c = config();
        c.events[0].attr.config = 6;
        let e = Writer::create(Cursor::new(Vec::new()), c).unwrap_err();
        assert!(
            e.to_string().contains("no format for tracepoint id 6"),
            "{e}"
        );
        let mut c = config();
        c.tracing_data.clear();
        assert!(Writer::create(Cursor::new(Vec::new()), c).is_err());
        let mut c = config();
        c.tracing_data.truncate(20);
        let e = Writer::create(Cursor::new(Vec::new()), c).unwrap_err();
        assert!(e.to_string().contains("does not parse"), "{e}");
    }
}
