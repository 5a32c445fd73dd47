//! From "watch VAR in FUNC" to a `/proc/kstackwatch` spec.
//!
//! The probe point and the slot come from two sources that must agree:
//!
//! - DWARF says where the variable is at each pc: `DW_OP_breg7 +n`
//!   (`%rsp+n`), `DW_OP_breg6 +n` or `DW_OP_fbreg` with an `%rbp` frame
//!   base (`%rbp+n`), `DW_OP_fbreg` with `DW_OP_call_frame_cfa` (CFA+n), a
//!   register, a computed value; per address range in a location list.
//! - `ksw_core::layout` (the module's own analysis of the function's code)
//!   says where `%rsp` and `%rbp` are relative to the CFA, or to the
//!   realigned base, after every instruction. The kernel has no
//!   `.eh_frame`, and the module arms on exactly this analysis, so this is
//!   the CFI that counts.
//!
//! A kprobe post handler on the instruction at `fo` sees the registers as
//! they are before the *next* instruction, `pc = fo + len`: that is the
//! pc whose DWARF location is used, and `so` is the slot's offset from
//! `%rsp` there. A single (non-list) `%rsp`- or `%rbp`-relative location
//! holds only where that register has its value of the function's body
//! (after the prologue, before the epilogue); the compiler's location
//! lists say so for themselves.

use std::fmt::Write as _;
use std::ops::Range;

use ksw_core::insn;
use ksw_core::layout::{self, Entry, Layout, Regs, Rel};

use crate::elf::{Binary, Symbol};
use crate::func::{self, FuncInfo, Loc, Var};
use crate::location::{self, Base, Place};
use crate::types::{Selected, Ty, Types, VarPath};

/// Where to arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum At {
    /// The first instruction after the prologue where the variable is in
    /// the frame.
    Default,
    /// The first instruction of a source line.
    Line { file: String, line: u64 },
    /// An offset from the function's start (the probed instruction).
    Offset(u32),
}

impl At {
    pub fn parse(s: &str) -> Result<At, String> {
        if let Some(o) = s.strip_prefix('+') {
            let v = match o.strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16),
                None => o.parse(),
            };
            return v
                .map(At::Offset)
                .map_err(|_| format!("--at {s}: not an offset"));
        }
        let (file, line) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("--at {s}: expected FILE:LINE or +OFFSET"))?;
        let line = line
            .parse()
            .map_err(|_| format!("--at {s}: '{line}' is not a line number"))?;
        Ok(At::Line {
            file: file.to_string(),
            line,
        })
    }
}

/// What to watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `FUNC` or `module:FUNC`.
    pub func: String,
    pub var: Option<VarPath>,
    pub canary: bool,
    pub at: At,
    pub depth: Option<u32>,
    pub max_watch: Option<u32>,
    pub panic: bool,
}

/// A resolved watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub func: String,
    pub module: Option<String>,
    /// The probed instruction (None: the module's default, for a canary).
    pub fo: Option<u32>,
    /// `sp_offset` and `watch_len` (None: the canary).
    pub so: Option<i64>,
    pub wl: Option<u8>,
    /// The slot relative to the CFA or the realigned base.
    pub slot: Option<Rel>,
    /// The config line.
    pub config: String,
    /// The explanation: (label, text).
    pub explain: Vec<(String, String)>,
}

impl Resolved {
    /// The explanation block.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.explain {
            let _ = writeln!(s, "  {k:<9} {v}");
        }
        s
    }
}

/// Source paths as shown: relative to the current directory when under
/// it, else from the kernel source tree (`linux-*/`) on.
pub fn show_path(p: &str) -> String {
    if let Ok(cwd) = std::env::current_dir() {
        let cwd = cwd.to_string_lossy().into_owned();
        if let Some(rest) = p.strip_prefix(&(cwd + "/")) {
            return rest.to_string();
        }
    }
    if let Some(i) = p.find("/linux-") {
        if let Some(j) = p[i + 1..].find('/') {
            return p[i + 1 + j + 1..].to_string();
        }
    }
    p.to_string()
}

/// One decoded instruction of the function.
#[derive(Clone, Copy, Debug)]
struct Ins {
    off: u32,
    len: u32,
}

fn instructions(code: &[u8]) -> Vec<Ins> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < code.len() {
        match insn::decode(&code[off..]) {
            Ok(i) => {
                out.push(Ins {
                    off: off as u32,
                    len: u32::from(i.len),
                });
                off += usize::from(i.len);
            }
            Err(_) => break,
        }
    }
    out
}

/// The function found for a request.
#[derive(Debug)]
pub struct Found<'b> {
    pub bin: &'b Binary,
    pub sym: &'b Symbol,
}

