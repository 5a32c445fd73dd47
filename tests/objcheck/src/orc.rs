//! The kernel's ORC unwind table (`.orc_unwind_ip`, `.orc_unwind`) of a
//! linked vmlinux: what objtool says the stack looks like at every
//! instruction. Layout and constants from Linux 6.12
//! `arch/x86/include/asm/orc_types.h`; lookup as `__orc_find` in
//! `arch/x86/kernel/unwind_orc.c`.
//!
//! ```c
//! struct orc_entry {
//!     s16 sp_offset;          // CFA = sp_reg + sp_offset
//!     s16 bp_offset;          // previous %rbp saved at bp_reg + bp_offset
//!     unsigned sp_reg:4;      // little-endian bitfields: byte 4 bits 0-3
//!     unsigned bp_reg:4;      //                          byte 4 bits 4-7
//!     unsigned type:3;        //                          byte 5 bits 0-2
//!     unsigned signal:1;      //                          byte 5 bit 3
//! } __packed;                 // 6 bytes
//! ```
//!
//! `.orc_unwind_ip` is an array of `s32`, entry `i` describing the code from
//! `&ip[i] + ip[i]` up to the next entry's address. In a linked vmlinux both
//! sections are final (no relocations) and sorted at build time
//! (`scripts/sorttable.c`); [`OrcTable::new`] sorts anyway, the same way.

use object::{Object, ObjectSection};
use std::fmt;

pub const REG_UNDEFINED: u8 = 0;
pub const REG_PREV_SP: u8 = 1;
pub const REG_DX: u8 = 2;
pub const REG_DI: u8 = 3;
pub const REG_BP: u8 = 4;
pub const REG_SP: u8 = 5;
pub const REG_R10: u8 = 6;
pub const REG_R13: u8 = 7;
pub const REG_BP_INDIRECT: u8 = 8;
pub const REG_SP_INDIRECT: u8 = 9;

pub const TYPE_UNDEFINED: u8 = 0;
pub const TYPE_END_OF_STACK: u8 = 1;
pub const TYPE_CALL: u8 = 2;
pub const TYPE_REGS: u8 = 3;
pub const TYPE_REGS_PARTIAL: u8 = 4;

/// Size of one `struct orc_entry`.
pub const ENTRY_SIZE: usize = 6;

/// One `struct orc_entry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrcEntry {
    pub sp_offset: i16,
    pub bp_offset: i16,
    pub sp_reg: u8,
    pub bp_reg: u8,
    pub kind: u8,
    pub signal: bool,
}

impl OrcEntry {
    /// Decodes the 6 bytes of one entry (little endian, as on x86).
    pub fn parse(b: [u8; ENTRY_SIZE]) -> OrcEntry {
        OrcEntry {
            sp_offset: i16::from_le_bytes([b[0], b[1]]),
            bp_offset: i16::from_le_bytes([b[2], b[3]]),
            sp_reg: b[4] & 0xf,
            bp_reg: b[4] >> 4,
            kind: b[5] & 7,
            signal: b[5] & 8 != 0,
        }
    }

    /// The entry's bytes (for tests).
    pub fn to_bytes(self) -> [u8; ENTRY_SIZE] {
        let sp = self.sp_offset.to_le_bytes();
        let bp = self.bp_offset.to_le_bytes();
        [
            sp[0],
            sp[1],
            bp[0],
            bp[1],
            (self.sp_reg & 0xf) | (self.bp_reg << 4),
            (self.kind & 7) | (u8::from(self.signal) << 3),
        ]
    }

    pub fn is_call(&self) -> bool {
        self.kind == TYPE_CALL
    }

    /// With `sp_reg` SP: the stack pointer relative to the CFA
    /// (`CFA = sp + sp_offset`, so `sp = CFA - sp_offset`).
    pub fn sp_rel(&self) -> Option<i32> {
        (self.kind == TYPE_CALL && self.sp_reg == REG_SP).then(|| -i32::from(self.sp_offset))
    }

