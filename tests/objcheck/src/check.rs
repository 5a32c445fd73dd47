//! Walks every function of an ELF file with the decoder and compares each
//! instruction with objdump's listing of the same file.

use crate::objdump::{self, flow_of, target_of, Listing, OdInsn};
use ksw_core::insn::{decode, DecodeError, Flow, Insn, Map};
use object::{Object, ObjectSection, ObjectSymbol, SectionFlags, SymbolKind};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How many mismatches to show by default.
pub const MAX_EXAMPLES: usize = 20;

/// Cases where the decoder deliberately disagrees with objdump. Each is
/// documented in `kmod/core/src/insn.rs`; they are counted separately and
/// never as agreement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exception {
    /// REX followed by another prefix: objdump prints the REX as an
    /// instruction of its own (length 1); the CPU ignores it; we say
    /// Invalid (compilers never emit it).
    StrayRex,
    /// 66 on a near branch/call/ret without REX.W: objdump decodes it the
    /// AMD way (16-bit operand, rel16); Intel ignores the prefix; we say
    /// Invalid.
    OpsizeBranch,
    /// 66/F2/F3/LOCK/REX before VEX/EVEX/XOP: objdump decodes, the CPU
    /// raises #UD; we say Invalid.
    PrefixBeforeVex,
    /// LOCK on an instruction that is not a locked memory RMW: objdump
    /// decodes, the CPU raises #UD; we say Invalid.
    LockNotLockable,
    /// `mov ...,%cs` (8E /1): objdump decodes, the CPU raises #UD.
    MovToCs,
    /// objdump prints (bad)/{bad} for a VEX/EVEX/XOP encoding whose
    /// operand-form fields (L, W, vvvv, b, z, aaa, VSIB register overlap)
    /// the CPU rejects; we decode it with its length (the decoder checks
    /// VEX validity at the map/opcode/pp level only).
    VexFields,
    /// A 15-byte instruction with 14 prefixes: the CPU executes it, objdump
    /// stops after 14 prefixes and prints them alone.
    ObjdumpPrefixLimit,
    /// `fwait` (9B) is a prefix to objdump: it prints 9B and a following
    /// x87 instruction as one (e.g. `fstsw` for 9B DF E0, or `(bad)` when
    /// the x87 part is invalid), and a REX before 9B as a lone `rex`. The
    /// CPU executes 9B as an instruction of its own, and so does the
    /// decoder; the check verifies that the lengths add up (or that the x87
    /// part is Invalid too).
    Fwait,
    /// An instruction newer than binutils 2.40 that objdump shows as
    /// `(bad)`: lkgs (F2 0F 00 /6, FRED). objdump then loses the
    /// boundaries; the following instructions are walked with the decoder
    /// alone until objdump's boundaries meet the decoder's again (counted
    /// in `Stats::unverified`).
    NewerThanObjdump,
}

impl Exception {
    pub fn name(self) -> &'static str {
        match self {
            Exception::StrayRex => "stray REX before a prefix (objdump: lone rex; we: Invalid)",
            Exception::OpsizeBranch => "66 on near branch/call/ret (objdump: AMD rel16/16-bit; we: Invalid, vendor-dependent)",
            Exception::PrefixBeforeVex => "66/F2/F3/F0/REX before VEX/EVEX/XOP (objdump decodes; CPU #UD; we: Invalid)",
            Exception::LockNotLockable => "LOCK on non-lockable instruction (objdump decodes; CPU #UD; we: Invalid)",
            Exception::MovToCs => "mov to %cs (objdump decodes; CPU #UD; we: Invalid)",
            Exception::VexFields => "VEX/EVEX/XOP form objdump rejects by operand fields (we decode; length agrees with the encoding rules)",
            Exception::ObjdumpPrefixLimit => "15-byte insn with 14 prefixes (objdump stops at 14 prefixes; we decode)",
            Exception::NewerThanObjdump => "instruction newer than objdump 2.40: lkgs (objdump (bad); we decode)",
            Exception::Fwait => "fwait is a prefix to objdump (merged with the next x87 insn, or a REX before it shown alone); CPU and we: an insn",
        }
    }
}

