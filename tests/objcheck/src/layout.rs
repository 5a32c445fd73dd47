//! `objcheck layout`: runs `ksw_core::layout::analyze` on every function of
//! an ELF file and, for a linked vmlinux, checks what it says against the
//! kernel's ORC unwind table, which objtool generated from the same code by
//! following the stack pointer independently.
//!
//! Checked at every instruction the analysis reached where ORC's type is
//! CALL: ORC's CFA rule `CFA = sp + n` must be the analysis' `sp = CFA - n`,
//! and `CFA = bp + n` its `bp = CFA - n`. ORC's other types (UNDEFINED:
//! code objtool did not visit or was told not to follow; REGS and
//! REGS_PARTIAL: entry code; END_OF_STACK) are counted apart.
//!
//! Release points are checked for the slot at the default probe point's
//! stack pointer (the bottom of the frame), the canary's slot and the
//! return address (`CFA-8`): each point must be where ORC's stack pointer
//! moves from at or below the slot to above it (sound), and every such
//! move, and every way out with the slot still live, must be a point
//! (complete). ORC's stack pointer after an instruction is ORC's entry at
//! the next instruction when the instruction falls through, `sp + 8 + n`
//! after `ret n`, and unchanged after a jump. Independently of ORC, a path
//! check follows the analysis' reached instructions from where each slot
//! is set up and requires every way out reached with the slot live to be
//! a release point.
//!
//! Rejections are counted by `LayoutError` variant and, for functions ORC
//! shows as plain compiler output (false rejections), by cause, found from
//! the image's other tables: jump labels (`__jump_table`), jump tables,
//! alternatives (`.altinstructions`, `.altinstr_aux`) and exception
//! fixups (`__ex_table`). Instructions ORC shows objtool followed but the
//! analysis did not reach are counted by the same causes.
//!
//! Relocatable files (.ko) have no linked ORC table: only the analysis'
//! outcomes are reported. Their calls and jumps to other symbols are
//! relocated first (PC32/PLT32), so that a tail call leaves the function
//! as it does in the loaded module.

use crate::objdump;
use crate::orc::{self, OrcEntry, OrcTable};
use ksw_core::insn::{self, Flow};
use ksw_core::layout::{
    self, Entry, Layout, LayoutError, Regs, Rel, ReleaseKind, ReleasePoint, SpEffect,
};
use object::{
    Object, ObjectKind, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget,
    SectionFlags, SectionIndex, SymbolKind, SymbolSection,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Release points one watch can probe (`MAX_RELEASE_POINTS` in
/// `kmod/kstackwatch/watch.rs`).
pub const MAX_RELEASE_POINTS: usize = 32;

/// The slots whose release points are checked.
pub const SLOTS: [&str; 3] = ["prologue-end sp", "canary", "return address"];

/// Options of `objcheck layout`.
#[derive(Clone, Debug)]
pub struct Options {
    pub objdump: String,
    /// Examples to print per list (mismatches, contradictions).
    pub examples: usize,
    /// Worker threads (0: one per CPU).
    pub threads: usize,
    /// Extend each function to the next symbol, as kallsyms sizes it (the
    /// module reads that many bytes), instead of the ELF symbol size.
    pub kallsyms_size: bool,
    /// List every rejected function.
    pub list_rejected: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            objdump: "objdump".into(),
            examples: crate::check::MAX_EXAMPLES,
            threads: 0,
            kallsyms_size: false,
            list_rejected: false,
        }
    }
}

struct Section {
    addr: u64,
    data: Vec<u8>,
}

#[derive(Clone, Debug)]
struct Func {
    sec: usize,
    addr: u64,
    size: u64,
    name: String,
}

/// The functions of one file, their code and its ORC table.
struct Image {
    sections: Vec<Section>,
    funcs: Vec<Func>,
    orc: Option<OrcTable>,
    relocatable: bool,
    relocations: u64,
    extras: Extras,
}

/// Other tables of a linked kernel image, to explain rejections and
/// disagreements: jump labels, alternatives, and data (jump tables).
#[derive(Default)]
struct Extras {
    /// Jump label sites (`__jump_table`): code address to target.
    labels: HashMap<u64, u64>,
    /// Original instructions of alternatives (`.altinstructions`):
    /// `[start, end)`, sorted.
    alts: Vec<(u64, u64)>,
    /// Allocated non-executable sections: address and contents.
    data: Vec<(u64, Vec<u8>)>,
    /// Executable sections by address: start, end, name.
    exec: Vec<(u64, u64, String)>,
    /// Symbols by address, for naming branch targets.
    symbols: Vec<(u64, String)>,
    /// `.altinstr_aux`: address and code (static_cpu_has() tests).
    aux: Option<(u64, Vec<u8>)>,
    /// Exception table (`__ex_table`): faulting instruction to fixup.
    extable: HashMap<u64, u64>,
}

impl Extras {
    fn read(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let k = self
            .data
            .partition_point(|(a, _)| *a <= addr)
            .checked_sub(1)?;
        let (a, d) = &self.data[k];
        let off = usize::try_from(addr - a).ok()?;
        d.get(off..off.checked_add(len)?)
    }

    fn read_u64(&self, addr: u64) -> Option<u64> {
        let b = self.read(addr, 8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// Where the static_cpu_has() test at `addr` in `.altinstr_aux`
    /// (`testb $bit,cap; jnz t_yes; jmp t_no`) branches to.
    fn aux_targets(&self, addr: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let Some((a, d)) = &self.aux else {
            return out;
        };
        let Some(mut off) = addr.checked_sub(*a).map(|o| o as usize) else {
            return out;
        };
        for _ in 0..8 {
            let Some(i) = d.get(off..).and_then(|c| insn::decode(c).ok()) else {
                break;
            };
            let ip = a + off as u64;
            match i.flow() {
                Flow::CondJump => out.extend(i.branch_target(ip)),
                Flow::Jump => {
                    out.extend(i.branch_target(ip));
                    break;
                }
                Flow::Next => {}
                _ => break,
            }
            off += usize::from(i.len);
        }
        out
    }

    /// Whether `ip` is inside (not at the start of) an alternative's
    /// original instructions.
    fn inside_alternative(&self, ip: u64) -> bool {
        let k = self.alts.partition_point(|(a, _)| *a < ip);
        self.alts[..k]
            .iter()
            .rev()
            .take(8)
            .any(|&(a, e)| a < ip && ip < e)
    }

    fn section_of(&self, addr: u64) -> Option<&str> {
        self.exec
            .iter()
            .find(|(a, e, _)| (*a..*e).contains(&addr))
            .map(|(_, _, n)| n.as_str())
    }

    fn symbol_of(&self, addr: u64) -> String {
        match self
            .symbols
            .partition_point(|(a, _)| *a <= addr)
            .checked_sub(1)
        {
            Some(k) => {
                let (a, n) = &self.symbols[k];
                format!("{n}+{:#x}", addr - a)
            }
            None => format!("{addr:#x}"),
        }
    }

    fn load(file: &object::File<'_>) -> Extras {
        let mut x = Extras::default();
        for s in file.sections() {
            let SectionFlags::Elf { sh_flags } = s.flags() else {
                continue;
            };
            let alloc = sh_flags & u64::from(object::elf::SHF_ALLOC) != 0;
            let exec = sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0;
            if !alloc || s.address() == 0 {
                continue;
            }
            if exec && s.name() == Ok(".altinstr_aux") {
                x.aux = s.data().ok().map(|d| (s.address(), d.to_vec()));
            }
            if exec {
                x.exec.push((
                    s.address(),
                    s.address() + s.size(),
                    s.name().unwrap_or("?").to_string(),
                ));
            } else if let Ok(d) = s.data() {
                if !d.is_empty() {
                    x.data.push((s.address(), d.to_vec()));
                }
            }
        }
        x.data.sort_by_key(|(a, _)| *a);
        let sym = |name: &str| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .map(|s| s.address())
        };
        if let (Some(start), Some(stop)) = (sym("__start___jump_table"), sym("__stop___jump_table"))
        {
            let mut at = start;
            while at + 16 <= stop {
                let Some(b) = x.read(at, 8) else {
                    break;
                };
                let code = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                let target = i32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                x.labels.insert(
                    at.wrapping_add_signed(i64::from(code)),
                    (at + 4).wrapping_add_signed(i64::from(target)),
                );
                at += 16;
            }
        }
        if let Some(ex) = file.section_by_name("__ex_table") {
            if let Ok(d) = ex.data() {
                // struct exception_table_entry { int insn, fixup, data; }
                for (i, e) in d.chunks_exact(12).enumerate() {
                    let at = ex.address() + 12 * i as u64;
                    let insn = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                    let fixup = i32::from_le_bytes([e[4], e[5], e[6], e[7]]);
                    x.extable.insert(
                        at.wrapping_add_signed(i64::from(insn)),
                        (at + 4).wrapping_add_signed(i64::from(fixup)),
                    );
                }
            }
        }
        if let Some(alt) = file.section_by_name(".altinstructions") {
            if let Ok(d) = alt.data() {
                // struct alt_instr: s32 instr_offset, s32 repl_offset, u32
                // ft_flags, u8 instrlen, u8 replacementlen (packed).
                for (i, e) in d.chunks_exact(14).enumerate() {
                    let at = alt.address() + 14 * i as u64;
                    let off = i32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                    let start = at.wrapping_add_signed(i64::from(off));
                    x.alts.push((start, start + u64::from(e[12])));
                }
            }
        }
        x.alts.sort_unstable();
        for s in file.symbols() {
            if matches!(s.kind(), SymbolKind::Text) && s.address() != 0 {
                x.symbols
                    .push((s.address(), s.name().unwrap_or("?").to_string()));
            }
        }
        x.symbols.sort();
        x
    }
}

impl Image {
    fn code(&self, f: &Func) -> &[u8] {
        let sec = &self.sections[f.sec];
        let start = usize::try_from(f.addr.wrapping_sub(sec.addr)).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(f.size).unwrap_or(usize::MAX));
        sec.data.get(start..end.min(sec.data.len())).unwrap_or(&[])
    }
}

