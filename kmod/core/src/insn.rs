// SPDX-License-Identifier: GPL-2.0
//! x86-64 instruction decoder for kernel text.
//!
//! The module decodes the live machine code of a watched function at
//! configuration time, to find every instruction that moves the stack
//! pointer and every way out of the function. A wrong length would silently
//! desynchronise everything after it, so the decoder is built around one
//! rule: it returns the exact length the CPU uses, or an error. It never
//! guesses.
//!
//! Scope: 64-bit mode only (kernel text). Legacy prefixes, REX, the
//! one-byte, 0F, 0F38 and 0F3A maps, 3DNow!, x87, VEX (C4/C5), EVEX (62)
//! and XOP (8F). The decoder is validated against GNU objdump over every
//! function of a vmlinux and its modules and over a sweep of the whole
//! opcode space (`tests/objcheck`).
//!
//! What the CPU does and objdump shows differently, and what this decoder
//! does in those cases (each is an [`DecodeError::Invalid`]):
//! - A REX prefix that is not the last prefix before the opcode is ignored
//!   by the CPU; objdump shows it as an instruction of its own. Compilers
//!   never emit it, so such an encoding is `Invalid` rather than decoded
//!   one way or the other.
//! - 66 on a near branch, call or return (jcc, jmp, call, ret, loop,
//!   jrcxz, xbegin, `FF /2`, `FF /4`) without REX.W: Intel ignores the
//!   prefix, AMD uses a 16-bit operand (rel16 for E8/E9/0F 8x: a different
//!   length; a 16-bit IP or a 2-byte return address otherwise). The meaning
//!   depends on the vendor, so it is `Invalid`.
//! - 66, F2, F3, LOCK or REX before VEX/EVEX/XOP: #UD on the CPU.
//! - LOCK on an instruction that is not a locked read-modify-write of
//!   memory: #UD.
//! - `mov %reg,%cs` (8E /1): #UD.
//!
//! Validity beyond the opcode: for the legacy maps an encoding is valid when
//! its opcode, mandatory prefix (none, 66, F3, F2; the last of F2/F3 wins,
//! then 66) and ModRM form (register or memory, and `reg` for opcode
//! groups) name an instruction; the tables below were taken from objdump
//! 2.40 (binutils' opcode tables, which follow the Intel SDM and the AMD
//! APM) and are checked against it by `objcheck sweep`. For VEX, EVEX and
//! XOP the same holds at the level of map, opcode and `pp`; the fields
//! that only select operand forms (VEX.L, W, vvvv, EVEX.L'L, b, z, aaa) are
//! not checked, so some encodings the CPU rejects with #UD decode with
//! their (correct) length. Kernel code uses VEX/EVEX only in crypto and
//! RAID routines.
//!
//! The decoder is `no_std`, allocation-free and panic-free: every byte is
//! read with `get()`, all arithmetic on addresses wraps, and nothing
//! recurses. The validity tables are `match` statements.

/// The longest instruction the CPU executes; a longer encoding raises #GP.
pub const MAX_INSN_LEN: usize = 15;

/// Register numbers as encoded (ModRM.reg/rm, SIB base/index with the REX
/// bits applied): 0 rax, 1 rcx, 2 rdx, 3 rbx, 4 rsp, 5 rbp, 6 rsi, 7 rdi,
/// 8-15 r8-r15.
pub const RSP: u8 = 4;
/// See [`RSP`].
pub const RBP: u8 = 5;

/// Why [`decode`] returned no instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The slice ends inside the instruction (and nothing seen so far makes
    /// it invalid). More bytes may make it decodable.
    Truncated,
    /// No instruction: an undefined opcode or form, an encoding the CPU
    /// rejects, one longer than 15 bytes, or one whose meaning depends on
    /// the CPU vendor (see the module documentation).
    Invalid,
}

/// Legacy prefixes of an instruction: a set of flags plus which segment
/// override and which of F2/F3 came last (the last one is what counts when
/// an encoding repeats a prefix group).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prefixes {
    bits: u16,
    seg: u8,
    rep: u8,
}

/// A segment override prefix. In 64-bit mode only FS and GS change the
/// address (CS, DS, ES and SS bases are zero), but all six can appear, e.g.
/// CS as branch padding in retpoline calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
}

impl Prefixes {
    /// 66: operand size (or a mandatory SSE prefix).
    pub const OPSIZE: u16 = 1 << 0;
    /// 67: 32-bit addressing.
    pub const ADDRSIZE: u16 = 1 << 1;
    /// F3: rep/repe (or a mandatory prefix: pause, popcnt, endbr64, ...).
    pub const REP: u16 = 1 << 2;
    /// F2: repne (or a mandatory prefix, or bnd on branches).
    pub const REPNE: u16 = 1 << 3;
    /// F0.
    pub const LOCK: u16 = 1 << 4;
    /// 2E.
    pub const CS: u16 = 1 << 5;
    /// 3E (also "notrack" on indirect branches).
    pub const DS: u16 = 1 << 6;
    /// 26.
    pub const ES: u16 = 1 << 7;
    /// 36.
    pub const SS: u16 = 1 << 8;
    /// 64.
    pub const FS: u16 = 1 << 9;
    /// 65.
    pub const GS: u16 = 1 << 10;

    /// All flags present, `OPSIZE | ...`.
    pub const fn bits(self) -> u16 {
        self.bits
    }

    /// Whether any of `flags` is present.
    pub const fn has(self, flags: u16) -> bool {
        self.bits & flags != 0
    }

    /// The segment override that applies (the last one in the encoding).
    pub const fn segment(self) -> Option<Segment> {
        match self.seg {
            0x26 => Some(Segment::Es),
            0x2e => Some(Segment::Cs),
            0x36 => Some(Segment::Ss),
            0x3e => Some(Segment::Ds),
            0x64 => Some(Segment::Fs),
            0x65 => Some(Segment::Gs),
            _ => None,
        }
    }

    /// The last of F2/F3 in the encoding (0xf2 or 0xf3), or 0 for neither:
    /// the one that selects an SSE form.
    pub const fn last_rep(self) -> u8 {
        self.rep
    }

    /// The mandatory-prefix class used to select among SSE forms, numbered
    /// like VEX.pp: 0 none, 1 66, 2 F3, 3 F2. The last of F2/F3 wins over
    /// 66 (as on the CPU and in objdump).
    pub const fn mandatory(self) -> u8 {
        match self.rep {
            0xf3 => 2,
            0xf2 => 3,
            _ => {
                if self.bits & Self::OPSIZE != 0 {
                    1
                } else {
                    0
                }
            }
        }
    }
}

/// The opcode map an opcode byte belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // the maps are named as the SDM names them
pub enum Map {
    /// One-byte opcodes.
    Primary,
    /// 0F xx (also VEX/EVEX map 1). 3DNow! (0F 0F) is here with opcode 0F.
    Map0F,
    /// 0F 38 xx (also VEX/EVEX map 2).
    Map0F38,
    /// 0F 3A xx (also VEX/EVEX map 3).
    Map0F3A,
    /// EVEX map 5 (AVX512-FP16).
    Map5,
    /// EVEX map 6 (AVX512-FP16).
    Map6,
    /// XOP map 8 (AMD; an imm8 follows).
    Xop8,
    /// XOP map 9.
    Xop9,
    /// XOP map 10 (an imm32 follows).
    Xop10,
}

/// Which vector-extension prefix an instruction uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VexKind {
    /// Two-byte VEX, C5.
    Vex2,
    /// Three-byte VEX, C4.
    Vex3,
    /// EVEX, 62.
    Evex,
    /// XOP, 8F.
    Xop,
}

/// The fields of a VEX/EVEX/XOP prefix that are not folded into other
/// fields of [`Insn`] (R, X, B and R' are applied to ModRM/SIB register
/// numbers like REX bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vex {
    pub kind: VexKind,
    /// VEX.W / EVEX.W / XOP.W (0 for VEX2): 64-bit operand for GPR forms.
    pub w: bool,
    /// Vector length: VEX.L (0-1) or EVEX.L'L (0-3).
    pub l: u8,
    /// The extra register operand, already un-inverted: 0-15 (0-31 with
    /// EVEX.V').
    pub vvvv: u8,
    /// Implied mandatory prefix: 0 none, 1 66, 2 F3, 3 F2.
    pub pp: u8,
    /// EVEX.aaa (opmask register), 0 otherwise.
    pub aaa: u8,
    /// EVEX.z (zeroing), false otherwise.
    pub z: bool,
    /// EVEX.b (broadcast / rounding control), false otherwise.
    pub b: bool,
}

/// The ModRM byte with the REX (VEX/EVEX) extension bits applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModRm {
    /// ModRM.mod: 0-2 memory operand (no, 8-bit, 32-bit displacement),
    /// 3 register operand. For `mov` to/from CRn/DRn (0F 20-23) the CPU
    /// ignores mod and always uses a register: reported as 3.
    pub mode: u8,
    /// ModRM.reg with REX.R (0-15; 0-31 with EVEX.R'): a register or an
    /// opcode extension (use `reg & 7` for `/digit` groups).
    pub reg: u8,
    /// ModRM.rm with REX.B (0-15; for EVEX register operands EVEX.X adds
    /// 16). With `mode != 3`, `rm & 7 == 4` means a SIB byte follows (see
    /// [`Insn::sib`]) and `mode == 0 && rm & 7 == 5` means RIP-relative;
    /// REX.B does not change either (r12/r13 need SIB/disp encodings).
    pub rm: u8,
}

/// The SIB byte with REX.X/REX.B applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sib {
    /// The scale factor: 1, 2, 4 or 8.
    pub scale: u8,
    /// Index register with REX.X (0-15); 4 means no index (r12 is 12).
    /// For VSIB (gathers/scatters) it is a vector register number.
    pub index: u8,
    /// Base register with REX.B. With `ModRm::mode == 0` and `base & 7 ==
    /// 5` there is no base register but a disp32.
    pub base: u8,
}

/// How control leaves an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Falls through to the next instruction.
    Next,
    /// Direct jump (EB, E9): to [`Insn::branch_target`] only.
    Jump,
    /// Direct conditional jump (jcc, loop*, jrcxz, xbegin's abort path):
    /// to [`Insn::branch_target`] or the next instruction.
    CondJump,
    /// Direct near call (E8).
    Call,
    /// Near return (C3, C2 iw).
    Ret,
    /// Indirect near jump (FF /4), including `notrack`.
    IndirectJump,
    /// Indirect near call (FF /2).
    IndirectCall,
    /// CC.
    Int3,
    /// ud2 (0F 0B), ud1 (0F B9), ud0 (0F FF): raise #UD, e.g. BUG().
    Ud2,
    /// hlt.
    Halt,
    /// Leaves through a path the instruction does not name and that is
    /// not a near call/return: far jmp/call/ret (FF /3, FF /5, CA, CB),
    /// iret, int n (CD), int1 (F1), syscall, sysret, sysenter, sysexit,
    /// rsm, vmlaunch, vmresume, eretu, erets.
    Other,
}

/// A memory operand, from [`Insn::mem`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mem {
    /// Base register (0-15), `None` for RIP-relative or absolute disp32.
    pub base: Option<u8>,
    /// Index register (0-15), `None` without one.
    pub index: Option<u8>,
    /// 1, 2, 4 or 8.
    pub scale: u8,
    /// The displacement (raw disp8 for EVEX, see [`Insn::disp`]).
    pub disp: i32,
    /// RIP-relative: the address is `next_ip + disp`.
    pub rip: bool,
    /// 67 prefix: the address is computed in 32 bits.
    pub addr32: bool,
    /// The segment override, if any.
    pub seg: Option<Segment>,
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    /// Length in bytes, 1-15.
    pub len: u8,
    pub prefixes: Prefixes,
    /// The REX byte (0x40-0x4f) that applies, or 0.
    pub rex: u8,
    /// VEX, EVEX or XOP encoded; details in [`Insn::vex_info`].
    pub vex: bool,
    pub vex_info: Option<Vex>,
    pub map: Map,
    /// The opcode byte within `map`. For 3DNow! (0F 0F /r ib) this is 0x0f
    /// and the suffix byte that selects the operation is in `imm`.
    pub opcode: u8,
    pub modrm: Option<ModRm>,
    pub sib: Option<Sib>,
    /// The displacement, sign-extended (disp8 or disp32), 0 without one.
    /// For EVEX a disp8 is stored as encoded: the CPU scales it by the
    /// operand's tuple size (disp8*N), which this decoder does not compute.
    /// The moffs of A0-A3 is not a displacement: see `imm`.
    pub disp: i32,
    /// Bytes of displacement in the encoding (0, 1 or 4).
    pub disp_size: u8,
    /// The first immediate. Sign-extended where the CPU sign-extends it:
    /// branch displacements (rel8/rel32), imm8 of 6A, 6B and 83, and
    /// imm32 with a 64-bit operand size (REX.W, or push 68). Otherwise
    /// zero-extended: imm8 of byte operations, imm16, imm32 with a 32-bit
    /// operand size (so it equals the 32-bit result, e.g. `mov $-1,%eax`
    /// gives 0xffffffff). The full value for `mov r64, imm64` (REX.W B8+r).
    /// For A0-A3 (`movabs` moffs) the absolute address (8 bytes, or 4 with
    /// 67, zero-extended). For `enter iw, ib` the iw; for 3DNow! the
    /// suffix byte; for extrq/insertq (66/F2 0F 78) the first imm8.
    pub imm: i64,
    /// The second immediate: the ib of `enter` (nesting level) and of
    /// extrq/insertq with two imm8; 0 otherwise.
    pub imm2: u8,
    /// Bytes of immediate(s) in the encoding (all of them, e.g. 3 for enter).
    pub imm_size: u8,
}