/// Finds `FUNC` (or `module:FUNC`) among the binaries.
pub fn locate<'b>(bins: &'b [Binary], func: &'b str) -> Result<Found<'b>, String> {
    let (module, name) = match func.split_once(':') {
        Some((m, n)) => (Some(m), n),
        None => (None, func),
    };
    let mut found: Vec<Found<'b>> = Vec::new();
    for bin in bins {
        if let Some(m) = module {
            if bin.module.as_deref() != Some(m) && !(m == "vmlinux" && bin.module.is_none()) {
                continue;
            }
        }
        for sym in bin.functions_named(name) {
            if !found
                .iter()
                .any(|f| std::ptr::eq(f.bin, bin) && f.sym.addr == sym.addr)
            {
                found.push(Found { bin, sym });
            }
        }
    }
    match found.len() {
        1 => Ok(found.pop().expect("one")),
        0 => Err(not_found(bins, module, name)),
        _ => {
            let mut msg = format!(
                "{func} is ambiguous: {} functions have that name (the kernel resolves the name to one of them; kprobes refuse a name that is not unique):",
                found.len()
            );
            for f in &found {
                let at = decl_of(f)
                    .map_or_else(String::new, |(p, l)| format!(", {}:{l}", show_path(&p)));
                let _ = write!(
                    msg,
                    "\n  {} in {}{}{at}",
                    f.sym.name,
                    f.bin.label(),
                    if f.sym.global { "" } else { " (static)" }
                );
            }
            msg.push_str("\nname one as MODULE:FUNC when they are in different modules; a static function whose name repeats in one image cannot be watched by name");
            Err(msg)
        }
    }
}

fn decl_of(f: &Found<'_>) -> Option<(String, u64)> {
    let ctx = f.bin.context()?;
    let unit = ctx.find_dwarf_and_unit(f.sym.addr).skip_all_loads()?;
    let die = func::find_subprogram(unit, f.sym.addr)?;
    let fi = FuncInfo::read(unit, die, f.sym.addr, f.sym.size).ok()?;
    fi.decl
}

/// Why no symbol: inlined everywhere, or unknown.
fn not_found(bins: &[Binary], module: Option<&str>, name: &str) -> String {
    let files: Vec<String> = bins.iter().map(Binary::label).collect();
    let mut sites = Vec::new();
    for bin in bins {
        if module.is_some_and(|m| bin.module.as_deref() != Some(m)) {
            continue;
        }
        if bin.has_debug_info {
            inlined_sites(bin, name, &mut sites);
        }
    }
    if sites.is_empty() {
        return format!(
            "no function {name} in {} (it has no symbol: check the name, or give the file that has it with --vmlinux/--module)",
            files.join(", ")
        );
    }
    let mut msg = format!(
        "{name} has no code of its own: it is inlined. Watch the function it was inlined into (its locals are in that frame; ksw watch --list CALLER shows them):"
    );
    for s in sites.iter().take(12) {
        let _ = write!(msg, "\n  {s}");
    }
    if sites.len() > 12 {
        let _ = write!(msg, "\n  ... and {} more", sites.len() - 12);
    }
    msg
}

/// "into CALLER (file:line)" for every inlined instance of `name`.
fn inlined_sites(bin: &Binary, name: &str, out: &mut Vec<String>) {
    use gimli::constants as dw;
    let dwarf = &*bin.dwarf;
    let mut headers = dwarf.units();
    while let Ok(Some(header)) = headers.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let unit = gimli::UnitRef::new(dwarf, &unit);
        // Cheap filter: is there a subprogram of that name in the unit?
        let mut abstracts = Vec::new();
        let mut entries = unit.entries();
        while let Ok(Some((_, e))) = entries.next_dfs() {
            if e.tag() == dw::DW_TAG_subprogram
                && e.attr_value(dw::DW_AT_inline).ok().flatten().is_some()
                && func::name(unit, e.offset()).as_deref() == Some(name)
            {
                abstracts.push(e.offset());
            }
        }
        if abstracts.is_empty() {
            continue;
        }
        let mut entries = unit.entries();
        let mut callers: Vec<(isize, String)> = Vec::new();
        let mut depth = 0isize;
        while let Ok(Some((delta, e))) = entries.next_dfs() {
            depth += delta;
            callers.retain(|(d, _)| *d < depth);
            if e.tag() == dw::DW_TAG_subprogram {
                callers.push((depth, func::name(unit, e.offset()).unwrap_or_default()));
            }
            if e.tag() != dw::DW_TAG_inlined_subroutine {
                continue;
            }
            let Some(gimli::AttributeValue::UnitRef(o)) =
                e.attr_value(dw::DW_AT_abstract_origin).ok().flatten()
            else {
                continue;
            };
            if !abstracts.contains(&o) {
                continue;
            }
            let file = match e.attr_value(dw::DW_AT_call_file).ok().flatten() {
                Some(gimli::AttributeValue::FileIndex(i)) => func::file_path(unit, i),
                _ => None,
            };
            let line = e
                .attr_value(dw::DW_AT_call_line)
                .ok()
                .flatten()
                .and_then(|v| v.udata_value());
            let caller = callers.last().map_or("?", |c| c.1.as_str());
            let site = format!(
                "into {caller} at {}:{} [{}]",
                file.as_deref().map_or_else(|| "?".into(), show_path),
                line.unwrap_or(0),
                bin.module.as_deref().unwrap_or("vmlinux")
            );
            if !out.contains(&site) {
                out.push(site);
            }
        }
    }
}

/// The function's code, layout and DWARF, ready for questions.
pub struct Frame<'b> {
    pub found: Found<'b>,
    pub info: FuncInfo<'b>,
    code: &'b [u8],
    insns: Vec<Ins>,
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("func", &self.info.name)
            .finish_non_exhaustive()
    }
}

