// SPDX-License-Identifier: GPL-2.0
//! `struct perf_event_attr` as a plain Rust struct, read from and written to
//! its on-file form (`include/uapi/linux/perf_event.h`).
//!
//! On file the struct is as long as its `size` field says (64 bytes for
//! `PERF_ATTR_SIZE_VER0` up to 136 for `VER8`); fields past the end are
//! zero. Perf 6.1 writes 128 bytes (`VER7`, up to `sig_data`), and so does
//! [`PerfEventAttr::to_bytes`].

use crate::abi::{attr_flag, event_type, sample_type, ATTR_SIZE_VER0, ATTR_SIZE_VER7};

/// The fields of `perf_event_attr`, by name. Unions are given their first
/// name (`sample_period` is `sample_freq` when [`attr_flag::FREQ`] is set,
/// `wakeup_events` is `wakeup_watermark` with [`attr_flag::WATERMARK`],
/// `config1`/`config2` are also `bp_addr`/`bp_len`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PerfEventAttr {
    /// `PERF_TYPE_*` ([`event_type`]).
    pub type_: u32,
    /// Size of the struct on file (0 means 64).
    pub size: u32,
    /// Event selector; the tracepoint id for tracepoints.
    pub config: u64,
    /// Sample every this many events (or frequency with `FREQ`).
    pub sample_period: u64,
    /// `PERF_SAMPLE_*` bits ([`sample_type`]).
    pub sample_type: u64,
    /// `PERF_FORMAT_*` bits.
    pub read_format: u64,
    /// The bitfield word: [`attr_flag`] bits.
    pub flags: u64,
    /// Wake up the reader every this many events (or bytes with `WATERMARK`).
    pub wakeup_events: u32,
    /// Breakpoint type.
    pub bp_type: u32,
    /// Extension of `config` (`bp_addr`, `kprobe_func`, `uprobe_path`).
    pub config1: u64,
    /// Extension of `config1` (`bp_len`, `kprobe_addr`, `probe_offset`).
    pub config2: u64,
    /// `PERF_SAMPLE_BRANCH_*` bits.
    pub branch_sample_type: u64,
    /// User registers to sample.
    pub sample_regs_user: u64,
    /// User stack bytes to sample.
    pub sample_stack_user: u32,
    /// Clock of sample times when [`attr_flag::USE_CLOCKID`] is set.
    pub clockid: i32,
    /// Registers to sample at interrupt.
    pub sample_regs_intr: u64,
    /// AUX watermark.
    pub aux_watermark: u32,
    /// Maximum callchain depth.
    pub sample_max_stack: u16,
    /// AUX sample size.
    pub aux_sample_size: u32,
    /// AUX pause/resume bits.
    pub aux_action: u32,
    /// Data for SIGTRAP.
    pub sig_data: u64,
    /// Extension of `config2` (only in 136-byte attrs).
    pub config3: u64,
}

impl PerfEventAttr {
    /// The attribute ksw uses for one tracepoint: sample every hit with
    /// `IDENTIFIER | TID | TIME | CPU | RAW` (plus `CALLCHAIN` if asked),
    /// `sample_id_all`, `CLOCK_MONOTONIC` timestamps, disabled until enabled,
    /// wake-up on every event.
    pub fn tracepoint(id: u64, callchain: bool) -> PerfEventAttr {
        let mut st = sample_type::IDENTIFIER
            | sample_type::TID
            | sample_type::TIME
            | sample_type::CPU
            | sample_type::RAW;
        if callchain {
            st |= sample_type::CALLCHAIN;
        }
        PerfEventAttr {
            type_: event_type::TRACEPOINT,
            size: ATTR_SIZE_VER7,
            config: id,
            sample_period: 1,
            sample_type: st,
            flags: attr_flag::DISABLED | attr_flag::SAMPLE_ID_ALL | attr_flag::USE_CLOCKID,
            wakeup_events: 1,
            clockid: crate::abi::CLOCK_MONOTONIC,
            ..PerfEventAttr::default()
        }
    }

    /// True if all the [`attr_flag`] bits in `flag` are set.
    pub fn has(&self, flag: u64) -> bool {
        self.flags & flag == flag
    }

    /// Set or clear [`attr_flag`] bits.
    pub fn set(&mut self, flag: u64, on: bool) {
        if on {
            self.flags |= flag;
        } else {
            self.flags &= !flag;
        }
    }

    /// Whether non-sample records carry a `sample_id` trailer.
    pub fn sample_id_all(&self) -> bool {
        self.has(attr_flag::SAMPLE_ID_ALL)
    }

    /// The clock of sample times, if the attribute chose one.
    pub fn clock(&self) -> Option<i32> {
        self.has(attr_flag::USE_CLOCKID).then_some(self.clockid)
    }

    /// Parse an on-file attribute. `bytes` must hold at least 64 bytes;
    /// fields beyond `bytes.len()` are zero. Little-endian only.
    pub fn parse(bytes: &[u8]) -> Option<PerfEventAttr> {
        if bytes.len() < ATTR_SIZE_VER0 as usize {
            return None;
        }
        let u64_at = |o: usize| -> u64 {
            bytes
                .get(o..o + 8)
                .and_then(|s| s.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0)
        };
        let u32_at = |o: usize| -> u32 {
            bytes
                .get(o..o + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_le_bytes)
                .unwrap_or(0)
        };
        let u16_at = |o: usize| -> u16 {
            bytes
                .get(o..o + 2)
                .and_then(|s| s.try_into().ok())
                .map(u16::from_le_bytes)
                .unwrap_or(0)
        };
        Some(PerfEventAttr {
            type_: u32_at(0),
            size: u32_at(4),
            config: u64_at(8),
            sample_period: u64_at(16),
            sample_type: u64_at(24),
            read_format: u64_at(32),
            flags: u64_at(40),
            wakeup_events: u32_at(48),
            bp_type: u32_at(52),
            config1: u64_at(56),
            config2: u64_at(64),
            branch_sample_type: u64_at(72),
            sample_regs_user: u64_at(80),
            sample_stack_user: u32_at(88),
            clockid: u32_at(92) as i32,
            sample_regs_intr: u64_at(96),
            aux_watermark: u32_at(104),
            sample_max_stack: u16_at(108),
            aux_sample_size: u32_at(112),
            aux_action: u32_at(116),
            sig_data: u64_at(120),
            config3: u64_at(128),
        })
    }