    /// With `sp_reg` BP: the frame pointer relative to the CFA.
    pub fn bp_rel(&self) -> Option<i32> {
        (self.kind == TYPE_CALL && self.sp_reg == REG_BP).then(|| -i32::from(self.sp_offset))
    }
}

fn type_name(t: u8) -> &'static str {
    match t {
        TYPE_UNDEFINED => "(und)",
        TYPE_END_OF_STACK => "end",
        TYPE_CALL => "call",
        TYPE_REGS => "regs",
        TYPE_REGS_PARTIAL => "regs (partial)",
        _ => "?",
    }
}

fn reg_name(r: u8) -> &'static str {
    match r {
        REG_PREV_SP => "prevsp",
        REG_DX => "dx",
        REG_DI => "di",
        REG_BP => "bp",
        REG_SP => "sp",
        REG_R10 => "r10",
        REG_R13 => "r13",
        REG_BP_INDIRECT => "bp(ind)",
        REG_SP_INDIRECT => "sp(ind)",
        _ => "?",
    }
}

struct RegFmt(u8, i16);

impl fmt::Display for RegFmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let RegFmt(reg, off) = *self;
        match reg {
            REG_BP_INDIRECT => write!(f, "(bp{off:+})"),
            REG_SP_INDIRECT => write!(f, "(sp){off:+}"),
            REG_UNDEFINED => f.write_str("(und)"),
            _ => write!(f, "{}{off:+}", reg_name(reg)),
        }
    }
}

/// The format of `objtool --dump=orc` (`orc_print_dump`), so that the
/// parser can be diffed against objtool's own reading of the table.
impl fmt::Display for OrcEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type:{} sp:{} bp:{} signal:{}",
            type_name(self.kind),
            RegFmt(self.sp_reg, self.sp_offset),
            RegFmt(self.bp_reg, self.bp_offset),
            u8::from(self.signal)
        )
    }
}

/// Decodes the two sections as stored: `(ip, entry)` in table order.
/// `ip_addr` is the address of `.orc_unwind_ip`.
pub fn parse_raw(
    ip_addr: u64,
    ip_data: &[u8],
    unwind_data: &[u8],
) -> Result<Vec<(u64, OrcEntry)>, String> {
    if ip_data.len() % 4 != 0 {
        return Err(format!(
            ".orc_unwind_ip size {} is not a multiple of 4",
            ip_data.len()
        ));
    }
    if unwind_data.len() % ENTRY_SIZE != 0 {
        return Err(format!(
            ".orc_unwind size {} is not a multiple of {ENTRY_SIZE}",
            unwind_data.len()
        ));
    }
    let n = ip_data.len() / 4;
    if unwind_data.len() / ENTRY_SIZE != n {
        return Err(format!(
            ".orc_unwind_ip has {n} entries, .orc_unwind {}",
            unwind_data.len() / ENTRY_SIZE
        ));
    }
    let mut out = Vec::with_capacity(n);
    for (i, (ip, e)) in ip_data
        .chunks_exact(4)
        .zip(unwind_data.chunks_exact(ENTRY_SIZE))
        .enumerate()
    {
        let rel = i32::from_le_bytes([ip[0], ip[1], ip[2], ip[3]]);
        let at = ip_addr.wrapping_add(4 * i as u64);
        let entry = OrcEntry::parse([e[0], e[1], e[2], e[3], e[4], e[5]]);
        out.push((at.wrapping_add_signed(i64::from(rel)), entry));
    }
    Ok(out)
}

/// The table, sorted for lookup.
#[derive(Debug)]
pub struct OrcTable {
    ips: Vec<u64>,
    entries: Vec<OrcEntry>,
    /// Whether the table was already in lookup order as stored.
    pub was_sorted: bool,
}

impl OrcTable {
    /// Sorts as the kernel does (`orc_sort_cmp`): by address, and among
    /// entries at one address the "weak" section terminators (type
    /// UNDEFINED) first, so that the lookup, which takes the last entry at
    /// or below an address, prefers real entries.
    pub fn new(raw: Vec<(u64, OrcEntry)>) -> OrcTable {
        let key = |(ip, e): &(u64, OrcEntry)| (*ip, e.kind != TYPE_UNDEFINED);
        let was_sorted = raw.windows(2).all(|w| key(&w[0]) <= key(&w[1]));
        let mut raw = raw;
        if !was_sorted {
            raw.sort_by_key(key);
        }
        let (ips, entries) = raw.into_iter().unzip();
        OrcTable {
            ips,
            entries,
            was_sorted,
        }
    }