/// Immediate operand kinds of the legacy maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Imm {
    None,
    /// imm8, zero-extended.
    B,
    /// imm8, sign-extended (6A, 6B, 83).
    Bs,
    /// imm16 (ret iw, retf iw).
    W,
    /// imm16 with 66, else imm32 (sign-extended with a 64-bit operand).
    Z,
    /// imm16 with 66, imm64 with REX.W, else imm32 (B8+r).
    V,
    /// iw, ib (enter).
    Enter,
    /// moffs: 8 bytes, 4 with 67.
    Moffs,
    /// rel8.
    Rel8,
    /// rel32 (rel16 with 66: rejected, see the module documentation).
    Rel32,
    /// Two imm8 (extrq/insertq).
    B2,
}

/// Reads the instruction bytes, refusing to go past 15.
struct Cursor<'a> {
    code: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        if self.pos >= MAX_INSN_LEN {
            return Err(DecodeError::Invalid);
        }
        let b = *self.code.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        if self.pos >= MAX_INSN_LEN {
            return Err(DecodeError::Invalid);
        }
        self.code
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::Truncated)
    }

    /// `n` (1-8) little-endian bytes, zero-extended.
    fn le(&mut self, n: u8) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        let mut i = 0;
        while i < n {
            v |= u64::from(self.byte()?) << (8 * u32::from(i));
            i += 1;
        }
        Ok(v)
    }
}

/// Sign-extends the low `bytes` bytes of `v`.
fn sext(v: u64, bytes: u8) -> i64 {
    match bytes {
        1 => i64::from(v as u8 as i8),
        2 => i64::from(v as u16 as i16),
        4 => i64::from(v as u32 as i32),
        _ => v as i64,
    }
}

/// Decodes the instruction at `code[0]`. `code` may extend past the
/// instruction (only the bytes needed are read).
pub fn decode(code: &[u8]) -> Result<Insn, DecodeError> {
    let mut c = Cursor { code, pos: 0 };
    let mut p = Prefixes::default();
    let mut rex = 0u8;
    let op = loop {
        let b = c.byte()?;
        let flag = match b {
            0x66 => Prefixes::OPSIZE,
            0x67 => Prefixes::ADDRSIZE,
            0xf0 => Prefixes::LOCK,
            0xf2 => Prefixes::REPNE,
            0xf3 => Prefixes::REP,
            0x2e => Prefixes::CS,
            0x3e => Prefixes::DS,
            0x26 => Prefixes::ES,
            0x36 => Prefixes::SS,
            0x64 => Prefixes::FS,
            0x65 => Prefixes::GS,
            0x40..=0x4f => {
                // Only a REX immediately before the opcode counts; one
                // followed by another prefix is ignored by the CPU and
                // shown as a separate instruction by objdump: refuse it.
                if rex != 0 {
                    return Err(DecodeError::Invalid);
                }
                rex = b;
                continue;
            }
            _ => break b,
        };
        if rex != 0 {
            return Err(DecodeError::Invalid);
        }
        p.bits |= flag;
        match b {
            0xf2 | 0xf3 => p.rep = b,
            0x66 | 0x67 | 0xf0 => {}
            _ => p.seg = b,
        }
    };
    let mut insn = Insn {
        len: 0,
        prefixes: p,
        rex,
        vex: false,
        vex_info: None,
        map: Map::Primary,
        opcode: op,
        modrm: None,
        sib: None,
        disp: 0,
        disp_size: 0,
        imm: 0,
        imm2: 0,
        imm_size: 0,
    };
    match op {
        0xc4 | 0xc5 | 0x62 => decode_vex(&mut c, &mut insn)?,
        0x8f if c.peek()? & 0x1f >= 8 => decode_vex(&mut c, &mut insn)?,
        0x0f => decode_0f(&mut c, &mut insn)?,
        _ => decode_primary(&mut c, &mut insn)?,
    }
    // pos <= 15 is guaranteed by Cursor.
    insn.len = c.pos as u8;
    Ok(insn)
}

/// REX.W, or VEX/EVEX/XOP.W.
const fn rex_w(insn: &Insn) -> bool {
    match insn.vex_info {
        Some(v) => v.w,
        None => insn.rex & 8 != 0,
    }
}

/// 66 without REX.W on a near branch/call/ret: vendor-dependent (see the
/// module documentation).
fn opsize_branch(insn: &Insn) -> bool {
    insn.prefixes.has(Prefixes::OPSIZE) && insn.rex & 8 == 0
}

/// Parses ModRM, SIB and displacement. `ext` holds the register-number
/// extension bits: R (8), X (4), B (2) as in REX, plus EVEX R' (0x10) and
/// EVEX X-for-rm (0x20). `force_reg` treats any mod as 3 (mov CRn/DRn).
fn modrm(c: &mut Cursor<'_>, insn: &mut Insn, ext: u8, force_reg: bool) -> Result<(), DecodeError> {
    let m = c.byte()?;
    let mut mode = m >> 6;
    let r = (m >> 3) & 7;
    let rm = m & 7;
    let reg = r | (ext & 8) | if ext & 0x10 != 0 { 16 } else { 0 };
    let b = if ext & 2 != 0 { 8 } else { 0 };
    let x = if ext & 4 != 0 { 8 } else { 0 };
    if force_reg {
        mode = 3;
    }
    let mut rmx = rm | b;
    if mode == 3 {
        if ext & 0x20 != 0 {
            rmx |= 16;
        }
    } else {
        let mut disp_size = match mode {
            1 => 1,
            2 => 4,
            _ => 0,
        };
        if rm == 4 {
            let s = c.byte()?;
            let base = s & 7;
            insn.sib = Some(Sib {
                scale: 1 << (s >> 6),
                index: ((s >> 3) & 7) | x,
                base: base | b,
            });
            if mode == 0 && base == 5 {
                disp_size = 4;
            }
        } else if mode == 0 && rm == 5 {
            disp_size = 4;
        }
        let d = c.le(disp_size)?;
        insn.disp = sext(d, disp_size) as i32;
        insn.disp_size = disp_size;
    }
    insn.modrm = Some(ModRm { mode, reg, rm: rmx });
    Ok(())
}

/// Reads the immediate(s) of kind `k` into `insn`.
fn immediate(c: &mut Cursor<'_>, insn: &mut Insn, k: Imm) -> Result<(), DecodeError> {
    let w = rex_w(insn);
    let o16 = insn.prefixes.has(Prefixes::OPSIZE);
    let (size, signed) = match k {
        Imm::None => return Ok(()),
        Imm::B => (1, false),
        Imm::Bs | Imm::Rel8 => (1, true),
        Imm::W => (2, false),
        Imm::Z => {
            if w {
                (4, true)
            } else if o16 {
                (2, false)
            } else {
                // push imm32 (68) is a 64-bit push of the sign-extended value.
                (4, insn.map == Map::Primary && insn.opcode == 0x68)
            }
        }
        Imm::V => {
            if w {
                (8, false)
            } else if o16 {
                (2, false)
            } else {
                (4, false)
            }
        }
        Imm::Rel32 => (4, true),
        Imm::Moffs => {
            if insn.prefixes.has(Prefixes::ADDRSIZE) {
                (4, false)
            } else {
                (8, false)
            }
        }
        Imm::Enter => {
            insn.imm = c.le(2)? as i64;
            insn.imm2 = c.byte()?;
            insn.imm_size = 3;
            return Ok(());
        }
        Imm::B2 => {
            insn.imm = i64::from(c.byte()?);
            insn.imm2 = c.byte()?;
            insn.imm_size = 2;
            return Ok(());
        }
    };
    let v = c.le(size)?;
    insn.imm = if signed { sext(v, size) } else { v as i64 };
    insn.imm_size = size;
    Ok(())
}

/// The one-byte map: ModRM presence and immediate kind, `None` for opcodes
/// that are undefined in 64-bit mode (06, 07, 0E, 16, 17, 1E, 1F, 27, 2F,
/// 37, 3F, 60, 61, 82, 9A, CE, D4, D5, D6, EA). Prefixes, 0F, VEX, EVEX
/// and XOP never get here.
fn primary(op: u8) -> Option<(bool, Imm)> {
    let (m, i) = match op {
        0x00..=0x3f => match op & 7 {
            0..=3 => (true, Imm::None),
            4 => (false, Imm::B),
            5 => (false, Imm::Z),
            _ => return None,
        },
        0x50..=0x5f => (false, Imm::None),
        0x63 => (true, Imm::None),
        0x68 => (false, Imm::Z),
        0x69 => (true, Imm::Z),
        0x6a => (false, Imm::Bs),
        0x6b => (true, Imm::Bs),
        0x6c..=0x6f => (false, Imm::None),
        0x70..=0x7f => (false, Imm::Rel8),
        0x80 => (true, Imm::B),
        0x81 => (true, Imm::Z),
        0x83 => (true, Imm::Bs),
        0x84..=0x8f => (true, Imm::None),
        0x90..=0x99 | 0x9b..=0x9f => (false, Imm::None),
        0xa0..=0xa3 => (false, Imm::Moffs),
        0xa4..=0xa7 | 0xaa..=0xaf => (false, Imm::None),
        0xa8 => (false, Imm::B),
        0xa9 => (false, Imm::Z),
        0xb0..=0xb7 => (false, Imm::B),
        0xb8..=0xbf => (false, Imm::V),
        0xc0 | 0xc1 | 0xc6 => (true, Imm::B),
        0xc2 | 0xca => (false, Imm::W),
        0xc3 | 0xc9 | 0xcb | 0xcc | 0xcf => (false, Imm::None),
        // C7 /0 mov imm; C7 F8 xbegin rel32 (same size rule).
        0xc7 => (true, Imm::Z),
        0xc8 => (false, Imm::Enter),
        0xcd => (false, Imm::B),
        0xd0..=0xd3 | 0xd8..=0xdf => (true, Imm::None),
        0xd7 => (false, Imm::None),
        0xe0..=0xe3 | 0xeb => (false, Imm::Rel8),
        0xe4..=0xe7 => (false, Imm::B),
        0xe8 | 0xe9 => (false, Imm::Rel32),
        0xec..=0xef | 0xf1 | 0xf4 | 0xf5 | 0xf8..=0xfd => (false, Imm::None),
        // F6/F7 /0 and /1 (test) take an immediate: decided after ModRM.
        0xf6 | 0xf7 | 0xfe | 0xff => (true, Imm::None),
        _ => return None,
    };
    Some((m, i))
}

/// x87 (D8-DF) register forms that exist, one bit per ModRM byte C0-FF.
fn x87_reg_valid(op: u8, m: u8) -> bool {
    let mask: u64 = match op {
        0xd8 => u64::MAX,
        // fld fxch fnop; fchs fabs ftst fxam; fld1..fldz; f2xm1..fcos
        0xd9 => 0xffff_7f33_0001_ffff,
        // fcmovb/e/be/u, fucompp
        0xda => 0x0000_0200_ffff_ffff,
        // fcmovnb/ne/nbe/nu, feni fdisi fnclex fninit fsetpm, fucomi, fcomi
        0xdb => 0x00ff_ff3f_ffff_ffff,
        0xdc => 0xffff_ffff_0000_ffff,
        // ffree, fst, fstp, fucom, fucomp
        0xdd => 0x0000_ffff_ffff_00ff,
        // faddp fmulp fcompp fsubrp fsubp fdivrp fdivp
        0xde => 0xffff_ffff_0200_ffff,
        // ffreep, fnstsw %ax, fucomip, fcomip
        0xdf => 0x00ff_ff01_0000_00ff,
        _ => 0,
    };
    (mask >> (m & 0x3f)) & 1 != 0
}

/// Whether LOCK is allowed: a read-modify-write with a memory destination.
fn lock_ok(insn: &Insn) -> bool {
    let Some(m) = insn.modrm else {
        return false;
    };
    if m.mode == 3 {
        return false;
    }
    let r = m.reg & 7;
    match (insn.map, insn.opcode) {
        (Map::Primary, 0x00..=0x37) => insn.opcode & 7 <= 1,
        (Map::Primary, 0x80 | 0x81 | 0x83) => r != 7,
        (Map::Primary, 0x86 | 0x87) => true,
        (Map::Primary, 0xf6 | 0xf7) => r == 2 || r == 3,
        (Map::Primary, 0xfe | 0xff) => r <= 1,
        (Map::Map0F, 0xab | 0xb0 | 0xb1 | 0xb3 | 0xbb | 0xc0 | 0xc1) => true,
        (Map::Map0F, 0xba) => r >= 5,
        (Map::Map0F, 0xc7) => r == 1,
        _ => false,
    }
}

fn rex_ext(rex: u8) -> u8 {
    // REX.R (4) -> 8, REX.X (2) -> 4, REX.B (1) -> 2.
    (rex & 7) << 1
}