/// A variable in the frame after the instruction at `fo`.
#[derive(Clone, Debug)]
struct InFrame {
    /// The variable's start, relative to the CFA or realigned base.
    slot: Rel,
    /// Its offset from `%rsp` after `fo`.
    so: i64,
    /// Where DWARF puts it, and over which addresses that holds.
    place: Place,
    valid: Range<u64>,
    single: bool,
}

fn no_debug_info(bin: &Binary) -> String {
    match &bin.module {
        None => format!(
            "{} has no debug info: build the kernel with CONFIG_DEBUG_INFO=y (CONFIG_DEBUG_INFO_DWARF5, or _DWARF_TOOLCHAIN_DEFAULT), or install the debug image (Debian: linux-image-$(uname -r)-dbg, /usr/lib/debug/boot/vmlinux-$(uname -r))",
            bin.path.display()
        ),
        Some(m) => format!(
            "{} ({m}) has no debug info: build it against a kernel configured with CONFIG_DEBUG_INFO=y (modules inherit it), or use the -dbg package's copy under /usr/lib/debug/lib/modules/",
            bin.path.display()
        ),
    }
}

impl<'b> Frame<'b> {
    pub fn open(found: Found<'b>) -> Result<Frame<'b>, String> {
        let (bin, sym) = (found.bin, found.sym);
        let code = bin.code(sym).ok_or_else(|| {
            format!(
                "{}: no code for {} (size {})",
                bin.path.display(),
                sym.name,
                sym.size
            )
        })?;
        if !bin.has_debug_info {
            return Err(no_debug_info(bin));
        }
        let ctx = bin.context().ok_or_else(|| no_debug_info(bin))?;
        let unit = ctx
            .find_dwarf_and_unit(sym.addr)
            .skip_all_loads()
            .ok_or_else(|| {
                format!(
                    "{}: no DWARF describes {} (its object was compiled without -g?)",
                    bin.label(),
                    sym.name
                )
            })?;
        let die = func::find_subprogram(unit, sym.addr).ok_or_else(|| {
            format!(
                "{}: no DWARF subprogram starts at {} (assembly, or compiled without -g?)",
                bin.label(),
                sym.name
            )
        })?;
        let info = FuncInfo::read(unit, die, sym.addr, sym.size)?;
        let insns = instructions(code);
        Ok(Frame {
            found,
            info,
            code,
            insns,
        })
    }

    fn label(&self) -> String {
        let bin = self.found.bin;
        match &bin.module {
            Some(m) => format!("{} [{m}]", self.info.name),
            None => self.info.name.clone(),
        }
    }

    fn line_of(&self, off: u32) -> String {
        match self.info.line_at(self.info.low + u64::from(off)) {
            Some((f, l)) => format!("{}:{l}", show_path(f)),
            None => "?".into(),
        }
    }

    fn lines_of(&self, r: &Range<u64>) -> String {
        let lines = self.info.lines_in_range(r);
        match (lines.first(), lines.last()) {
            (Some(a), Some(b)) if a == b => format!("line {a}"),
            (Some(a), Some(b)) => format!("lines {a}-{b}"),
            _ => "no line".into(),
        }
    }

    /// Resolves a request.
    pub fn resolve(&self, req: &Request) -> Result<Resolved, String> {
        if self.info.is_rust() {
            return Err(format!(
                "{} is Rust code: on Linux 6.12 Rust functions have no ftrace entry, so kstackwatch cannot track their calls (Rust writers are caught like any other)",
                self.label()
            ));
        }
        if req.canary {
            return self.resolve_canary(req);
        }
        let Some(path) = req.var.clone() else {
            return Err(format!(
                "name a variable (ksw watch --list {} shows those in the frame) or --canary",
                req.func
            ));
        };
        let code = self.code;
        let insns = self.insns.clone();
        let info = &self.info;
        let unit = info.unit;
        let mut work = vec![Entry::EMPTY; code.len() + 1];
        let layout = layout::analyze(code, &mut work).map_err(|e| {
            format!(
                "the stack layout of {} cannot be followed: {e}; kstackwatch rejects it too",
                info.name
            )
        })?;
        let body = body_regs(&layout);
        let pe = layout.prologue_end();
        // Candidate probe points.
        let (cands, how): (Vec<u32>, String) = match &req.at {
            At::Default => {
                let start = pe.unwrap_or(0);
                (
                    insns
                        .iter()
                        .map(|i| i.off)
                        .filter(|&o| o >= start)
                        .collect(),
                    "the first instruction after the prologue where the variable is in the frame"
                        .into(),
                )
            }
            At::Offset(o) => (vec![*o], format!("--at +{o:#x}")),
            At::Line { file, line } => {
                let rows = info.rows_of(file, *line);
                if rows.is_empty() {
                    if !info.has_file(file) {
                        let files: Vec<String> = info.files.iter().map(|f| show_path(f)).collect();
                        return Err(format!(
                            "{} has no code from a file named {file} (its code comes from {})",
                            info.name,
                            files.join(", ")
                        ));
                    }
                    let lines = info.lines_in(file);
                    let near: Vec<String> =
                        nearest(&lines, *line).iter().map(u64::to_string).collect();
                    return Err(format!(
                        "no code of {} is on {file}:{line} (optimized away, or not a statement); lines with code near it: {}",
                        info.name,
                        near.join(", ")
                    ));
                }
                let mut starts: Vec<u64> =
                    rows.iter().filter(|r| r.is_stmt).map(|r| r.addr).collect();
                if starts.is_empty() {
                    starts = rows.iter().map(|r| r.addr).collect();
                }
                starts.sort_unstable();
                let first = (starts[0] - info.low) as u32;
                // The line's first instruction, or the first after it a
                // post handler can follow (not a call or jump).
                let fo = insns
                    .iter()
                    .map(|i| i.off)
                    .find(|&o| o >= first && layout.probe_site(o).is_ok())
                    .ok_or_else(|| format!("no instruction from {file}:{line} on can be probed"))?;
                let mut how = format!("--at {file}:{line}: the line's first instruction");
                if fo != first {
                    let _ = write!(how, " +{first:#x} is a call or jump, so the one after it");
                }
                if starts.len() > 1 {
                    let more: Vec<String> = starts[1..]
                        .iter()
                        .map(|a| format!("+{:#x}", a - info.low))
                        .collect();
                    let _ = write!(how, " (the line also has code at {})", more.join(" "));
                }
                (vec![fo], how)
            }
        };
        // The variable.
        let mut vars: Vec<&Var> = info.vars.iter().filter(|v| v.name == path.var).collect();
        if vars.is_empty() {
            let mut names: Vec<&str> = info
                .vars
                .iter()
                .filter(|v| v.inlined.is_empty())
                .map(|v| v.name.as_str())
                .collect();
            names.sort_unstable();
            names.dedup();
            return Err(format!(
                "{} has no parameter or local named {} (it has: {}; ksw watch --list {} says which are in the frame)",
                info.name,
                path.var,
                names.join(", "),
                req.func
            ));
        }
        if vars.len() > 1 {
            if let [fo] = cands.as_slice() {
                let pc = next_pc(&insns, *fo).unwrap_or(0) + info.low;
                let here: Vec<&Var> = vars.iter().copied().filter(|v| v.in_scope(pc)).collect();
                if !here.is_empty() {
                    vars = here;
                }
                // Blocks the compiler merged: the one with a location there.
                let located: Vec<&Var> = vars
                    .iter()
                    .copied()
                    .filter(|v| v.at(info, pc).is_some())
                    .collect();
                if !located.is_empty() {
                    vars = located;
                }
            }
            let top = vars
                .iter()
                .map(|v| (v.inlined.len(), v.depth))
                .min()
                .unwrap_or_default();
            vars.retain(|v| (v.inlined.len(), v.depth) == top);
        }
        if vars.len() > 1 {
            let mut msg = format!(
                "{} declares {} {} times; pick one with --at FILE:LINE inside its block:",
                info.name,
                path.var,
                vars.len()
            );
            for v in &vars {
                let _ = write!(msg, "\n  {}", describe_var(info, v));
            }
            return Err(msg);
        }
        let var = vars[0];
        let types = Types { unit };
        let sel = types.select(&path.var, var.ty, &path.steps)?;
        let Some(size) = sel.size.filter(|&s| s > 0) else {
            return Err(format!(
                "{path}: size unknown ({}), nothing to watch",
                types.name(&sel.ty)
            ));
        };
        // Find the probe point.
        let mut first_err: Option<(u32, String)> = None;
        let mut chosen = None;
        for &fo in &cands {
            match in_frame(&layout, &insns, info, var, &sel, body, fo) {
                Ok(f) => {
                    chosen = Some((fo, f));
                    break;
                }
                Err(e) => {
                    if first_err.is_none() && !matches!(req.at, At::Default) {
                        first_err = Some((fo, e));
                    }
                }
            }
        }
        let Some((fo, frame)) = chosen else {
            let whole = Selected {
                offset: 0,
                size: Some(size),
                ty: sel.ty.clone(),
                bitfield: None,
            };
            let elsewhere = watchable(&layout, &insns, info, var, &whole, body);
            let mut msg = match first_err {
                Some((fo, e)) => format!(
                    "{path} cannot be watched after +{fo:#x} ({}): {e}",
                    self_line(info, fo)
                ),
                None => format!(
                    "{path} is never in {}'s frame where a probe can arm: {}",
                    info.name,
                    never_why(info, var)
                ),
            };
            if elsewhere.is_empty() {
                if !matches!(req.at, At::Default) {
                    let _ = write!(
                        msg,
                        "\n{} is not in the frame anywhere in {}: {}",
                        path.var,
                        info.name,
                        never_why(info, var)
                    );
                }
            } else {
                let _ = write!(msg, "\n{} is in the frame at:", path.var);
                for w in elsewhere.iter().take(8) {
                    let _ = write!(msg, "\n  {}", w.text(info));
                }
                let _ = write!(
                    msg,
                    "\nuse --at +OFFSET or --at FILE:LINE inside one of those ranges"
                );
            }
            return Err(msg);
        };
        // The watched bytes: the member, or its first naturally aligned
        // word when it is wider than 8 bytes (or oddly sized).
        let start = frame.slot.plus(sel.offset as i32);
        let residue = match start {
            Rel::Cfa(o) | Rel::Realigned(o) => i64::from(o).rem_euclid(8) as u64,
            Rel::Unknown => 0,
        };
        let (skip, wl) = window(residue, size)
            .ok_or_else(|| format!("{path}: no naturally aligned 1, 2, 4 or 8 bytes inside it"))?;
        let so = frame.so + sel.offset as i64 + skip as i64;
        let slot = start.plus(skip as i32);
        let mut explain = Vec::new();
        let bin = self.found.bin;
        explain.push((
            "function".into(),
            format!(
                "{} in {}, {} bytes{}",
                info.name,
                bin.label(),
                self.found.sym.size,
                info.decl
                    .as_ref()
                    .map_or_else(String::new, |(f, l)| format!(", {}:{l}", show_path(f)))
            ),
        ));
        explain.push((
            "probe".into(),
            format!(
                "+{fo:#x} ({}): {how}; the watch arms after that instruction runs",
                self_line(info, fo)
            ),
        ));
        let ty_name = types.name(&Ty::Die(var.ty));
        let var_size = types
            .size(&Ty::Die(var.ty))
            .map_or_else(|| "?".into(), |s| s.to_string());
        let mut v = format!("{} ({} {ty_name}, {var_size} bytes", var.name, var.kind());
        if let Some((f, l)) = &var.decl {
            let _ = write!(v, ", declared at {}:{l}", show_path(f));
        }
        v.push(')');
        if let Some(site) = var.inlined.last() {
            let _ = write!(
                v,
                ", in {} inlined at {}:{}",
                site.callee,
                show_path(&site.call_file),
                site.call_line
            );
        }
        explain.push(("variable".into(), v));
        if !path.steps.is_empty() {
            let mut m = format!(
                "{path}: {}, {size} bytes at {}+{:#x}",
                types.name(&sel.ty),
                var.name,
                sel.offset
            );
            if let Some((at, bits)) = sel.bitfield {
                let _ = write!(m, " (a {bits}-bit field at bit {at} of that storage unit)");
            }
            explain.push(("member".into(), m));
        }
        let loc_text = match &var.loc {
            Loc::Single(e) => format!(
                "{} wherever it is in scope",
                location::describe(e, unit.encoding())
            ),
            Loc::List(list) => {
                let e = &list
                    .iter()
                    .find(|(r, _)| *r == frame.valid)
                    .map(|(_, e)| e.clone());
                format!(
                    "location list: {} at +{:#x}..+{:#x} ({})",
                    e.as_ref()
                        .map_or_else(|| "?".into(), |e| location::describe(e, unit.encoding())),
                    frame.valid.start - info.low,
                    frame.valid.end - info.low,
                    self.lines_of(&frame.valid)
                )
            }
            _ => String::new(),
        };
        explain.push((
            "location".into(),
            format!("{loc_text}: {} after +{fo:#x}", frame.place),
        ));
        explain.push((
            "frame".into(),
            format!(
                "{} starts at {}{} = sp{} after +{fo:#x}",
                var.name,
                frame.slot,
                if matches!(frame.slot, Rel::Realigned(_)) {
                    " (R: the realigned stack base)"
                } else {
                    " (CFA: the stack pointer before the call)"
                },
                hex_plus(frame.so)
            ),
        ));
        let what = if skip == 0 && u64::from(wl) == size {
            format!("all of {path}")
        } else {
            format!(
                "bytes {skip}..{} of the {size}-byte {path}: its first naturally aligned {wl}-byte word (a watch is 1, 2, 4 or 8 aligned bytes)",
                skip + u64::from(wl)
            )
        };
        explain.push((
            "watch".into(),
            format!(
                "{wl} bytes at sp{} (frame slot {slot}): {what}",
                hex_plus(so)
            ),
        ));
        if !frame.single {
            explain.push((
                "note".into(),
                format!(
                    "{} is at this slot only from +{:#x} to +{:#x}; after that the slot may hold other data, and writes to it are reported too",
                    var.name,
                    frame.valid.start - info.low,
                    frame.valid.end - info.low
                ),
            ));
        }
        if matches!(req.at, At::Default) && !var.param {
            explain.push((
                "note".into(),
                "armed right after the prologue: the function's own initialization of the variable is reported as writes by the victim; --at FILE:LINE arms later".into(),
            ));
        }
        let mut config = format!("fn={} fo={fo:#x} so={so:#x} wl={wl}", self.found.sym.name);
        push_common(&mut config, req);
        Ok(Resolved {
            func: self.found.sym.name.clone(),
            module: bin.module.clone(),
            fo: Some(fo),
            so: Some(so),
            wl: Some(wl),
            slot: Some(slot),
            config,
            explain,
        })
    }

    fn resolve_canary(&self, req: &Request) -> Result<Resolved, String> {
        let insns = self.insns.clone();
        let name = self.info.name.clone();
        let label = self.label();
        let fo = match &req.at {
            At::Default => None,
            At::Offset(o) => Some(*o),
            At::Line { file, line } => {
                let rows = self.info.rows_of(file, *line);
                let first = rows
                    .iter()
                    .filter(|r| r.is_stmt)
                    .map(|r| r.addr)
                    .min()
                    .or_else(|| rows.iter().map(|r| r.addr).min())
                    .ok_or_else(|| format!("no code of {name} is on {file}:{line}"))?;
                Some((first - self.info.low) as u32)
            }
        };
        let low = self.info.low;
        let decl = self.info.decl.clone();
        let size = self.found.sym.size;
        let bin_label = self.found.bin.label();
        let lines: Vec<(u32, String)> =
            insns.iter().map(|i| (i.off, self.line_of(i.off))).collect();
        let mut work = vec![Entry::EMPTY; self.code.len() + 1];
        let layout = layout::analyze(self.code, &mut work).map_err(|e| {
            format!(
                "the stack layout of {name} cannot be followed: {e}; kstackwatch rejects it too"
            )
        })?;
        let canary = layout.canary().ok_or_else(|| {
            format!(
                "{label} has no stack-protector canary (no `mov %gs:0x28` store in its prologue)"
            )
        })?;
        let fo = match fo {
            None => None,
            Some(o) => {
                let o = insns
                    .iter()
                    .map(|i| i.off)
                    .find(|&x| x >= o && layout.probe_site(x).is_ok())
                    .ok_or_else(|| format!("no instruction from +{o:#x} on can be probed"))?;
                if o < canary.off {
                    return Err(format!(
                        "+{o:#x} is before the canary store at +{:#x}: the canary is not in place yet",
                        canary.off
                    ));
                }
                Some(o)
            }
        };
        let line = |o: u32| {
            lines
                .iter()
                .find(|l| l.0 == o)
                .map_or("?".to_string(), |l| l.1.clone())
        };
        let mut explain = vec![(
            "function".to_string(),
            format!(
                "{name} in {bin_label}, {size} bytes{}",
                decl.as_ref()
                    .map_or_else(String::new, |(f, l)| format!(", {}:{l}", show_path(f)))
            ),
        )];
        explain.push((
            "probe".into(),
            match fo {
                None => format!(
                    "+{:#x} ({}): the canary store (the module's default)",
                    canary.off,
                    line(canary.off)
                ),
                Some(o) => format!(
                    "+{o:#x} ({}): the watch arms after that instruction runs",
                    line(o)
                ),
            },
        ));
        explain.push((
            "canary".into(),
            format!(
                "8 bytes at frame slot {} (stored by the instruction at +{:#x})",
                canary.slot, canary.off
            ),
        ));
        let _ = low;
        let mut config = format!("fn={}", self.found.sym.name);
        if let Some(o) = fo {
            let _ = write!(config, " fo={o:#x}");
        }
        config.push_str(" ac=1");
        push_common(&mut config, req);
        Ok(Resolved {
            func: self.found.sym.name.clone(),
            module: self.found.bin.module.clone(),
            fo: Some(fo.unwrap_or(canary.off)),
            so: None,
            wl: None,
            slot: Some(canary.slot),
            config,
            explain,
        })
    }

    /// `--list`: the parameters and locals that are in the frame, where.
    pub fn list(&self) -> Result<String, String> {
        let code = self.code;
        let insns = self.insns.clone();
        let info = &self.info;
        let unit = info.unit;
        let mut work = vec![Entry::EMPTY; code.len() + 1];
        let layout = layout::analyze(code, &mut work).map_err(|e| {
            format!(
                "the stack layout of {} cannot be followed: {e}; kstackwatch rejects it too",
                info.name
            )
        })?;
        let body = body_regs(&layout);
        let types = Types { unit };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} in {}, {} bytes{}",
            info.name,
            self.found.bin.label(),
            self.found.sym.size,
            info.decl
                .as_ref()
                .map_or_else(String::new, |(f, l)| format!(", {}:{l}", show_path(f)))
        );
        if let Some(pe) = layout.prologue_end() {
            let _ = writeln!(
                out,
                "prologue ends at +{pe:#x} ({}); canary: {}",
                self_line(info, pe),
                match layout.canary() {
                    Some(c) => format!("frame slot {} (ksw watch {} --canary)", c.slot, info.name),
                    None => "none".into(),
                }
            );
        }
        let mut outside = Vec::new();
        let mut listed = 0;
        for var in &info.vars {
            let size = types.size(&Ty::Die(var.ty));
            let whole = Selected {
                offset: 0,
                size,
                ty: Ty::Die(var.ty),
                bitfield: None,
            };
            let w = if size.is_some() {
                watchable(&layout, &insns, info, var, &whole, body)
            } else {
                Vec::new()
            };
            if w.is_empty() {
                if var.inlined.is_empty() {
                    outside.push(format!("{} ({})", var.name, short_why(info, var)));
                }
                continue;
            }
            listed += 1;
            let _ = writeln!(
                out,
                "  {}",
                describe_var(info, var).replacen(&var.name, &format!("{:<12}", var.name), 1)
            );
            for r in &w {
                let _ = writeln!(out, "      {}", r.text(info));
            }
        }
        if listed == 0 {
            let _ = writeln!(
                out,
                "  no parameter or local is in the frame at a point a probe can arm"
            );
        }
        if !outside.is_empty() {
            let _ = writeln!(out, "not in the frame: {}", outside.join(", "));
        }
        Ok(out)
    }
}

