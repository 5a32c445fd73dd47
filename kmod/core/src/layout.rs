// SPDX-License-Identifier: GPL-2.0
//! A function's stack layout, read from its machine code: where the stack
//! pointer is at every instruction, where the prologue ends and stores the
//! canary, and which instructions end the life of a given stack slot.
//!
//! Why: a watch must be disarmed *while its slot still belongs to the
//! frame*. Once the epilogue moves the stack pointer above the slot, the
//! slot is free stack: the next interrupt pushes its frame there, the
//! return trampoline builds its `pt_regs` there, and a value read later is
//! no longer the one the frame died with. So the module probes the very
//! instruction that releases the slot, on every path out of the function,
//! and reads the slot there. This file finds those instructions.
//!
//! The analysis follows the stack pointer through the function's control
//! flow, as the kernel's objtool does to generate ORC data: at the entry
//! the return address is on top (`sp = CFA - 8`, the CFA being the caller's
//! stack pointer before the call); pushes, pops, `add`/`sub`/`lea` to
//! `%rsp`, `mov %rbp,%rsp`, `leave` and `and $-N,%rsp` (stack realignment,
//! after which the stack pointer is known relative to the realigned base
//! and the frame pointer relative to the CFA) are tracked along every
//! branch. An instruction the analysis cannot follow on a reachable path
//! (any other write to `%rsp`, an indirect jump inside the function, two
//! paths meeting with different stack pointers, a return with the frame
//! still allocated) makes the whole function unsupported: the module then
//! rejects the watch instead of watching half-blind.
//!
//! Calls are assumed to return, except where that contradicts the rest of
//! the code: a call (or `ud2`, which returns for `WARN` but not for `BUG`)
//! whose next instruction is also a jump target, and whose fall-through
//! state conflicts with another path's, is taken to call something that
//! does not return (`panic`, `__stack_chk_fail`), and the analysis runs
//! again without that edge.
//!
//! Everything works on caller-provided storage (one [`Entry`] per
//! instruction) and never allocates: the kernel module runs it on a `KVec`
//! at configuration time, host tests on a `Vec`.

use core::fmt;

use super::insn::{self, Flow, Insn, Map};

/// `%rsp` and `%rbp` in ModRM numbering.
pub const RSP: u8 = 4;
pub const RBP: u8 = 5;

/// A stack address relative to one of the two bases the analysis knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rel {
    /// `CFA + off`. The CFA is the stack pointer before the call into the
    /// function: the return address is at `CFA - 8`.
    Cfa(i32),
    /// `R + off`, where `R` is the stack pointer right after the function
    /// realigned it (`and $-align,%rsp`; see [`Realign`]).
    Realigned(i32),
    /// Not a stack address the analysis follows.
    Unknown,
}

impl Rel {
    /// `self + n` in the same domain.
    pub fn plus(self, n: i32) -> Rel {
        match self {
            Rel::Cfa(o) => o.checked_add(n).map_or(Rel::Unknown, Rel::Cfa),
            Rel::Realigned(o) => o.checked_add(n).map_or(Rel::Unknown, Rel::Realigned),
            Rel::Unknown => Rel::Unknown,
        }
    }

    fn is_known(self) -> bool {
        self != Rel::Unknown
    }

    /// The range of CFA-relative offsets `self` can be at.
    fn cfa_range(self, realign: Option<Realign>) -> Option<(i64, i64)> {
        match (self, realign) {
            (Rel::Cfa(o), _) => Some((i64::from(o), i64::from(o))),
            (Rel::Realigned(o), Some(r)) => {
                let hi = i64::from(r.from) + i64::from(o);
                Some((hi - i64::from(r.align) + 1, hi))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Rel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Rel::Cfa(o) => write!(f, "CFA{o:+}"),
            Rel::Realigned(o) => write!(f, "R{o:+}"),
            Rel::Unknown => f.write_str("?"),
        }
    }
}

/// The two registers the analysis tracks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regs {
    pub sp: Rel,
    pub bp: Rel,
}

/// The function realigns its stack: `R = (CFA + from) & -align`, so `R`
/// lies in `(CFA + from - align, CFA + from]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Realign {
    pub from: i32,
    pub align: u32,
}

/// What one instruction does to the stack pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpEffect {
    None,
    /// `sp += n` (push: -8, pop: +8, `add`/`sub`/`lea d(%rsp)`).
    Add(i32),
    /// `sp = bp + d` (`mov %rbp,%rsp`: 0, `lea d(%rbp),%rsp`, `leave`: 8,
    /// which also pops `%rbp`).
    FromBp(i32),
    /// `and $-align,%rsp`.
    Realign(u32),
    /// `ret [imm16]`: `sp += 8 + imm16`.
    Ret(i32),
    /// `mov %reg,%rsp` (ModRM number): restores a copy taken earlier by
    /// `mov %rsp,%reg`. Followed only where it leaves sp where it was
    /// (clang's `"+r"(current_stack_pointer)` around an inline-asm call):
    /// never a release point.
    FromReg(u8),
    /// Some other write to `%rsp`.
    Unknown,
}

impl SpEffect {
    /// The stack pointer after the instruction, given the registers before
    /// it. Plain arithmetic: the kernel module calls it with the registers
    /// a release probe sees.
    pub fn sp_after(self, sp: u64, bp: u64) -> Option<u64> {
        match self {
            SpEffect::None => Some(sp),
            SpEffect::Add(n) | SpEffect::Ret(n) => sp.checked_add_signed(i64::from(n)),
            SpEffect::FromBp(d) => bp.checked_add_signed(i64::from(d)),
            SpEffect::Realign(align) => Some(sp & !(u64::from(align).wrapping_sub(1))),
            SpEffect::FromReg(_) | SpEffect::Unknown => None,
        }
    }

    /// Whether the instruction can move the stack pointer up.
    fn can_raise(self) -> bool {
        match self {
            SpEffect::Add(n) => n > 0,
            SpEffect::FromBp(_) | SpEffect::Ret(_) => true,
            SpEffect::None | SpEffect::Realign(_) | SpEffect::FromReg(_) | SpEffect::Unknown => {
                false
            }
        }
    }
}

/// What one instruction does to the frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BpEffect {
    None,
    /// `bp = sp + d` (`mov %rsp,%rbp`, `lea d(%rsp),%rbp`).
    FromSp(i32),
    /// Any other write (`pop %rbp`, `leave`, use as a scratch register).
    Clobber,
}

/// How to find the CFA from the registers at an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfaRule {
    /// `CFA = sp - off` (sp known as `CFA + off`).
    Sp(i32),
    /// `CFA = bp - off`.
    Bp(i32),
    /// Neither register is known relative to the CFA (realigned stack
    /// without a frame pointer): the unwinder must find it.
    Unwind,
}

impl CfaRule {
    pub fn of(regs: Regs) -> CfaRule {
        match (regs.sp, regs.bp) {
            (Rel::Cfa(o), _) => CfaRule::Sp(o),
            (_, Rel::Cfa(o)) => CfaRule::Bp(o),
            _ => CfaRule::Unwind,
        }
    }

    /// The CFA given the runtime registers (None: needs the unwinder).
    pub fn cfa(self, sp: u64, bp: u64) -> Option<u64> {
        match self {
            CfaRule::Sp(o) => sp.checked_add_signed(-i64::from(o)),
            CfaRule::Bp(o) => bp.checked_add_signed(-i64::from(o)),
            CfaRule::Unwind => None,
        }
    }
}

/// An address in terms of the registers at a probe point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegAddr {
    /// `sp + off`.
    Sp(i32),
    /// `bp + off`.
    Bp(i32),
}

impl RegAddr {
    pub fn resolve(self, sp: u64, bp: u64) -> Option<u64> {
        match self {
            RegAddr::Sp(o) => sp.checked_add_signed(i64::from(o)),
            RegAddr::Bp(o) => bp.checked_add_signed(i64::from(o)),
        }
    }
}

/// Where the prologue stores the stack-protector canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanaryStore {
    /// Offset of the store instruction.
    pub off: u32,
    /// The slot, relative to the CFA or the realigned base.
    pub slot: Rel,
    /// The slot as the store addresses it.
    pub addr: RegAddr,
}

/// A probe point: the registers after its instruction ran (kprobe post
/// handlers run then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSite {
    pub off: u32,
    pub after: Regs,
    pub cfa: CfaRule,
}

impl ProbeSite {
    /// Where `slot` is in terms of the registers at this probe, if they
    /// reach it.
    pub fn addr_of(&self, slot: Rel) -> Option<RegAddr> {
        let rel = |reg: Rel| match (reg, slot) {
            (Rel::Cfa(r), Rel::Cfa(s)) | (Rel::Realigned(r), Rel::Realigned(s)) => s.checked_sub(r),
            _ => None,
        };
        rel(self.after.sp)
            .map(RegAddr::Sp)
            .or_else(|| rel(self.after.bp).map(RegAddr::Bp))
    }
}