fn decode_primary(c: &mut Cursor<'_>, insn: &mut Insn) -> Result<(), DecodeError> {
    let op = insn.opcode;
    let (has_modrm, mut imm) = primary(op).ok_or(DecodeError::Invalid)?;
    if has_modrm {
        let raw = c.peek()?;
        modrm(c, insn, rex_ext(insn.rex), false)?;
        let m = insn.modrm.ok_or(DecodeError::Invalid)?;
        let r = m.reg & 7;
        let ok = match op {
            // mov Sreg: es cs ss ds fs gs only; mov to cs is #UD.
            0x8c => r <= 5,
            0x8e => r <= 5 && r != 1,
            // lea needs a memory operand.
            0x8d => m.mode != 3,
            0x8f => r == 0,
            // mov imm; xabort ib (C6 F8) / xbegin rel (C7 F8).
            0xc6 | 0xc7 => r == 0 || raw == 0xf8,
            0xfe => r <= 1,
            // FF /3 and /5 (far call/jmp) need memory; /7 is undefined.
            0xff => r != 7 && !(m.mode == 3 && (r == 3 || r == 5)),
            0xd8..=0xdf => {
                if m.mode == 3 {
                    x87_reg_valid(op, raw)
                } else {
                    !matches!((op, r), (0xd9, 1) | (0xdb, 4) | (0xdb, 6) | (0xdd, 5))
                }
            }
            _ => true,
        };
        if !ok {
            return Err(DecodeError::Invalid);
        }
        match op {
            0xf6 if r <= 1 => imm = Imm::B,
            0xf7 if r <= 1 => imm = Imm::Z,
            0xc7 if raw == 0xf8 => {
                imm = Imm::Rel32;
                if opsize_branch(insn) {
                    return Err(DecodeError::Invalid);
                }
            }
            0xff if (r == 2 || r == 4) && opsize_branch(insn) => return Err(DecodeError::Invalid),
            _ => {}
        }
    }
    if matches!(op, 0x70..=0x7f | 0xc2 | 0xc3 | 0xe0..=0xe3 | 0xe8 | 0xe9 | 0xeb)
        && opsize_branch(insn)
    {
        return Err(DecodeError::Invalid);
    }
    if insn.prefixes.has(Prefixes::LOCK) && !lock_ok(insn) {
        return Err(DecodeError::Invalid);
    }
    immediate(c, insn, imm)
}

/// Valid 3DNow! suffixes (0F 0F /r suffix).
fn amd3dnow_valid(s: u8) -> bool {
    matches!(
        s,
        0x0c | 0x0d
            | 0x1c
            | 0x1d
            | 0x8a
            | 0x8e
            | 0x90
            | 0x94
            | 0x96
            | 0x97
            | 0x9a
            | 0x9e
            | 0xa0
            | 0xa4
            | 0xa6
            | 0xa7
            | 0xaa
            | 0xae
            | 0xb0
            | 0xb4
            | 0xb6
            | 0xb7
            | 0xbb
            | 0xbf
    )
}

/// Checks `mask` (low byte: memory forms, high byte: register forms, one bit
/// per ModRM.reg) against the decoded ModRM.
fn modrm_allowed(mask: u16, m: ModRm) -> bool {
    let shift = u32::from(m.reg & 7) + if m.mode == 3 { 8 } else { 0 };
    (mask >> shift) & 1 != 0
}

/// Register forms of 0F 01, 0F A6, 0F A7 and 0F AE, where the rm field is
/// part of the opcode: one bit per ModRM byte C0-FF, per mandatory-prefix
/// class. `None` for other opcodes.
fn map0f_exact(op: u8, pfx: u8) -> Option<u64> {
    let masks: [u64; 4] = match op {
        // enclv vmcall vmlaunch vmresume vmxoff pconfig wrmsrns monitor mwait
        // clac stac encls xgetbv xsetbv vmfunc xend xtest enclu vmrun vmmcall
        // vmload vmsave stgi clgi skinit invlpga smsw serialize rdpkru wrpkru
        // lmsw swapgs rdtscp monitorx mwaitx clzero rdpru invlpgb tlbsync; with
        // 66: tdcall seamret seamops seamcall; F3: wrmsrlist setssbsy
        // saveprevssp uiret testui clui stui mcommit rmpquery rmpadjust psmash
        // vmgexit; F2: rdmsrlist xsusldtrk xresldtrk rmpupdate pvalidate
        0x01 => [
            0xffff_c1ff_fff3_8f7f,
            0x13ff_00ff_fdf3_ff3f,
            0xf7ff_f5ff_fff3_0f7f,
            0xd3ff_03ff_fff3_0f7f,
        ],
        // montmul xsha1 xsha256 (C0, C8, D0)
        0xa6 => [0x0001_0101; 4],
        // xstore-rng xcrypt-ecb/cbc/ctr/cfb/ofb (C0 C8 D0 D8 E0 E8)
        0xa7 => [0x0101_0101_0101; 4],
        // lfence E8-EF, mfence F0, sfence F8; 66: tpause F0-F7; F3:
        // rd/wr fs/gs base C0-DF, ptwrite E0-E7, incsspd/q E8-EF, umonitor
        // F0-F7; F2: umwait F0-F7; sfence F8 with any prefix.
        0xae => [
            0x0101_ff00_0000_0000,
            0x01ff_0000_0000_0000,
            0x01ff_ffff_ffff_ffff,
            0x01ff_0000_0000_0000,
        ],
        _ => return None,
    };
    masks.get(usize::from(pfx)).copied()
}

/// MPX (0F 1A/1B except their hint-NOP register forms) has four bound
/// registers: REX.R (and REX.B for `bndmov bnd, bnd`) names none.
fn mpx_regs_ok(op: u8, pfx: u8, m: ModRm) -> bool {
    let nop = m.mode == 3 && (pfx == 0 || (op == 0x1b && pfx == 2));
    if !matches!(op, 0x1a | 0x1b) || nop {
        return true;
    }
    m.reg < 8 && !(pfx == 1 && m.mode == 3 && m.rm >= 8)
}

fn decode_0f(c: &mut Cursor<'_>, insn: &mut Insn) -> Result<(), DecodeError> {
    let b = c.byte()?;
    let pfx = insn.prefixes.mandatory();
    let ext = rex_ext(insn.rex);
    let (map, op) = match b {
        0x38 => (Map::Map0F38, c.byte()?),
        0x3a => (Map::Map0F3A, c.byte()?),
        _ => (Map::Map0F, b),
    };
    insn.map = map;
    insn.opcode = op;
    let table = match map {
        Map::Map0F38 => valid_0f38(op),
        Map::Map0F3A => valid_0f3a(op),
        _ => valid_0f(op),
    };
    let mask = table.get(usize::from(pfx)).copied().unwrap_or(0);
    if map == Map::Map0F && op == 0x0f {
        // 3DNow!: ModRM, then the suffix byte that names the operation.
        modrm(c, insn, ext, false)?;
        let s = c.byte()?;
        if !amd3dnow_valid(s) {
            return Err(DecodeError::Invalid);
        }
        insn.imm = i64::from(s);
        insn.imm_size = 1;
        return Ok(());
    }
    let no_modrm = map == Map::Map0F
        && matches!(
            op,
            0x05..=0x0b | 0x0e | 0x30..=0x37 | 0x77 | 0x80..=0x8f | 0xa0..=0xa2 | 0xa8..=0xaa | 0xc8..=0xcf
        );
    if no_modrm {
        if mask == 0 {
            return Err(DecodeError::Invalid);
        }
        if map == Map::Map0F && (0x80..=0x8f).contains(&op) {
            if opsize_branch(insn) {
                return Err(DecodeError::Invalid);
            }
            return immediate(c, insn, Imm::Rel32);
        }
        if insn.prefixes.has(Prefixes::LOCK) {
            return Err(DecodeError::Invalid);
        }
        return Ok(());
    }
    let raw = c.peek()?;
    // mov to/from CRn/DRn: the CPU ignores mod (always a register).
    let force_reg = map == Map::Map0F && (0x20..=0x23).contains(&op);
    modrm(c, insn, ext, force_reg)?;
    let m = insn.modrm.ok_or(DecodeError::Invalid)?;
    let ok = match (map, m.mode == 3, map0f_exact(op, pfx)) {
        (Map::Map0F, true, Some(exact)) => (exact >> (raw & 0x3f)) & 1 != 0,
        // bndldx, bndstx and bndmk cannot address RIP-relative.
        (Map::Map0F, false, _)
            if ((matches!(op, 0x1a | 0x1b) && pfx == 0) || (op == 0x1b && pfx == 2))
                && insn.is_rip_relative() =>
        {
            false
        }
        _ => modrm_allowed(mask, m),
    };
    if !ok || (map == Map::Map0F && !mpx_regs_ok(op, pfx, m)) {
        return Err(DecodeError::Invalid);
    }
    if insn.prefixes.has(Prefixes::LOCK) && !lock_ok(insn) {
        return Err(DecodeError::Invalid);
    }
    let imm = match map {
        Map::Map0F3A => Imm::B,
        Map::Map0F => match op {
            0x70..=0x73 | 0xa4 | 0xac | 0xba | 0xc2 | 0xc4..=0xc6 => Imm::B,
            // extrq/insertq xmm, imm8, imm8 (66/F2 0F 78); 0F 78 is vmread.
            0x78 if pfx == 1 || pfx == 3 => Imm::B2,
            _ => Imm::None,
        },
        _ => Imm::None,
    };
    immediate(c, insn, imm)
}

/// VEX (C4, C5), EVEX (62) and XOP (8F with map >= 8).
fn decode_vex(c: &mut Cursor<'_>, insn: &mut Insn) -> Result<(), DecodeError> {
    // 66, F2, F3, LOCK or REX before these prefixes: #UD.
    if insn.rex != 0
        || insn
            .prefixes
            .has(Prefixes::OPSIZE | Prefixes::REP | Prefixes::REPNE | Prefixes::LOCK)
    {
        return Err(DecodeError::Invalid);
    }
    let first = insn.opcode;
    let b1 = c.byte()?;
    // R, X, B (and R', V') are stored inverted.
    let mut ext = (!b1 >> 4) & 0x8; // R
    let mut v = Vex {
        kind: VexKind::Vex2,
        w: false,
        l: (b1 >> 2) & 1,
        vvvv: (!b1 >> 3) & 15,
        pp: b1 & 3,
        aaa: 0,
        z: false,
        b: false,
    };
    let mut map_sel = 1;
    if first != 0xc5 {
        ext |= (!b1 >> 4) & 0x6; // X, B
        map_sel = b1 & 0x1f;
        let b2 = c.byte()?;
        v.w = b2 & 0x80 != 0;
        v.vvvv = (!b2 >> 3) & 15;
        v.l = (b2 >> 2) & 1;
        v.pp = b2 & 3;
        v.kind = if first == 0xc4 {
            VexKind::Vex3
        } else {
            VexKind::Xop
        };
        if first == 0x62 {
            // EVEX: P0 = R X B R' 0 m m m, P1 = W vvvv 1 pp,
            // P2 = z L'L b V' aaa.
            v.kind = VexKind::Evex;
            if b1 & 0x10 == 0 {
                ext |= 0x10; // R'
            }
            if b1 & 0x40 == 0 {
                ext |= 0x20; // X extends a register rm to 16-31
            }
            if b1 & 0x08 != 0 || b2 & 0x04 == 0 {
                return Err(DecodeError::Invalid);
            }
            map_sel = b1 & 7;
            let p2 = c.byte()?;
            if p2 & 0x08 == 0 {
                v.vvvv |= 16; // V'
            }
            v.l = (p2 >> 5) & 3;
            v.aaa = p2 & 7;
            v.z = p2 & 0x80 != 0;
            v.b = p2 & 0x10 != 0;
        }
    }
    let kind = v.kind;
    let pp = v.pp;
    let map = match (kind, map_sel) {
        (VexKind::Xop, 8) => Map::Xop8,
        (VexKind::Xop, 9) => Map::Xop9,
        (VexKind::Xop, 10) => Map::Xop10,
        (VexKind::Xop, _) => return Err(DecodeError::Invalid),
        (_, 1) => Map::Map0F,
        (_, 2) => Map::Map0F38,
        (_, 3) => Map::Map0F3A,
        (VexKind::Evex, 5) => Map::Map5,
        (VexKind::Evex, 6) => Map::Map6,
        _ => return Err(DecodeError::Invalid),
    };
    if kind == VexKind::Xop && pp != 0 {
        return Err(DecodeError::Invalid);
    }
    insn.vex = true;
    insn.vex_info = Some(v);
    insn.map = map;
    let op = c.byte()?;
    insn.opcode = op;
    let evex = kind == VexKind::Evex;
    let table = match (evex, map) {
        (false, Map::Map0F) => valid_vex1(op),
        (false, Map::Map0F38) => valid_vex2(op),
        (false, Map::Map0F3A) => valid_vex3(op),
        (true, Map::Map0F) => valid_evex1(op),
        (true, Map::Map0F38) => valid_evex2(op),
        (true, Map::Map0F3A) => valid_evex3(op),
        (_, Map::Map5) => valid_evex5(op),
        (_, Map::Map6) => valid_evex6(op),
        (_, Map::Xop8) => valid_xop8(op),
        (_, Map::Xop9) => valid_xop9(op),
        (_, Map::Xop10) => valid_xop10(op),
        _ => [X; 4],
    };
    let mask = table.get(usize::from(pp)).copied().unwrap_or(0);
    // vzeroupper / vzeroall: the only VEX instruction without ModRM.
    if !evex && map == Map::Map0F && op == 0x77 {
        return if mask != 0 {
            Ok(())
        } else {
            Err(DecodeError::Invalid)
        };
    }
    modrm(c, insn, ext, false)?;
    let m = insn.modrm.ok_or(DecodeError::Invalid)?;
    if !modrm_allowed(mask, m) {
        return Err(DecodeError::Invalid);
    }
    let imm = match map {
        Map::Map0F3A | Map::Xop8 => Imm::B,
        Map::Map0F if matches!(op, 0x70..=0x73 | 0xc2 | 0xc4..=0xc6) => Imm::B,
        Map::Xop10 => {
            // imm32, never sign-extended into a wider operand here.
            let v = c.le(4)?;
            insn.imm = v as i64;
            insn.imm_size = 4;
            return Ok(());
        }
        _ => Imm::None,
    };
    immediate(c, insn, imm)
}