/// A branch target no function reaches: where calls and jumps to other
/// sections and undefined symbols of a .ko are pointed.
const FAR: u64 = 0x4000_0000;

fn load(path: &str, kallsyms_size: bool) -> Result<Image, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{path}: {e}"))?;
    let relocatable = file.kind() == ObjectKind::Relocatable;
    let mut sections = Vec::new();
    let mut by_index: HashMap<SectionIndex, usize> = HashMap::new();
    let mut relocations = 0;
    for s in file.sections() {
        let exec = match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0,
            _ => false,
        };
        let Ok(d) = s.data() else {
            continue;
        };
        if !exec {
            continue;
        }
        let mut d = d.to_vec();
        if relocatable {
            for (at, r) in s.relocations() {
                let RelocationFlags::Elf { r_type } = r.flags() else {
                    continue;
                };
                if r_type != object::elf::R_X86_64_PC32 && r_type != object::elf::R_X86_64_PLT32 {
                    continue;
                }
                // S + A - P, with S in this section when the symbol is
                // defined here, else far away.
                let target = match r.target() {
                    RelocationTarget::Symbol(i) => file.symbol_by_index(i).ok().and_then(|sym| {
                        (sym.section_index() == Some(s.index()))
                            .then(|| sym.address().wrapping_add_signed(r.addend()))
                    }),
                    _ => None,
                }
                .unwrap_or(FAR.wrapping_add_signed(r.addend()));
                let value = target.wrapping_sub(at) as u32;
                if let Some(b) = d.get_mut(at as usize..at as usize + 4) {
                    b.copy_from_slice(&value.to_le_bytes());
                    relocations += 1;
                }
            }
        }
        by_index.insert(s.index(), sections.len());
        sections.push(Section {
            addr: s.address(),
            data: d,
        });
    }
    let mut funcs = Vec::new();
    // Every symbol's start per section, for kallsyms-like sizes.
    let mut starts: Vec<Vec<u64>> = vec![Vec::new(); sections.len()];
    for sym in file.symbols() {
        let Some(&sec) = sym.section_index().and_then(|i| by_index.get(&i)) else {
            continue;
        };
        if !matches!(sym.kind(), SymbolKind::Section | SymbolKind::File)
            && !sym.name().unwrap_or("").starts_with(".L")
        {
            starts[sec].push(sym.address());
        }
        if sym.kind() != SymbolKind::Text || sym.size() == 0 {
            continue;
        }
        if !matches!(sym.section(), SymbolSection::Section(_)) {
            continue;
        }
        funcs.push(Func {
            sec,
            addr: sym.address(),
            size: sym.size(),
            name: sym.name().unwrap_or("?").to_string(),
        });
    }
    funcs.sort_by(|a, b| (a.sec, a.addr, a.size, &a.name).cmp(&(b.sec, b.addr, b.size, &b.name)));
    // Aliases (same place, same size) are one function.
    funcs.dedup_by(|a, b| a.sec == b.sec && a.addr == b.addr && a.size == b.size);
    if kallsyms_size {
        for s in &mut starts {
            s.sort_unstable();
            s.dedup();
        }
        for f in &mut funcs {
            let sec = &sections[f.sec];
            let end = sec.addr + sec.data.len() as u64;
            let s = &starts[f.sec];
            let next = s
                .get(s.partition_point(|&a| a <= f.addr))
                .copied()
                .unwrap_or(end);
            f.size = f.size.max(next.min(end).saturating_sub(f.addr));
        }
    }
    let orc = if relocatable {
        None
    } else {
        OrcTable::from_elf(&file).map_err(|e| format!("{path}: {e}"))?
    };
    let extras = if relocatable {
        Extras::default()
    } else {
        Extras::load(&file)
    };
    Ok(Image {
        sections,
        funcs,
        orc,
        relocatable,
        relocations,
        extras,
    })
}

/// `objcheck orc-dump`: the ORC table as stored, in `objtool --dump=orc`'s
/// format (to diff the parser against objtool).
pub fn dump_orc(path: &str, out: &mut impl std::io::Write) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{path}: {e}"))?;
    let (Some(ip), Some(unwind)) = (
        file.section_by_name(".orc_unwind_ip"),
        file.section_by_name(".orc_unwind"),
    ) else {
        return Err(format!("{path}: no ORC sections"));
    };
    if file.kind() == ObjectKind::Relocatable {
        return Err(format!(
            "{path}: relocatable: ORC addresses need relocations"
        ));
    }
    let raw = orc::parse_raw(
        ip.address(),
        ip.data().map_err(|e| e.to_string())?,
        unwind.data().map_err(|e| e.to_string())?,
    )?;
    for (ip, e) in raw {
        writeln!(out, "{ip:x}:{e}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// What ORC says about a function as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OrcClass {
    /// Every instruction is CALL type with the CFA from %rsp or %rbp, the
    /// entry at `sp+8`: a plain compiler-generated function.
    Ordinary,
    /// As above, with instructions objtool did not visit (UNDEFINED):
    /// unreachable code such as padding after a call that does not return.
    OrdinaryWithDead,
    /// UNDEFINED at the entry: objtool did not follow it
    /// (STACK_FRAME_NON_STANDARD, an UNWIND_HINT_UNDEFINED) or it is dead.
    Undefined,
    /// REGS or REGS_PARTIAL somewhere: entry code.
    Regs,
    /// END_OF_STACK somewhere.
    EndOfStack,
    /// CALL with the CFA from another base (R10, R13, DI, DX, indirect), or
    /// the entry not at sp+8.
    OtherBase,
    /// No ORC data (relocatable file, or not covered).
    None,
}

impl OrcClass {
    fn name(self) -> &'static str {
        match self {
            OrcClass::Ordinary => "ordinary (all CALL, sp/bp based)",
            OrcClass::OrdinaryWithDead => "ordinary with unvisited code (CALL + UNDEFINED)",
            OrcClass::Undefined => "UNDEFINED at entry (non-standard/unvisited)",
            OrcClass::Regs => "REGS/REGS_PARTIAL (entry code)",
            OrcClass::EndOfStack => "END_OF_STACK",
            OrcClass::OtherBase => "other CFA base or entry not sp+8",
            OrcClass::None => "no ORC",
        }
    }

    fn ordinary(self) -> bool {
        matches!(self, OrcClass::Ordinary | OrcClass::OrdinaryWithDead)
    }
}

fn classify(orc: Option<&OrcTable>, addr: u64, size: u64) -> OrcClass {
    let Some(orc) = orc else {
        return OrcClass::None;
    };
    let Some(first) = orc.lookup(addr) else {
        return OrcClass::None;
    };
    if first.kind == orc::TYPE_UNDEFINED {
        return OrcClass::Undefined;
    }
    let mut class = OrcClass::Ordinary;
    if first.kind == orc::TYPE_CALL && first.sp_rel() != Some(-8) {
        class = OrcClass::OtherBase;
    }
    for (_, e) in orc.covering(addr, addr + size) {
        let c = match e.kind {
            orc::TYPE_CALL if matches!(e.sp_reg, orc::REG_SP | orc::REG_BP) => OrcClass::Ordinary,
            orc::TYPE_CALL => OrcClass::OtherBase,
            orc::TYPE_UNDEFINED => OrcClass::OrdinaryWithDead,
            orc::TYPE_END_OF_STACK => OrcClass::EndOfStack,
            _ => OrcClass::Regs,
        };
        class = class.max(c);
    }
    class
}

/// One instruction of an analysed function.
#[derive(Clone, Copy, Debug)]
struct Ins {
    off: u32,
    flow: Flow,
    /// `ret imm16`: the imm16.
    ret_imm: i32,
    /// Leaves the function: a return, an indirect jump, or a direct jump
    /// outside it.
    leaves: bool,
    reached: bool,
    /// ORC before the instruction.
    orc: Option<OrcEntry>,
    /// A direct branch's target inside the function.
    target: Option<u32>,
}

impl Ins {
    /// Falls through to the next instruction without a call in between
    /// (calls do not move the stack pointer, but the next instruction may
    /// not be their continuation when they do not return).
    fn plain_fall(&self) -> bool {
        matches!(self.flow, Flow::Next | Flow::CondJump)
    }
}

/// Something worth showing, with the function it is in.
#[derive(Clone, Debug)]
pub struct Note {
    pub func: String,
    pub addr: u64,
    pub off: u32,
    pub bytes: Vec<u8>,
    pub msg: String,
}

/// Per-slot release point statistics.
#[derive(Clone, Debug, Default)]
pub struct ReleaseStats {
    /// Functions the slot was computed for.
    pub slots: u64,
    pub points: u64,
    pub releases: u64,
    pub exits: u64,
    pub too_many: u64,
    pub too_many_examples: Vec<String>,
    /// Errors other than TooManyReleasePoints (must be none).
    pub errors: u64,
    /// Slots not relative to the CFA (realigned stack): not checkable.
    pub realigned_slots: u64,
    pub confirmed: u64,
    /// ORC does not give %rsp relative to the CFA on one side (%rbp-based
    /// entry, other type) or the slot is realigned.
    pub unchecked: u64,
    pub contradicted: u64,
    /// Moves of ORC's stack pointer over the slot, and ways out with the
    /// slot live, that the analysis had to report.
    pub expected: u64,
    /// Of those, not reported.
    pub missed: u64,
    /// Moves of ORC's sp over the slot in code objtool visited but the
    /// analysis did not reach (no point can be reported there; not counted
    /// as failures).
    pub unreached_moves: u64,
    /// Path check (no ORC): ways out reached with the slot possibly live
    /// since it was set up, and of those, not release points.
    pub path_after: u64,
    pub path_exits: u64,
    pub path_violations: u64,
}