fn hex_plus(v: i64) -> String {
    if v < 0 {
        format!("-{:#x}", v.unsigned_abs())
    } else {
        format!("+{v:#x}")
    }
}

fn self_line(info: &FuncInfo<'_>, off: u32) -> String {
    match info.line_at(info.low + u64::from(off)) {
        Some((f, l)) => format!("{}:{l}", show_path(f)),
        None => "no line".into(),
    }
}

fn push_common(config: &mut String, req: &Request) {
    if let Some(d) = req.depth {
        let _ = write!(config, " dp={d}");
    }
    if let Some(m) = req.max_watch {
        let _ = write!(config, " mw={m}");
    }
    if req.panic {
        config.push_str(" ph=1");
    }
}

/// Up to five lines of `lines` nearest `line`.
fn nearest(lines: &[u64], line: u64) -> Vec<u64> {
    let mut v = lines.to_vec();
    v.sort_by_key(|&l| (l.abs_diff(line), l));
    v.truncate(5);
    v.sort_unstable();
    v
}

/// The registers in the function's body: after the default probe point.
fn body_regs(layout: &Layout<'_>) -> Regs {
    layout
        .prologue_end()
        .and_then(|pe| layout.probe_site(pe).ok())
        .map(|s| s.after)
        .unwrap_or(Regs {
            sp: Rel::Cfa(-8),
            bp: Rel::Unknown,
        })
}