/// Totals over one or more files.
#[derive(Debug, Default)]
pub struct Stats {
    pub functions: u64,
    /// Instructions where both decoders agree on boundary, flow and target.
    pub insns: u64,
    /// Direct branches whose targets were compared (included in `insns`).
    pub branches: u64,
    /// Byte sequences both call undecodable ((bad) and Invalid).
    pub both_invalid: u64,
    pub both_invalid_examples: Vec<String>,
    /// Instructions (agreeing with objdump) that extend past their
    /// function's end (symbol size).
    pub crossing_end: u64,
    /// Instructions after a [`Exception::NewerThanObjdump`], decoded while
    /// objdump was out of step (not compared).
    pub unverified: u64,
    pub exceptions: BTreeMap<Exception, u64>,
    pub exception_examples: BTreeMap<Exception, Vec<String>>,
    pub mismatches: u64,
    pub examples: Vec<String>,
    /// Sections with functions that objdump did not list.
    pub missing_sections: Vec<String>,
    pub objdump_time: Duration,
    /// Time to decode every function once, without comparing.
    pub decode_time: Duration,
    pub decode_insns: u64,
    /// How many mismatch examples to keep (default [`MAX_EXAMPLES`]).
    pub max_examples: usize,
}

impl Stats {
    /// Empty totals keeping up to `max_examples` mismatch examples.
    pub fn new(max_examples: usize) -> Stats {
        Stats {
            max_examples,
            ..Stats::default()
        }
    }

    pub fn add(&mut self, o: Stats) {
        self.functions += o.functions;
        self.insns += o.insns;
        self.branches += o.branches;
        self.both_invalid += o.both_invalid;
        for x in o.both_invalid_examples {
            if self.both_invalid_examples.len() < 5 {
                self.both_invalid_examples.push(x);
            }
        }
        self.crossing_end += o.crossing_end;
        self.unverified += o.unverified;
        for (k, v) in o.exceptions {
            *self.exceptions.entry(k).or_default() += v;
        }
        for (k, v) in o.exception_examples {
            let e = self.exception_examples.entry(k).or_default();
            for x in v {
                if e.len() < 3 {
                    e.push(x);
                }
            }
        }
        self.mismatches += o.mismatches;
        for x in o.examples {
            if self.examples.len() < self.max_examples {
                self.examples.push(x);
            }
        }
        self.missing_sections.extend(o.missing_sections);
        self.objdump_time += o.objdump_time;
        self.decode_time += o.decode_time;
        self.decode_insns += o.decode_insns;
    }

    fn mismatch(&mut self, msg: String) {
        self.mismatches += 1;
        if self.examples.len() < self.max_examples {
            self.examples.push(msg);
        }
    }

    fn exception(&mut self, e: Exception, msg: String) {
        *self.exceptions.entry(e).or_default() += 1;
        let v = self.exception_examples.entry(e).or_default();
        if v.len() < 3 {
            v.push(msg);
        }
    }

    /// A human-readable summary.
    pub fn summary(&self, what: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{what}:");
        let _ = writeln!(s, "  functions        {}", self.functions);
        let _ = writeln!(
            s,
            "  instructions     {} (agreeing with objdump; {} direct branch targets compared)",
            self.insns, self.branches
        );
        let _ = writeln!(
            s,
            "  both invalid     {} (objdump (bad), decoder Invalid)",
            self.both_invalid
        );
        for x in &self.both_invalid_examples {
            let _ = writeln!(s, "      {x}");
        }
        let _ = writeln!(
            s,
            "  crossing end     {} (instructions past their symbol's size)",
            self.crossing_end
        );
        let _ = writeln!(s, "  unverified       {} (decoded after an instruction objdump does not know, until objdump resynchronised)", self.unverified);
        for (k, v) in &self.exceptions {
            let _ = writeln!(s, "  exception        {v}: {}", k.name());
            for x in self.exception_examples.get(k).into_iter().flatten() {
                let _ = writeln!(s, "      {x}");
            }
        }
        let _ = writeln!(s, "  mismatches       {}", self.mismatches);
        for x in &self.examples {
            let _ = writeln!(s, "      {x}");
        }
        for m in &self.missing_sections {
            let _ = writeln!(s, "  objdump did not list section {m}");
        }
        let _ = writeln!(
            s,
            "  time             objdump {:.2}s, decode {:.3}s ({} instructions, one pass)",
            self.objdump_time.as_secs_f64(),
            self.decode_time.as_secs_f64(),
            self.decode_insns
        );
        s
    }
}