impl ReleaseStats {
    fn add(&mut self, o: &ReleaseStats) {
        self.slots += o.slots;
        self.points += o.points;
        self.releases += o.releases;
        self.exits += o.exits;
        self.too_many += o.too_many;
        for x in &o.too_many_examples {
            if self.too_many_examples.len() < 3 {
                self.too_many_examples.push(x.clone());
            }
        }
        self.errors += o.errors;
        self.realigned_slots += o.realigned_slots;
        self.confirmed += o.confirmed;
        self.unchecked += o.unchecked;
        self.contradicted += o.contradicted;
        self.expected += o.expected;
        self.missed += o.missed;
        self.unreached_moves += o.unreached_moves;
        self.path_after += o.path_after;
        self.path_exits += o.path_exits;
        self.path_violations += o.path_violations;
    }
}

/// Per-instruction ORC comparison counts.
#[derive(Clone, Debug, Default)]
pub struct SpStats {
    pub insns: u64,
    pub reached: u64,
    pub agree_sp: u64,
    pub agree_bp: u64,
    pub mismatches: u64,
    /// Disagreements inside an alternative's original instructions, where
    /// ORC merges the replacement's CFI by byte offset.
    pub alt_disagree: u64,
    pub orc_undefined: u64,
    pub orc_regs: u64,
    pub orc_end: u64,
    pub orc_other_base: u64,
    pub no_orc: u64,
    /// Instructions of analysed functions that objtool visited (ORC CALL)
    /// but the analysis did not reach.
    pub unreached_visited: u64,
    /// Of those, instructions where ORC's sp moves up at the fall-through:
    /// release points the analysis cannot report.
    pub unreached_raise: u64,
}

impl SpStats {
    fn add(&mut self, o: &SpStats) {
        self.insns += o.insns;
        self.reached += o.reached;
        self.agree_sp += o.agree_sp;
        self.agree_bp += o.agree_bp;
        self.mismatches += o.mismatches;
        self.alt_disagree += o.alt_disagree;
        self.orc_undefined += o.orc_undefined;
        self.orc_regs += o.orc_regs;
        self.orc_end += o.orc_end;
        self.orc_other_base += o.orc_other_base;
        self.no_orc += o.no_orc;
        self.unreached_visited += o.unreached_visited;
        self.unreached_raise += o.unreached_raise;
    }
}