fn next_pc(insns: &[Ins], fo: u32) -> Option<u64> {
    insns
        .iter()
        .find(|i| i.off == fo)
        .map(|i| u64::from(i.off + i.len))
}

/// The first naturally aligned window of 8, 4, 2 or 1 bytes inside
/// `size` bytes that start at `residue` mod 8: (skip, len).
pub fn window(residue: u64, size: u64) -> Option<(u64, u8)> {
    for len in [8u64, 4, 2, 1] {
        if len > size {
            continue;
        }
        let skip = (len - residue % len) % len;
        if skip + len <= size {
            return Some((skip, len as u8));
        }
    }
    None
}

/// The variable (the selected part of it) after the instruction at `fo`.
fn in_frame(
    layout: &Layout<'_>,
    insns: &[Ins],
    info: &FuncInfo<'_>,
    var: &Var,
    sel: &Selected,
    body: Regs,
    fo: u32,
) -> Result<InFrame, String> {
    let site = layout.probe_site(fo).map_err(|e| e.to_string())?;
    let pc = info.low + next_pc(insns, fo).ok_or("not an instruction")?;
    if !var.in_scope(pc) {
        let scope: Vec<String> = var
            .scope
            .iter()
            .map(|r| format!("+{:#x}..+{:#x}", r.start - info.low, r.end - info.low))
            .collect();
        return Err(format!(
            "{} is not in scope there (its block is {})",
            var.name,
            scope.join(" ")
        ));
    }
    let Some((pieces, valid, single)) = var.at(info, pc) else {
        return Err(match var.loc {
            Loc::Const => format!("{} is a constant, stored nowhere", var.name),
            Loc::Missing => format!("{} is optimized out", var.name),
            _ => format!(
                "{} is optimized out there (no location covers that pc)",
                var.name
            ),
        });
    };
    let len = sel.size.unwrap_or(1);
    let (place, _) = location::place_of(&pieces, sel.offset, len)?;
    // The variable's start: the piece's place minus the offset into it.
    let (base, off) = match place {
        Place::Mem { base, off } => (base, off - sel.offset as i64),
        other => return Err(format!("{} is {other} there", var.name)),
    };
    let after = site.after;
    if single {
        let (now, then, reg) = match base {
            Base::Sp => (after.sp, body.sp, "%rsp"),
            Base::Bp => (after.bp, body.bp, "%rbp"),
            _ => (Rel::Unknown, Rel::Unknown, ""),
        };
        if !reg.is_empty() && (now != then || now == Rel::Unknown) {
            return Err(format!(
                "the frame is not set up there: {reg} is {now} there and {then} in the function's body, where its {reg}-relative location holds"
            ));
        }
    }
    let slot = match base {
        Base::Cfa => Rel::Cfa(i32::try_from(off).map_err(|_| "offset out of range")?),
        Base::Sp => after.sp.plus(i32::try_from(off).map_err(|_| "offset out of range")?),
        Base::Bp => {
            if after.bp == Rel::Unknown {
                return Err("%rbp is not the frame pointer there".into());
            }
            after.bp.plus(i32::try_from(off).map_err(|_| "offset out of range")?)
        }
        Base::Reg(r) => {
            return Err(format!(
                "{} is in memory at {}{}: an address held in a register, not a fixed place in the frame",
                var.name,
                location::reg_name(r),
                hex_plus(off)
            ))
        }
    };
    let so = match (slot, after.sp) {
        (Rel::Cfa(s), Rel::Cfa(p)) | (Rel::Realigned(s), Rel::Realigned(p)) => i64::from(s) - i64::from(p),
        _ => {
            return Err(format!(
                "{} is at {slot} but %rsp is {} there: the frame is realigned, so their distance is not fixed, and kstackwatch's sp_offset is relative to %rsp",
                var.name, after.sp
            ))
        }
    };
    if so < 0 {
        return Err(format!(
            "{} is below the stack pointer there (sp{}): not live",
            var.name,
            hex_plus(so)
        ));
    }
    Ok(InFrame {
        slot,
        so,
        place: Place::Mem { base, off },
        valid,
        single,
    })
}