impl Insn {
    /// The address of the next instruction, for an instruction at `ip`.
    pub const fn next_ip(&self, ip: u64) -> u64 {
        ip.wrapping_add(self.len as u64)
    }

    /// `/digit` of a ModRM opcode group (ModRM.reg without REX.R).
    fn group(&self) -> Option<u8> {
        self.modrm.map(|m| m.reg & 7)
    }

    /// Whether this is a direct relative branch or call (its `imm` is the
    /// displacement from the next instruction).
    pub fn is_relative_branch(&self) -> bool {
        if self.vex {
            return false;
        }
        match self.map {
            Map::Primary => match self.opcode {
                0x70..=0x7f | 0xe0..=0xe3 | 0xe8 | 0xe9 | 0xeb => true,
                // xbegin (C7 F8): the abort path is a relative target.
                0xc7 => self.group() == Some(7),
                _ => false,
            },
            Map::Map0F => (0x80..=0x8f).contains(&self.opcode),
            _ => false,
        }
    }

    /// How control leaves this instruction, see [`Flow`].
    pub fn flow(&self) -> Flow {
        if self.vex {
            return Flow::Next;
        }
        let g = self.group().unwrap_or(0);
        match (self.map, self.opcode) {
            (Map::Primary, 0x70..=0x7f | 0xe0..=0xe3) => Flow::CondJump,
            (Map::Primary, 0xc7) if g == 7 => Flow::CondJump,
            (Map::Primary, 0xe9 | 0xeb) => Flow::Jump,
            (Map::Primary, 0xe8) => Flow::Call,
            (Map::Primary, 0xc2 | 0xc3) => Flow::Ret,
            (Map::Primary, 0xcc) => Flow::Int3,
            (Map::Primary, 0xf4) => Flow::Halt,
            (Map::Primary, 0xca | 0xcb | 0xcd | 0xcf | 0xf1) => Flow::Other,
            (Map::Primary, 0xff) => match g {
                2 => Flow::IndirectCall,
                4 => Flow::IndirectJump,
                3 | 5 => Flow::Other,
                _ => Flow::Next,
            },
            (Map::Map0F, 0x80..=0x8f) => Flow::CondJump,
            (Map::Map0F, 0x0b | 0xb9 | 0xff) => Flow::Ud2,
            // syscall, sysret, sysenter, sysexit, rsm
            (Map::Map0F, 0x05 | 0x07 | 0x34 | 0x35 | 0xaa) => Flow::Other,
            (Map::Map0F, 0x01) => match self.modrm {
                // vmlaunch, vmresume: continue in the guest, and after a VM
                // exit at the host RIP of the VMCS.
                Some(ModRm {
                    mode: 3,
                    reg: r,
                    rm,
                }) if r & 7 == 0 && (rm & 7 == 2 || rm & 7 == 3) => Flow::Other,
                // F3/F2 0F 01 CA: eretu/erets (FRED; without F2/F3: clac).
                Some(ModRm {
                    mode: 3,
                    reg: r,
                    rm,
                }) if r & 7 == 1 && rm & 7 == 2 && self.prefixes.last_rep() != 0 => Flow::Other,
                _ => Flow::Next,
            },
            _ => Flow::Next,
        }
    }

    /// The target of a direct relative jmp/jcc/call/loop/jrcxz/xbegin at
    /// `ip`: `ip + len + rel` (wrapping), `None` for anything else.
    pub fn branch_target(&self, ip: u64) -> Option<u64> {
        if self.is_relative_branch() {
            Some(self.next_ip(ip).wrapping_add(self.imm as u64))
        } else {
            None
        }
    }

    /// Whether W (REX.W, or VEX/EVEX/XOP.W) is set.
    pub const fn w(&self) -> bool {
        rex_w(self)
    }

    /// Whether the instruction's operand size defaults to 64 bits in long
    /// mode (no REX.W needed): push/pop (incl. fs/gs, pushf/popf, FF /6,
    /// 8F /0), call/ret/jmp/jcc/loop near, enter/leave. 66 makes push/pop
    /// 16-bit; on branches it is rejected by [`decode`].
    pub fn default64(&self) -> bool {
        if self.vex {
            return false;
        }
        match (self.map, self.opcode) {
            (Map::Primary, 0x50..=0x5f | 0x68 | 0x6a | 0x70..=0x7f | 0x9c | 0x9d) => true,
            (Map::Primary, 0xc2 | 0xc3 | 0xc8 | 0xc9 | 0xe0..=0xe3 | 0xe8 | 0xe9 | 0xeb) => true,
            (Map::Primary, 0x8f) => true,
            (Map::Primary, 0xff) => matches!(self.group(), Some(2 | 4 | 6)),
            (Map::Map0F, 0x80..=0x8f | 0xa0 | 0xa1 | 0xa8 | 0xa9) => true,
            _ => false,
        }
    }

    /// The operand size in bytes for instructions with a 16/32/64-bit
    /// operand: 8 with W or for [`Insn::default64`] instructions (2 for
    /// those with 66), else 2 with 66, else 4. For the size of a push,
    /// pop, call or ret on the stack, this is the number of bytes moved.
    /// Byte-operand forms (e.g. 88, 80, C6) also report 2/4/8 here: check
    /// [`Insn::is_byte_op`] for them.
    pub fn operand_size(&self) -> u8 {
        let o16 = self.prefixes.has(Prefixes::OPSIZE);
        if self.w() {
            8
        } else if self.default64() {
            if o16 {
                2
            } else {
                8
            }
        } else if o16 {
            2
        } else {
            4
        }
    }

    /// Whether the instruction's (integer) operand is a byte: the even
    /// opcodes of the ALU rows (00, 02, 04, ...), 80, 84, 86, 88, 8A, A0,
    /// A2, A4, A6, A8, AA, AC, AE, B0-B7, C0, C6, D0, D2, F6, FE, and
    /// 0F 90-9F (setcc), 0F B0 (cmpxchg), 0F C0 (xadd).
    pub fn is_byte_op(&self) -> bool {
        if self.vex {
            return false;
        }
        match (self.map, self.opcode) {
            (Map::Primary, op @ 0x00..=0x3f) => op & 7 <= 4 && op & 1 == 0,
            (Map::Primary, 0x80 | 0x84 | 0x86 | 0x88 | 0x8a | 0xa8 | 0xb0..=0xb7) => true,
            (Map::Primary, 0xa0 | 0xa2 | 0xa4 | 0xa6 | 0xaa | 0xac | 0xae) => true,
            (Map::Primary, 0xc0 | 0xc6 | 0xd0 | 0xd2 | 0xf6 | 0xfe) => true,
            (Map::Map0F, 0x90..=0x9f | 0xb0 | 0xc0) => true,
            _ => false,
        }
    }

    /// Whether the SIB index is a vector register (VSIB: VEX/EVEX gathers
    /// and scatters, 0F38 90-93, A0-A3, C6, C7).
    pub fn is_vsib(&self) -> bool {
        self.vex
            && self.map == Map::Map0F38
            && matches!(self.opcode, 0x90..=0x93 | 0xa0..=0xa3 | 0xc6 | 0xc7)
    }

    /// Whether the memory operand is RIP-relative (ModRM mod 00, rm 101).
    pub fn is_rip_relative(&self) -> bool {
        matches!(self.modrm, Some(m) if m.mode == 0 && m.rm & 7 == 5)
    }

    /// The memory operand of a ModRM instruction (`None` without ModRM or
    /// with a register operand). Register numbers as in [`RSP`].
    pub fn mem(&self) -> Option<Mem> {
        let m = self.modrm?;
        if m.mode == 3 {
            return None;
        }
        let mut mem = Mem {
            base: Some(m.rm & 15),
            index: None,
            scale: 1,
            disp: self.disp,
            rip: false,
            addr32: self.prefixes.has(Prefixes::ADDRSIZE),
            seg: self.prefixes.segment(),
        };
        if let Some(s) = self.sib {
            mem.base = if m.mode == 0 && s.base & 7 == 5 {
                None
            } else {
                Some(s.base)
            };
            // VSIB always has an index (a vector register).
            mem.index = if s.index == 4 && !self.is_vsib() {
                None
            } else {
                Some(s.index)
            };
            mem.scale = s.scale;
        } else if m.mode == 0 && m.rm & 7 == 5 {
            mem.base = None;
            mem.rip = true;
        }
        Some(mem)
    }
}

/// Validity masks per mandatory-prefix class (0 none, 1 66, 2 F3, 3 F2;
/// for VEX/EVEX the pp field). Each `u16` has one bit per ModRM.reg: low
/// byte for memory forms (mod 0-2), high byte for register forms (mod 3).
/// For opcodes without ModRM any nonzero mask means valid.
const A: u16 = 0xffff;
/// Memory forms only.
const M: u16 = 0x00ff;
/// Register forms only.
const R: u16 = 0xff00;
/// Undefined.
const X: u16 = 0;