/// An executable section's contents.
struct Section {
    addr: u64,
    data: Vec<u8>,
}

/// A function symbol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Func {
    section: String,
    addr: u64,
    size: u64,
    name: String,
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

fn describe(r: &Result<Insn, DecodeError>, ip: u64) -> String {
    match r {
        Ok(i) => {
            let mut s = format!("len {} flow {:?}", i.len, i.flow());
            if let Some(t) = i.branch_target(ip) {
                let _ = write!(s, " target {t:x}");
            }
            s
        }
        Err(e) => format!("{e:?}"),
    }
}

/// Legacy and REX prefix bytes at the start of `b`.
fn prefix_run(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .take_while(|&&x| {
            matches!(
                x,
                0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x2e | 0x3e | 0x26 | 0x36 | 0x64 | 0x65 | 0x40
                    ..=0x4f
            )
        })
        .count();
    b.get(..n).unwrap_or(b)
}

/// Classifies "we Invalid, objdump decodes `o`" (bytes from `code`).
fn invalid_exception(code: &[u8], o: &OdInsn) -> Option<Exception> {
    let bytes = code.get(..usize::from(o.len)).unwrap_or(code);
    let run = prefix_run(bytes);
    let after = bytes.get(run.len()).copied();
    if o.len == 1
        && matches!(bytes.first(), Some(0x40..=0x4f))
        && objdump::mnemonic(&o.text).0.is_empty()
    {
        return Some(Exception::StrayRex);
    }
    let vex_next = code.get(run.len() + 1).copied().unwrap_or(0);
    let is_vex =
        matches!(after, Some(0xc4 | 0xc5 | 0x62)) || (after == Some(0x8f) && vex_next & 0x1f >= 8);
    if is_vex
        && run
            .iter()
            .any(|&x| matches!(x, 0x66 | 0xf2 | 0xf3 | 0xf0 | 0x40..=0x4f))
    {
        return Some(Exception::PrefixBeforeVex);
    }
    let (m, _) = objdump::mnemonic(&o.text);
    if run.contains(&0x66) && (flow_of(&o.text) != Flow::Next || m.starts_with("xbegin")) {
        return Some(Exception::OpsizeBranch);
    }
    if after == Some(0x8e) && (vex_next >> 3) & 7 == 1 {
        return Some(Exception::MovToCs);
    }
    if run.contains(&0xf0) {
        let stripped: Vec<u8> = run
            .iter()
            .copied()
            .filter(|&x| x != 0xf0)
            .chain(bytes.iter().skip(run.len()).copied())
            .collect();
        let removed = run.len() - run.iter().filter(|&&x| x != 0xf0).count();
        if let Ok(i) = decode(&stripped) {
            if usize::from(i.len) + removed == usize::from(o.len) {
                return Some(Exception::LockNotLockable);
            }
        }
    }
    None
}

/// Classifies a disagreement at an `fwait` (9B, after any prefixes):
/// objdump treats 9B as a prefix. Accepted when objdump (a) prints a line of
/// prefixes only (it stopped before 9B or printed the prefixes after it
/// alone), (b) prints 9B and the next instruction as one whose length is
/// the sum of ours (also with several 9B), (c) says (bad) for 9B plus an
/// x87 form we also reject,
/// or (d) we reject LOCK on fwait and objdump prints it merged as in (b).
fn fwait_exception(code: &[u8], ours: &Result<Insn, DecodeError>, o: &OdInsn) -> Option<Exception> {
    let run = prefix_run(code);
    if code.get(run.len()) != Some(&0x9b) {
        return None;
    }
    if objdump::mnemonic(&o.text).0.is_empty() {
        return Some(Exception::Fwait); // (a)
    }
    if objdump::mnemonic(&o.text).0 == "fwait" && ours.is_ok() {
        return Some(Exception::Fwait); // (a) with prefixes after 9B
    }
    let flen = match ours {
        Ok(i) => usize::from(i.len),
        Err(DecodeError::Invalid) if run.contains(&0xf0) => run.len() + 1,
        Err(_) => return None,
    };
    let mut flen = flen;
    let mut rest = code.get(flen..)?;
    // 9B 9B ... x87: objdump merges them all.
    while rest.first() == Some(&0x9b) && flen < usize::from(o.len) {
        flen += 1;
        rest = code.get(flen..)?;
    }
    match decode(rest) {
        Ok(next)
            if next.map == Map::Primary
                && matches!(next.opcode, 0xd8..=0xdf)
                && flen + usize::from(next.len) == usize::from(o.len) =>
        {
            Some(Exception::Fwait) // (b), (d)
        }
        Err(DecodeError::Invalid)
            if o.bad() && ours.is_ok() && matches!(rest.first(), Some(0xd8..=0xdf)) =>
        {
            Some(Exception::Fwait) // (c)
        }
        _ => None,
    }
}