/// A run of probe points where the variable is at one frame slot.
#[derive(Clone, Debug)]
struct Run {
    first: u32,
    last: u32,
    slot: Rel,
    so_first: i64,
    so_varies: bool,
}

impl Run {
    fn text(&self, info: &FuncInfo<'_>) -> String {
        let (a, b) = (self_line(info, self.first), self_line(info, self.last));
        let lines = if a == b { a } else { format!("{a} .. {b}") };
        let so = if self.so_varies {
            format!(
                "sp{} at +{:#x}, varies",
                hex_plus(self.so_first),
                self.first
            )
        } else {
            format!("sp{}", hex_plus(self.so_first))
        };
        format!(
            "frame slot {} ({so}) after +{:#x}..+{:#x} ({lines})",
            self.slot, self.first, self.last
        )
    }
}

/// Every probe point where the selected part of `var` is in the frame,
/// grouped into runs.
fn watchable(
    layout: &Layout<'_>,
    insns: &[Ins],
    info: &FuncInfo<'_>,
    var: &Var,
    sel: &Selected,
    body: Regs,
) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut prev_ok = false;
    for i in insns {
        match in_frame(layout, insns, info, var, sel, body, i.off) {
            Ok(f) => {
                match runs.last_mut() {
                    Some(r) if prev_ok && r.slot == f.slot => {
                        r.last = i.off;
                        r.so_varies |= r.so_first != f.so;
                    }
                    _ => runs.push(Run {
                        first: i.off,
                        last: i.off,
                        slot: f.slot,
                        so_first: f.so,
                        so_varies: false,
                    }),
                }
                prev_ok = true;
            }
            // Calls and jumps interrupt nothing: the variable stays put.
            Err(e) if e.contains("call, jump or return") => {}
            Err(_) => prev_ok = false,
        }
    }
    runs
}