/// Map 0F: validity masks (see [`A`]).
fn valid_0f(op: u8) -> [u16; 4] {
    match op {
        // F2 0F 00 /6 is lkgs (FRED; binutils 2.40 predates it, Linux uses
        // it in load_gs_index).
        0x00 => [0x3f3f, 0x3f3f, 0x3f3f, 0x7f7f], // sldt str lldt ltr verr verw lkgs
        0x01 => [0xffdf, 0xdfdf, A, 0xffdf], // sgdt sidt lgdt lidt smsw lmsw invlpg enclv monitor xgetbv...
        0x02..=0x03 => [A, A, A, A],         // lar lsl
        0x05..=0x08 => [A, A, A, A],         // syscall clts sysretl invd
        0x09 => [A, X, A, X],                // wbinvd wbnoinvd
        0x0b => [A, A, A, A],                // ud2
        0x0d => [M, M, M, M],                // prefetch prefetchw prefetchwt1
        0x0e => [A, A, A, A],                // femms
        0x10..=0x11 => [A, A, A, A],         // movups movupd movss movsd
        0x12 => [A, M, A, A],                // movlps movhlps movlpd movsldup movddup
        0x13 => [M, M, X, X],                // movlps movlpd
        0x14..=0x15 => [A, A, X, X],         // unpcklps unpcklpd unpckhps unpckhpd
        0x16 => [A, M, A, X],                // movhps movlhps movhpd movshdup
        0x17 => [M, M, X, X],                // movhps movhpd
        0x18..=0x19 => [A, A, A, A], // prefetchnta prefetcht0 prefetcht1 prefetcht2 nopl nop nopw
        0x1a => [0xff0f, 0x0f0f, 0x0f0f, 0x0f0f], // bndldx nop bndmov bndcl bndcu
        0x1b => [0xff0f, 0x0f0f, 0xff0f, 0x0f0f], // bndstx nop bndmov bndmk bndcn
        0x1c..=0x23 => [A, A, A, A], // cldemote nopl nop nopw rdsspd mov
        0x28..=0x29 => [A, A, X, X], // movaps movapd
        0x2a => [A, A, A, A],        // cvtpi2ps cvtpi2pd cvtsi2ssl cvtsi2ss cvtsi2sdl cvtsi2sd
        0x2b => [M, M, M, M],        // movntps movntpd movntss movntsd
        0x2c..=0x2d => [A, A, A, A], // cvttps2pi cvttpd2pi cvttss2si cvttsd2si cvtps2pi cvtpd2pi...
        0x2e..=0x2f => [A, A, X, X], // ucomiss ucomisd comiss comisd
        0x30..=0x35 => [A, A, A, A], // wrmsr rdtsc rdmsr rdpmc sysenter sysexitl
        0x37 => [A, A, A, A],        // getsec
        0x40..=0x4f => [A, A, A, A], // cmovo cmovno cmovb cmovae cmove cmovne cmovbe cmova cmovs...
        0x50 => [R, R, X, X],        // movmskps movmskpd
        0x51 => [A, A, A, A],        // sqrtps sqrtpd sqrtss sqrtsd
        0x52..=0x53 => [A, X, A, X], // rsqrtps rsqrtss rcpps rcpss
        0x54..=0x57 => [A, A, X, X], // andps andpd andnps andnpd orps orpd xorps xorpd
        0x58..=0x5a => [A, A, A, A], // addps addpd addss addsd mulps mulpd mulss mulsd cvtps2pd ...
        0x5b => [A, A, A, X],        // cvtdq2ps cvtps2dq cvttps2dq
        0x5c..=0x5f => [A, A, A, A], // subps subpd subss subsd minps minpd minss minsd divps div...
        0x60..=0x6b => [A, A, X, X], // punpcklbw punpcklwd punpckldq packsswb pcmpgtb pcmpgtw pc...
        0x6c..=0x6d => [X, A, X, X], // punpcklqdq punpckhqdq
        0x6e => [A, A, X, X],        // movd
        0x6f => [A, A, A, X],        // movq movdqa movdqu
        0x70 => [A, A, A, A],        // pshufw pshufd pshufhw pshuflw
        0x71..=0x72 => [0x5400, 0x5400, X, X], // psrlw psraw psllw psrld psrad pslld
        0x73 => [0x4400, 0xcc00, X, X], // psrlq psllq psrldq pslldq
        0x74..=0x76 => [A, A, X, X], // pcmpeqb pcmpeqw pcmpeqd
        0x77 => [A, X, X, X],        // emms
        0x78..=0x79 => [A, R, X, R], // vmread extrq insertq vmwrite
        0x7c..=0x7d => [X, A, X, A], // haddpd haddps hsubpd hsubps
        0x7e..=0x7f => [A, A, A, X], // movd movq movdqa movdqu
        0x80..=0xa5 => [A, A, A, A], // jo bnd jno jb jae je jne jbe ja js jns jp jnp jl jge jle ...
        0xa6 => [0x0700, 0x0700, 0x0700, 0x0700], // montmul xsha1 xsha256
        0xa7 => [0x3f00, 0x3f00, 0x3f00, 0x3f00], // xstore-rng xcrypt-ecb xcrypt-cbc xcrypt-ctr xcrypt-cfb xc...
        0xa8..=0xad => [A, A, A, A],              // push pushw pop popw rsm bts shrd
        0xae => [0xe0ff, 0xc0cf, 0xff5f, 0xc00f], // fxsave fxrstor ldmxcsr stmxcsr xsave xrstor xsaveopt clfl...
        0xaf..=0xb1 => [A, A, A, A],              // imul cmpxchg
        0xb2 => [M, M, M, M],                     // lss
        0xb3 => [A, A, A, A],                     // btr
        0xb4..=0xb5 => [M, M, M, M],              // lfs lgs
        0xb6..=0xb7 => [A, A, A, A],              // movzbl movzbw movzwl movzww
        0xb8 => [X, X, A, X],                     // popcnt
        0xb9 => [A, A, A, A],                     // ud1
        0xba => [0xf0f0, 0xf0f0, 0xf0f0, 0xf0f0], // btl btsl btrl btcl bt bts btr btc btw btsw btrw btcw
        0xbb => [A, A, A, A],                     // btc
        0xbc..=0xbd => [A, A, A, X],              // bsf tzcnt bsr lzcnt
        0xbe..=0xc2 => [A, A, A, A], // movsbl movsbw movswl movsww xadd cmpeqps cmpeqpd cmpeqss ...
        0xc3 => [M, X, X, X],        // movnti
        0xc4 => [A, A, X, X],        // pinsrw
        0xc5 => [R, R, X, X],        // pextrw
        0xc6 => [A, A, X, X],        // shufps shufpd
        0xc7 => [0xc0fa, 0xc0fa, 0xc0fa, 0x00ba], // cmpxchg8b xrstors xsavec xsaves vmptrld vmptrst rdrand rd...
        0xc8..=0xcf => [A, A, A, A],              // bswap
        0xd0 => [X, A, X, A],                     // addsubpd addsubps
        0xd1..=0xd5 => [A, A, X, X],              // psrlw psrld psrlq paddq pmullw
        0xd6 => [X, A, R, R],                     // movq movq2dq movdq2q
        0xd7 => [R, R, R, R],                     // pmovmskb
        0xd8..=0xe5 => [A, A, X, X], // psubusb psubusw pminub pand paddusb paddusw pmaxub pandn ...
        0xe6 => [X, A, A, A],        // cvttpd2dq cvtdq2pd cvtpd2dq
        0xe7 => [M, M, X, X],        // movntq movntdq
        0xe8..=0xef => [A, A, X, X], // psubsb psubsw pminsw por paddsb paddsw pmaxsw pxor
        0xf0 => [X, X, X, M],        // lddqu
        0xf1..=0xf6 => [A, A, X, X], // psllw pslld psllq pmuludq pmaddwd psadbw
        0xf7 => [R, R, X, X],        // maskmovq maskmovdqu
        0xf8..=0xfe => [A, A, X, X], // psubb psubw psubd psubq paddb paddw paddd
        0xff => [A, A, A, A],        // ud0
        _ => [X; 4],
    }
}

/// Map 0F38: validity masks (see [`A`]).
fn valid_0f38(op: u8) -> [u16; 4] {
    match op {
        0x00..=0x0b => [A, A, X, X], // pshufb phaddw phaddd phaddsw pmaddubsw phsubw phsubd phsu...
        0x10 => [X, A, X, X],        // pblendvb
        0x14..=0x15 => [X, A, X, X], // blendvps blendvpd
        0x17 => [X, A, X, X],        // ptest
        0x1c..=0x1e => [A, A, X, X], // pabsb pabsw pabsd
        0x20..=0x25 => [X, A, X, X], // pmovsxbw pmovsxbd pmovsxbq pmovsxwd pmovsxwq pmovsxdq
        0x28..=0x29 => [X, A, X, X], // pmuldq pcmpeqq
        0x2a => [X, M, X, X],        // movntdqa
        0x2b => [X, A, X, X],        // packusdw
        0x30..=0x35 => [X, A, X, X], // pmovzxbw pmovzxbd pmovzxbq pmovzxwd pmovzxwq pmovzxdq
        0x37..=0x41 => [X, A, X, X], // pcmpgtq pminsb pminsd pminuw pminud pmaxsb pmaxsd pmaxuw ...
        0x80..=0x82 => [X, M, X, X], // invept invvpid invpcid
        0xc8..=0xcd => [A, X, X, X], // sha1nexte sha1msg1 sha1msg2 sha256rnds2 sha256msg1 sha256...
        0xcf => [X, A, X, X],        // gf2p8mulb
        0xd8 => [X, X, 0x000f, X],   // aesencwide128kl aesdecwide128kl aesencwide256kl aesdecwid...
        0xdb => [X, A, X, X],        // aesimc
        0xdc => [X, A, A, X],        // aesenc aesenc128kl loadiwkey
        0xdd..=0xdf => [X, A, M, X], // aesenclast aesdec128kl aesdec aesenc256kl aesdeclast aesd...
        0xf0..=0xf1 => [M, M, X, A], // movbe crc32b crc32 crc32l
        0xf5 => [X, M, X, X],        // wrussd
        0xf6 => [M, A, A, X],        // wrssd adcx adox
        0xf8 => [X, M, M, M],        // movdir64b enqcmds enqcmd
        0xf9 => [M, X, X, X],        // movdiri
        0xfa..=0xfb => [X, X, R, X], // encodekey128 encodekey256
        0xfc => [M, M, M, M],        // aadd aand axor aor
        _ => [X; 4],
    }
}

/// Map 0F3A: validity masks (see [`A`]).
fn valid_0f3a(op: u8) -> [u16; 4] {
    match op {
        0x08..=0x0e => [X, A, X, X], // roundps roundpd roundss roundsd blendps blendpd pblendw
        0x0f => [A, A, X, X],        // palignr
        0x14..=0x17 => [X, A, X, X], // pextrb pextrw pextrd extractps
        0x20..=0x22 => [X, A, X, X], // pinsrb insertps pinsrd
        0x40..=0x42 => [X, A, X, X], // dpps dppd mpsadbw
        0x44 => [X, A, X, X],        // pclmullqlqdq
        0x60..=0x63 => [X, A, X, X], // pcmpestrm pcmpestri pcmpistrm pcmpistri
        0xcc => [A, X, X, X],        // sha1rnds4
        0xce..=0xcf => [X, A, X, X], // gf2p8affineqb gf2p8affineinvqb
        0xdf => [X, A, X, X],        // aeskeygenassist
        0xf0 => [X, X, 0x0100, X],   // hreset
        _ => [X; 4],
    }
}

/// VEX map 1: validity masks (see [`A`]).
fn valid_vex1(op: u8) -> [u16; 4] {
    match op {
        0x10..=0x11 => [A, A, A, A],      // vmovups vmovupd vmovss vmovsd
        0x12 => [A, M, A, A],             // vmovlps vmovhlps vmovlpd vmovsldup vmovddup
        0x13 => [M, M, X, X],             // vmovlps vmovlpd
        0x14..=0x15 => [A, A, X, X],      // vunpcklps vunpcklpd vunpckhps vunpckhpd
        0x16 => [A, M, A, X],             // vmovhps vmovlhps vmovhpd vmovshdup
        0x17 => [M, M, X, X],             // vmovhps vmovhpd
        0x28..=0x29 => [A, A, X, X],      // vmovaps vmovapd
        0x2a => [X, X, A, A], // vcvtsi2ssl vcvtsi2ss vcvtsi2ssq vcvtsi2sdl vcvtsi2sd vcvt...
        0x2b => [M, M, X, X], // vmovntps vmovntpd
        0x2c..=0x2d => [X, X, A, A], // vcvttss2si vcvttsd2si vcvtss2si vcvtsd2si
        0x2e..=0x2f => [A, A, X, X], // vucomiss vucomisd vcomiss vcomisd
        0x41..=0x42 => [R, R, X, X], // kandw kandq kandb kandd kandnw kandnq kandnb kandnd
        0x44..=0x47 => [R, R, X, X], // knotw knotq knotb knotd korw korq korb kord kxnorw kxnorq...
        0x4a..=0x4b => [R, R, X, X], // kaddw kaddq kaddb kaddd kunpckwd kunpckdq kunpckbw
        0x50 => [R, R, X, X], // vmovmskps vmovmskpd
        0x51 => [A, A, A, A], // vsqrtps vsqrtpd vsqrtss vsqrtsd
        0x52..=0x53 => [A, X, A, X], // vrsqrtps vrsqrtss vrcpps vrcpss
        0x54..=0x57 => [A, A, X, X], // vandps vandpd vandnps vandnpd vorps vorpd vxorps vxorpd
        0x58..=0x5a => [A, A, A, A], // vaddps vaddpd vaddss vaddsd vmulps vmulpd vmulss vmulsd v...
        0x5b => [A, A, A, X], // vcvtdq2ps vcvtps2dq vcvttps2dq
        0x5c..=0x5f => [A, A, A, A], // vsubps vsubpd vsubss vsubsd vminps vminpd vminss vminsd v...
        0x60..=0x6e => [X, A, X, X], // vpunpcklbw vpunpcklwd vpunpckldq vpacksswb vpcmpgtb vpcmp...
        0x6f => [X, A, A, X], // vmovdqa vmovdqu
        0x70 => [X, A, A, A], // vpshufd vpshufhw vpshuflw
        0x71..=0x72 => [X, 0x5400, X, X], // vpsrlw vpsraw vpsllw vpsrld vpsrad vpslld
        0x73 => [X, 0xcc00, X, X], // vpsrlq vpsrldq vpsllq vpslldq
        0x74..=0x76 => [X, A, X, X], // vpcmpeqb vpcmpeqw vpcmpeqd
        0x77 => [A, A, A, A], // vzeroupper vzeroall
        0x7c..=0x7d => [X, A, X, A], // vhaddpd vhaddps vhsubpd vhsubps
        0x7e..=0x7f => [X, A, A, X], // vmovd vmovq vmovdqa vmovdqu
        0x90 => [A, A, X, X], // kmovw kmovq kmovb kmovd
        0x91 => [M, M, X, X], // kmovw kmovq kmovb kmovd
        0x92..=0x93 => [R, R, X, R], // kmovw kmovb kmovd kmovq
        0x98..=0x99 => [R, R, X, X], // kortestw kortestq kortestb kortestd ktestw ktestq ktestb ...
        0xae => [0x000c, 0x000c, 0x000c, 0x000c], // vldmxcsr vstmxcsr
        0xc2 => [A, A, A, A], // vcmpeqps vcmpeqpd vcmpeqss vcmpeqsd
        0xc4 => [X, A, X, X], // vpinsrw
        0xc5 => [X, R, X, X], // vpextrw
        0xc6 => [A, A, X, X], // vshufps vshufpd
        0xd0 => [X, A, X, A], // vaddsubpd vaddsubps
        0xd1..=0xd6 => [X, A, X, X], // vpsrlw vpsrld vpsrlq vpaddq vpmullw vmovq
        0xd7 => [X, R, X, X], // vpmovmskb
        0xd8..=0xe5 => [X, A, X, X], // vpsubusb vpsubusw vpminub vpand vpaddusb vpaddusw vpmaxub...
        0xe6 => [X, A, A, A], // vcvttpd2dqx vcvttpd2dq vcvttpd2dqy vcvtdq2pd vcvtpd2dqx v...
        0xe7 => [X, M, X, X], // vmovntdq
        0xe8..=0xef => [X, A, X, X], // vpsubsb vpsubsw vpminsw vpor vpaddsb vpaddsw vpmaxsw vpxor
        0xf0 => [X, X, X, M], // vlddqu
        0xf1..=0xf6 => [X, A, X, X], // vpsllw vpslld vpsllq vpmuludq vpmaddwd vpsadbw
        0xf7 => [X, R, X, X], // vmaskmovdqu
        0xf8..=0xfe => [X, A, X, X], // vpsubb vpsubw vpsubd vpsubq vpaddb vpaddw vpaddd
        _ => [X; 4],
    }
}