/// Where the arming kprobe goes for a probe point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArmProbe {
    pub off: u32,
    /// A pre handler (on the next instruction) rather than a post handler
    /// (on the probe point itself).
    pub pre: bool,
}

/// An instruction at which a watched slot stops belonging to the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasePoint {
    pub off: u32,
    /// How to find the frame's CFA from the registers before `off` runs.
    pub cfa: CfaRule,
    pub kind: ReleaseKind,
}

impl ReleasePoint {
    /// A placeholder for output buffers.
    pub const NONE: ReleasePoint = ReleasePoint {
        off: 0,
        cfa: CfaRule::Unwind,
        kind: ReleaseKind::Exit,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseKind {
    /// The instruction moves the stack pointer to `effect.sp_after(..)`:
    /// the slot dies if it lies below that.
    Release(SpEffect),
    /// The call ends here (a `ret` or a tail jump) while the slot, at or
    /// above the return address, stays: the watch ends with the call.
    Exit,
}

/// Why a function's layout cannot be followed, or a probe point used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// More instructions than the workspace holds.
    TooLarge { insns: usize },
    /// Bytes at `off` are not an instruction.
    Undecodable { off: u32 },
    /// A branch at `off` lands inside an instruction.
    BranchIntoInstruction { off: u32 },
    /// The instruction at `off` sets the stack pointer in a way the
    /// analysis cannot follow.
    UnknownStackPointer { off: u32 },
    /// Paths reach `off` with different stack pointers.
    InconsistentStack { off: u32 },
    /// A return or tail jump at `off` leaves with the frame still allocated.
    ExitWithFrame { off: u32 },
    /// An indirect jump at `off` stays inside the function (jump table).
    IndirectJump { off: u32 },
    /// A breakpoint (`int3`) in reachable code at `off`: someone else's
    /// kprobe, or a text patch in progress.
    PatchedText { off: u32 },
    /// A jump at `off` leaves the function with its frame live: a split
    /// function part (`.cold`), not followed.
    SplitPart { off: u32, target: u64 },
    /// `iret`, `sysret` and the like at `off`.
    UnsupportedFlow { off: u32 },
    /// Code at `off` runs off the end of the function.
    FallsOffEnd { off: u32 },
    /// A way out of the function at `off` that no path from the entry
    /// reaches as the code stands (a static branch may enable it later).
    UnreachedExit { off: u32 },
    /// More release points than the caller's buffer holds.
    TooManyReleasePoints { found: usize },
    /// The probe offset is not the start of an instruction.
    NotInstructionStart { off: u32 },
    /// The probe offset is not reached from the function's entry.
    Unreached { off: u32 },
    /// The probe offset holds a call, jump or return: a post handler there
    /// runs in the callee or at the target, not after the instruction.
    ProbeOnBranch { off: u32 },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayoutError::TooLarge { insns } => {
                write!(f, "function too large to analyse ({insns} instructions or more)")
            }
            LayoutError::Undecodable { off } => write!(f, "undecodable instruction at +{off:#x}"),
            LayoutError::BranchIntoInstruction { off } => {
                write!(f, "branch at +{off:#x} lands inside an instruction")
            }
            LayoutError::UnknownStackPointer { off } => write!(
                f,
                "the instruction at +{off:#x} sets the stack pointer in a way the analysis cannot follow"
            ),
            LayoutError::InconsistentStack { off } => {
                write!(f, "paths reach +{off:#x} with different stack pointers")
            }
            LayoutError::ExitWithFrame { off } => {
                write!(f, "the function leaves at +{off:#x} with its frame still allocated")
            }
            LayoutError::IndirectJump { off } => {
                write!(f, "indirect jump inside the function at +{off:#x} (jump table)")
            }
            LayoutError::PatchedText { off } => write!(
                f,
                "breakpoint (int3) at +{off:#x}: another kprobe or debugger patched the function"
            ),
            LayoutError::SplitPart { off, target } => write!(
                f,
                "jump at +{off:#x} leaves the function with its frame live (split part at {target:#x}, e.g. .cold)"
            ),
            LayoutError::UnsupportedFlow { off } => {
                write!(f, "unsupported control flow (iret, sysret...) at +{off:#x}")
            }
            LayoutError::FallsOffEnd { off } => {
                write!(f, "code at +{off:#x} runs off the end of the function")
            }
            LayoutError::UnreachedExit { off } => write!(
                f,
                "a way out at +{off:#x} is not reached from the entry (static branch?): exits cannot all be probed"
            ),
            LayoutError::TooManyReleasePoints { found } => {
                write!(f, "the slot dies at {found} places, more than can be probed")
            }
            LayoutError::NotInstructionStart { off } => {
                write!(f, "func_offset {off:#x} is not on an instruction boundary")
            }
            LayoutError::Unreached { off } => {
                write!(f, "func_offset {off:#x} is not reached from the function's entry")
            }
            LayoutError::ProbeOnBranch { off } => write!(
                f,
                "func_offset {off:#x} is a call, jump or return: probe the instruction after it"
            ),
        }
    }
}

/// Per-instruction storage for the analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    off: u32,
    len: u8,
    /// Registers before the instruction; None while unreached.
    before: Option<Regs>,
    /// The most recent suspicious call fall-through on the path that set
    /// `before` (see the module docs).
    taint: Option<u32>,
    /// The most recent call fall-through of any kind on that path: if the
    /// path runs off the end of the function, that call did not return
    /// (the bytes after `call __stack_chk_fail` are padding).
    last_call: Option<u32>,
    /// A register holding a copy of sp (`mov %rsp,%reg`) on every path
    /// here, and that sp.
    copy: Option<SpCopy>,
    /// This call (or ud2) is treated as not returning.
    noreturn: bool,
    /// Some branch in the function targets this instruction.
    jump_target: bool,
}

impl Entry {
    pub const EMPTY: Entry = Entry {
        off: 0,
        len: 0,
        before: None,
        taint: None,
        last_call: None,
        copy: None,
        noreturn: false,
        jump_target: false,
    };
}

/// `reg` holds the stack pointer as it was at `sp` (as objtool tracks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpCopy {
    reg: u8,
    sp: Rel,
}

/// Where control goes after one instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Falls through to the next instruction.
    Fall,
    /// Falls through after a call or `ud2`: may not return.
    CallFall,
    /// Jumps to an offset (may be outside the function).
    Jump(i64),
    /// Jumps to an offset or falls through.
    Cond(i64),
    /// Leaves the function (return).
    Exit,
    /// Jumps through a register or memory: a tail call if the frame is
    /// released, else a jump table this analysis cannot follow.
    IndirectJump,
    /// `hlt`: resumes at the next instruction after an interrupt; ends
    /// the path only at the end of the function.
    Halt,
}

/// One instruction's effect, decoded once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Step {
    sp: SpEffect,
    bp: BpEffect,
    next: Next,
}

/// A function's analysed layout.
#[derive(Debug)]
pub struct Layout<'a> {
    code: &'a [u8],
    entries: &'a [Entry],
    realign: Option<Realign>,
    canary: Option<CanaryStore>,
    exits: u32,
}

/// Analyses `code`, the machine code of one function (offset 0 is its
/// entry), using `work` for per-instruction state.
pub fn analyze<'a>(code: &'a [u8], work: &'a mut [Entry]) -> Result<Layout<'a>, LayoutError> {
    let count = decode_all(code, work)?;
    let entries = &mut work[..count];
    mark_jump_targets(code, entries)?;
    let mut rounds = 0;
    let realign = loop {
        match propagate(code, entries) {
            Ok(realign) => break realign,
            // Each retry marks at least one more call as not returning.
            Err(Failure::Retry { .. }) if rounds < count => rounds += 1,
            Err(Failure::Retry { off }) => return Err(LayoutError::InconsistentStack { off }),
            Err(Failure::Fatal(e)) => return Err(e),
        }
    };
    let entries: &'a [Entry] = entries;
    let exits = check_exits(code, entries)?;
    let canary = find_canary(code, entries);
    Ok(Layout {
        code,
        entries,
        realign,
        canary,
        exits,
    })
}

fn at(code: &[u8], off: u32) -> &[u8] {
    code.get(off as usize..).unwrap_or(&[])
}

fn decode_at(code: &[u8], off: u32) -> Result<Insn, LayoutError> {
    insn::decode(at(code, off)).map_err(|_| LayoutError::Undecodable { off })
}

fn decode_all(code: &[u8], work: &mut [Entry]) -> Result<usize, LayoutError> {
    let mut off = 0u32;
    let mut count = 0;
    while (off as usize) < code.len() {
        let insn = decode_at(code, off)?;
        let Some(slot) = work.get_mut(count) else {
            return Err(LayoutError::TooLarge { insns: count + 1 });
        };
        *slot = Entry {
            off,
            len: insn.len,
            ..Entry::EMPTY
        };
        off += u32::from(insn.len);
        count += 1;
    }
    Ok(count)
}