/// Classifies "we decode `i`, objdump says (bad) in `o`".
fn bad_exception(code: &[u8], i: &Insn, o: &OdInsn) -> Option<Exception> {
    let lkgs = i.map == Map::Map0F
        && i.opcode == 0x00
        && !i.vex
        && i.prefixes.mandatory() == 3
        && i.modrm.is_some_and(|m| m.reg & 7 == 6);
    if lkgs {
        return Some(Exception::NewerThanObjdump);
    }
    if let Some(e) = fwait_exception(code, &Ok(*i), o) {
        return Some(e);
    }
    if i.vex {
        return Some(Exception::VexFields);
    }
    if objdump::mnemonic(&o.text).0.is_empty() && o.len == 14 && i.len == 15 {
        return Some(Exception::ObjdumpPrefixLimit);
    }
    None
}

fn lookup(list: &[OdInsn], addr: u64) -> Option<&OdInsn> {
    list.binary_search_by_key(&addr, |i| i.addr)
        .ok()
        .and_then(|k| list.get(k))
}

/// Compares one function; returns nothing, accumulates into `st`.
fn check_func(st: &mut Stats, f: &Func, sec: &Section, list: &[OdInsn]) {
    let end = f.addr.saturating_add(f.size);
    let mut ip = f.addr;
    let mut desync = false;
    while ip < end {
        let off = usize::try_from(ip - sec.addr).unwrap_or(usize::MAX);
        let code = sec.data.get(off..).unwrap_or(&[]);
        let ours = decode(code);
        let found = lookup(list, ip);
        if desync {
            match (found, &ours) {
                (None, Ok(i)) => {
                    st.unverified += 1;
                    ip += u64::from(i.len);
                    continue;
                }
                _ => desync = false,
            }
        }
        let Some(o) = found else {
            // objdump has no instruction starting here: boundaries differ.
            let k = list.partition_point(|i| i.addr < ip);
            let prev = k.checked_sub(1).and_then(|k| list.get(k));
            st.mismatch(format!(
                "{}+{:#x} ({ip:#x}): no objdump instruction starts here (objdump: {}); bytes {}; ours {}",
                f.name,
                ip - f.addr,
                prev.map(|p| format!("{:#x} len {} {}", p.addr, p.len, p.text)).unwrap_or_default(),
                hex(code.get(..8).unwrap_or(code)),
                describe(&ours, ip)
            ));
            match list.get(k) {
                Some(n) => {
                    ip = n.addr;
                    continue;
                }
                None => break,
            }
        };
        let obytes = code.get(..usize::from(o.len)).unwrap_or(code);
        let here = || {
            format!(
                "{}+{:#x} ({ip:#x}): bytes {}; objdump `{}` len {}",
                f.name,
                ip - f.addr,
                hex(obytes),
                o.text,
                o.len
            )
        };
        match (&ours, o.bad()) {
            (Ok(i), false) => {
                if i.len != o.len {
                    match fwait_exception(code, &ours, o) {
                        Some(e) => {
                            st.exception(e, format!("{}; ours {}", here(), describe(&ours, ip)))
                        }
                        None => st.mismatch(format!("{}; ours {}", here(), describe(&ours, ip))),
                    }
                } else {
                    let of = flow_of(&o.text);
                    let target = i.branch_target(ip);
                    let otarget = if matches!(of, Flow::Jump | Flow::CondJump | Flow::Call) {
                        target_of(&o.text)
                    } else {
                        None
                    };
                    if i.flow() != of || target != otarget {
                        st.mismatch(format!(
                            "{}; ours {} (objdump flow {:?} target {:x?})",
                            here(),
                            describe(&ours, ip),
                            of,
                            otarget
                        ));
                    } else {
                        st.insns += 1;
                        if target.is_some() {
                            st.branches += 1;
                        }
                        if ip + u64::from(i.len) > end {
                            st.crossing_end += 1;
                        }
                    }
                }
            }
            (Err(DecodeError::Invalid), true) => {
                st.both_invalid += 1;
                if st.both_invalid_examples.len() < 5 {
                    st.both_invalid_examples.push(here());
                }
            }
            (Err(DecodeError::Invalid), false) => {
                match fwait_exception(code, &ours, o).or_else(|| invalid_exception(code, o)) {
                    Some(e) => st.exception(e, here()),
                    None => st.mismatch(format!("{}; ours Invalid", here())),
                }
            }
            (Ok(i), true) => match bad_exception(code, i, o) {
                Some(e) => {
                    st.exception(e, format!("{}; ours {}", here(), describe(&ours, ip)));
                    if e == Exception::NewerThanObjdump {
                        // Continue at our boundary; objdump is out of step.
                        desync = true;
                        ip += u64::from(i.len);
                        continue;
                    }
                }
                None => st.mismatch(format!("{}; ours {}", here(), describe(&ours, ip))),
            },
            (Err(DecodeError::Truncated), _) => {
                st.mismatch(format!("{}; ours Truncated (section ends)", here()))
            }
        }
        // Follow objdump's boundaries so that one disagreement is counted
        // once and the rest of the function is still compared.
        ip += u64::from(o.len);
    }
}