/// VEX map 2: validity masks (see [`A`]).
fn valid_vex2(op: u8) -> [u16; 4] {
    match op {
        0x00..=0x0f => [X, A, X, X], // vpshufb vphaddw vphaddd vphaddsw vpmaddubsw vphsubw vphsu...
        0x13 => [X, A, X, X],        // vcvtph2ps
        0x16..=0x19 => [X, A, X, X], // vpermps vptest vbroadcastss vbroadcastsd
        0x1a => [X, M, X, X],        // vbroadcastf128
        0x1c..=0x1e => [X, A, X, X], // vpabsb vpabsw vpabsd
        0x20..=0x25 => [X, A, X, X], // vpmovsxbw vpmovsxbd vpmovsxbq vpmovsxwd vpmovsxwq vpmovsxdq
        0x28..=0x29 => [X, A, X, X], // vpmuldq vpcmpeqq
        0x2a => [X, M, X, X],        // vmovntdqa
        0x2b => [X, A, X, X],        // vpackusdw
        0x2c..=0x2f => [X, M, X, X], // vmaskmovps vmaskmovpd
        0x30..=0x41 => [X, A, X, X], // vpmovzxbw vpmovzxbd vpmovzxbq vpmovzxwd vpmovzxwq vpmovzx...
        0x45..=0x47 => [X, A, X, X], // vpsrlvd vpsrlvq vpsravd vpsllvd vpsllvq
        0x49 => [0x01ff, M, X, R],   // ldtilecfg tilerelease sttilecfg tilezero
        0x4b => [X, M, M, M],        // tileloaddt1 tilestored tileloadd
        0x50..=0x51 => [A, A, A, A], // vpdpbuud {vex} vpdpbsud vpdpbssd vpdpbuuds vpdpbsuds vpdp...
        0x52..=0x53 => [X, A, X, X], // {vex}
        0x5c => [X, X, R, R],        // tdpbf16ps tdpfp16ps
        0x5e => [R, R, R, R],        // tdpbuud tdpbusd tdpbsud tdpbssd
        0x58..=0x59 => [X, A, X, X], // vpbroadcastd vpbroadcastq
        0x5a => [X, M, X, X],        // vbroadcasti128
        0x72 => [X, X, A, X],        // {vex}
        0x78..=0x79 => [X, A, X, X], // vpbroadcastb vpbroadcastw
        0x8c => [X, M, X, X],        // vpmaskmovd vpmaskmovq
        0x8e => [X, M, X, X],        // vpmaskmovd vpmaskmovq
        0x90..=0x93 => [X, M, X, X], // vpgatherdd vpgatherqd vgatherdps vgatherqps (VSIB)
        0x96..=0x9f => [X, A, X, X], // vfmaddsub132ps vfmaddsub132pd vfmsubadd132ps vfmsubadd132...
        0xa6..=0xaf => [X, A, X, X], // vfmaddsub213ps vfmaddsub213pd vfmsubadd213ps vfmsubadd213...
        0xb0 => [M, M, M, M],        // vcvtneoph2ps vcvtneeph2ps vcvtneebf162ps vcvtneobf162ps
        0xb1 => [X, M, M, X],        // vbcstnesh2ps vbcstnebf162ps
        0xb4..=0xbf => [X, A, X, X], // {vex} vfmaddsub231ps vfmaddsub231pd vfmsubadd231ps vfmsub...
        0xcf => [X, A, X, X],        // vgf2p8mulb
        0xdb..=0xdf => [X, A, X, X], // vaesimc vaesenc vaesenclast vaesdec vaesdeclast
        0xe0..=0xef => [X, M, X, X], // cmpoxadd cmpnoxadd cmpbxadd cmpnbxadd cmpzxadd cmpnzxadd ...
        0xf2 => [A, X, X, X],        // andn
        0xf3 => [0x0e0e, X, X, X],   // blsr blsmsk blsi
        0xf5 => [A, X, A, A],        // bzhi pext pdep
        0xf6 => [X, X, X, A],        // mulx
        0xf7 => [A, A, A, A],        // bextr shlx sarx shrx
        _ => [X; 4],
    }
}

/// VEX map 3: validity masks (see [`A`]).
fn valid_vex3(op: u8) -> [u16; 4] {
    match op {
        0x00..=0x02 => [X, A, X, X], // vpermq vpermpd vpblendd
        0x04..=0x06 => [X, A, X, X], // vpermilps vpermilpd vperm2f128
        0x08..=0x0f => [X, A, X, X], // vroundps vroundpd vroundss vroundsd vblendps vblendpd vpb...
        0x14..=0x19 => [X, A, X, X], // vpextrb vpextrw vpextrd vpextrq vextractps vinsertf128 ve...
        0x1d => [X, A, X, X],        // vcvtps2ph
        0x20..=0x22 => [X, A, X, X], // vpinsrb vinsertps vpinsrd vpinsrq
        0x30..=0x33 => [X, R, X, X], // kshiftrb kshiftrw kshiftrd kshiftrq kshiftlb kshiftlw ksh...
        0x38..=0x39 => [X, A, X, X], // vinserti128 vextracti128
        0x40..=0x42 => [X, A, X, X], // vdpps vdppd vmpsadbw
        0x44 => [X, A, X, X],        // vpclmullqlqdq
        0x46 => [X, A, X, X],        // vperm2i128
        0x48..=0x4c => [X, A, X, X], // vpermil2ps vpermil2pd vblendvps vblendvpd vpblendvb
        0x5c..=0x63 => [X, A, X, X], // vfmaddsubps vfmaddsubpd vfmsubaddps vfmsubaddpd vpcmpestr...
        0x68..=0x6f => [X, A, X, X], // vfmaddps vfmaddpd vfmaddss vfmaddsd vfmsubps vfmsubpd vfm...
        0x78..=0x7f => [X, A, X, X], // vfnmaddps vfnmaddpd vfnmaddss vfnmaddsd vfnmsubps vfnmsub...
        0xce..=0xcf => [X, A, X, X], // vgf2p8affineqb vgf2p8affineinvqb
        0xdf => [X, A, X, X],        // vaeskeygenassist
        0xf0 => [X, X, X, A],        // rorx
        _ => [X; 4],
    }
}

/// EVEX map 1: validity masks (see [`A`]).
fn valid_evex1(op: u8) -> [u16; 4] {
    match op {
        0x10..=0x11 => [A, A, A, A], // {evex} vmovups vmovupd vmovss vmovsd
        0x12 => [A, M, A, A],        // {evex} vmovlps vmovhlps vmovlpd vmovsldup vmovddup
        0x13 => [M, M, X, X],        // {evex} vmovlps vmovlpd
        0x14..=0x15 => [A, A, X, X], // {evex} vunpcklps vunpcklpd vunpckhps vunpckhpd
        0x16 => [A, M, A, X],        // {evex} vmovhps vmovlhps vmovhpd vmovshdup
        0x17 => [M, M, X, X],        // {evex} vmovhps vmovhpd
        0x28..=0x29 => [A, A, X, X], // {evex} vmovaps vmovapd
        0x2a => [X, X, A, A],        // {evex} vcvtsi2ssl vcvtsi2ss vcvtsi2ssq vcvtsi2sdl vcvtsi2...
        0x2b => [M, M, X, X],        // {evex} vmovntps vmovntpd
        0x2c..=0x2d => [X, X, A, A], // {evex} vcvttss2si vcvttsd2si vcvtss2si vcvtsd2si
        0x2e..=0x2f => [A, A, X, X], // {evex} vucomiss vucomisd vcomiss vcomisd
        0x51 => [A, A, A, A],        // {evex} vsqrtps vsqrtpd vsqrtss vsqrtsd
        0x54..=0x57 => [A, A, X, X], // {evex} vandps vandpd vandnps vandnpd vorps vorpd vxorps v...
        0x58..=0x5a => [A, A, A, A], // {evex} vaddps vaddpd vaddss vaddsd vmulps vmulpd vmulss v...
        0x5b => [A, A, A, X],        // {evex} vcvtdq2ps vcvtqq2psx vcvtqq2ps vcvtqq2psy vcvtps2d...
        0x5c..=0x5f => [A, A, A, A], // {evex} vsubps vsubpd vsubss vsubsd vminps vminpd vminss v...
        0x60..=0x6e => [X, A, X, X], // {evex} vpunpcklbw vpunpcklwd vpunpckldq vpacksswb vpcmpgt...
        0x6f..=0x70 => [X, A, A, A], // vmovdqa32 vmovdqa64 vmovdqu32 vmovdqu64 vmovdqu8 vmovdqu1...
        0x71 => [X, 0x5454, X, X],   // vpsrlw vpsraw vpsllw
        0x72 => [X, 0x5757, X, X],   // vprord vprold vpsrld vpsrad vpslld vprorq vprolq vpsraq
        0x73 => [X, 0xcccc, X, X],   // vpsrldq vpslldq vpsrlq vpsllq
        0x74..=0x76 => [X, A, X, X], // vpcmpeqb vpcmpeqw vpcmpeqd
        0x78..=0x79 => [A, A, A, A], // vcvttps2udq vcvttpd2udqx vcvttpd2udq vcvttpd2udqy vcvttps...
        0x7a..=0x7b => [X, A, A, A], // vcvttps2qq vcvttpd2qq vcvtudq2pd vcvtuqq2pd vcvtudq2ps vc...
        0x7e => [X, A, A, X],        // {evex} vmovd vmovq
        0x7f => [X, A, A, A],        // vmovdqa32 vmovdqa64 vmovdqu32 vmovdqu64 vmovdqu8 vmovdqu16
        0xc2 => [A, A, A, A],        // vcmpeqps vcmpeqpd vcmpeqss vcmps{baeqd} vcmpeqsd
        0xc4 => [X, A, X, X],        // {evex} vpinsrw
        0xc5 => [X, R, X, X],        // {evex} vpextrw
        0xc6 => [A, A, X, X],        // {evex} vshufps vshufpd
        0xd1..=0xd6 => [X, A, X, X], // {evex} vpsrlw vpsrld vpsrlq vpaddq vpmullw vmovq
        0xd8..=0xe5 => [X, A, X, X], // {evex} vpsubusb vpsubusw vpminub vpandd vpandq vpaddusb v...
        0xe6 => [X, A, A, A],        // {evex} vcvttpd2dqx vcvttpd2dq vcvttpd2dqy vcvtdq2pd vcvtq...
        0xe7..=0xef => [X, A, X, X], // {evex} vmovntdq vpsubsb vpsubsw vpminsw vpord vporq vpadd...
        0xf1..=0xf6 => [X, A, X, X], // {evex} vpsllw vpslld vpsllq vpmuludq vpmaddwd vpsadbw
        0xf8..=0xfe => [X, A, X, X], // {evex} vpsubb vpsubw vpsubd vpsubq vpaddb vpaddw vpaddd
        _ => [X; 4],
    }
}