fn index_of(entries: &[Entry], off: i64) -> Option<usize> {
    let off = u32::try_from(off).ok()?;
    entries.binary_search_by_key(&off, |e| e.off).ok()
}

fn mark_jump_targets(code: &[u8], entries: &mut [Entry]) -> Result<(), LayoutError> {
    for i in 0..entries.len() {
        let off = entries[i].off;
        let insn = decode_at(code, off)?;
        if !matches!(insn.flow(), Flow::Jump | Flow::CondJump) {
            continue;
        }
        let Some(target) = insn.branch_target(u64::from(off)) else {
            continue;
        };
        let target = target as i64;
        if (0..code.len() as i64).contains(&target) {
            let t = index_of(entries, target).ok_or(LayoutError::BranchIntoInstruction { off })?;
            entries[t].jump_target = true;
        }
    }
    Ok(())
}

/// An edge to follow: target index, taint and last call (see [`Entry`]).
type Edge = (usize, Option<u32>, Option<u32>, Option<SpCopy>);

enum Failure {
    Fatal(LayoutError),
    /// Paths conflict at `off`; some call was marked as not returning.
    Retry {
        off: u32,
    },
}

impl From<LayoutError> for Failure {
    fn from(e: LayoutError) -> Failure {
        Failure::Fatal(e)
    }
}

/// Runs the stack-pointer propagation to a fixed point. States only move
/// from unreached to known and `bp` from known to unknown, so it ends.
fn propagate(code: &[u8], entries: &mut [Entry]) -> Result<Option<Realign>, Failure> {
    for e in entries.iter_mut() {
        e.before = None;
        e.taint = None;
        e.last_call = None;
        e.copy = None;
    }
    let mut realign: Option<Realign> = None;
    let Some(first) = entries.first_mut() else {
        return Ok(None);
    };
    first.before = Some(Regs {
        sp: Rel::Cfa(-8),
        bp: Rel::Unknown,
    });
    let mut changed = true;
    while changed {
        changed = false;
        for i in 0..entries.len() {
            let Some(regs) = entries[i].before else {
                continue;
            };
            let off = entries[i].off;
            let insn = decode_at(code, off)?;
            let step = match step_of(&insn, off) {
                Ok(step) => step,
                Err(LayoutError::PatchedText { .. }) if is_padding_after_call(code, entries, i) => {
                    // `call __stack_chk_fail` (or another call that does not
                    // return) followed by the int3 fill up to the next
                    // symbol: the call does not return.
                    entries[i - 1].noreturn = true;
                    return Err(Failure::Retry { off });
                }
                Err(e) => return Err(e.into()),
            };
            if let SpEffect::Realign(align) = step.sp {
                let Rel::Cfa(from) = regs.sp else {
                    return Err(LayoutError::UnknownStackPointer { off }.into());
                };
                let this = Realign { from, align };
                if realign.is_some_and(|r| r != this) {
                    return Err(LayoutError::InconsistentStack { off }.into());
                }
                realign = Some(this);
            }
            let copy = entries[i].copy;
            let after = apply(regs, copy, step);
            let (taint, last_call) = (entries[i].taint, entries[i].last_call);
            let copy = copy_after(&insn, regs, copy);
            // Running off the end after a call means the call did not
            // return: retry without its fall-through.
            let off_end =
                |entries: &mut [Entry]| match last_call.and_then(|c| entries.get_mut(c as usize)) {
                    Some(call) if !call.noreturn => {
                        call.noreturn = true;
                        Failure::Retry { off }
                    }
                    _ => LayoutError::FallsOffEnd { off }.into(),
                };
            let fall = i + 1;
            let mut targets: [Option<Edge>; 2] = [None, None];
            match step.next {
                Next::Fall => {
                    if fall >= entries.len() {
                        return Err(off_end(entries));
                    }
                    targets[0] = Some((fall, taint, last_call, copy));
                }
                Next::Halt => {
                    if fall < entries.len() {
                        targets[0] = Some((fall, taint, last_call, copy));
                    }
                }
                Next::CallFall => {
                    // A call at the very end falls into the next function:
                    // it does not return.
                    if !entries[i].noreturn && fall < entries.len() {
                        let suspicious = entries[fall].jump_target;
                        let taint = if suspicious { Some(i as u32) } else { taint };
                        targets[0] = Some((fall, taint, Some(i as u32), copy));
                    }
                }
                Next::Jump(t) | Next::Cond(t) => {
                    if (0..code.len() as i64).contains(&t) {
                        let t = index_of(entries, t)
                            .ok_or(LayoutError::BranchIntoInstruction { off })?;
                        targets[0] = Some((t, taint, last_call, copy));
                    } else if after.sp != Rel::Cfa(-8) {
                        return Err(LayoutError::SplitPart {
                            off,
                            target: t as u64,
                        }
                        .into());
                    }
                    if matches!(step.next, Next::Cond(_)) {
                        if fall >= entries.len() {
                            return Err(off_end(entries));
                        }
                        targets[1] = Some((fall, taint, last_call, copy));
                    }
                }
                Next::Exit => {
                    if regs.sp != Rel::Cfa(-8) {
                        return Err(LayoutError::ExitWithFrame { off }.into());
                    }
                }
                Next::IndirectJump => {
                    if regs.sp != Rel::Cfa(-8) {
                        return Err(LayoutError::IndirectJump { off }.into());
                    }
                }
            }
            for (t, taint, last_call, copy) in targets.into_iter().flatten() {
                if !after.sp.is_known() {
                    return Err(LayoutError::UnknownStackPointer { off }.into());
                }
                changed |= merge(entries, t, (after, copy), taint, last_call)?;
            }
        }
    }
    Ok(realign)
}

/// Joins `regs` into instruction `t`'s state; true if it changed.
fn merge(
    entries: &mut [Entry],
    t: usize,
    (regs, copy): (Regs, Option<SpCopy>),
    taint: Option<u32>,
    last_call: Option<u32>,
) -> Result<bool, Failure> {
    let off = entries[t].off;
    let Some(old) = entries[t].before else {
        entries[t].before = Some(regs);
        entries[t].taint = taint;
        entries[t].last_call = last_call;
        entries[t].copy = copy;
        return Ok(true);
    };
    if old.sp == regs.sp {
        // Both only ever move towards "unknown", so the loop ends.
        let mut changed = false;
        if old.bp != regs.bp && old.bp != Rel::Unknown {
            entries[t].before = Some(Regs {
                sp: old.sp,
                bp: Rel::Unknown,
            });
            changed = true;
        }
        if entries[t].copy.is_some() && entries[t].copy != copy {
            entries[t].copy = None;
            changed = true;
        }
        return Ok(changed);
    }
    // Different stack pointers: one side came through a call that does
    // not return, or the function is beyond this analysis.
    let mut marked = false;
    for call in [entries[t].taint, taint].into_iter().flatten() {
        if let Some(e) = entries.get_mut(call as usize) {
            if !e.noreturn {
                e.noreturn = true;
                marked = true;
            }
        }
    }
    if marked {
        Err(Failure::Retry { off })
    } else {
        Err(LayoutError::InconsistentStack { off }.into())
    }
}

fn apply(regs: Regs, copy: Option<SpCopy>, step: Step) -> Regs {
    let sp = match step.sp {
        SpEffect::None => regs.sp,
        SpEffect::FromReg(reg) => match copy {
            Some(c) if c.reg == reg && c.sp == regs.sp => regs.sp,
            _ => Rel::Unknown,
        },
        SpEffect::Add(n) | SpEffect::Ret(n) => regs.sp.plus(n),
        SpEffect::FromBp(d) => regs.bp.plus(d),
        SpEffect::Realign(_) => match regs.sp {
            Rel::Cfa(_) => Rel::Realigned(0),
            _ => Rel::Unknown,
        },
        SpEffect::Unknown => Rel::Unknown,
    };
    let bp = match step.bp {
        BpEffect::None => regs.bp,
        BpEffect::FromSp(d) => regs.sp.plus(d),
        BpEffect::Clobber => Rel::Unknown,
    };
    Regs { sp, bp }
}

/// The register copy of sp after `insn`: a new one for `mov %rsp,%reg`,
/// none once the register may have been written.
fn copy_after(insn: &Insn, regs: Regs, copy: Option<SpCopy>) -> Option<SpCopy> {
    if let (Some(m), true, false) = (insn.modrm, rex_w(insn), insn.vex) {
        let copied = match (insn.map, insn.opcode) {
            (Map::Primary, 0x89) if m.mode == 3 && m.reg == RSP => Some(m.rm),
            (Map::Primary, 0x8b) if m.mode == 3 && m.rm == RSP => Some(m.reg),
            _ => None,
        };
        if let Some(reg) = copied.filter(|&r| r != RSP && r != RBP) {
            return regs.sp.is_known().then_some(SpCopy { reg, sp: regs.sp });
        }
    }
    copy.filter(|c| !may_write(insn, c.reg))
}