    /// The 128-byte on-file form perf 6.1 writes (`size` is set to 128,
    /// `config3` is not written).
    pub fn to_bytes(&self) -> [u8; ATTR_SIZE_VER7 as usize] {
        let mut b = [0u8; ATTR_SIZE_VER7 as usize];
        let mut put = |o: usize, v: &[u8]| {
            if let Some(d) = b.get_mut(o..o + v.len()) {
                d.copy_from_slice(v);
            }
        };
        put(0, &self.type_.to_le_bytes());
        put(4, &ATTR_SIZE_VER7.to_le_bytes());
        put(8, &self.config.to_le_bytes());
        put(16, &self.sample_period.to_le_bytes());
        put(24, &self.sample_type.to_le_bytes());
        put(32, &self.read_format.to_le_bytes());
        put(40, &self.flags.to_le_bytes());
        put(48, &self.wakeup_events.to_le_bytes());
        put(52, &self.bp_type.to_le_bytes());
        put(56, &self.config1.to_le_bytes());
        put(64, &self.config2.to_le_bytes());
        put(72, &self.branch_sample_type.to_le_bytes());
        put(80, &self.sample_regs_user.to_le_bytes());
        put(88, &self.sample_stack_user.to_le_bytes());
        put(92, &self.clockid.to_le_bytes());
        put(96, &self.sample_regs_intr.to_le_bytes());
        put(104, &self.aux_watermark.to_le_bytes());
        put(108, &self.sample_max_stack.to_le_bytes());
        put(112, &self.aux_sample_size.to_le_bytes());
        put(116, &self.aux_action.to_le_bytes());
        put(120, &self.sig_data.to_le_bytes());
        b
    }

    /// Number of `u64`s of a `sample_id` trailer with this sample_type.
    pub(crate) fn sample_id_len(&self) -> usize {
        let st = self.sample_type;
        [
            sample_type::TID,
            sample_type::TIME,
            sample_type::ID,
            sample_type::STREAM_ID,
            sample_type::CPU,
            sample_type::IDENTIFIER,
        ]
        .iter()
        .filter(|&&b| st & b != 0)
        .count()
    }

    /// Index (in `u64`s) of the id in a sample record, as perf's
    /// `__evsel__calc_id_pos`; `None` if samples carry no id.
    pub(crate) fn sample_id_pos(&self) -> Option<usize> {
        let st = self.sample_type;
        if st & sample_type::IDENTIFIER != 0 {
            return Some(0);
        }
        if st & sample_type::ID == 0 {
            return None;
        }
        let before = [
            sample_type::IP,
            sample_type::TID,
            sample_type::TIME,
            sample_type::ADDR,
        ];
        Some(before.iter().filter(|&&b| st & b != 0).count())
    }

    /// Index (in `u64`s, counted back from the end, 1 = last) of the id in a
    /// `sample_id` trailer, as perf's `__evsel__calc_is_pos`.
    pub(crate) fn trailer_id_pos(&self) -> Option<usize> {
        let st = self.sample_type;
        if st & sample_type::IDENTIFIER != 0 {
            return Some(1);
        }
        if st & sample_type::ID == 0 {
            return None;
        }
        let mut idx = 1;
        if st & sample_type::CPU != 0 {
            idx += 1;
        }
        if st & sample_type::STREAM_ID != 0 {
            idx += 1;
        }
        Some(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut a = PerfEventAttr::tracepoint(474, true);
        a.read_format = 0x14;
        a.set(attr_flag::INHERIT, true);
        a.sig_data = 77;
        let b = a.to_bytes();
        let back = PerfEventAttr::parse(&b).unwrap();
        assert_eq!(back, a);
        assert!(back.sample_id_all());
        assert_eq!(back.clock(), Some(1));
        a.set(attr_flag::USE_CLOCKID, false);
        assert_eq!(a.clock(), None);
        assert!(PerfEventAttr::parse(&b[..63]).is_none());
        let short = PerfEventAttr::parse(&b[..64]).unwrap();
        assert_eq!(short.clockid, 0);
        assert_eq!(short.config, 474);
    }

    #[test]
    fn id_positions() {
        let mut a = PerfEventAttr {
            sample_type: sample_type::IP | sample_type::TID | sample_type::TIME | sample_type::ID,
            ..PerfEventAttr::default()
        };
        assert_eq!(a.sample_id_pos(), Some(3));
        a.sample_type |= sample_type::CPU | sample_type::STREAM_ID;
        assert_eq!(a.trailer_id_pos(), Some(3));
        assert_eq!(a.sample_id_len(), 5);
        a.sample_type |= sample_type::IDENTIFIER;
        assert_eq!(a.sample_id_pos(), Some(0));
        assert_eq!(a.trailer_id_pos(), Some(1));
        a.sample_type = sample_type::RAW;
        assert_eq!(a.sample_id_pos(), None);
        assert_eq!(a.trailer_id_pos(), None);
    }
}