    /// Reads the table of a linked ELF file; None if it has none.
    pub fn from_elf(file: &object::File<'_>) -> Result<Option<OrcTable>, String> {
        let (Some(ip), Some(unwind)) = (
            file.section_by_name(".orc_unwind_ip"),
            file.section_by_name(".orc_unwind"),
        ) else {
            return Ok(None);
        };
        let ip_data = ip.data().map_err(|e| format!(".orc_unwind_ip: {e}"))?;
        let unwind_data = unwind.data().map_err(|e| format!(".orc_unwind: {e}"))?;
        let raw = parse_raw(ip.address(), ip_data, unwind_data)?;
        Ok(Some(OrcTable::new(raw)))
    }

    pub fn len(&self) -> usize {
        self.ips.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }

    /// Index of the entry in effect at `ip`: the last one at or below it.
    pub fn index_of(&self, ip: u64) -> Option<usize> {
        self.ips.partition_point(|&a| a <= ip).checked_sub(1)
    }

    /// The entry in effect at `ip`.
    pub fn lookup(&self, ip: u64) -> Option<OrcEntry> {
        self.index_of(ip).map(|i| self.entries[i])
    }

    /// Every entry in effect somewhere in `[start, end)`, with the address
    /// it takes effect at (the first one may start below `start`).
    pub fn covering(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, OrcEntry)> + '_ {
        let first = self.index_of(start).unwrap_or(0);
        let last = self.ips.partition_point(|&a| a < end);
        (first..last.max(first)).map(move |i| (self.ips[i], self.entries[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: u8, sp_reg: u8, sp: i16, bp_reg: u8, bp: i16) -> OrcEntry {
        OrcEntry {
            sp_offset: sp,
            bp_offset: bp,
            sp_reg,
            bp_reg,
            kind,
            signal: false,
        }
    }

    /// A hand-made section pair: `.orc_unwind_ip` at 0x1000 and its
    /// entries, as objtool would write them for
    ///
    /// ```text
    /// 0x2000: nopl 0(%rax,%rax)    sp+8
    /// 0x2005: push %rbp            sp+8
    /// 0x2006: mov %rsp,%rbp        sp+16, bp at prevsp-16
    /// 0x2009: ...                  bp+16
    /// 0x2010: leave; ret           (the ret: sp+8)
    /// 0x2020: section end          terminator (und)
    /// ```
    ///
    /// stored out of order with a terminator at an address that also has a
    /// real entry (the next section's start).
    #[test]
    fn parses_a_hand_made_table() {
        // Byte by byte: sp_offset 8 = 08 00, bp_offset 0 = 00 00,
        // sp_reg SP (5) | bp_reg UNDEFINED (0) << 4 = 0x05, type CALL = 0x02.
        let call8 = [0x08, 0x00, 0x00, 0x00, 0x05, 0x02];
        assert_eq!(
            OrcEntry::parse(call8),
            e(TYPE_CALL, REG_SP, 8, REG_UNDEFINED, 0)
        );
        // sp+16, bp at prevsp-16: 10 00 f0 ff, 0x15 (SP | PREV_SP << 4), 02.
        let call16 = [0x10, 0x00, 0xf0, 0xff, 0x15, 0x02];
        assert_eq!(
            OrcEntry::parse(call16),
            e(TYPE_CALL, REG_SP, 16, REG_PREV_SP, -16)
        );
        // bp+16 (BP = 4), bp at prevsp-16, signal set: 10 00 f0 ff 14 0a.
        let bp16 = [0x10, 0x00, 0xf0, 0xff, 0x14, 0x0a];
        let mut want = e(TYPE_CALL, REG_BP, 16, REG_PREV_SP, -16);
        want.signal = true;
        assert_eq!(OrcEntry::parse(bp16), want);
        // REGS from sp(ind) (9), type 3; bp offset -32768 keeps its sign.
        let regs = [0x00, 0x00, 0x00, 0x80, 0x09, 0x03];
        assert_eq!(
            OrcEntry::parse(regs),
            e(TYPE_REGS, REG_SP_INDIRECT, 0, REG_UNDEFINED, i16::MIN)
        );
        let und = [0u8; 6];
        for b in [call8, call16, bp16, regs, und] {
            assert_eq!(OrcEntry::parse(b).to_bytes(), b);
        }

        // ip entries relative to their own address (0x1000 + 4 * i).
        let ips: [(u64, [u8; 6]); 7] = [
            (0x2006, call16),
            (0x2000, call8),
            (0x2009, bp16),
            (0x2011, call8),
            (0x2020, und),   // terminator of this section
            (0x2020, call8), // next section's first entry, same address
            (0x2010, bp16),
        ];
        let mut ip_data = Vec::new();
        let mut unwind = Vec::new();
        for (i, (ip, b)) in ips.iter().enumerate() {
            let at = 0x1000 + 4 * i as u64;
            ip_data.extend_from_slice(&((*ip as i64 - at as i64) as i32).to_le_bytes());
            unwind.extend_from_slice(b);
        }
        let raw = parse_raw(0x1000, &ip_data, &unwind).unwrap();
        assert_eq!(raw[0], (0x2006, OrcEntry::parse(call16)));
        assert_eq!(raw[4], (0x2020, OrcEntry::parse(und)));
        assert_eq!(
            raw[2].1.to_string(),
            "type:call sp:bp+16 bp:prevsp-16 signal:1"
        );
        assert_eq!(
            raw[4].1.to_string(),
            "type:(und) sp:(und) bp:(und) signal:0"
        );
        assert_eq!(
            OrcEntry::parse(regs).to_string(),
            "type:regs sp:(sp)+0 bp:(und) signal:0"
        );

        let t = OrcTable::new(raw);
        assert!(!t.was_sorted);
        assert_eq!(t.len(), 7);
        assert_eq!(t.lookup(0x1fff), None);
        assert_eq!(t.lookup(0x2000).unwrap().sp_rel(), Some(-8));
        assert_eq!(t.lookup(0x2005).unwrap().sp_rel(), Some(-8));
        assert_eq!(t.lookup(0x2006).unwrap().sp_rel(), Some(-16));
        assert_eq!(t.lookup(0x2008).unwrap().sp_rel(), Some(-16));
        assert_eq!(t.lookup(0x2009).unwrap().sp_rel(), None);
        assert_eq!(t.lookup(0x2009).unwrap().bp_rel(), Some(-16));
        assert_eq!(t.lookup(0x2010).unwrap().bp_rel(), Some(-16));
        assert_eq!(t.lookup(0x2011).unwrap().sp_rel(), Some(-8));
        // The terminator sorts first: the real entry wins at 0x2020.
        assert_eq!(t.lookup(0x2020).unwrap().sp_rel(), Some(-8));
        assert_eq!(t.lookup(0x3000).unwrap().sp_rel(), Some(-8));
        let cover: Vec<u64> = t.covering(0x2007, 0x2011).map(|(ip, _)| ip).collect();
        assert_eq!(cover, [0x2006, 0x2009, 0x2010]);
        let cover: Vec<u64> = t.covering(0x2000, 0x2001).map(|(ip, _)| ip).collect();
        assert_eq!(cover, [0x2000]);

        // Already in order: kept as is.
        let sorted = OrcTable::new(vec![(1, OrcEntry::parse(und)), (1, OrcEntry::parse(call8))]);
        assert!(sorted.was_sorted);
        assert_eq!(sorted.lookup(1).unwrap().kind, TYPE_CALL);

        // Sizes that do not match.
        assert!(parse_raw(0, &ip_data[..27], &unwind).is_err());
        assert!(parse_raw(0, &ip_data, &unwind[..40]).is_err());
        assert!(parse_raw(0, &ip_data[..24], &unwind).is_err());
    }
}