/// The int3 at `entries[i]` starts the fill after a call, up to the end of
/// the symbol (kallsyms sizes a function up to the next one).
fn is_padding_after_call(code: &[u8], entries: &[Entry], i: usize) -> bool {
    let Some(prev) = i.checked_sub(1).and_then(|p| entries.get(p)) else {
        return false;
    };
    let call_fall = decode_at(code, prev.off)
        .and_then(|insn| next_of(&insn, prev.off))
        .is_ok_and(|next| next == Next::CallFall);
    call_fall
        && !prev.noreturn
        && code
            .get(entries[i].off as usize..)
            .is_some_and(|rest| rest.iter().all(|&b| b == 0xcc))
}

/// Checks the ways out: every exit is reached (none hides behind a static
/// branch), and counts them.
fn check_exits(code: &[u8], entries: &[Entry]) -> Result<u32, LayoutError> {
    let mut exits = 0;
    for e in entries {
        let insn = decode_at(code, e.off)?;
        let step = match step_of(&insn, e.off) {
            Ok(step) => step,
            // Unreached int3 fill or other non-code: not a way out.
            Err(_) if e.before.is_none() => continue,
            Err(err) => return Err(err),
        };
        let leaves = match step.next {
            Next::Exit | Next::IndirectJump => true,
            Next::Jump(t) | Next::Cond(t) => !(0..code.len() as i64).contains(&t),
            _ => false,
        };
        if !leaves {
            continue;
        }
        if e.before.is_none() {
            return Err(LayoutError::UnreachedExit { off: e.off });
        }
        exits += 1;
    }
    Ok(exits)
}

/// `mov %gs:0x28,%reg` (the x86_64 stack canary before Linux 6.13) and the
/// first store of that register to the stack after it.
fn find_canary(code: &[u8], entries: &[Entry]) -> Option<CanaryStore> {
    for (i, e) in entries.iter().enumerate() {
        e.before?;
        let Ok(load) = decode_at(code, e.off) else {
            continue;
        };
        let Some(reg) = canary_load(&load) else {
            continue;
        };
        // The store follows within a few straight-line instructions.
        for s in entries.iter().skip(i + 1).take(8) {
            let regs = s.before?;
            let insn = decode_at(code, s.off).ok()?;
            if insn.flow() != Flow::Next {
                return None;
            }
            if let Some(addr) = stack_store_of(&insn, reg) {
                let slot = match addr {
                    RegAddr::Sp(d) => regs.sp.plus(d),
                    RegAddr::Bp(d) => regs.bp.plus(d),
                };
                return slot.is_known().then_some(CanaryStore {
                    off: s.off,
                    slot,
                    addr,
                });
            }
        }
        return None;
    }
    None
}

fn rex_w(insn: &Insn) -> bool {
    insn.rex & 0x08 != 0
}

/// `65 48 8b /r` with an absolute `0x28` operand: the register loaded.
fn canary_load(insn: &Insn) -> Option<u8> {
    let m = insn.modrm?;
    let sib = insn.sib?;
    let gs = insn.prefixes.segment() == Some(insn::Segment::Gs);
    let absolute = m.mode == 0 && sib.base & 7 == RBP && sib.index == RSP;
    (gs && !insn.vex
        && insn.map == Map::Primary
        && insn.opcode == 0x8b
        && rex_w(insn)
        && absolute
        && insn.disp == 0x28)
        .then_some(m.reg)
}

/// `mov %reg,disp(%rsp|%rbp)` (64-bit): the stored-to address.
fn stack_store_of(insn: &Insn, reg: u8) -> Option<RegAddr> {
    let m = insn.modrm?;
    if insn.vex || insn.map != Map::Primary || insn.opcode != 0x89 || !rex_w(insn) || m.reg != reg {
        return None;
    }
    memory_base(insn).map(|(base, disp)| match base {
        RSP => RegAddr::Sp(disp),
        _ => RegAddr::Bp(disp),
    })
}

/// For a memory operand `disp(%rsp)` or `disp(%rbp)` without index: the
/// base register and displacement.
fn memory_base(insn: &Insn) -> Option<(u8, i32)> {
    let m = insn.modrm?;
    if m.mode == 3 {
        return None;
    }
    let base = match insn.sib {
        Some(sib) if sib.index == RSP => sib.base,
        Some(_) => return None,
        None => m.rm,
    };
    match (base, m.mode) {
        (RSP, _) => Some((RSP, insn.disp)),
        // mode 0 with base 5 is disp32 without base (or RIP-relative).
        (RBP, 1 | 2) => Some((RBP, insn.disp)),
        _ => None,
    }
}

/// The register a ModRM field names, for byte operations without REX
/// (where 4-7 are %ah..%bh, i.e. registers 0-3).
fn byte_reg(insn: &Insn, field: u8) -> u8 {
    if insn.rex == 0 && (4..8).contains(&field) {
        field - 4
    } else {
        field
    }
}

/// Which ModRM register fields an instruction may write (besides the
/// forms `step_of` understands). Unknown encodings are assumed to write
/// both: that can only make a function unsupported, never misread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Writes {
    reg: bool,
    rm: bool,
    /// Byte-sized destination (high-byte registers without REX).
    byte: bool,
}

const NONE: Writes = Writes {
    reg: false,
    rm: false,
    byte: false,
};
const REG: Writes = Writes {
    reg: true,
    rm: false,
    byte: false,
};
const RM: Writes = Writes {
    reg: false,
    rm: true,
    byte: false,
};
const BOTH: Writes = Writes {
    reg: true,
    rm: true,
    byte: false,
};

const fn byte(w: Writes) -> Writes {
    Writes { byte: true, ..w }
}

fn modrm_writes(insn: &Insn) -> Writes {
    let group = insn.modrm.map_or(0, |m| m.reg & 7);
    if insn.vex {
        return vex_writes(insn);
    }
    match (insn.map, insn.opcode) {
        (Map::Primary, op) => match op {
            // ALU r/m, reg (add, or, adc, sbb, and, sub, xor).
            0x00 | 0x08 | 0x10 | 0x18 | 0x20 | 0x28 | 0x30 => byte(RM),
            0x01 | 0x09 | 0x11 | 0x19 | 0x21 | 0x29 | 0x31 => RM,
            0x02 | 0x0a | 0x12 | 0x1a | 0x22 | 0x2a | 0x32 => byte(REG),
            0x03 | 0x0b | 0x13 | 0x1b | 0x23 | 0x2b | 0x33 | 0x63 | 0x69 | 0x6b | 0x8b | 0x8d => {
                REG
            }
            0x8a => byte(REG),
            // cmp, test: read only.
            0x38..=0x3b | 0x84 | 0x85 => NONE,
            0x86 => byte(BOTH),
            0x87 => BOTH,
            0x88 | 0xc6 => byte(RM),
            0x89 | 0x8c | 0x8f | 0xc7 => RM,
            0x8e => NONE,
            0x80 | 0x82 => byte(if group == 7 { NONE } else { RM }),
            0x81 | 0x83 => {
                if group == 7 {
                    NONE
                } else {
                    RM
                }
            }
            0xc0 | 0xd0 | 0xd2 => byte(RM),
            0xc1 | 0xd1 | 0xd3 => RM,
            // test imm, not, neg, mul/imul/div/idiv (rax/rdx implicit).
            0xf6 => byte(if matches!(group, 2 | 3) { RM } else { NONE }),
            0xf7 => {
                if matches!(group, 2 | 3) {
                    RM
                } else {
                    NONE
                }
            }
            0xfe => byte(if group <= 1 { RM } else { NONE }),
            // inc, dec; call, jmp and push read their operand.
            0xff => {
                if group <= 1 {
                    RM
                } else {
                    NONE
                }
            }
            // x87 writes FPU registers or memory (fnstsw %ax: rax only).
            0xd8..=0xdf => NONE,
            _ => BOTH,
        },
        (Map::Map0F, op) => match op {
            // Hint nops, prefetch, endbr, bt.
            0x0d | 0x18..=0x1f | 0xa3 => NONE,
            // cmovcc, imul, movzx/movsx, bsf/bsr/tzcnt/lzcnt, popcnt, lar, lsl.
            0x02 | 0x03 | 0x40..=0x4f | 0xaf | 0xb6 | 0xb7 | 0xbe | 0xbf | 0xbc | 0xbd | 0xb8 => {
                REG
            }
            0x90..=0x9f => byte(RM),
            // shld/shrd, bts/btr/btc, mov from cr/dr, vmread.
            0xa4 | 0xa5 | 0xac | 0xad | 0xab | 0xb3 | 0xbb | 0x20 | 0x21 | 0x78 => RM,
            // mov to cr/dr, vmwrite: read.
            0x22 | 0x23 | 0x79 => NONE,
            0xba => {
                if group == 4 {
                    NONE
                } else {
                    RM
                }
            }
            0xb0 | 0xc0 => byte(RM),
            0xb1 | 0xc1 => BOTH,
            // Group 15: rdfsbase/rdgsbase write r/m; the fences (lfence,
            // which alternatives patch in, mfence, sfence), wr*base and
            // the memory forms (fxsave, clflush, ...) write no register.
            0xae => {
                if insn.modrm.is_some_and(|m| m.mode == 3) && group <= 1 {
                    RM
                } else {
                    NONE
                }
            }
            _ => BOTH,
        },
        _ => BOTH,
    }
}