/// The outcome for one function.
#[derive(Debug)]
struct FuncResult {
    class: OrcClass,
    outcome: Result<Analysed, LayoutError>,
    sp: SpStats,
    release: [ReleaseStats; 3],
    /// Instructions where ORC contradicts the analysis' registers.
    mismatches: Vec<Note>,
    /// Disagreements inside alternatives.
    alt_notes: Vec<Note>,
    /// For a rejected ORC-ordinary function: why, as far as the image tells.
    cause: Option<String>,
    /// Release points ORC contradicts, and moves ORC shows that are not
    /// release points.
    release_notes: Vec<Note>,
    /// ORC-UNDEFINED instructions the analysis reached (first few).
    undefined_notes: Vec<Note>,
    /// Why instructions objtool visited were not reached: cause, count,
    /// first example.
    unreached: Vec<(&'static str, u64, Note)>,
    /// Unreached instructions where ORC's sp moves up, with their cause.
    unreached_raise: Vec<Note>,
    /// Moves over a watched slot in unreached code.
    unreached_moves: Vec<Note>,
    /// prologue_end() chose a push of a stack argument.
    prologue_args: Option<Note>,
    time: Duration,
}

#[derive(Clone, Copy, Debug)]
struct Analysed {
    exits: u32,
    prologue_end: bool,
    canary: bool,
    realigned: bool,
}

/// Totals over a file.
#[derive(Debug, Default)]
pub struct Summary {
    pub functions: u64,
    pub analysed: u64,
    pub exits: u64,
    pub no_exit: u64,
    pub prologue_end: u64,
    pub canary: u64,
    pub realigned: u64,
    pub rejected: u64,
    /// Rejections by variant: count, ORC-ordinary count, examples, ordinary
    /// examples.
    pub rejections: BTreeMap<String, Rejections>,
    pub classes_analysed: BTreeMap<OrcClass, u64>,
    pub classes_rejected: BTreeMap<OrcClass, u64>,
    pub sp: SpStats,
    pub release: [ReleaseStats; 3],
    pub mismatches: Vec<Note>,
    pub mismatch_functions: u64,
    pub alt_notes: Vec<Note>,
    /// Rejections of ORC-ordinary functions (all rejections for a
    /// relocatable file) by cause.
    pub causes: BTreeMap<String, (u64, Vec<Note>)>,
    /// Every rejected function (with `Options::list_rejected`).
    pub rejected_list: Vec<Note>,
    pub release_notes: Vec<Note>,
    pub release_note_count: u64,
    pub undefined_notes: Vec<Note>,
    pub undefined_functions: u64,
    /// Instructions objtool visited that the analysis did not reach, by
    /// cause: instructions, functions, examples.
    pub unreached: BTreeMap<&'static str, (u64, u64, Vec<Note>)>,
    pub unreached_raise: Vec<Note>,
    pub unreached_moves: Vec<Note>,
    /// Functions whose prologue_end() is a push of an outgoing stack
    /// argument (its slot dies right after the first call).
    pub prologue_args: u64,
    pub prologue_args_examples: Vec<Note>,
    pub orc_entries: usize,
    pub orc_sorted: bool,
    pub relocatable: bool,
    pub relocations: u64,
    pub slowest: Vec<(Duration, String, u64)>,
    pub analysis_time: Duration,
    pub wall: Duration,
}

#[derive(Debug, Default)]
pub struct Rejections {
    pub count: u64,
    pub ordinary: u64,
    pub examples: Vec<Note>,
}

impl Summary {
    /// Whether ORC contradicted anything (exit status 1).
    pub fn failed(&self) -> bool {
        self.sp.mismatches > 0
            || self.release.iter().any(|r| {
                r.contradicted > 0 || r.missed > 0 || r.errors > 0 || r.path_violations > 0
            })
    }
}

fn variant(e: &LayoutError) -> String {
    let s = format!("{e:?}");
    s.split([' ', '{', '(']).next().unwrap_or("").to_string()
}

fn error_off(e: &LayoutError) -> Option<u32> {
    match *e {
        LayoutError::Undecodable { off }
        | LayoutError::BranchIntoInstruction { off }
        | LayoutError::UnknownStackPointer { off }
        | LayoutError::InconsistentStack { off }
        | LayoutError::ExitWithFrame { off }
        | LayoutError::IndirectJump { off }
        | LayoutError::PatchedText { off }
        | LayoutError::SplitPart { off, .. }
        | LayoutError::UnsupportedFlow { off }
        | LayoutError::FallsOffEnd { off }
        | LayoutError::UnreachedExit { off }
        | LayoutError::NotInstructionStart { off }
        | LayoutError::Unreached { off }
        | LayoutError::ProbeOnBranch { off } => Some(off),
        LayoutError::TooLarge { .. } | LayoutError::TooManyReleasePoints { .. } => None,
    }
}

fn insn_bytes(code: &[u8], off: u32) -> Vec<u8> {
    let at = code.get(off as usize..).unwrap_or(&[]);
    let len = insn::decode(at).map_or(at.len().min(8), |i| usize::from(i.len));
    at[..len].to_vec()
}

fn regs_str(r: Option<Regs>) -> String {
    match r {
        Some(r) => format!("sp={} bp={}", r.sp, r.bp),
        None => "unreached".into(),
    }
}

fn orc_str(e: Option<OrcEntry>) -> String {
    e.map_or_else(|| "none".into(), |e| e.to_string())
}

/// Jump label sites go both ways.
const VIA_LABELS: u8 = 1;
/// Jump tables (`jmp *table(,%reg,8)`) go to their entries, read from the
/// image while they point into the function.
const VIA_TABLES: u8 = 2;
/// A `jmp` into `.altinstr_aux` (static_cpu_has()) goes where the test
/// there branches, and falls through (the alternative patched to nops);
/// the original instructions of any alternative also go to their end (a
/// replacement that falls through).
const VIA_ALTERNATIVES: u8 = 4;
/// An instruction in the exception table also goes to its fixup.
const VIA_EXTABLE: u8 = 8;
/// `hlt` falls through (it resumes after an interrupt).
const VIA_HLT: u8 = 16;

/// Which instructions control flow alone reaches from the entry (no stack
/// tracking): fall-through (calls and ud2 taken to return), direct
/// branches inside the function, and the edges `via` adds (`VIA_*`).
/// Returns each instruction's offset and whether it is reached.
fn flow_reach(x: &Extras, code: &[u8], addr: u64, via: u8) -> Vec<(u32, bool)> {
    let labels = via & VIA_LABELS != 0;
    let tables = via & VIA_TABLES != 0;
    let alternatives = via & VIA_ALTERNATIVES != 0;
    let mut insns: Vec<(u32, Option<insn::Insn>)> = Vec::new();
    let mut off = 0usize;
    while off < code.len() {
        let i = insn::decode(&code[off..]).ok();
        insns.push((off as u32, i));
        off += i.map_or(1, |i| usize::from(i.len));
    }
    let index = |t: u64| -> Option<usize> {
        let t = u32::try_from(t).ok()?;
        insns.binary_search_by_key(&t, |(o, _)| *o).ok()
    };
    let mut reached = vec![false; insns.len()];
    let mut work = vec![0usize];
    while let Some(k) = work.pop() {
        if k >= insns.len() || reached[k] {
            continue;
        }
        reached[k] = true;
        let (off, Some(i)) = insns[k] else {
            continue;
        };
        let ip = addr + u64::from(off);
        let mut next: Vec<usize> = Vec::new();
        let inside = |t: u64| t.checked_sub(addr).filter(|&t| t < code.len() as u64);
        match i.flow() {
            Flow::Next | Flow::Call | Flow::IndirectCall | Flow::Ud2 => next.push(k + 1),
            Flow::CondJump => {
                next.push(k + 1);
                if let Some(t) = i.branch_target(ip).and_then(inside).and_then(index) {
                    next.push(t);
                }
            }
            Flow::Jump => {
                let t = i.branch_target(ip);
                if let Some(t) = t.and_then(inside).and_then(index) {
                    next.push(t);
                } else if let Some(t) = t.filter(|_| alternatives) {
                    let back = x.aux_targets(t);
                    if !back.is_empty() {
                        next.push(k + 1);
                        next.extend(back.into_iter().filter_map(inside).filter_map(index));
                    }
                }
            }
            Flow::IndirectJump if tables => {
                if let Some(m) = i.mem().filter(|m| m.base.is_none() && m.index.is_some()) {
                    let table = i64::from(m.disp) as u64;
                    for n in 0..4096u64 {
                        match x.read_u64(table + 8 * n).and_then(inside).and_then(index) {
                            Some(t) => next.push(t),
                            None => break,
                        }
                    }
                }
            }
            Flow::Halt if via & VIA_HLT != 0 => next.push(k + 1),
            _ => {}
        }
        if alternatives {
            // An alternative's original instructions, replaced at boot by
            // a replacement that may fall through to their end (e.g. "").
            let k = x.alts.partition_point(|(a, _)| *a < ip);
            for &(_, e) in x.alts[k..].iter().take_while(|(a, _)| *a == ip) {
                if let Some(t) = inside(e).and_then(index) {
                    next.push(t);
                }
            }
        }
        if via & VIA_EXTABLE != 0 {
            if let Some(t) = x.extable.get(&ip).and_then(|&t| inside(t)).and_then(index) {
                next.push(t);
            }
        }
        if labels {
            if let Some(&t) = x.labels.get(&ip) {
                next.push(k + 1);
                if let Some(t) = inside(t).and_then(index) {
                    next.push(t);
                }
            }
        }
        work.extend(next);
    }
    insns
        .iter()
        .zip(reached)
        .map(|((o, _), r)| (*o, r))
        .collect()
}

/// Whether the function has a jump-table jump (`jmp *table(,%reg,8)`).
fn has_jump_table(code: &[u8]) -> bool {
    let mut off = 0;
    while off < code.len() {
        let Ok(i) = insn::decode(&code[off..]) else {
            return false;
        };
        if i.flow() == Flow::IndirectJump
            && i.mem()
                .is_some_and(|m| m.base.is_none() && m.index.is_some())
        {
            return true;
        }
        off += usize::from(i.len);
    }
    false
}

/// Each instruction's offset and whether it is reached.
type Reach = Vec<(u32, bool)>;

/// Why control reaches an instruction the analysis did not reach: the
/// first of the `VIA_*` edge kinds that reaches it.
struct ReachCauses {
    by: Vec<(u8, &'static str, Reach)>,
}

impl ReachCauses {
    const KINDS: [(u8, &'static str); 7] = [
        (0, "reachable by plain control flow"),
        (VIA_LABELS, "behind a jump label (static branch)"),
        (VIA_TABLES, "behind a jump table taken for a tail call"),
        (
            VIA_ALTERNATIVES,
            "behind an alternative (static_cpu_has() jmp into .altinstr_aux, or an original jmp patched out at boot)",
        ),
        (VIA_EXTABLE, "an exception fixup (reached through __ex_table)"),
        (VIA_HLT, "after hlt (which the analysis takes as the end of the path)"),
        (0xff, "behind a combination of the above"),
    ];

    fn new(x: &Extras, code: &[u8], addr: u64) -> ReachCauses {
        ReachCauses {
            by: Self::KINDS
                .iter()
                .map(|&(via, what)| (via, what, flow_reach(x, code, addr, via)))
                .collect(),
        }
    }

    fn of(&self, off: u32) -> &'static str {
        self.by
            .iter()
            .find(|(_, _, r)| r.binary_search_by_key(&off, |(o, _)| *o).is_ok_and(|k| r[k].1))
            .map_or(
                "not reachable by flow, jump labels, jump tables, alternatives, exception fixups or hlt",
                |(_, w, _)| w,
            )
    }
}

/// Why a function was rejected, as far as the image tells: a class name
/// for the histogram of rejections of ORC-ordinary functions.
fn cause(img: &Image, f: &Func, code: &[u8], e: &LayoutError) -> String {
    let x = &img.extras;
    let at = |off: u32| -> Option<insn::Insn> { insn::decode(code.get(off as usize..)?).ok() };
    let reached = |off: u32, via: u8| {
        flow_reach(x, code, f.addr, via)
            .iter()
            .any(|&(o, r)| o == off && r)
    };
    let orc_undefined = |off: u32| {
        img.orc
            .as_ref()
            .and_then(|o| o.lookup(f.addr + u64::from(off)))
            .is_some_and(|e| e.kind == orc::TYPE_UNDEFINED)
    };
    match *e {
        LayoutError::IndirectJump { off } => match at(off).and_then(|i| i.mem()) {
            Some(m) if m.base.is_none() && m.index.is_some() => {
                "jump table (jmp *table(,%reg,8)) with the frame live".into()
            }
            _ => "indirect jump with the frame live".into(),
        },
        LayoutError::SplitPart { target, .. } => {
            let t = f.addr.wrapping_add(target);
            let sec = x.section_of(t).unwrap_or("?");
            let sym = x.symbol_of(t);
            if sec == ".altinstr_aux" {
                "jump into .altinstr_aux (static_cpu_has(): an unpatched alternative)".into()
            } else if sym.contains(".cold") {
                "jump to a .cold part".into()
            } else {
                format!("jump with the frame live into {sec}")
            }
        }
        LayoutError::PatchedText { off } => {
            if reached(off, 0xff) {
                "int3 reachable by control flow".into()
            } else {
                "int3 in unreachable code (padding after ret/jmp): rejected although never reached"
                    .into()
            }
        }
        LayoutError::UnknownStackPointer { off } => {
            let Some(i) = at(off) else {
                return "undecodable".into();
            };
            // mov %reg,%rsp: 89 /r with rm = rsp, or 8b /r with reg = rsp.
            let src = match (i.map, i.opcode, i.modrm) {
                (insn::Map::Primary, 0x89, Some(m)) if m.mode == 3 && m.rm == 4 => Some(m.reg),
                (insn::Map::Primary, 0x8b, Some(m)) if m.mode == 3 && m.reg == 4 => Some(m.rm),
                _ => None,
            };
            let saved = src.is_some_and(|r| {
                // an earlier mov %rsp,%reg of the same register
                let mut o = 0u32;
                while o < off {
                    let Some(j) = at(o) else { break };
                    let hit = match (j.map, j.opcode, j.modrm) {
                        (insn::Map::Primary, 0x89, Some(m)) => {
                            m.mode == 3 && m.reg == 4 && m.rm == r
                        }
                        (insn::Map::Primary, 0x8b, Some(m)) => {
                            m.mode == 3 && m.rm == 4 && m.reg == r
                        }
                        _ => false,
                    };
                    if hit && j.rex & 8 != 0 && i.rex & 8 != 0 {
                        return true;
                    }
                    o += u32::from(j.len);
                }
                false
            });
            if saved {
                "mov %reg,%rsp restoring a copy made by mov %rsp,%reg".into()
            } else {
                format!("other write to %rsp ({})", hex(&insn_bytes(code, off)))
            }
        }
        LayoutError::UnreachedExit { off }
        | LayoutError::FallsOffEnd { off }
        | LayoutError::InconsistentStack { off } => {
            let what = variant(e);
            if img.relocatable {
                return if reached(off, 0) {
                    format!("{what}: reachable by plain control flow")
                } else if has_jump_table(code) {
                    format!("{what}: not reachable by plain control flow; the function has a jump table (a .ko's tables and jump labels are not read)")
                } else {
                    format!("{what}: not reachable by plain control flow (a .ko's jump labels are not read)")
                };
            }
            if orc_undefined(off) {
                return format!("{what}: ORC UNDEFINED there (objtool did not reach it either)");
            }
            let why = ReachCauses::new(x, code, f.addr).of(off);
            format!("{what}: {why}")
        }
        _ => variant(e),
    }
}

/// Analyses one function and compares it with ORC.
fn check_func(img: &Image, f: &Func, max_notes: usize) -> FuncResult {
    let t = Instant::now();
    let code = img.code(f);
    let orc = img.orc.as_ref();
    let class = classify(orc, f.addr, f.size);
    let mut work = vec![Entry::EMPTY; code.len() + 1];
    let mut res = FuncResult {
        class,
        outcome: Err(LayoutError::TooLarge { insns: 0 }),
        sp: SpStats::default(),
        release: Default::default(),
        mismatches: Vec::new(),
        alt_notes: Vec::new(),
        cause: None,
        release_notes: Vec::new(),
        undefined_notes: Vec::new(),
        unreached: Vec::new(),
        unreached_raise: Vec::new(),
        unreached_moves: Vec::new(),
        prologue_args: None,
        time: Duration::ZERO,
    };
    let l = match layout::analyze(code, &mut work) {
        Ok(l) => l,
        Err(e) => {
            if class.ordinary() || img.relocatable {
                res.cause = Some(cause(img, f, code, &e));
            }
            res.outcome = Err(e);
            res.time = t.elapsed();
            return res;
        }
    };
    res.outcome = Ok(Analysed {
        exits: l.exits(),
        prologue_end: l.prologue_end().is_some(),
        canary: l.canary().is_some(),
        realigned: l.realign().is_some(),
    });
    let note = |off: u32, msg: String| Note {
        func: f.name.clone(),
        addr: f.addr,
        off,
        bytes: insn_bytes(code, off),
        msg,
    };

    // The instructions, as the CPU sees them from the entry.
    let mut insns = Vec::new();
    let mut off = 0u32;
    while (off as usize) < code.len() {
        let Ok(i) = insn::decode(&code[off as usize..]) else {
            break; // analyze decoded it all: cannot happen
        };
        let flow = i.flow();
        let leaves = match flow {
            Flow::Ret | Flow::IndirectJump => true,
            Flow::Jump | Flow::CondJump => i
                .branch_target(u64::from(off))
                .is_some_and(|t| t >= code.len() as u64),
            _ => false,
        };
        insns.push(Ins {
            off,
            flow,
            ret_imm: if flow == Flow::Ret && i.opcode == 0xc2 {
                i.imm as i32
            } else {
                0
            },
            leaves,
            reached: l.regs_before(off).is_some(),
            orc: orc.and_then(|o| o.lookup(f.addr + u64::from(off))),
            target: i
                .branch_target(u64::from(off))
                .filter(|&t| t < code.len() as u64)
                .map(|t| t as u32),
        });
        off += u32::from(i.len);
    }

    // Registers at every reached instruction.
    res.sp.insns = insns.len() as u64;
    for i in &insns {
        let Some(regs) = l.regs_before(i.off) else {
            continue;
        };
        res.sp.reached += 1;
        let Some(e) = i.orc else {
            res.sp.no_orc += 1;
            continue;
        };
        match e.kind {
            orc::TYPE_CALL => {
                let ok = match e.sp_reg {
                    orc::REG_SP => {
                        let ok = regs.sp == Rel::Cfa(-i32::from(e.sp_offset));
                        res.sp.agree_sp += u64::from(ok);
                        ok
                    }
                    orc::REG_BP => {
                        let ok = regs.bp == Rel::Cfa(-i32::from(e.sp_offset));
                        res.sp.agree_bp += u64::from(ok);
                        ok
                    }
                    _ => {
                        res.sp.orc_other_base += 1;
                        true
                    }
                };
                if !ok && img.extras.inside_alternative(f.addr + u64::from(i.off)) {
                    res.sp.alt_disagree += 1;
                    if res.alt_notes.len() < max_notes {
                        res.alt_notes.push(note(
                            i.off,
                            format!("ORC {e}; ours {}", regs_str(Some(regs))),
                        ));
                    }
                } else if !ok {
                    res.sp.mismatches += 1;
                    if res.mismatches.len() < max_notes {
                        res.mismatches.push(note(
                            i.off,
                            format!("ORC {e}; ours {}", regs_str(Some(regs))),
                        ));
                    }
                }
            }
            orc::TYPE_UNDEFINED => {
                res.sp.orc_undefined += 1;
                if res.undefined_notes.len() < max_notes.min(3) {
                    res.undefined_notes.push(note(
                        i.off,
                        format!("ORC {e}; ours {}", regs_str(Some(regs))),
                    ));
                }
            }
            orc::TYPE_END_OF_STACK => res.sp.orc_end += 1,
            _ => res.sp.orc_regs += 1,
        }
    }

    // Code objtool followed that the analysis did not reach.
    let mut causes: Option<ReachCauses> = None;
    for (k, i) in insns.iter().enumerate() {
        if i.reached || !i.orc.is_some_and(|e| e.is_call()) {
            continue;
        }
        res.sp.unreached_visited += 1;
        let raise = i.plain_fall()
            && matches!(
                (i.orc.and_then(|e| e.sp_rel()), insns.get(k + 1).and_then(|n| n.orc).and_then(|e| e.sp_rel())),
                (Some(b), Some(a)) if a > b
            );
        res.sp.unreached_raise += u64::from(raise);
        let c = causes
            .get_or_insert_with(|| ReachCauses::new(&img.extras, code, f.addr))
            .of(i.off);
        if raise && res.unreached_raise.len() < max_notes {
            let next = insns.get(k + 1).and_then(|n| n.orc);
            res.unreached_raise.push(note(
                i.off,
                format!("ORC {} -> {}: {c}", orc_str(i.orc), orc_str(next)),
            ));
        }
        match res.unreached.iter_mut().find(|(w, _, _)| *w == c) {
            Some((_, n, _)) => *n += 1,
            None => res
                .unreached
                .push((c, 1, note(i.off, format!("ORC {}", orc_str(i.orc))))),
        }
    }

    // Release points of three slots.
    let bottom = l
        .prologue_end()
        .and_then(|off| l.probe_site(off).ok())
        .map(|s| s.after.sp);
    let canary = l.canary().map(|c| c.slot);
    let slots = [bottom, canary, Some(Rel::Cfa(-8))];
    for (k, slot) in slots.into_iter().enumerate() {
        let Some(slot) = slot else {
            continue;
        };
        let st = &mut res.release[k];
        st.slots += 1;
        let mut buf = vec![ReleasePoint::NONE; MAX_RELEASE_POINTS];
        let points = match l.release_points(slot, &mut buf) {
            Ok(n) => buf[..n].to_vec(),
            Err(LayoutError::TooManyReleasePoints { found }) => {
                st.too_many += 1;
                if st.too_many_examples.len() < 3 {
                    st.too_many_examples
                        .push(format!("{} ({found} points, slot {slot})", f.name));
                }
                let mut buf = vec![ReleasePoint::NONE; found];
                match l.release_points(slot, &mut buf) {
                    Ok(n) => buf[..n].to_vec(),
                    Err(e) => {
                        st.errors += 1;
                        res.release_notes.push(note(
                            0,
                            format!("{}: release_points({slot}): {e:?}", SLOTS[k]),
                        ));
                        continue;
                    }
                }
            }
            Err(e) => {
                st.errors += 1;
                res.release_notes.push(note(
                    0,
                    format!("{}: release_points({slot}): {e:?}", SLOTS[k]),
                ));
                continue;
            }
        };
        let (fails, moves) = (&mut res.release_notes, &mut res.unreached_moves);
        let mut report = |off, msg: String, failure: bool| {
            let list = if failure { &mut *fails } else { &mut *moves };
            if list.len() < max_notes {
                list.push(note(off, format!("{} slot {slot}: {msg}", SLOTS[k])));
            }
        };
        check_releases(&l, &insns, slot, &points, st, &mut report, orc.is_some());
        let born = match k {
            0 => l.prologue_end(),
            1 => l.canary().map(|c| c.off),
            _ => None,
        };
        let (after, exits, bad) = path_check(&insns, born, &points);
        st.path_after += after;
        st.path_exits += exits;
        st.path_violations += bad;

        if bad > 0 && res.release_notes.len() < max_notes {
            res.release_notes.push(note(
                born.unwrap_or(0),
                format!(
                    "{} slot {slot}: {bad} way(s) out reached from +{:#x} without a release point",
                    SLOTS[k],
                    born.unwrap_or(0)
                ),
            ));
        }
        if k == 0 {
            // The frame bottom dies right after the first call: the
            // prologue's last push was an outgoing stack argument.
            let first_call = insns
                .iter()
                .enumerate()
                .filter(|(_, i)| i.reached && matches!(i.flow, Flow::Call | Flow::IndirectCall))
                .find(|(_, i)| l.prologue_end().is_some_and(|p| i.off > p));
            if let Some((c, _)) = first_call {
                let after_call = insns.get(c + 1).map(|i| i.off);
                // ... and the release is `add $n,%rsp` (the caller popping
                // its stack arguments) after which the function goes on:
                // not a pop, a return or a jump.
                let is_add_rsp = |off: u32| {
                    insn::decode(&code[off as usize..]).is_ok_and(|i| {
                        i.map == insn::Map::Primary
                            && matches!(i.opcode, 0x81 | 0x83)
                            && i.modrm
                                .is_some_and(|m| m.mode == 3 && m.rm == 4 && m.reg & 7 == 0)
                    })
                };
                let goes_on = insns.get(c + 2).is_some_and(|n| {
                    n.flow == Flow::Next
                        && !matches!(code[n.off as usize], 0x58..=0x5f | 0x41 | 0xc9)
                });
                if after_call.is_some_and(is_add_rsp)
                    && goes_on
                    && points.iter().any(|p| Some(p.off) == after_call)
                {
                    let pe = l.prologue_end().unwrap_or(0);
                    res.prologue_args = Some(note(
                        pe,
                        format!(
                            "prologue_end +{pe:#x}: its slot {slot} dies at +{:#x}, right after the first call",
                            after_call.unwrap_or(0)
                        ),
                    ));
                }
            }
        }
    }
    res.time = t.elapsed();
    res
}

/// Checks, without ORC, that every path from where the slot is set up to
/// a way out passes a release point of it: a forward "may be live"
/// dataflow over the instructions the analysis reached (fall-through,
/// calls included, and branches inside the function), live after `born`
/// (or from the entry), dead after each release point. A way out with the
/// slot possibly live must itself be a point. Returns (ways out reached
/// after the slot is set up, of which with the slot possibly live, of which
/// not points).
fn path_check(insns: &[Ins], born: Option<u32>, points: &[ReleasePoint]) -> (u64, u64, u64) {
    let (after, _) = path_flow(insns, born, &[]);
    let (live, bad) = path_flow(insns, born, points);
    (after, live, bad)
}

/// The dataflow of [`path_check`] with `points` as releases: (ways out
/// reached live, of which not points).
fn path_flow(insns: &[Ins], born: Option<u32>, points: &[ReleasePoint]) -> (u64, u64) {
    let index = |off: u32| insns.binary_search_by_key(&off, |i| i.off).ok();
    let is_point = |off: u32| points.iter().any(|p| p.off == off);
    // A release ends the slot on every way on; a way out with the slot
    // live (a conditional tail jump) only on the edge that leaves.
    let kills = |off: u32| {
        points
            .iter()
            .any(|p| p.off == off && matches!(p.kind, ReleaseKind::Release(_)))
    };
    let mut live = vec![false; insns.len()];
    let mut work: Vec<usize> = Vec::new();
    match born {
        None => {
            if !insns.is_empty() {
                live[0] = true;
                work.push(0);
            }
        }
        Some(b) => {
            // Live after `born`: seed its successors.
            if let Some(k) = index(b) {
                work.push(usize::MAX - k);
            }
        }
    }
    while let Some(w) = work.pop() {
        // usize::MAX - k: the successors of k, with the slot live after it.
        let (k, out_live) = if w > insns.len() {
            (usize::MAX - w, true)
        } else {
            (w, live[w] && !kills(insns[w].off))
        };
        if !out_live {
            continue;
        }
        let i = &insns[k];
        let mut next = Vec::new();
        match i.flow {
            Flow::Next | Flow::Call | Flow::IndirectCall | Flow::Ud2 => next.push(k + 1),
            Flow::CondJump => {
                next.push(k + 1);
                next.extend(i.target.and_then(index));
            }
            Flow::Jump => next.extend(i.target.and_then(index)),
            _ => {}
        }
        for n in next {
            if n < insns.len() && insns[n].reached && !live[n] {
                live[n] = true;
                work.push(n);
            }
        }
    }
    let mut exits = 0;
    let mut bad = 0;
    for (k, i) in insns.iter().enumerate() {
        if i.reached && i.leaves && live[k] {
            exits += 1;
            bad += u64::from(!is_point(i.off));
        }
    }
    (exits, bad)
}

/// The point an instruction must be for a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// A release (with this effect, or any).
    Release(Option<SpEffect>),
    /// A way out with the slot live.
    Exit,
}

/// Checks one slot's release points against ORC (see the module docs).
fn check_releases(
    l: &Layout<'_>,
    insns: &[Ins],
    slot: Rel,
    points: &[ReleasePoint],
    st: &mut ReleaseStats,
    report: &mut dyn FnMut(u32, String, bool),
    have_orc: bool,
) {
    st.points += points.len() as u64;
    for p in points {
        match p.kind {
            ReleaseKind::Release(_) => st.releases += 1,
            ReleaseKind::Exit => st.exits += 1,
        }
    }
    if !have_orc {
        return;
    }
    let Rel::Cfa(s) = slot else {
        st.realigned_slots += 1;
        st.unchecked += points.len() as u64;
        return;
    };
    let index = |off: u32| insns.binary_search_by_key(&off, |i| i.off).ok();
    let sp_of = |e: Option<OrcEntry>| e.and_then(|e| e.sp_rel());
    // ORC's stack pointer after instruction `k`, if ORC tells.
    let after = |k: usize, before: Option<i32>| -> Option<i32> {
        let i = &insns[k];
        match i.flow {
            Flow::Ret => before.map(|b| b + 8 + i.ret_imm),
            Flow::Jump | Flow::IndirectJump => before,
            _ if i.plain_fall() => insns.get(k + 1).and_then(|n| sp_of(n.orc)),
            _ => None,
        }
    };
    // Sound: each point is where ORC's sp moves over the slot, or a way
    // out with the slot live.
    for p in points {
        let Some(k) = index(p.off) else {
            st.contradicted += 1;
            report(p.off, "release point is not an instruction".into(), true);
            continue;
        };
        let i = &insns[k];
        let before = sp_of(i.orc);
        let aft = after(k, before);
        let (ok, known) = match p.kind {
            ReleaseKind::Release(_) => {
                let b_ok = before.map(|b| b <= s);
                let a_ok = aft.map(|a| a > s);
                match (b_ok, a_ok) {
                    (Some(false), _) | (_, Some(false)) => (false, true),
                    (Some(true), Some(true)) => (true, true),
                    _ => (true, false),
                }
            }
            ReleaseKind::Exit => match (before, aft) {
                (Some(b), Some(a)) => (i.leaves && b <= s && a <= s, true),
                (Some(b), None) => (i.leaves && b <= s, false),
                _ => (true, false),
            },
        };
        if !ok {
            st.contradicted += 1;
            report(
                p.off,
                format!(
                    "{:?} point, but ORC sp before {} after {} (ORC before: {}; ours {})",
                    p.kind,
                    before.map_or("?".into(), |b| format!("CFA{b:+}")),
                    aft.map_or("?".into(), |a| format!("CFA{a:+}")),
                    orc_str(i.orc),
                    regs_str(l.regs_before(p.off)),
                ),
                true,
            );
        } else if known {
            st.confirmed += 1;
        } else {
            st.unchecked += 1;
        }
    }
    // Complete: every reached move of ORC's sp over the slot, and every
    // reached way out with the slot live, is a point of the right kind.
    for (k, i) in insns.iter().enumerate() {
        let Some(b) = sp_of(i.orc) else {
            continue;
        };
        if b > s {
            continue; // the slot is already below sp
        }
        let a = after(k, Some(b));
        if !i.reached {
            if i.plain_fall() && a.is_some_and(|a| a > s) {
                st.unreached_moves += 1;
                report(
                    i.off,
                    format!(
                        "unreached by the analysis, ORC: sp CFA{b:+} -> CFA{:+} moves over the slot",
                        a.unwrap_or(0)
                    ),
                    false,
                );
            }
            continue;
        }
        let want = if i.flow == Flow::Ret {
            a.map(|a| {
                if a > s {
                    Want::Release(Some(SpEffect::Ret(8 + i.ret_imm)))
                } else {
                    Want::Exit
                }
            })
        } else if i.leaves {
            Some(Want::Exit)
        } else if i.plain_fall() && a.is_some_and(|a| a > s) {
            Some(Want::Release(None))
        } else {
            None
        };
        let Some(want) = want else {
            continue;
        };
        st.expected += 1;
        let got = points.iter().find(|p| p.off == i.off);
        let kind_ok = match (got.map(|p| p.kind), want) {
            (Some(ReleaseKind::Exit), Want::Exit) => true,
            (Some(ReleaseKind::Release(e)), Want::Release(w)) => w.is_none_or(|w| w == e),
            _ => false,
        };
        if !kind_ok {
            st.missed += 1;
            report(
                i.off,
                format!(
                    "ORC: sp CFA{b:+} -> {} moves over the slot here ({}), analysis reports {}",
                    a.map_or("?".into(), |a| format!("CFA{a:+}")),
                    if want == Want::Exit {
                        "a way out with the slot live"
                    } else {
                        "a release"
                    },
                    got.map_or("nothing".into(), |p| format!("{:?}", p.kind)),
                ),
                true,
            );
        }
    }
}

/// Runs objdump on one instruction's bytes for its text.
fn disasm(objdump_bin: &str, bytes: &[u8], ip: u64) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let path =
        std::env::temp_dir().join(format!("objcheck-layout-{}-{ip:x}.bin", std::process::id()));
    if std::fs::write(&path, bytes).is_err() {
        return String::new();
    }
    let out = std::process::Command::new(objdump_bin)
        .args(["-D", "-w", "-b", "binary", "-m", "i386:x86-64"])
        .arg(format!("--adjust-vma={ip:#x}"))
        .arg(&path)
        .output();
    let _ = std::fs::remove_file(&path);
    let Ok(out) = out else {
        return String::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(objdump::parse_insn_line)
        .map(|i| i.text)
        .unwrap_or_default()
}

/// Analyses every function of `path` and, for a linked file with ORC,
/// checks the analysis against it.
pub fn check_file(path: &str, opts: &Options) -> Result<Summary, String> {
    let wall = Instant::now();
    let img = load(path, opts.kallsyms_size)?;
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    };
    let max_notes = opts.examples.max(3);
    let next = AtomicUsize::new(0);
    let t = Instant::now();
    let mut results: Vec<(usize, FuncResult)> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                sc.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(f) = img.funcs.get(k) else {
                            break;
                        };
                        out.push((k, check_func(&img, f, max_notes)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let analysis_time = t.elapsed();
    results.sort_by_key(|(k, _)| *k);

    let mut s = Summary {
        orc_entries: img.orc.as_ref().map_or(0, |o| o.len()),
        orc_sorted: img.orc.as_ref().is_some_and(|o| o.was_sorted),
        relocatable: img.relocatable,
        relocations: img.relocations,
        analysis_time,
        ..Summary::default()
    };
    for (k, r) in results {
        let f = &img.funcs[k];
        let code = img.code(f);
        s.functions += 1;
        s.slowest.push((r.time, f.name.clone(), f.size));
        if s.slowest.len() > 20 {
            s.slowest.sort_by_key(|x| std::cmp::Reverse(x.0));
            s.slowest.truncate(5);
        }
        match r.outcome {
            Ok(a) => {
                s.analysed += 1;
                s.exits += u64::from(a.exits);
                s.no_exit += u64::from(a.exits == 0);
                s.prologue_end += u64::from(a.prologue_end);
                s.canary += u64::from(a.canary);
                s.realigned += u64::from(a.realigned);
                *s.classes_analysed.entry(r.class).or_default() += 1;
            }
            Err(e) => {
                s.rejected += 1;
                *s.classes_rejected.entry(r.class).or_default() += 1;
                let rej = s.rejections.entry(variant(&e)).or_default();
                rej.count += 1;
                let off = error_off(&e).unwrap_or(0);
                let n = Note {
                    func: f.name.clone(),
                    addr: f.addr,
                    off,
                    bytes: insn_bytes(code, off),
                    msg: format!("{e} [{}, size {:#x}]", r.class.name(), f.size),
                };
                if rej.examples.len() < 3 {
                    rej.examples.push(n.clone());
                }
                if let Some(c) = &r.cause {
                    let (count, ex) = s.causes.entry(c.clone()).or_default();
                    *count += 1;
                    if ex.len() < 3 {
                        ex.push(n.clone());
                    }
                }
                if r.class.ordinary() {
                    rej.ordinary += 1;
                }
                if opts.list_rejected {
                    let mut n = n;
                    if let Some(c) = &r.cause {
                        n.msg = format!("{}; cause: {c}", n.msg);
                    }
                    s.rejected_list.push(n);
                }
            }
        }
        s.sp.add(&r.sp);
        for (a, b) in s.release.iter_mut().zip(r.release.iter()) {
            a.add(b);
        }
        if !r.mismatches.is_empty() {
            s.mismatch_functions += 1;
        }
        for n in r.mismatches {
            if s.mismatches.len() < opts.examples {
                s.mismatches.push(n);
            }
        }
        for n in r.alt_notes {
            if s.alt_notes.len() < opts.examples {
                s.alt_notes.push(n);
            }
        }
        s.release_note_count += r.release_notes.len() as u64;
        for n in r.release_notes {
            if s.release_notes.len() < opts.examples {
                s.release_notes.push(n);
            }
        }
        if !r.undefined_notes.is_empty() {
            s.undefined_functions += 1;
        }
        if let Some(n) = r.prologue_args {
            s.prologue_args += 1;
            if s.prologue_args_examples.len() < opts.examples.min(5) {
                s.prologue_args_examples.push(n);
            }
        }
        for n in r.unreached_moves {
            if s.unreached_moves.len() < opts.examples {
                s.unreached_moves.push(n);
            }
        }
        for n in r.unreached_raise {
            if s.unreached_raise.len() < opts.examples {
                s.unreached_raise.push(n);
            }
        }
        for (c, n, ex) in r.unreached {
            let e = s.unreached.entry(c).or_default();
            e.0 += n;
            e.1 += 1;
            if e.2.len() < 3 {
                e.2.push(ex);
            }
        }
        for n in r.undefined_notes {
            if s.undefined_notes.len() < opts.examples.min(5) {
                s.undefined_notes.push(n);
            }
        }
    }
    s.slowest.sort_by_key(|x| std::cmp::Reverse(x.0));
    s.slowest.truncate(5);
    // objdump's text for everything shown.
    let mut texts: HashMap<(u64, Vec<u8>), String> = HashMap::new();
    let mut fill = |n: &mut Note| {
        let ip = n.addr + u64::from(n.off);
        let text = texts
            .entry((ip, n.bytes.clone()))
            .or_insert_with(|| disasm(&opts.objdump, &n.bytes, ip))
            .clone();
        if !text.is_empty() {
            n.msg = format!("`{text}`  {}", n.msg);
        }
    };
    s.mismatches.iter_mut().for_each(&mut fill);
    s.alt_notes.iter_mut().for_each(&mut fill);
    s.unreached_raise.iter_mut().for_each(&mut fill);
    s.unreached_moves.iter_mut().for_each(&mut fill);
    s.prologue_args_examples.iter_mut().for_each(&mut fill);
    for (_, _, ex) in s.unreached.values_mut() {
        ex.iter_mut().for_each(&mut fill);
    }
    for (_, ex) in s.causes.values_mut() {
        ex.iter_mut().for_each(&mut fill);
    }
    s.release_notes.iter_mut().for_each(&mut fill);
    s.undefined_notes.iter_mut().for_each(&mut fill);
    for r in s.rejections.values_mut() {
        r.examples.iter_mut().for_each(&mut fill);
    }
    s.wall = wall.elapsed();
    Ok(s)
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        if !s.is_empty() {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn pct(a: u64, b: u64) -> String {
    if b == 0 {
        "-".into()
    } else {
        format!("{:.2}%", 100.0 * a as f64 / b as f64)
    }
}

impl Note {
    fn line(&self) -> String {
        format!(
            "{}+{:#x} [{}] {}",
            self.func,
            self.off,
            hex(&self.bytes),
            self.msg
        )
    }
}

impl Summary {
    /// The report.
    pub fn text(&self, what: &str) -> String {
        let mut o = String::new();
        let w = &mut o;
        let _ = writeln!(w, "{what}:");
        if self.relocatable {
            let _ = writeln!(
                w,
                "  relocatable: {} PC32/PLT32 relocations applied to the code; no ORC check",
                self.relocations
            );
        } else {
            let _ = writeln!(
                w,
                "  ORC table        {} entries ({})",
                self.orc_entries,
                if self.orc_sorted {
                    "sorted as stored"
                } else {
                    "sorted here"
                }
            );
        }
        let _ = writeln!(w, "  functions        {}", self.functions);
        let _ = writeln!(
            w,
            "  analysed         {} ({}): {} exits, {} without an exit; prologue_end {}, canary {}, realigned {}",
            self.analysed,
            pct(self.analysed, self.functions),
            self.exits,
            self.no_exit,
            self.prologue_end,
            self.canary,
            self.realigned
        );
        let ordinary: u64 = self.rejections.values().map(|r| r.ordinary).sum();
        let _ = writeln!(
            w,
            "  rejected         {} ({}){}",
            self.rejected,
            pct(self.rejected, self.functions),
            if self.relocatable {
                String::new()
            } else {
                format!("; ORC-ordinary (false rejections) among them: {ordinary}")
            }
        );
        let mut by_count: Vec<_> = self.rejections.iter().collect();
        by_count.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        for (name, r) in &by_count {
            if self.relocatable {
                let _ = writeln!(w, "    {:<24} {:>6}", name, r.count);
            } else {
                let _ = writeln!(
                    w,
                    "    {:<24} {:>6}  (ORC-ordinary {})",
                    name, r.count, r.ordinary
                );
            }
            for n in &r.examples {
                let _ = writeln!(w, "        {}", n.line());
            }
        }
        if !self.causes.is_empty() {
            let _ = writeln!(
                w,
                "  rejections{} by cause:",
                if self.relocatable {
                    ""
                } else {
                    " of ORC-ordinary functions"
                }
            );
            let mut causes: Vec<_> = self.causes.iter().collect();
            causes.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
            for (c, (n, ex)) in causes {
                let _ = writeln!(w, "    {n:>6}  {c}");
                for e in ex {
                    let _ = writeln!(w, "              {}", e.line());
                }
            }
        }
        if !self.rejected_list.is_empty() {
            let _ = writeln!(w, "  rejected functions:");
            for n in &self.rejected_list {
                let _ = writeln!(w, "    {}", n.line());
            }
        }
        if !self.relocatable {
            let _ = writeln!(w, "  ORC class of functions   analysed  rejected");
            let mut classes: Vec<OrcClass> = self
                .classes_analysed
                .keys()
                .chain(self.classes_rejected.keys())
                .copied()
                .collect();
            classes.sort();
            classes.dedup();
            for c in classes {
                let _ = writeln!(
                    w,
                    "    {:<52} {:>8} {:>9}",
                    c.name(),
                    self.classes_analysed.get(&c).copied().unwrap_or(0),
                    self.classes_rejected.get(&c).copied().unwrap_or(0)
                );
            }
            let sp = &self.sp;
            let _ = writeln!(
                w,
                "  instructions     {} in analysed functions, {} reached",
                sp.insns, sp.reached
            );
            let _ = writeln!(
                w,
                "    ORC CALL, sp-based: {} agree; bp-based: {} agree; mismatches {} (in {} functions)",
                sp.agree_sp, sp.agree_bp, sp.mismatches, self.mismatch_functions
            );
            let _ = writeln!(
                w,
                "    ORC UNDEFINED {} (in {} functions), REGS/REGS_PARTIAL {}, END_OF_STACK {}, CALL with other base {}, no ORC {}",
                sp.orc_undefined,
                self.undefined_functions,
                sp.orc_regs,
                sp.orc_end,
                sp.orc_other_base,
                sp.no_orc
            );
            for n in &self.mismatches {
                let _ = writeln!(w, "      MISMATCH {}", n.line());
            }
            let _ = writeln!(
                w,
                "    inside alternatives (ORC merges the replacement's CFI by byte offset; not counted as mismatches): {}",
                sp.alt_disagree
            );
            for n in &self.alt_notes {
                let _ = writeln!(w, "      alternative {}", n.line());
            }
            for n in &self.undefined_notes {
                let _ = writeln!(w, "      undefined {}", n.line());
            }
            let _ = writeln!(
                w,
                "    ORC CALL but not reached by the analysis: {} instructions, {} where ORC's sp moves up (release points it cannot report)",
                sp.unreached_visited, sp.unreached_raise
            );
            for n in &self.unreached_raise {
                let _ = writeln!(w, "      raise {}", n.line());
            }
            let mut un: Vec<_> = self.unreached.iter().collect();
            un.sort_by_key(|x| std::cmp::Reverse(x.1 .0));
            for (c, (n, funcs, ex)) in un {
                let _ = writeln!(w, "      {n:>7} in {funcs:>5} functions: {c}");
                for e in ex {
                    let _ = writeln!(w, "              {}", e.line());
                }
            }
        }
        let _ = writeln!(
            w,
            "  release points   {:<16} {:>8} {:>8} {:>8} {:>8} {:>6} {:>10} {:>9} {:>12} {:>9} {:>11} {:>10}",
            "slot", "slots", "points", "release", "exit", "errors", "too many", "confirmed", "not checked", "contra.", "missed/exp.", "unreached"
        );
        for (k, r) in self.release.iter().enumerate() {
            let _ = writeln!(
                w,
                "                   {:<16} {:>8} {:>8} {:>8} {:>8} {:>6} {:>10} {:>9} {:>12} {:>9} {:>11} {:>10}",
                SLOTS[k],
                r.slots,
                r.points,
                r.releases,
                r.exits,
                r.errors,
                r.too_many,
                r.confirmed,
                r.unchecked,
                r.contradicted,
                format!("{}/{}", r.missed, r.expected),
                r.unreached_moves
            );
        }
        for (k, r) in self.release.iter().enumerate() {
            let _ = writeln!(
                w,
                "    {}: path check (no ORC): {} ways out reached after the slot is set up, {} with it still live, {} of those not release points",
                SLOTS[k], r.path_after, r.path_exits, r.path_violations
            );
        }
        for (k, r) in self.release.iter().enumerate() {
            if r.realigned_slots > 0 {
                let _ = writeln!(
                    w,
                    "    {}: {} slots relative to the realigned base (not checkable against ORC)",
                    SLOTS[k], r.realigned_slots
                );
            }
            for x in &r.too_many_examples {
                let _ = writeln!(w, "    {} too many: {x}", SLOTS[k]);
            }
        }
        for n in &self.unreached_moves {
            let _ = writeln!(w, "      unreached move {}", n.line());
        }
        let _ = writeln!(
            w,
            "    prologue_end() on a push of an outgoing stack argument (its slot dies right after the first call): {}",
            self.prologue_args
        );
        for n in &self.prologue_args_examples {
            let _ = writeln!(w, "      {}", n.line());
        }
        if self.release_note_count > 0 {
            let _ = writeln!(
                w,
                "  release point contradictions/errors: {}",
                self.release_note_count
            );
            for n in &self.release_notes {
                let _ = writeln!(w, "      {}", n.line());
            }
        }
        let _ = writeln!(
            w,
            "  time             {:.2}s wall, analysis {:.2}s",
            self.wall.as_secs_f64(),
            self.analysis_time.as_secs_f64()
        );
        for (t, name, size) in &self.slowest {
            let _ = writeln!(
                w,
                "    slowest {name} ({size:#x} bytes): {:.1} ms",
                t.as_secs_f64() * 1e3
            );
        }
        let _ = writeln!(
            w,
            "  verdict          {}",
            if self.failed() {
                "FAIL: ORC contradicts the analysis"
            } else {
                "ok: no ORC contradiction"
            }
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_sp(off: i16) -> Option<OrcEntry> {
        Some(OrcEntry {
            sp_offset: off,
            bp_offset: 0,
            sp_reg: orc::REG_SP,
            bp_reg: orc::REG_UNDEFINED,
            kind: orc::TYPE_CALL,
            signal: false,
        })
    }

    /// The instructions of `code` with the ORC entries given per
    /// instruction, all reached.
    fn insns(code: &[u8], orc: &[Option<OrcEntry>]) -> Vec<Ins> {
        let mut out = Vec::new();
        let mut off = 0u32;
        for e in orc {
            let i = insn::decode(&code[off as usize..]).unwrap();
            out.push(Ins {
                off,
                flow: i.flow(),
                ret_imm: 0,
                leaves: matches!(i.flow(), Flow::Ret | Flow::IndirectJump),
                reached: true,
                orc: *e,
                target: i.branch_target(u64::from(off)).map(|t| t as u32),
            });
            off += u32::from(i.len);
        }
        assert_eq!(off as usize, code.len());
        out
    }

    fn check(code: &[u8], orc: &[Option<OrcEntry>], slot: Rel, drop_points: bool) -> ReleaseStats {
        let mut work = vec![Entry::EMPTY; code.len() + 1];
        let l = layout::analyze(code, &mut work).unwrap();
        let mut buf = [ReleasePoint::NONE; 8];
        let n = l.release_points(slot, &mut buf).unwrap();
        let points = if drop_points { &buf[..0] } else { &buf[..n] };
        let mut st = ReleaseStats::default();
        let mut notes = Vec::new();
        check_releases(
            &l,
            &insns(code, orc),
            slot,
            points,
            &mut st,
            &mut |off, msg, fail| notes.push((off, msg, fail)),
            true,
        );
        st
    }

    // push %rbx; pop %rbx; ret
    const CODE: [u8; 3] = [0x53, 0x5b, 0xc3];

    #[test]
    fn release_points_agree_with_orc() {
        let orc = [call_sp(8), call_sp(16), call_sp(8)];
        // The saved %rbx dies at the pop.
        let st = check(&CODE, &orc, Rel::Cfa(-16), false);
        assert_eq!((st.points, st.confirmed, st.contradicted), (1, 1, 0));
        assert_eq!((st.expected, st.missed), (1, 0));
        // The return address dies at the ret (sp CFA-8 -> CFA).
        let st = check(&CODE, &orc, Rel::Cfa(-8), false);
        assert_eq!((st.points, st.confirmed, st.contradicted), (1, 1, 0));
        assert_eq!((st.expected, st.missed), (1, 0));
        // Above the return address: the ret ends the call with it live.
        let st = check(&CODE, &orc, Rel::Cfa(0), false);
        assert_eq!((st.exits, st.confirmed, st.contradicted), (1, 1, 0));
        assert_eq!((st.expected, st.missed), (1, 0));
    }

    #[test]
    fn orc_catches_wrong_and_missing_points() {
        // ORC says the pop leaves sp at CFA-16 (a 16-byte pop, say): the
        // analysis' release at the pop is contradicted and the ret is a
        // move over the slot it does not report.
        let orc = [call_sp(8), call_sp(16), call_sp(16)];
        let st = check(&CODE, &orc, Rel::Cfa(-16), false);
        assert_eq!(st.contradicted, 1);
        assert_eq!(st.missed, 1);
        // Points dropped: both moves are missed.
        let orc = [call_sp(8), call_sp(16), call_sp(8)];
        let st = check(&CODE, &orc, Rel::Cfa(-16), true);
        assert_eq!((st.expected, st.missed), (1, 1));
        // %rbp-based ORC: nothing checkable.
        let bp = OrcEntry {
            sp_reg: orc::REG_BP,
            ..call_sp(16).unwrap()
        };
        let st = check(
            &CODE,
            &[call_sp(8), Some(bp), call_sp(8)],
            Rel::Cfa(-16),
            false,
        );
        assert_eq!((st.confirmed, st.unchecked, st.contradicted), (0, 1, 0));
    }

    #[test]
    fn paths_to_a_way_out_pass_a_release_point() {
        // push %rbx; test %edi,%edi; je 8; pop %rbx; ret; 8: pop %rbx; ret
        let code = [0x53, 0x85, 0xff, 0x74, 0x02, 0x5b, 0xc3, 0x5b, 0xc3];
        let mut work = vec![Entry::EMPTY; code.len() + 1];
        let l = layout::analyze(&code, &mut work).unwrap();
        let ins = insns(&code, &[None; 7]);
        let mut buf = [ReleasePoint::NONE; 8];
        let n = l.release_points(Rel::Cfa(-16), &mut buf).unwrap();
        assert_eq!(n, 2);
        assert_eq!(path_check(&ins, Some(0), &buf[..n]), (2, 0, 0));
        // Without the pop of one path, its ret is reached with the slot live.
        assert_eq!(path_check(&ins, Some(0), &buf[..1]), (2, 1, 1));
        // The return address: live from the entry, ended by each ret.
        let n = l.release_points(Rel::Cfa(-8), &mut buf).unwrap();
        assert_eq!(path_check(&ins, None, &buf[..n]), (2, 2, 0));
        assert_eq!(path_check(&ins, None, &[]), (2, 2, 2));
    }

    #[test]
    fn functions_are_classified_by_their_orc() {
        let raw = vec![
            (0x100, call_sp(8).unwrap()),
            (0x101, call_sp(16).unwrap()),
            (
                0x110,
                OrcEntry {
                    kind: orc::TYPE_UNDEFINED,
                    ..call_sp(0).unwrap()
                },
            ),
            (0x120, call_sp(8).unwrap()),
            (
                0x130,
                OrcEntry {
                    kind: orc::TYPE_REGS,
                    ..call_sp(8).unwrap()
                },
            ),
        ];
        let t = OrcTable::new(raw);
        assert_eq!(classify(Some(&t), 0x100, 0x10), OrcClass::Ordinary);
        assert_eq!(classify(Some(&t), 0x100, 0x20), OrcClass::OrdinaryWithDead);
        assert_eq!(classify(Some(&t), 0x110, 0x10), OrcClass::Undefined);
        assert_eq!(classify(Some(&t), 0x120, 0x20), OrcClass::Regs);
        assert_eq!(classify(Some(&t), 0x101, 0x4), OrcClass::OtherBase);
        assert_eq!(classify(None, 0x100, 0x10), OrcClass::None);
    }
}