fn describe_var(info: &FuncInfo<'_>, v: &Var) -> String {
    let types = Types { unit: info.unit };
    let size = types
        .size(&Ty::Die(v.ty))
        .map_or_else(|| "?".into(), |s| s.to_string());
    let mut s = format!(
        "{} {} {} ({size} bytes)",
        v.name,
        v.kind(),
        types.name(&Ty::Die(v.ty))
    );
    if let Some((f, l)) = &v.decl {
        let _ = write!(s, ", {}:{l}", show_path(f));
    }
    if let Some(site) = v.inlined.last() {
        let _ = write!(
            s,
            ", in {} inlined at {}:{}",
            site.callee,
            show_path(&site.call_file),
            site.call_line
        );
    }
    s
}

/// Where a variable is when it is not in the frame: registers, and
/// whether it is computed, constant or elsewhere in memory.
fn elsewhere(info: &FuncInfo<'_>, v: &Var) -> (Vec<String>, Vec<String>) {
    let exprs: Vec<&gimli::Expression<crate::elf::R>> = match &v.loc {
        Loc::Single(e) => vec![e],
        Loc::List(list) => list.iter().map(|(_, e)| e).collect(),
        _ => Vec::new(),
    };
    let mut regs = Vec::new();
    let mut other = Vec::new();
    for e in exprs {
        for p in info.classify(e) {
            let (list, text) = match &p.place {
                Place::Reg(r) => (&mut regs, location::reg_name(*r)),
                Place::Value(_) => (&mut other, "recomputed from other values".to_string()),
                Place::Static => (&mut other, "at a static address".to_string()),
                Place::Empty => (&mut other, "optimized out in places".to_string()),
                Place::Mem {
                    base: Base::Reg(r),
                    off,
                } => (
                    &mut other,
                    format!("in memory at {}{}", location::reg_name(*r), hex_plus(*off)),
                ),
                p => (&mut other, p.to_string()),
            };
            if !list.contains(&text) {
                list.push(text);
            }
        }
    }
    (regs, other)
}