/// VEX/EVEX instructions write vector registers, except the BMI and
/// extract forms with a general-purpose destination.
fn vex_writes(insn: &Insn) -> Writes {
    match (insn.map, insn.opcode) {
        // andn, bzhi/pdep/pext, bextr/shlx/sarx/shrx, rorx: reg field.
        (Map::Map0F38, 0xf2 | 0xf5 | 0xf7) | (Map::Map0F3A, 0xf0) => REG,
        // blsr/blsmsk/blsi and mulx write vvvv, which is not decoded:
        // assume the worst.
        (Map::Map0F38, 0xf3 | 0xf6) => BOTH,
        // movmsk, pmovmskb, pextrw to a GPR; cvt* to a GPR.
        (Map::Map0F, 0x50 | 0xd7 | 0xc5 | 0x2c | 0x2d) => REG,
        // movd/movq and pextr* to r/m.
        (Map::Map0F, 0x7e) | (Map::Map0F3A, 0x14..=0x17) => RM,
        _ => NONE,
    }
}

/// Whether the instruction may write general-purpose register `reg`
/// through its ModRM fields or its opcode.
fn may_write(insn: &Insn, reg: u8) -> bool {
    if insn.map == Map::Primary && !insn.vex {
        let low = insn.opcode & 7;
        let b = (insn.rex & 1) << 3;
        match insn.opcode {
            // pop reg, mov reg,imm (push only reads).
            0x58..=0x5f | 0xb8..=0xbf => return low | b == reg,
            0xb0..=0xb7 => return byte_reg(insn, low | b) == reg,
            // xchg %rax,reg (0x90 without REX.B is nop).
            0x90..=0x97 => return low | b == reg || reg == 0,
            _ => {}
        }
    }
    if insn.map == Map::Map0F && !insn.vex && (0xc8..=0xcf).contains(&insn.opcode) {
        return (insn.opcode & 7) | ((insn.rex & 1) << 3) == reg;
    }
    let Some(m) = insn.modrm else {
        return false;
    };
    let w = modrm_writes(insn);
    let name = |field: u8| if w.byte { byte_reg(insn, field) } else { field };
    (w.reg && name(m.reg) == reg) || (w.rm && m.mode == 3 && name(m.rm) == reg)
}

/// The stack, frame-pointer and control-flow effect of one instruction.
fn step_of(insn: &Insn, off: u32) -> Result<Step, LayoutError> {
    let next = next_of(insn, off)?;
    let (sp, bp) = stack_effect(insn);
    Ok(Step { sp, bp, next })
}

fn next_of(insn: &Insn, off: u32) -> Result<Next, LayoutError> {
    let target = || {
        insn.branch_target(u64::from(off))
            .map(|t| t as i64)
            .ok_or(LayoutError::Undecodable { off })
    };
    Ok(match insn.flow() {
        Flow::Next => Next::Fall,
        Flow::Call | Flow::IndirectCall | Flow::Ud2 => Next::CallFall,
        Flow::Jump => Next::Jump(target()?),
        Flow::CondJump => Next::Cond(target()?),
        Flow::Ret => Next::Exit,
        Flow::IndirectJump => Next::IndirectJump,
        Flow::Int3 => return Err(LayoutError::PatchedText { off }),
        Flow::Halt => Next::Halt,
        Flow::Other => return Err(LayoutError::UnsupportedFlow { off }),
    })
}

fn stack_effect(insn: &Insn) -> (SpEffect, BpEffect) {
    let w64 = rex_w(insn);
    let size = insn.operand_size();
    let m = insn.modrm;
    let group = m.map_or(0, |m| m.reg & 7);
    let mod3_rm = m.filter(|m| m.mode == 3).map(|m| m.rm);
    let push = SpEffect::Add(-i32::from(size));
    let pop = SpEffect::Add(i32::from(size));
    let understood = if insn.vex {
        None
    } else {
        match (insn.map, insn.opcode) {
            _ if is_push(insn) => Some((push, BpEffect::None)),
            (Map::Primary, 0x58..=0x5f) => {
                let reg = (insn.opcode & 7) | ((insn.rex & 1) << 3);
                Some(match reg {
                    RSP => (SpEffect::Unknown, BpEffect::None),
                    RBP => (pop, BpEffect::Clobber),
                    _ => (pop, BpEffect::None),
                })
            }
            (Map::Primary, 0x8f) if group == 0 => Some(match mod3_rm {
                Some(RSP) => (SpEffect::Unknown, BpEffect::None),
                Some(RBP) => (pop, BpEffect::Clobber),
                _ => (pop, BpEffect::None),
            }),
            (Map::Primary, 0x9d) | (Map::Map0F, 0xa1 | 0xa9) => Some((pop, BpEffect::None)),
            // leave: sp = bp + 8 after popping the saved frame pointer.
            (Map::Primary, 0xc9) => Some((SpEffect::FromBp(8), BpEffect::Clobber)),
            (Map::Primary, 0xc3) => Some((SpEffect::Ret(8), BpEffect::None)),
            (Map::Primary, 0xc2) => Some((SpEffect::Ret(8 + insn.imm as i32), BpEffect::None)),
            // enter: not emitted by kernel compilers.
            (Map::Primary, 0xc8) => Some((SpEffect::Unknown, BpEffect::Clobber)),
            // add/sub/and $imm,%rsp.
            (Map::Primary, 0x81 | 0x83) if mod3_rm == Some(RSP) && group != 7 => {
                let imm = i32::try_from(insn.imm).ok();
                Some(match (group, imm, w64) {
                    (0, Some(n), true) => (SpEffect::Add(n), BpEffect::None),
                    (5, Some(n), true) => (
                        n.checked_neg().map_or(SpEffect::Unknown, SpEffect::Add),
                        BpEffect::None,
                    ),
                    (4, Some(n), true) if n < 0 && (n as u32).wrapping_neg().is_power_of_two() => {
                        (SpEffect::Realign((n as u32).wrapping_neg()), BpEffect::None)
                    }
                    _ => (SpEffect::Unknown, BpEffect::None),
                })
            }
            // lea disp(base),%rsp / %rbp.
            (Map::Primary, 0x8d) if m.is_some_and(|m| m.reg == RSP || m.reg == RBP) => {
                let dest = m.map_or(0, |m| m.reg);
                let base = memory_base(insn).filter(|_| w64);
                Some(match (dest, base) {
                    (RSP, Some((RSP, d))) => (SpEffect::Add(d), BpEffect::None),
                    (RSP, Some((RBP, d))) => (SpEffect::FromBp(d), BpEffect::None),
                    (RSP, _) => (SpEffect::Unknown, BpEffect::None),
                    (_, Some((RSP, d))) => (SpEffect::None, BpEffect::FromSp(d)),
                    _ => (SpEffect::None, BpEffect::Clobber),
                })
            }
            // mov between %rsp and %rbp (89: r/m <- reg, 8b: reg <- r/m).
            (Map::Primary, 0x89 | 0x8b) if m.is_some_and(|m| m.mode == 3) => {
                let m = m.unwrap_or(insn::ModRm {
                    mode: 3,
                    reg: 0,
                    rm: 0,
                });
                let (dest, src) = if insn.opcode == 0x89 {
                    (m.rm, m.reg)
                } else {
                    (m.reg, m.rm)
                };
                match (dest, src, w64) {
                    (RSP, RBP, true) => Some((SpEffect::FromBp(0), BpEffect::None)),
                    (RBP, RSP, true) => Some((SpEffect::None, BpEffect::FromSp(0))),
                    (RSP, src, true) => Some((SpEffect::FromReg(src), BpEffect::None)),
                    (RSP, _, _) => Some((SpEffect::Unknown, BpEffect::None)),
                    (RBP, _, _) => Some((SpEffect::None, BpEffect::Clobber)),
                    _ => Some((SpEffect::None, BpEffect::None)),
                }
            }
            _ => None,
        }
    };
    if let Some(effects) = understood {
        return effects;
    }
    let sp = if may_write(insn, RSP) {
        SpEffect::Unknown
    } else {
        SpEffect::None
    };
    let bp = if may_write(insn, RBP) {
        BpEffect::Clobber
    } else {
        BpEffect::None
    };
    (sp, bp)
}