/// Checks every function symbol of `path` against `objdump -d` of it.
pub fn check_file(path: &str, objdump_bin: &str, max_examples: usize) -> Result<Stats, String> {
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let file = object::File::parse(&*data).map_err(|e| format!("{path}: {e}"))?;
    let mut sections: HashMap<String, Section> = HashMap::new();
    let mut by_index = HashMap::new();
    for s in file.sections() {
        let exec = match s.flags() {
            SectionFlags::Elf { sh_flags } => sh_flags & u64::from(object::elf::SHF_EXECINSTR) != 0,
            _ => false,
        };
        if !exec {
            continue;
        }
        let (Ok(name), Ok(d)) = (s.name(), s.data()) else {
            continue;
        };
        by_index.insert(s.index(), name.to_string());
        sections.insert(
            name.to_string(),
            Section {
                addr: s.address(),
                data: d.to_vec(),
            },
        );
    }
    let mut funcs = Vec::new();
    for sym in file.symbols() {
        if sym.kind() != SymbolKind::Text || sym.size() == 0 {
            continue;
        }
        let Some(secname) = sym.section_index().and_then(|i| by_index.get(&i)) else {
            continue;
        };
        funcs.push(Func {
            section: secname.clone(),
            addr: sym.address(),
            size: sym.size(),
            name: sym.name().unwrap_or("?").to_string(),
        });
    }
    funcs.sort();
    // Aliases (same place, same size) are one function.
    funcs.dedup_by(|a, b| a.section == b.section && a.addr == b.addr && a.size == b.size);
    drop(file);
    drop(data);

    let mut st = Stats::new(max_examples);
    // Decode-only pass, to time the decoder alone.
    let t = Instant::now();
    for f in &funcs {
        let Some(sec) = sections.get(&f.section) else {
            continue;
        };
        let start = usize::try_from(f.addr.wrapping_sub(sec.addr)).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(f.size).unwrap_or(usize::MAX));
        let mut off = start;
        while off < end {
            let code = sec.data.get(off..).unwrap_or(&[]);
            if code.is_empty() {
                break;
            }
            match decode(code) {
                Ok(i) => {
                    off += usize::from(i.len);
                    st.decode_insns += 1;
                }
                Err(_) => off += 1,
            }
        }
    }
    st.decode_time = t.elapsed();

    let t = Instant::now();
    let listing: Listing = objdump::run(objdump_bin, &[], path)?;
    st.objdump_time = t.elapsed();
    let empty = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    for f in &funcs {
        let Some(sec) = sections.get(&f.section) else {
            continue;
        };
        let list = match listing.get(&f.section) {
            Some(l) => l,
            None => {
                if !missing.contains(&f.section) {
                    missing.push(f.section.clone());
                }
                &empty
            }
        };
        st.functions += 1;
        check_func(&mut st, f, sec, list);
    }
    st.missing_sections = missing;
    Ok(st)
}