/// EVEX map 2: validity masks (see [`A`]).
fn valid_evex2(op: u8) -> [u16; 4] {
    match op {
        0x00 => [X, A, X, X],             // {evex} vpshufb
        0x04 => [X, A, X, X],             // {evex} vpmaddubsw
        0x0b..=0x0d => [X, A, X, X],      // {evex} vpmulhrsw vpermilps vpermilpd
        0x10..=0x15 => [X, A, A, X], // vpsrlvw vpmovuswb vpsravw vpmovusdb vpsllvw vpmovusqb {ev...
        0x16 => [X, A, X, X],        // {evex} vpermps vpermpd
        0x18..=0x19 => [X, A, X, X], // {evex} vbroadcastss vbroadcastf32x2 vbroadcastsd
        0x1a..=0x1b => [X, M, X, X], // vbroadcastf32x4 vbroadcastf64x2 vbroadcastf32x8 vbroadcas...
        0x1c..=0x1f => [X, A, X, X], // {evex} vpabsb vpabsw vpabsd vpabsq
        0x20..=0x27 => [X, A, A, X], // {evex} vpmovsxbw vpmovswb vpmovsxbd vpmovsdb vpmovsxbq vp...
        0x28 => [X, A, R, X],        // {evex} vpmuldq vpmovm2b vpmovm2w
        0x29 => [X, A, A, X],        // vpcmpeqq vpmovb2m vpmovw2m
        0x2a => [X, A, R, X],        // {evex} vmovntdqa vpbroadcastmb2q
        0x2b..=0x2d => [X, A, X, X], // {evex} vpackusdw vscalefps vscalefpd vscalefss vscalefsd
        0x30..=0x35 => [X, A, A, X], // {evex} vpmovzxbw vpmovwb vpmovzxbd vpmovdb vpmovzxbq vpmo...
        0x36..=0x37 => [X, A, X, X], // {evex} vpermd vpermq vpcmpgtq
        0x38 => [X, A, R, X],        // {evex} vpminsb vpmovm2d vpmovm2q
        0x39 => [X, A, A, X],        // {evex} vpminsd vpminsq vpmovd2m vpmovq2m
        0x3a => [X, A, R, X],        // {evex} vpminuw vpbroadcastmw2d
        0x3b..=0x40 => [X, A, X, X], // {evex} vpminud vpminuq vpmaxsb vpmaxsd vpmaxsq vpmaxuw vp...
        0x42..=0x47 => [X, A, X, X], // vgetexpps vgetexppd vgetexpss vgetexpsd vplzcntd vplzcntq...
        0x4c..=0x4d => [X, A, X, X], // vrcp14ps vrcp14pd vrcp14ss vrcp14sd
        0x4e => [A, A, A, A],        // vrsqrt14ps vrsqrt14pd
        0x4f => [X, A, X, X],        // vrsqrt14ss vrsqrt14sd
        0x50..=0x51 => [A, A, A, A], // vpdpbuud vpdpbusd vpdpbsud vpdpbssd vpdpbuuds vpdpbusds v...
        0x52 => [X, A, A, M],        // vpdpwssd vdpbf16ps vp4dpwssd
        0x53 => [X, A, X, M],        // vpdpwssds vp4dpwssds
        0x54..=0x55 => [X, A, X, X], // vpopcntb vpopcntw vpopcntd vpopcntq
        0x58..=0x59 => [X, A, X, X], // {evex} vpbroadcastd vbroadcasti32x2 vpbroadcastq
        0x5a..=0x5b => [X, M, X, X], // vbroadcasti32x4 vbroadcasti64x2 vbroadcasti32x8 vbroadcas...
        0x62..=0x66 => [X, A, X, X], // vpexpandb vpexpandw vpcompressb vpcompressw vpblendmd vpb...
        0x68 => [X, X, X, A],        // vp2intersectd vp2intersectq
        0x70..=0x71 => [X, A, X, X], // vpshldvw vpshldvd vpshldvq
        0x72 => [X, A, A, A],        // vpshrdvw vcvtneps2bf16x vcvtneps2bf16 vcvtneps2bf16y vcvt...
        0x73 => [X, A, X, X],        // vpshrdvd vpshrdvq
        0x75..=0x79 => [X, A, X, X], // vpermi2b vpermi2w vpermi2d vpermi2q vpermi2ps vpermi2pd {...
        0x7a..=0x7c => [X, R, X, X], // vpbroadcastb vpbroadcastw vpbroadcastd vpbroadcastq
        0x7d..=0x7f => [X, A, X, X], // vpermt2b vpermt2w vpermt2d vpermt2q vpermt2ps vpermt2pd
        0x83 => [X, A, X, X],        // vpmultishiftqb
        0x88..=0x8b => [X, A, X, X], // vexpandps vexpandpd vpexpandd vpexpandq vcompressps vcomp...
        0x8d => [X, A, X, X],        // vpermb vpermw
        0x8f => [X, A, X, X],        // vpshufbitqmb
        0x90..=0x93 => [X, M, X, X], // vpgatherdd vpgatherdq vpgatherqd vpgatherqq vgatherdps vg...
        0x96..=0x99 => [X, A, X, X], // {evex} vfmaddsub132ps vfmaddsub132pd vfmsubadd132ps vfmsu...
        0x9a..=0x9b => [X, A, X, M], // {evex} vfmsub132ps vfmsub132pd v4fmaddps vfmsub132ss vfms...
        0x9c..=0x9f => [X, A, X, X], // {evex} vfnmadd132ps vfnmadd132pd vfnmadd132ss vfnmadd132s...
        0xa0..=0xa3 => [X, M, X, X], // vpscatterdd vpscatterdq vpscatterqd vpscatterqq vscatterd...
        0xa6..=0xa9 => [X, A, X, X], // {evex} vfmaddsub213ps vfmaddsub213pd vfmsubadd213ps vfmsu...
        0xaa..=0xab => [X, A, X, M], // {evex} vfmsub213ps vfmsub213pd v4fnmaddps vfmsub213ss vfm...
        0xac..=0xaf => [X, A, X, X], // {evex} vfnmadd213ps vfnmadd213pd vfnmadd213ss vfnmadd213s...
        0xb4..=0xbf => [X, A, X, X], // vpmadd52luq vpmadd52huq {evex} vfmaddsub231ps vfmaddsub23...
        0xc4 => [X, A, X, X],        // vpconflictd vpconflictq
        0xc6..=0xc7 => [X, 0x0066, X, X], // vgatherpf0dps vgatherpf1dps vscatterpf0dps vscatterpf1dps...
        0xc8 => [X, A, X, X],             // vexp2ps vexp2pd
        0xca..=0xcd => [X, A, X, X], // vrcp28ps vrcp28pd vrcp28ss vrcp28sd vrsqrt28ps vrsqrt28pd...
        0xcf => [X, A, X, X],        // {evex} vgf2p8mulb
        0xdc..=0xdf => [X, A, X, X], // {evex} vaesenc vaesenclast vaesdec vaesdeclast
        _ => [X; 4],
    }
}

/// EVEX map 3: validity masks (see [`A`]).
fn valid_evex3(op: u8) -> [u16; 4] {
    match op {
        0x00..=0x01 => [X, A, X, X], // {evex} vpermq vpermpd
        0x03..=0x05 => [X, A, X, X], // valignd valignq {evex} vpermilps vpermilpd
        0x08 => [A, A, X, X],        // vrndscaleph vrndscaleps
        0x09 => [X, A, X, X],        // vrndscalepd
        0x0a => [A, A, X, X],        // vrndscalesh vrndscaless
        0x0b => [X, A, X, X],        // vrndscalesd
        0x0f => [X, A, X, X],        // {evex} vpalignr
        0x14..=0x1b => [X, A, X, X], // {evex} vpextrb vpextrw vpextrd vpextrq vextractps vinsert...
        0x1d..=0x23 => [X, A, X, X], // {evex} vcvtps2ph vpcmpequd vpcmpequq vpcmpeqd vpcmpeqq vp...
        0x25 => [X, A, X, X],        // vpternlogd vpternlogq
        0x26..=0x27 => [A, A, X, X], // vgetmantph vgetmantps vgetmantpd vgetmantsh vgetmantss vg...
        0x38..=0x3b => [X, A, X, X], // vinserti32x4 vinserti64x2 vextracti32x4 vextracti64x2 vin...
        0x3e..=0x3f => [X, A, X, X], // vpcmpequb vpcmpequw vpcmpeqb vpcmpeqw
        0x42 => [A, A, A, A],        // vdbpsadbw
        0x43..=0x44 => [X, A, X, X], // vshufi32x4 vshufi64x2 {evex} vpclmullqlqdq
        0x50..=0x51 => [X, A, X, X], // vrangeps vrangepd vrangess vrangesd
        0x54..=0x55 => [X, A, X, X], // vfixupimmps vfixupimmpd vfixupimmss vfixupimmsd
        0x56..=0x57 => [A, A, X, X], // vreduceph vreduceps vreducepd vreducesh vreducess vreducesd
        0x66..=0x67 => [A, A, X, X], // vfpclassphx vfpclassph vfpclassphy vfpclassphz vfpclassps...
        0x70 => [A, A, A, A],        // vpshldw
        0x71 => [X, A, X, X],        // vpshldd vpshldq
        0x72 => [A, A, A, A],        // vpshrdw
        0x73 => [X, A, X, X],        // vpshrdd vpshrdq
        0xc2 => [A, X, A, X],        // vcmpeqph vcmpp{baeqd} vcmpeqsh vcmps{baeqd}
        0xce..=0xcf => [X, A, X, X], // {evex} vgf2p8affineqb vgf2p8affineinvqb
        _ => [X; 4],
    }
}

/// EVEX map 5: validity masks (see [`A`]).
fn valid_evex5(op: u8) -> [u16; 4] {
    match op {
        0x10..=0x11 => [X, X, A, X], // vmovsh
        0x1d => [A, A, X, X],        // vcvtss2sh vcvtps2phxx vcvtps2phx vcvtps2phxy
        0x2a => [X, X, A, X],        // vcvtsi2shl vcvtsi2sh vcvtsi2shq
        0x2c..=0x2d => [X, X, A, X], // vcvttsh2si vcvtsh2si
        0x2e..=0x2f => [A, X, X, X], // vucomish vcomish
        0x51 => [A, X, A, X],        // vsqrtph vsqrtsh
        0x58..=0x59 => [A, X, A, X], // vaddph vaddsh vmulph vmulsh
        0x5a => [A, A, A, A],        // vcvtph2pd vcvtpd2phx vcvtpd2ph vcvtpd2phy vcvtpd2phz vcvt...
        0x5b => [A, A, A, X],        // vcvtdq2phx vcvtdq2ph vcvtdq2phy vcvtqq2phx vcvtqq2ph vcvt...
        0x5c..=0x5f => [A, X, A, X], // vsubph vsubsh vminph vminsh vdivph vdivsh vmaxph vmaxsh
        0x6e => [X, A, X, X],        // vmovw
        0x78..=0x79 => [A, A, A, X], // vcvttph2udq vcvttph2uqq vcvttsh2usi vcvtph2udq vcvtph2uqq...
        0x7a => [X, A, X, A],        // vcvttph2qq vcvtudq2phx vcvtudq2ph vcvtudq2phy vcvtuqq2phx...
        0x7b => [X, A, A, X],        // vcvtph2qq vcvtusi2shl vcvtusi2sh vcvtusi2shq
        0x7c => [A, A, X, X],        // vcvttph2uw vcvttph2w
        0x7d => [A, A, A, A],        // vcvtph2uw vcvtph2w vcvtw2ph vcvtuw2ph
        0x7e => [X, A, X, X],        // vmovw
        _ => [X; 4],
    }
}

/// EVEX map 6: validity masks (see [`A`]).
fn valid_evex6(op: u8) -> [u16; 4] {
    match op {
        0x13 => [A, A, X, X],        // vcvtsh2ss vcvtph2psx
        0x2c..=0x2d => [X, A, X, X], // vscalefph vscalefsh
        0x42..=0x43 => [X, A, X, X], // vgetexpph vgetexpsh
        0x4c..=0x4f => [X, A, X, X], // vrcpph vrcpsh vrsqrtph vrsqrtsh
        0x56..=0x57 => [X, X, A, A], // vfmaddcph vfcmaddcph vfmaddcsh vfcmaddcsh
        0x96..=0x9f => [X, A, X, X], // vfmaddsub132ph vfmsubadd132ph vfmadd132ph vfmadd132sh vfm...
        0xa6..=0xaf => [X, A, X, X], // vfmaddsub213ph vfmsubadd213ph vfmadd213ph vfmadd213sh vfm...
        0xb6..=0xbf => [X, A, X, X], // vfmaddsub231ph vfmsubadd231ph vfmadd231ph vfmadd231sh vfm...
        0xd6..=0xd7 => [X, X, A, A], // vfmulcph vfcmulcph vfmulcsh vfcmulcsh
        _ => [X; 4],
    }
}

/// XOP map 8: validity masks (see [`A`]).
fn valid_xop8(op: u8) -> [u16; 4] {
    match op {
        0x85..=0x87 => [A, X, X, X], // vpmacssww vpmacsswd vpmacssdql
        0x8e..=0x8f => [A, X, X, X], // vpmacssdd vpmacssdqh
        0x95..=0x97 => [A, X, X, X], // vpmacsww vpmacswd vpmacsdql
        0x9e..=0x9f => [A, X, X, X], // vpmacsdd vpmacsdqh
        0xa2..=0xa3 => [A, X, X, X], // vpcmov vpperm
        0xa6 => [A, X, X, X],        // vpmadcsswd
        0xb6 => [A, X, X, X],        // vpmadcswd
        0xc0..=0xc3 => [A, X, X, X], // vprotb vprotw vprotd vprotq
        0xcc..=0xcf => [A, X, X, X], // vpcomltb vpcomltw vpcomltd vpcomltq
        0xec..=0xef => [A, X, X, X], // vpcomltub vpcomltuw vpcomltud vpcomltuq
        _ => [X; 4],
    }
}

/// XOP map 9: validity masks (see [`A`]).
fn valid_xop9(op: u8) -> [u16; 4] {
    match op {
        0x01 => [0xfefe, X, X, X], // blcfill blsfill blcs tzmsk blcic blsic t1mskc
        0x02 => [0x4242, X, X, X], // blcmsk blci
        0x12 => [0x0300, X, X, X], // llwpcb slwpcb
        0x80..=0x83 => [A, X, X, X], // vfrczps vfrczpd vfrczss vfrczsd
        0x90..=0x9b => [A, X, X, X], // vprotb vprotw vprotd vprotq vpshlb vpshlw vpshld vpshlq v...
        0xc1..=0xc3 => [A, X, X, X], // vphaddbw vphaddbd vphaddbq
        0xc6..=0xc7 => [A, X, X, X], // vphaddwd vphaddwq
        0xcb => [A, X, X, X],      // vphadddq
        0xd1..=0xd3 => [A, X, X, X], // vphaddubw vphaddubd vphaddubq
        0xd6..=0xd7 => [A, X, X, X], // vphadduwd vphadduwq
        0xdb => [A, X, X, X],      // vphaddudq
        0xe1..=0xe3 => [A, X, X, X], // vphsubbw vphsubwd vphsubdq
        _ => [X; 4],
    }
}