impl<'a> Layout<'a> {
    /// The stack realignment, if the function realigns.
    pub fn realign(&self) -> Option<Realign> {
        self.realign
    }

    /// The prologue's canary store, if the function has one.
    pub fn canary(&self) -> Option<CanaryStore> {
        self.canary
    }

    /// Ways out of the function (returns and tail jumps).
    pub fn exits(&self) -> u32 {
        self.exits
    }

    /// Instructions decoded.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&self, off: u32) -> Option<&Entry> {
        index_of(self.entries, i64::from(off)).map(|i| &self.entries[i])
    }

    /// The registers before the instruction at `off`, if it is reached.
    pub fn regs_before(&self, off: u32) -> Option<Regs> {
        self.entry(off)?.before
    }

    /// A kprobe post handler at `off`: the registers after the instruction.
    pub fn probe_site(&self, off: u32) -> Result<ProbeSite, LayoutError> {
        let entry = self
            .entry(off)
            .ok_or(LayoutError::NotInstructionStart { off })?;
        let regs = entry.before.ok_or(LayoutError::Unreached { off })?;
        let insn = decode_at(self.code, off)?;
        let step = step_of(&insn, off)?;
        // The ftrace site at the entry (a 5-byte nop, or a call while
        // traced) is where kprobes put a probe at +0: the kernel runs the
        // probe from ftrace, so it behaves as a plain instruction.
        let ftrace_site = (off == 0 || (off == 4 && is_endbr(self.code, 0)))
            && step.next == Next::CallFall
            && insn.len == 5;
        if step.next != Next::Fall && !ftrace_site {
            return Err(LayoutError::ProbeOnBranch { off });
        }
        let after = apply(regs, entry.copy, step);
        if !after.sp.is_known() {
            return Err(LayoutError::UnknownStackPointer { off });
        }
        Ok(ProbeSite {
            off,
            after,
            cfa: CfaRule::of(after),
        })
    }

    /// The arming kprobe for `site`. A post handler at the probe point runs
    /// after its instruction; a pre handler on the next instruction sees the
    /// same registers and, unlike a post handler, can be jump-optimized by
    /// the kernel (no int3 per call), so it is used when only that
    /// instruction leads there: the next one is no jump target and is not
    /// itself where the slot dies.
    pub fn arm_probe(&self, site: &ProbeSite, releases: &[ReleasePoint]) -> ArmProbe {
        let post = ArmProbe {
            off: site.off,
            pre: false,
        };
        let Some(i) = index_of(self.entries, i64::from(site.off)) else {
            return post;
        };
        match self.entries.get(i + 1) {
            Some(next)
                if !next.jump_target
                    && next.before.map(|r| r.sp) == Some(site.after.sp)
                    && !releases.iter().any(|r| r.off == next.off) =>
            {
                ArmProbe {
                    off: next.off,
                    pre: true,
                }
            }
            _ => post,
        }
    }

    /// The default probe point: where the frame is set up. That is the
    /// canary store if the prologue has one (a post handler there sees the
    /// canary in place), else the last stack adjustment of the prologue
    /// (the straight-line code from the entry up to the first branch or
    /// call other than the ftrace call at the entry). None: the function
    /// keeps no frame of its own.
    pub fn prologue_end(&self) -> Option<u32> {
        let mut last_alloc = None;
        // Past `sub $n,%rsp` (or a realignment), or once the body has
        // started, a push is an outgoing stack argument, not a save.
        let mut allocated = false;
        let mut in_body = false;
        for (i, e) in self.entries.iter().enumerate() {
            let insn = decode_at(self.code, e.off).ok()?;
            let step = step_of(&insn, e.off).ok()?;
            if self.canary.is_some_and(|c| c.off == e.off) {
                return Some(e.off);
            }
            match step.next {
                Next::Fall => {}
                // The __fentry__ call (or its nop) comes first.
                Next::CallFall if i == 0 || (i == 1 && is_endbr(self.code, 0)) => continue,
                _ => break,
            }
            match (pushed_register(&insn), step.sp) {
                (Some(reg), _) if allocated || in_body || !CALLEE_SAVED.contains(&reg) => break,
                (Some(_), _) => last_alloc = Some(e.off),
                (None, SpEffect::Add(n)) if n < 0 => {
                    if is_push(&insn) {
                        break;
                    }
                    allocated = true;
                    last_alloc = Some(e.off);
                }
                (None, SpEffect::Realign(_)) => {
                    allocated = true;
                    last_alloc = Some(e.off);
                }
                // `mov %rsp,%rbp` belongs to the prologue, and so do the
                // endbr and the ftrace nop at the entry.
                (None, SpEffect::None) if step.bp == BpEffect::FromSp(0) => {}
                _ if i == 0 || (i == 1 && is_endbr(self.code, 0)) => {}
                _ => in_body = true,
            }
        }
        last_alloc
    }

    /// Every instruction at which a slot starting at `slot` (relative to
    /// the CFA or the realigned base) can stop belonging to the frame, on
    /// every path; or, for a slot at or above the return address, every
    /// way out of the call. Written to `out`; returns how many.
    pub fn release_points(
        &self,
        slot: Rel,
        out: &mut [ReleasePoint],
    ) -> Result<usize, LayoutError> {
        let mut found = 0;
        for e in self.entries {
            let Some(regs) = e.before else {
                continue;
            };
            let insn = decode_at(self.code, e.off)?;
            let step = step_of(&insn, e.off)?;
            let after = apply(regs, e.copy, step);
            let leaves = match step.next {
                Next::Exit | Next::IndirectJump => true,
                Next::Jump(t) | Next::Cond(t) => !(0..self.code.len() as i64).contains(&t),
                _ => false,
            };
            let kind = if step.sp.can_raise() && self.may_release(regs.sp, after.sp, slot) {
                ReleaseKind::Release(step.sp)
            } else if leaves && self.live_after(after.sp, slot) {
                ReleaseKind::Exit
            } else {
                continue;
            };
            if let Some(o) = out.get_mut(found) {
                *o = ReleasePoint {
                    off: e.off,
                    cfa: CfaRule::of(regs),
                    kind,
                };
            }
            found += 1;
        }
        if found > out.len() {
            return Err(LayoutError::TooManyReleasePoints { found });
        }
        Ok(found)
    }

    /// Whether an instruction taking sp from `before` to `after` can move
    /// it past the slot start (live before: `slot >= sp`; dead after:
    /// `slot < sp`).
    fn may_release(&self, before: Rel, after: Rel, slot: Rel) -> bool {
        // All in one domain: exact.
        if let (Some((b, s)), Some((a, _))) = (before.same(slot), after.same(slot)) {
            return b <= s && s < a;
        }
        let range = |r: Rel| r.cfa_range(self.realign);
        match (range(before), range(after), range(slot)) {
            (Some((b_lo, _)), Some((_, a_hi)), Some((s_lo, s_hi))) => b_lo <= s_hi && s_lo < a_hi,
            // Unknown before (cannot happen on reached code): be safe.
            (None, Some((_, a_hi)), Some((s_lo, _))) => s_lo < a_hi,
            _ => false,
        }
    }

    /// Whether the slot is still at or above sp after an exit.
    fn live_after(&self, after: Rel, slot: Rel) -> bool {
        match (after.cfa_range(self.realign), slot.cfa_range(self.realign)) {
            (Some((_, a_hi)), Some((_, s_hi))) => s_hi >= a_hi,
            _ => false,
        }
    }
}

impl Rel {
    /// Both offsets, if `self` and `other` are in the same domain.
    fn same(self, other: Rel) -> Option<(i32, i32)> {
        match (self, other) {
            (Rel::Cfa(a), Rel::Cfa(b)) | (Rel::Realigned(a), Rel::Realigned(b)) => Some((a, b)),
            _ => None,
        }
    }
}

/// `%rbx`, `%rbp`, `%r12`-`%r15`: what a prologue saves.
const CALLEE_SAVED: [u8; 6] = [3, RBP, 12, 13, 14, 15];

/// The register `push %reg` saves.
fn pushed_register(insn: &Insn) -> Option<u8> {
    (insn.map == Map::Primary && !insn.vex && (0x50..=0x57).contains(&insn.opcode))
        .then_some((insn.opcode & 7) | ((insn.rex & 1) << 3))
}

/// Any push: of a register, an immediate, memory or the flags.
fn is_push(insn: &Insn) -> bool {
    let group = insn.modrm.map_or(0, |m| m.reg & 7);
    !insn.vex
        && match (insn.map, insn.opcode) {
            (Map::Primary, 0x50..=0x57 | 0x68 | 0x6a | 0x9c) => true,
            (Map::Primary, 0xff) => group == 6,
            (Map::Map0F, 0xa0 | 0xa8) => true,
            _ => false,
        }
}