/// Why a variable is never in the frame, in a few words.
fn short_why(info: &FuncInfo<'_>, v: &Var) -> String {
    match &v.loc {
        Loc::Missing => "optimized out".into(),
        Loc::Const => "a constant".into(),
        _ => {
            let (regs, other) = elsewhere(info, v);
            let mut parts = Vec::new();
            if !regs.is_empty() {
                parts.push(regs.join(" or "));
            }
            parts.extend(other);
            parts.join(", ")
        }
    }
}

/// Why a variable is never in the frame, as a sentence.
fn never_why(info: &FuncInfo<'_>, v: &Var) -> String {
    match &v.loc {
        Loc::Missing => format!("{} is optimized out (DWARF gives it no location)", v.name),
        Loc::Const => format!(
            "{} is a constant (DW_AT_const_value), stored nowhere",
            v.name
        ),
        _ => {
            let (regs, other) = elsewhere(info, v);
            let mut s = format!("{} is", v.name);
            if !regs.is_empty() {
                let _ = write!(
                    s,
                    " only in register{} {}",
                    if regs.len() > 1 { "s" } else { "" },
                    regs.join(", ")
                );
            }
            if !other.is_empty() {
                if !regs.is_empty() {
                    s.push_str(" or");
                }
                let _ = write!(s, " {}", other.join(", "));
            }
            s
        }
    }
}