/// XOP map 10: validity masks (see [`A`]).
fn valid_xop10(op: u8) -> [u16; 4] {
    match op {
        0x10 => [A, X, X, X],      // bextr
        0x12 => [0x0303, X, X, X], // lwpins lwpval
        _ => [X; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn hexb(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(core::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    fn dec(s: &str) -> Insn {
        let b = hexb(s);
        let i = decode(&b).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        assert_eq!(usize::from(i.len), b.len(), "{s}");
        // Every shorter prefix of a valid encoding is truncated.
        for n in 0..b.len() {
            assert_eq!(
                decode(&b[..n]),
                Err(DecodeError::Truncated),
                "{s} cut at {n}"
            );
        }
        // Trailing bytes do not change the decode.
        let mut more = b.clone();
        more.extend_from_slice(&[0x90; 16]);
        assert_eq!(decode(&more), Ok(i), "{s} with trailing bytes");
        i
    }

    fn invalid(s: &str) {
        let mut b = hexb(s);
        b.extend_from_slice(&[0; 16]);
        assert_eq!(decode(&b), Err(DecodeError::Invalid), "{s}");
    }

    /// Lengths checked with `objdump -D -b binary -mi386:x86-64`.
    #[test]
    fn lengths() {
        let cases = [
            "55",
            "4889e5",
            "4883ec18",
            "4881ec00010000",
            "488d6424f0",
            "c9",
            "c3",
            "c20800",
            "f3c3",
            "e800000000",
            "e9fbffffff",
            "ebfe",
            "0f8400010000",
            "67e305",
            "ff242500000000",
            "3effe0",
            "ff1500000000",
            "cd80",
            "0fb90500000000",
            "0fffc0",
            "48cf",
            "f6c101",
            "f70501000000ff000000",
            "66f7c10100",
            "c8100001",
            "a10102030405060708",
            "67a101020304",
            "48b80102030405060708",
            "66b80100",
            "b801000000",
            "0f0f40100d",
            "f30f1efa",
            "0f01ca",
            "0f01d0",
            "0f01f9",
            "f30fb8c0",
            "660f78c00102",
            "0f1f440000",
            "660f1f840000000000",
            "2e2e2e0f1f840000000000",
            "d9c0",
            "dd00",
            "c5f877",
            "c4e27d18c0",
            "62f17c48584201",
            "8fe87885c000",
            "8fe97801c8",
            "8fea78100000000000",
            "4c8b0c24",
            "8b042510000000",
            "678b00",
            "f0480fb111",
            "f0ff00",
            "660f3a0fc101",
            "0f0d08",
            "0f1800",
            "2ee800000000",
            // lkgs %ax (FRED), newer than binutils 2.40.
            "f20f00f0",
            // 14 prefixes + nop: 15 bytes, the maximum.
            "2e2e2e2e2e2e2e2e2e2e2e2e2e2e90",
            // 66 with REX.W: REX.W wins, imm32.
            "6648c7c000000000",
            // REX.W + 66 near call: unambiguous 64-bit, rel32.
            "6648e800000000",
            // mov %cr0, mod ignored: no SIB or displacement.
            "0f2004",
        ];
        for c in cases {
            dec(c);
        }
    }

    #[test]
    fn invalid_encodings() {
        for s in [
            "06",
            "07",
            "0e",
            "16",
            "17",
            "1e",
            "1f",
            "27",
            "2f",
            "37",
            "3f",
            "60",
            "61",
            "82c001",
            "9a",
            "ce",
            "d4",
            "d5",
            "d6",
            "ea",
            "0f04",
            "0f0a",
            "0f24c0",
            "0f36",
            "0f7ac0",
            "0fb8c0", // jmpe
            "8dc0",   // lea with a register
            "fed0",
            "fff8",
            "ffd8", // far call needs memory
            "8fc8c0",
            "c6c900",
            "c7c900000000",
            "8cf0",
            "8ec8", // mov to cs
            "d9d8",
            "d9d1",
            "0f0f0000", // bad 3DNow! suffix
            "484890",   // REX before REX
            "486690",   // REX before a legacy prefix
            "66e800000000",
            "66e9000000",
            "66eb00",
            "667000",
            "66c3",
            "66c20000",
            "66ffd0",
            "66ffe0",
            "660f8400000000",
            "66c5f877", // prefix before VEX
            "48c5f877",
            "f0c5f877",
            "f090",           // lock on nop
            "f089c0",         // lock with a register destination
            "c4e07877",       // VEX map 0
            "62f1780877c0",   // EVEX with P1 bit 2 clear
            "8fe8790000",     // XOP with pp != 0
            "0f1a0500000000", // bndldx RIP-relative
        ] {
            invalid(s);
        }
        // 16 bytes of prefixes.
        invalid("2e2e2e2e2e2e2e2e2e2e2e2e2e2e2e90");
        // 15 prefixes: too long before the opcode is even seen.
        assert_eq!(decode(&[0x66; 15]), Err(DecodeError::Invalid));
        assert_eq!(decode(&[0x66; 14]), Err(DecodeError::Truncated));
        assert_eq!(decode(&[]), Err(DecodeError::Truncated));
    }

    #[test]
    fn fields() {
        let i = dec("4883ec18");
        assert_eq!(
            (i.map, i.opcode, i.rex, i.imm, i.imm_size),
            (Map::Primary, 0x83, 0x48, 0x18, 1)
        );
        assert_eq!(
            i.modrm,
            Some(ModRm {
                mode: 3,
                reg: 5,
                rm: RSP
            })
        );
        assert_eq!(i.operand_size(), 8);

        // and $-16,%rsp: imm8 sign-extended.
        assert_eq!(dec("4883e4f0").imm, -16);
        // push $-1 (68): sign-extended; mov $-1,%eax: zero-extended result.
        assert_eq!(dec("68ffffffff").imm, -1);
        assert_eq!(dec("b8ffffffff").imm, 0xffff_ffff);
        assert_eq!(dec("48c7c0ffffffff").imm, -1);
        assert_eq!(dec("6a80").imm, -128);
        assert_eq!(dec("48b80102030405060708").imm, 0x0807_0605_0403_0201);
        assert_eq!(dec("48b80102030405060708").imm_size, 8);
        let e = dec("c8100001");
        assert_eq!((e.imm, e.imm2, e.imm_size), (0x10, 1, 3));
        let m = dec("a10102030405060708");
        assert_eq!(
            (m.imm, m.imm_size, m.modrm, m.disp),
            (0x0807_0605_0403_0201, 8, None, 0)
        );
        let x = dec("660f78c00102");
        assert_eq!((x.imm, x.imm2, x.imm_size), (1, 2, 2));

        // lea -0x10(%rsp),%rsp: SIB with base rsp, no index.
        let l = dec("488d6424f0");
        assert_eq!(
            l.sib,
            Some(Sib {
                scale: 1,
                index: 4,
                base: RSP
            })
        );
        assert_eq!((l.disp, l.disp_size), (-16, 1));
        let mem = l.mem().unwrap();
        assert_eq!(
            (mem.base, mem.index, mem.disp, mem.rip),
            (Some(RSP), None, -16, false)
        );

        // mov (%rsp),%r9: REX.R on reg, SIB base rsp.
        let r = dec("4c8b0c24");
        assert_eq!(r.modrm.unwrap().reg, 9);
        assert_eq!(r.mem().unwrap().base, Some(RSP));
        // mov 0x10,%eax: SIB without base or index.
        let a = dec("8b042510000000");
        assert_eq!(a.mem().unwrap().base, None);
        assert_eq!(a.mem().unwrap().index, None);
        assert_eq!(a.disp, 0x10);
        // RIP-relative, also with REX.B (r13 is not a base here).
        assert!(dec("8b0500000000").is_rip_relative());
        assert!(dec("418b0500000000").is_rip_relative());
        assert!(dec("418b4500").mem().unwrap().base == Some(13));
        // mov (%r12,%r12,8),%eax: REX.X index 12 is an index.
        let s = dec("438b04e4");
        assert_eq!(s.mem().unwrap().index, Some(12));
        assert_eq!(s.mem().unwrap().scale, 8);
        // addr32.
        assert!(dec("678b00").mem().unwrap().addr32);
        // fs: segment.
        assert_eq!(
            dec("64488b042528000000").mem().unwrap().seg,
            Some(Segment::Fs)
        );
        // mov %cr0: reported as a register form.
        assert_eq!(dec("0f2004").modrm.unwrap().mode, 3);

        // Prefix bookkeeping: last F2/F3 wins.
        let p = dec("f2f30f10c0").prefixes;
        assert!(p.has(Prefixes::REP) && p.has(Prefixes::REPNE));
        assert_eq!((p.last_rep(), p.mandatory()), (0xf3, 2));
        assert_eq!(dec("2e3e90").prefixes.segment(), Some(Segment::Ds));

        // VEX/EVEX/XOP fields.
        let v = dec("c4e27d18c0");
        assert!(v.vex);
        assert_eq!(v.map, Map::Map0F38);
        let vi = v.vex_info.unwrap();
        assert_eq!(
            (vi.kind, vi.l, vi.pp, vi.vvvv, vi.w),
            (VexKind::Vex3, 1, 1, 0, false)
        );
        let ev = dec("62f17c48584201");
        let evi = ev.vex_info.unwrap();
        assert_eq!(
            (evi.kind, evi.l, ev.disp, ev.disp_size),
            (VexKind::Evex, 2, 1, 1)
        );
        assert_eq!(ev.imm_size, 0);
        assert_eq!(dec("8fea78100000000000").imm_size, 4);
        assert_eq!(dec("8fea78100000000000").map, Map::Xop10);
        // andn %rax,%rbx,%rcx: VEX.W gives a 64-bit operand.
        assert_eq!(dec("c4e2e0f2c8").operand_size(), 8);
    }

    #[test]
    fn operand_sizes() {
        assert_eq!(dec("55").operand_size(), 8);
        assert_eq!(dec("6655").operand_size(), 2);
        assert_eq!(dec("ff30").operand_size(), 8); // push (%rax)
        assert_eq!(dec("8f00").operand_size(), 8); // pop (%rax)
        assert_eq!(dec("9c").operand_size(), 8);
        assert_eq!(dec("c3").operand_size(), 8);
        assert_eq!(dec("89c0").operand_size(), 4);
        assert_eq!(dec("6689c0").operand_size(), 2);
        assert_eq!(dec("4889c0").operand_size(), 8);
        assert!(dec("88c0").is_byte_op());
        assert!(dec("c60000").is_byte_op());
        assert!(!dec("89c0").is_byte_op());
        assert!(dec("0f94c0").is_byte_op());
    }

    #[test]
    fn flows() {
        let ip = 0xffff_ffff_8100_0000u64;
        let f = |s: &str| dec(s).flow();
        let t = |s: &str| dec(s).branch_target(ip);
        assert_eq!(f("c3"), Flow::Ret);
        assert_eq!(f("f3c3"), Flow::Ret);
        assert_eq!(f("c20800"), Flow::Ret);
        assert_eq!(f("e800000000"), Flow::Call);
        assert_eq!(t("e800000000"), Some(ip + 5));
        assert_eq!(f("e9fbffffff"), Flow::Jump);
        assert_eq!(t("e9fbffffff"), Some(ip));
        assert_eq!(t("ebfe"), Some(ip));
        assert_eq!(f("7405"), Flow::CondJump);
        assert_eq!(t("7405"), Some(ip + 7));
        assert_eq!(t("0f8400010000"), Some(ip + 6 + 0x100));
        assert_eq!(f("e2fe"), Flow::CondJump);
        assert_eq!(f("e305"), Flow::CondJump);
        assert_eq!(f("c7f800000000"), Flow::CondJump); // xbegin
        assert_eq!(t("c7f800000000"), Some(ip + 6));
        assert_eq!(f("ffd0"), Flow::IndirectCall);
        assert_eq!(f("41ffd3"), Flow::IndirectCall);
        assert_eq!(f("ff1500000000"), Flow::IndirectCall);
        assert_eq!(t("ff1500000000"), None);
        assert_eq!(f("ff242500000000"), Flow::IndirectJump);
        assert_eq!(f("3effe0"), Flow::IndirectJump);
        assert_eq!(f("ff18"), Flow::Other); // lcall
        assert_eq!(f("ff28"), Flow::Other); // ljmp
        assert_eq!(f("cc"), Flow::Int3);
        assert_eq!(f("cd80"), Flow::Other);
        assert_eq!(f("f1"), Flow::Other);
        assert_eq!(f("0f0b"), Flow::Ud2);
        assert_eq!(f("0fb9c0"), Flow::Ud2);
        assert_eq!(f("0fffc0"), Flow::Ud2);
        assert_eq!(f("f4"), Flow::Halt);
        assert_eq!(f("48cf"), Flow::Other);
        assert_eq!(f("cb"), Flow::Other);
        assert_eq!(f("0f05"), Flow::Other);
        assert_eq!(f("480f07"), Flow::Other);
        assert_eq!(f("0f01c2"), Flow::Other); // vmlaunch
        assert_eq!(f("0f01c3"), Flow::Other); // vmresume
        assert_eq!(f("f30f01ca"), Flow::Other); // eretu
        assert_eq!(f("0f01ca"), Flow::Next); // clac
        assert_eq!(f("0f01c1"), Flow::Next); // vmcall
        assert_eq!(f("4889e5"), Flow::Next);
        assert_eq!(dec("2ee800000000").flow(), Flow::Call);
        // Targets wrap instead of overflowing.
        assert_eq!(dec("ebfe").branch_target(u64::MAX - 1), Some(u64::MAX - 1));
        assert_eq!(dec("eb00").branch_target(u64::MAX - 1), Some(0));
    }

    /// Random bytes never panic, and a decoded length fits in the input and
    /// in 15 bytes.
    #[test]
    fn random_bytes() {
        let mut s: u64 = 0x1234_5678_9abc_def1;
        let mut buf = [0u8; 20];
        let mut ok = 0;
        for _ in 0..200_000 {
            for b in buf.iter_mut() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                *b = s as u8;
            }
            let n = (s >> 40) as usize % buf.len();
            if let Ok(i) = decode(&buf[..n]) {
                assert!(usize::from(i.len) <= n.min(MAX_INSN_LEN));
                let _ = (i.flow(), i.branch_target(s), i.mem(), i.operand_size());
                ok += 1;
            }
        }
        assert!(ok > 50_000);
    }
}