fn is_endbr(code: &[u8], off: u32) -> bool {
    at(code, off).starts_with(&[0xf3, 0x0f, 0x1e, 0xfa])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn run(code: &[u8], f: impl FnOnce(Layout<'_>)) {
        let mut work = vec![Entry::EMPTY; code.len() + 1];
        f(analyze(code, &mut work).expect("analysis"));
    }

    fn error(code: &[u8]) -> LayoutError {
        let mut work = vec![Entry::EMPTY; code.len() + 1];
        analyze(code, &mut work).expect_err("analysis should fail")
    }

    fn releases(layout: &Layout<'_>, slot: Rel) -> Vec<(u32, ReleaseKind)> {
        let mut out = [ReleasePoint::NONE; 8];
        let n = layout.release_points(slot, &mut out).unwrap();
        out[..n].iter().map(|r| (r.off, r.kind)).collect()
    }

    // Bytes of the test module's own functions (clang, Linux 6.12), cut to
    // their symbol sizes; calls and the tail jump are unrelocated.

    /// ksw_test_small: frame pointer, stack realigned to 32, canary on top.
    const SMALL: [u8; 145] = [
        0x0f, 0x1f, 0x44, 0x00, 0x00, 0x55, 0x48, 0x89, 0xe5, 0x53, 0x48, 0x83, 0xe4, 0xe0, 0x48,
        0x83, 0xec, 0x60, 0x48, 0x89, 0xfb, 0x65, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00,
        0x48, 0x89, 0x44, 0x24, 0x40, 0x48, 0x89, 0x3c, 0x24, 0x48, 0x8d, 0x47, 0x01, 0x48, 0x89,
        0x44, 0x24, 0x08, 0x48, 0x8d, 0x47, 0x02, 0x48, 0x89, 0x44, 0x24, 0x10, 0x48, 0x8d, 0x47,
        0x03, 0x48, 0x89, 0x44, 0x24, 0x18, 0x48, 0x8d, 0x47, 0x04, 0x48, 0x89, 0x44, 0x24, 0x20,
        0x48, 0x8d, 0x47, 0x05, 0x48, 0x89, 0x44, 0x24, 0x28, 0x48, 0x8d, 0x47, 0x06, 0x48, 0x89,
        0x44, 0x24, 0x30, 0x48, 0x8d, 0x47, 0x07, 0x48, 0x89, 0x44, 0x24, 0x38, 0x48, 0x89, 0xe7,
        0xe8, 0x00, 0x00, 0x00, 0x00, 0x83, 0xe3, 0x07, 0x48, 0x8b, 0x04, 0xdc, 0x65, 0x48, 0x8b,
        0x0c, 0x25, 0x28, 0x00, 0x00, 0x00, 0x48, 0x3b, 0x4c, 0x24, 0x40, 0x75, 0x07, 0x48, 0x8d,
        0x65, 0xf8, 0x5b, 0x5d, 0xc3, 0xe8, 0x00, 0x00, 0x00, 0x00,
    ];

    /// ksw_test_exits: two pushes, a return and a tail jump.
    const EXITS: [u8; 60] = [
        0x0f, 0x1f, 0x44, 0x00, 0x00, 0x41, 0x56, 0x53, 0x48, 0x89, 0xfb, 0xe8, 0x00, 0x00, 0x00,
        0x00, 0x49, 0x89, 0xc6, 0x48, 0x89, 0xc7, 0x48, 0x31, 0xdf, 0xe8, 0x00, 0x00, 0x00, 0x00,
        0xf6, 0xc3, 0x01, 0x75, 0x0b, 0x49, 0x0f, 0xaf, 0xc6, 0x48, 0x01, 0xd8, 0x5b, 0x41, 0x5e,
        0xc3, 0x4c, 0x01, 0xf0, 0x48, 0x89, 0xc7, 0x5b, 0x41, 0x5e, 0xe9, 0x00, 0x00, 0x00, 0x00,
    ];

    #[test]
    fn realigned_frame_with_canary_on_top() {
        run(&SMALL, |l| {
            assert_eq!(
                l.realign(),
                Some(Realign {
                    from: -24,
                    align: 32
                })
            );
            let canary = l.canary().unwrap();
            assert_eq!(canary.off, 0x1e);
            assert_eq!(canary.addr, RegAddr::Sp(0x40));
            assert_eq!(canary.slot, Rel::Realigned(-0x20));
            // The default probe point is the canary store.
            assert_eq!(l.prologue_end(), Some(0x1e));
            let site = l.probe_site(0x1e).unwrap();
            assert_eq!(site.after.sp, Rel::Realigned(-0x60));
            assert_eq!(site.after.bp, Rel::Cfa(-16));
            assert_eq!(site.cfa, CfaRule::Bp(-16));
            assert_eq!(site.addr_of(canary.slot), Some(RegAddr::Sp(0x40)));
            // The canary dies at `lea -0x8(%rbp),%rsp`, not at the ret.
            assert_eq!(
                releases(&l, canary.slot),
                [(0x85, ReleaseKind::Release(SpEffect::FromBp(-8)))]
            );
            assert_eq!(l.exits(), 1);
        });
    }

    #[test]
    fn tail_call_and_return_each_release_the_slot() {
        run(&EXITS, |l| {
            assert_eq!(l.canary(), None);
            // push %r14; push %rbx: the frame is set up after the second.
            assert_eq!(l.prologue_end(), Some(0x7));
            let site = l.probe_site(0x7).unwrap();
            assert_eq!(site.after.sp, Rel::Cfa(-24));
            assert_eq!(site.cfa, CfaRule::Sp(-24));
            // The bottom slot (saved %rbx) dies at the first pop of each path.
            let slot = site.after.sp.plus(0);
            assert_eq!(
                releases(&l, slot),
                [
                    (0x2a, ReleaseKind::Release(SpEffect::Add(8))),
                    (0x34, ReleaseKind::Release(SpEffect::Add(8))),
                ]
            );
            // The saved %r14 slot, one word up, at the second pops.
            assert_eq!(
                releases(&l, Rel::Cfa(-16)),
                [
                    (0x2b, ReleaseKind::Release(SpEffect::Add(8))),
                    (0x35, ReleaseKind::Release(SpEffect::Add(8))),
                ]
            );
            // The return address: the ret releases it, the tail jump ends the call.
            assert_eq!(
                releases(&l, Rel::Cfa(-8)),
                [
                    (0x2d, ReleaseKind::Release(SpEffect::Ret(8))),
                    (0x37, ReleaseKind::Exit),
                ]
            );
            assert_eq!(l.exits(), 2);
        });
    }

    #[test]
    fn arming_moves_to_a_pre_handler_where_only_the_probe_point_leads() {
        run(&SMALL, |l| {
            let site = l.probe_site(0x1e).unwrap();
            let releases = [ReleasePoint::NONE; 0];
            assert_eq!(l.arm_probe(&site, &releases), ArmProbe { off: 0x23, pre: true });
        });
        run(&EXITS, |l| {
            // After push %rbx comes mov %rdi,%rbx: a plain successor.
            let site = l.probe_site(0x7).unwrap();
            assert_eq!(l.arm_probe(&site, &[]), ArmProbe { off: 0x8, pre: true });
            // Next is where the slot dies: a post handler.
            let site = l.probe_site(0x7).unwrap();
            let releases = [ReleasePoint {
                off: 0x8,
                cfa: CfaRule::Unwind,
                kind: ReleaseKind::Exit,
            }];
            assert_eq!(l.arm_probe(&site, &releases), ArmProbe { off: 0x7, pre: false });
        });
        // push %rbx; test %edi,%edi; je 6; nop; 6: pop %rbx; ret -- the
        // nop's successor is a jump target: a post handler on the nop.
        run(&[0x53, 0x85, 0xff, 0x74, 0x01, 0x90, 0x5b, 0xc3], |l| {
            let site = l.probe_site(5).unwrap();
            assert_eq!(l.arm_probe(&site, &[]), ArmProbe { off: 5, pre: false });
        });
    }

    #[test]
    fn leave_releases_the_whole_frame() {
        // push %rbp; mov %rsp,%rbp; sub $0x20,%rsp; mov %rax,-8(%rbp); leave; ret
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x20, 0x48, 0x89, 0x45, 0xf8, 0xc9, 0xc3,
        ];
        run(&code, |l| {
            assert_eq!(l.prologue_end(), Some(4));
            assert_eq!(
                releases(&l, Rel::Cfa(-24)),
                [(0xc, ReleaseKind::Release(SpEffect::FromBp(8)))]
            );
        });
    }

    #[test]
    fn a_call_that_does_not_return_is_recognised() {
        // push %rbx; test %edi,%edi; je 0xe; sub $0x10,%rsp; call X;
        // 0xe: pop %rbx; ret -- the call's fall-through would reach 0xe
        // with another stack pointer than the jump.
        let code = [
            0x53, 0x85, 0xff, 0x74, 0x09, 0x48, 0x83, 0xec, 0x10, 0xe8, 0, 0, 0, 0, 0x5b, 0xc3,
        ];
        run(&code, |l| {
            assert_eq!(l.regs_before(0xe).unwrap().sp, Rel::Cfa(-16));
            assert_eq!(l.exits(), 1);
        });
    }

    #[test]
    fn padding_after_a_final_call_is_not_code() {
        // push %rbx; test %edi,%edi; jne 7; pop %rbx; ret; 7: call
        // __stack_chk_fail; then the padding kallsyms counts into the
        // function: cs nopw; xchg %ax,%ax.
        let code = [
            0x53, 0x85, 0xff, 0x75, 0x02, 0x5b, 0xc3, 0xe8, 0, 0, 0, 0, 0x2e, 0x66, 0x0f, 0x1f,
            0x84, 0, 0, 0, 0, 0, 0x66, 0x90,
        ];
        run(&code, |l| {
            assert_eq!(l.exits(), 1);
            assert_eq!(l.regs_before(7).map(|r| r.sp), Some(Rel::Cfa(-16)));
            assert_eq!(l.regs_before(0xc), None);
        });
    }

    #[test]
    fn int3_fill_after_a_final_call_means_it_does_not_return() {
        // push %rbx; test %edi,%edi; jne 7; pop %rbx; ret; 7: call
        // __stack_chk_fail; int3 fill up to the next symbol.
        let code = [
            0x53, 0x85, 0xff, 0x75, 0x02, 0x5b, 0xc3, 0xe8, 0, 0, 0, 0, 0xcc, 0xcc, 0xcc,
        ];
        run(&code, |l| {
            assert_eq!(l.exits(), 1);
            assert_eq!(l.regs_before(0xc), None);
        });
        // But an int3 with code after it is someone's breakpoint.
        let patched = [0x53, 0xe8, 0, 0, 0, 0, 0xcc, 0xc3];
        assert_eq!(error(&patched), LayoutError::PatchedText { off: 6 });
    }

    #[test]
    fn unreached_int3_is_not_an_exit() {
        // ret; int3 (static_call return trampolines: `c3 cc`).
        run(&[0xc3, 0xcc], |l| assert_eq!(l.exits(), 1));
    }

    #[test]
    fn hlt_resumes_at_the_next_instruction() {
        // push %rbx; hlt; pop %rbx; ret
        run(&[0x53, 0xf4, 0x5b, 0xc3], |l| {
            assert_eq!(l.regs_before(2).map(|r| r.sp), Some(Rel::Cfa(-16)));
            assert_eq!(l.exits(), 1);
        });
    }

    #[test]
    fn a_register_copy_of_sp_may_be_restored_unchanged() {
        // push %rbx; mov %rsp,%rcx; xor %eax,%eax; call X; mov %rcx,%rsp;
        // pop %rbx; ret (clang's "+r"(current_stack_pointer) around an
        // inline-asm call).
        let code = [
            0x53, 0x48, 0x89, 0xe1, 0x31, 0xc0, 0xe8, 0, 0, 0, 0, 0x48, 0x89, 0xcc, 0x5b, 0xc3,
        ];
        run(&code, |l| {
            assert_eq!(l.regs_before(0xe).map(|r| r.sp), Some(Rel::Cfa(-16)));
            assert_eq!(releases(&l, Rel::Cfa(-16)), [(0xe, ReleaseKind::Release(SpEffect::Add(8)))]);
        });
        // The copy overwritten (mov $1,%ecx) before the restore: rejected.
        let clobbered = [
            0x53, 0x48, 0x89, 0xe1, 0xb9, 1, 0, 0, 0, 0x48, 0x89, 0xcc, 0x5b, 0xc3,
        ];
        assert_eq!(error(&clobbered), LayoutError::UnknownStackPointer { off: 9 });
        // Restored after sp moved (push %rax in between): rejected, it
        // would raise sp by a copy the module cannot read.
        let moved = [0x53, 0x48, 0x89, 0xe1, 0x50, 0x48, 0x89, 0xcc, 0x5b, 0xc3];
        assert_eq!(error(&moved), LayoutError::UnknownStackPointer { off: 5 });
    }

    #[test]
    fn lfence_writes_no_register() {
        // push %rbp; mov %rsp,%rbp; lfence; lea 0(%rbp),%rsp; pop %rbp; ret
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0x0f, 0xae, 0xe8, 0x48, 0x8d, 0x65, 0x00, 0x5d, 0xc3,
        ];
        run(&code, |l| assert_eq!(l.exits(), 1));
    }

    #[test]
    fn the_prologue_ends_before_outgoing_stack_arguments() {
        // nop5; push %rbp; push %rbx; mov %rdx,%rsi; push %rbx; call X;
        // add $8,%rsp; pop %rbx; pop %rbp; ret: the second push of %rbx
        // is an argument (modalias_show's shape).
        let code = [
            0x0f, 0x1f, 0x44, 0x00, 0x00, 0x55, 0x53, 0x48, 0x89, 0xd6, 0x53, 0xe8, 0, 0, 0, 0,
            0x48, 0x83, 0xc4, 0x08, 0x5b, 0x5d, 0xc3,
        ];
        run(&code, |l| assert_eq!(l.prologue_end(), Some(6)));
        // sub $0x18,%rsp; push %rax; call X: the push after the allocation.
        let code = [
            0x55, 0x48, 0x83, 0xec, 0x18, 0x50, 0xe8, 0, 0, 0, 0, 0x48, 0x83, 0xc4, 0x20, 0x5d,
            0xc3,
        ];
        run(&code, |l| assert_eq!(l.prologue_end(), Some(1)));
    }

    #[test]
    fn unfollowable_functions_are_rejected() {
        // Two plain paths meet with different stack pointers.
        let code = [
            0x53, 0x85, 0xff, 0x74, 0x05, 0x48, 0x83, 0xec, 0x08, 0x90, 0x5b, 0xc3,
        ];
        assert_eq!(error(&code), LayoutError::InconsistentStack { off: 0xa });
        // mov %rax,%rsp
        assert_eq!(
            error(&[0x48, 0x89, 0xc4, 0xc3]),
            LayoutError::UnknownStackPointer { off: 0 }
        );
        // push %rbx; ret
        assert_eq!(error(&[0x53, 0xc3]), LayoutError::ExitWithFrame { off: 1 });
        // push %rbx; jmp *%rax (a jump table)
        assert_eq!(
            error(&[0x53, 0xff, 0xe0]),
            LayoutError::IndirectJump { off: 1 }
        );
        // push %rbx; int3; pop %rbx; ret: someone's breakpoint
        assert_eq!(
            error(&[0x53, 0xcc, 0x5b, 0xc3]),
            LayoutError::PatchedText { off: 1 }
        );
        // push %rbx; jmp out with the frame live: a .cold part
        assert_eq!(
            error(&[0x53, 0xe9, 0x10, 0, 0, 0]),
            LayoutError::SplitPart {
                off: 1,
                target: 0x16
            }
        );
        // Falls off the end.
        assert_eq!(error(&[0x53, 0x5b]), LayoutError::FallsOffEnd { off: 1 });
    }

    #[test]
    fn probe_points_are_checked() {
        run(&EXITS, |l| {
            assert_eq!(
                l.probe_site(0x6),
                Err(LayoutError::NotInstructionStart { off: 0x6 })
            );
            assert_eq!(
                l.probe_site(0xb),
                Err(LayoutError::ProbeOnBranch { off: 0xb })
            );
            assert_eq!(
                l.probe_site(0x37),
                Err(LayoutError::ProbeOnBranch { off: 0x37 })
            );
            assert!(l.probe_site(0x8).is_ok());
        });
    }

    #[test]
    fn the_ftrace_call_at_the_entry_is_a_plain_probe_point() {
        // call __fentry__ (patched in when traced); push %rbx; pop %rbx; ret
        let code = [0xe8, 0, 0, 0, 0, 0x53, 0x5b, 0xc3];
        run(&code, |l| {
            assert_eq!(l.prologue_end(), Some(5));
            assert_eq!(l.probe_site(0).map(|s| s.after.sp), Ok(Rel::Cfa(-8)));
        });
    }

    #[test]
    fn runtime_arithmetic() {
        assert_eq!(SpEffect::Add(8).sp_after(0x1000, 0), Some(0x1008));
        assert_eq!(SpEffect::FromBp(-8).sp_after(0, 0x2000), Some(0x1ff8));
        assert_eq!(SpEffect::Realign(32).sp_after(0x1018, 0), Some(0x1000));
        assert_eq!(CfaRule::Sp(-24).cfa(0x1000, 0), Some(0x1018));
        assert_eq!(CfaRule::Bp(-16).cfa(0, 0x2000), Some(0x2010));
        assert_eq!(RegAddr::Sp(0x40).resolve(0x1000, 0), Some(0x1040));
    }
}
