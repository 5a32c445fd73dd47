//! What the storm knows about the functions it names, and the outcome it
//! predicts for a configuration the parser accepts.
//!
//! Names are resolved the way `register_kprobe` resolves them (vmlinux
//! first, then modules, `module:symbol` too), from the guest's
//! `/proc/kallsyms`. For functions of the test module the machine code comes
//! from its `.ko` (relocated fields filled so that branches leave the
//! function, as they do once loaded) and is run through the same layout
//! analysis the module uses (`ksw_core::layout`), in the order the module
//! plans a watch (`kmod/kstackwatch/watch.rs`): size, decode, offset,
//! probe site, target, release points. Anything else (kernel functions,
//! function lists) gets no prediction: its errno must only be documented.

use std::collections::{HashMap, HashSet};

use ksw_core::config::{Spec, WatchTarget};
use ksw_core::layout::{self, Entry, LayoutError, ReleasePoint};
use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionKind, SymbolKind};

pub const ENOENT: i32 = 2;
pub const E2BIG: i32 = 7;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const EINVAL: i32 = 22;
pub const EFBIG: i32 = 27;
pub const ERANGE: i32 = 34;
pub const ENAMETOOLONG: i32 = 36;
pub const ENODATA: i32 = 61;
pub const EILSEQ: i32 = 84;
pub const EOPNOTSUPP: i32 = 95;

/// Largest function the module decodes (`watch.rs`).
const MAX_FUNCTION_SIZE: usize = 64 * 1024;
/// Release points the module keeps per watch (`watch.rs`).
const MAX_RELEASE_POINTS: usize = 32;

/// Errno names, for tables and messages.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        0 => "accepted",
        1 => "EPERM",
        ENOENT => "ENOENT",
        5 => "EIO",
        E2BIG => "E2BIG",
        12 => "ENOMEM",
        14 => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        EINVAL => "EINVAL",
        EFBIG => "EFBIG",
        ERANGE => "ERANGE",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENODATA => "ENODATA",
        EILSEQ => "EILSEQ",
        EOPNOTSUPP => "EOPNOTSUPP",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

pub fn errno_of_name(name: &str) -> Option<i32> {
    (0..200).find(|&e| errno_name(e) == name)
}

/// A predicted outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pred {
    Ok,
    Err(i32),
    /// No prediction: any documented errno, or acceptance.
    Unknown,
}

/// One function of the test module.
#[derive(Clone, Debug)]
pub struct Func {
    pub name: String,
    /// Size as the kernel sees it (kallsyms: up to the next symbol).
    pub size: usize,
    /// Its bytes, `size` of them, when the object file holds them all.
    pub code: Option<Vec<u8>>,
    /// Has an ftrace entry (C code; Rust has none on 6.12).
    pub ftrace: bool,
}

/// How a name resolves in the running kernel.
#[derive(Clone, Copy, Debug)]
pub enum Resolved<'a> {
    Test(&'a Func),
    /// A data symbol of the test module: not kprobe-able text.
    TestData,
    /// vmlinux or another module: no prediction.
    Elsewhere,
    Missing,
}

#[derive(Debug)]
pub struct Facts {
    pub module: String,
    funcs: HashMap<String, Func>,
    test_data: HashSet<String>,
    /// Text symbols of the test module whose bytes are not known.
    test_text: HashSet<String>,
    kernel: HashSet<String>,
    /// Symbols of every other loaded module, by module.
    modules: HashMap<String, HashSet<String>>,
}

impl Facts {
    /// `kallsyms` is the text of `/proc/kallsyms`, `ko` the test module's
    /// object file, `module` its name.
    pub fn load(kallsyms: &str, ko: &[u8], module: &str) -> Result<Facts, String> {
        let mut kernel = HashSet::new();
        let mut modules: HashMap<String, HashSet<String>> = HashMap::new();
        let mut ours: Vec<(u64, String, char)> = Vec::new();
        for line in kallsyms.lines() {
            let mut parts = line.split_whitespace();
            let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let kind = kind.chars().next().unwrap_or('?');
            match parts.next() {
                None => {
                    kernel.insert(name.to_string());
                }
                Some(m) => {
                    let m = m.trim_start_matches('[').trim_end_matches(']');
                    if m == module {
                        let addr = u64::from_str_radix(addr, 16).unwrap_or(0);
                        ours.push((addr, name.to_string(), kind));
                    } else {
                        modules
                            .entry(m.to_string())
                            .or_default()
                            .insert(name.to_string());
                    }
                }
            }
        }
        if ours.is_empty() {
            return Err(format!("no symbol of {module} in /proc/kallsyms (loaded?)"));
        }
        ours.sort();
        let elf = if ko.is_empty() {
            HashMap::new()
        } else {
            elf_functions(ko)?
        };
        let mut funcs = HashMap::new();
        let mut test_data = HashSet::new();
        let mut test_text = HashSet::new();
        for (i, (addr, name, kind)) in ours.iter().enumerate() {
            if !matches!(kind, 't' | 'T') {
                test_data.insert(name.clone());
                continue;
            }
            let next = ours[i + 1..].iter().find(|s| s.0 > *addr).map(|s| s.0);
            let (Some(next), Some(e)) = (next, elf.get(name)) else {
                test_text.insert(name.clone());
                continue;
            };
            let size = (next - addr) as usize;
            // The kernel's size must be what the object says lies before
            // the next symbol, else the bytes are not known.
            let code = (e.gap == size).then(|| e.code.clone());
            funcs.insert(
                name.clone(),
                Func {
                    name: name.clone(),
                    size,
                    code,
                    ftrace: e.ftrace,
                },
            );
        }
        Ok(Facts {
            module: module.to_string(),
            funcs,
            test_data,
            test_text,
            kernel,
            modules,
        })
    }

    pub fn func(&self, name: &str) -> Option<&Func> {
        self.funcs.get(name)
    }

    pub fn funcs(&self) -> impl Iterator<Item = &Func> {
        self.funcs.values()
    }

    /// Whether any symbol of that name exists anywhere.
    pub fn exists(&self, name: &str) -> bool {
        !matches!(self.resolve(name), Resolved::Missing)
    }

    pub fn resolve(&self, name: &str) -> Resolved<'_> {
        if let Some((m, sym)) = name.split_once(':') {
            if m == self.module {
                return self.resolve_ours(sym);
            }
            return match self.modules.get(m) {
                Some(syms) if syms.contains(sym) => Resolved::Elsewhere,
                _ => Resolved::Missing,
            };
        }
        if self.kernel.contains(name) {
            return Resolved::Elsewhere;
        }
        match self.resolve_ours(name) {
            Resolved::Missing if self.modules.values().any(|s| s.contains(name)) => {
                Resolved::Elsewhere
            }
            r => r,
        }
    }

    fn resolve_ours(&self, name: &str) -> Resolved<'_> {
        if let Some(f) = self.funcs.get(name) {
            Resolved::Test(f)
        } else if self.test_text.contains(name) {
            Resolved::Elsewhere
        } else if self.test_data.contains(name) {
            Resolved::TestData
        } else {
            Resolved::Missing
        }
    }

    /// The outcome of watching `spec` alone.
    pub fn predict(&self, spec: &Spec) -> Pred {
        match self.resolve(spec.func.as_str()) {
            Resolved::Missing => Pred::Err(ENOENT),
            Resolved::TestData => Pred::Err(EINVAL),
            Resolved::Elsewhere => Pred::Unknown,
            Resolved::Test(f) => predict_func(f, spec.func_offset, spec.target),
        }
    }
}

/// `watch::plan` and the probe registration, on the object's code.
pub fn predict_func(f: &Func, func_offset: Option<u32>, target: WatchTarget) -> Pred {
    if f.size > MAX_FUNCTION_SIZE {
        return Pred::Err(EFBIG);
    }
    let Some(code) = &f.code else {
        return Pred::Unknown;
    };
    let mut work = vec![Entry::EMPTY; code.len().max(1)];
    let layout = match layout::analyze(code, &mut work) {
        Ok(l) => l,
        Err(e) => return Pred::Err(layout_errno(e)),
    };
    let arm_off = match func_offset {
        Some(off) if off as usize >= f.size => return Pred::Err(ERANGE),
        Some(off) => off,
        None => match layout.prologue_end() {
            Some(off) => off,
            None => return Pred::Err(EINVAL),
        },
    };
    let site = match layout.probe_site(arm_off) {
        Ok(s) => s,
        Err(e) => return Pred::Err(layout_errno(e)),
    };
    let slot = match target {
        WatchTarget::Local { sp_offset, .. } => site.after.sp.plus(sp_offset as i32),
        WatchTarget::Canary => {
            let Some(store) = layout.canary() else {
                return Pred::Err(ENODATA);
            };
            if store.off > arm_off {
                return Pred::Err(EINVAL);
            }
            if site.addr_of(store.slot).is_none() {
                return Pred::Err(EOPNOTSUPP);
            }
            store.slot
        }
    };
    let mut releases = [ReleasePoint::NONE; MAX_RELEASE_POINTS];
    if let Err(e) = layout.release_points(slot, &mut releases) {
        return Pred::Err(layout_errno(e));
    }
    if !f.ftrace {
        // register_fprobe_ips() refuses a function without an ftrace entry;
        // the errno is the kernel's, checked against the table only.
        return Pred::Unknown;
    }
    Pred::Ok
}

fn layout_errno(e: LayoutError) -> i32 {
    match e {
        LayoutError::NotInstructionStart { .. } => EILSEQ,
        LayoutError::Unreached { .. } | LayoutError::ProbeOnBranch { .. } => EINVAL,
        _ => EOPNOTSUPP,
    }
}

struct ElfFunc {
    /// Bytes up to the next symbol of its section (relocations filled).
    code: Vec<u8>,
    gap: usize,
    ftrace: bool,
}

/// Every function of the object: its bytes up to the next symbol, with
/// 32-bit relocated fields set so that pc-relative branches land far
/// outside the function (as calls and tail calls do once the module is
/// loaded), and whether its entry is an ftrace site (`__mcount_loc`).
fn elf_functions(ko: &[u8]) -> Result<HashMap<String, ElfFunc>, String> {
    let file = object::File::parse(ko).map_err(|e| format!("test module object: {e}"))?;
    // Patched copies of the text sections.
    let mut texts: HashMap<usize, Vec<u8>> = HashMap::new();
    let mut ftrace_sites: HashSet<(usize, u64)> = HashSet::new();
    for section in file.sections() {
        if section.kind() == SectionKind::Text {
            let mut data = section.data().map_err(|e| e.to_string())?.to_vec();
            for (off, rel) in section.relocations() {
                let off = off as usize;
                if rel.size() == 32 && off + 4 <= data.len() {
                    data[off..off + 4].copy_from_slice(&0x4000_0000i32.to_le_bytes());
                }
            }
            texts.insert(section.index().0, data);
        } else if section.name() == Ok("__mcount_loc") {
            for (_, rel) in section.relocations() {
                if let RelocationTarget::Symbol(sym) = rel.target() {
                    if let Ok(s) = file.symbol_by_index(sym) {
                        if let Some(idx) = s.section_index() {
                            let at = s.address().wrapping_add(rel.addend() as u64);
                            ftrace_sites.insert((idx.0, at));
                        }
                    }
                }
            }
        }
    }
    // Named symbols per text section, by offset.
    let mut bounds: HashMap<usize, Vec<u64>> = HashMap::new();
    for s in file.symbols() {
        if let (Some(idx), Ok(name)) = (s.section_index(), s.name()) {
            if !name.is_empty() && s.kind() != SymbolKind::Section && texts.contains_key(&idx.0) {
                bounds.entry(idx.0).or_default().push(s.address());
            }
        }
    }
    for b in bounds.values_mut() {
        b.sort_unstable();
        b.dedup();
    }
    let mut out = HashMap::new();
    for s in file.symbols() {
        if s.kind() != SymbolKind::Text {
            continue;
        }
        let (Some(idx), Ok(name)) = (s.section_index(), s.name()) else {
            continue;
        };
        let Some(data) = texts.get(&idx.0) else {
            continue;
        };
        let start = s.address();
        let end = bounds
            .get(&idx.0)
            .and_then(|b| b.iter().find(|&&a| a > start).copied())
            .unwrap_or(data.len() as u64);
        if start as usize > data.len() || end as usize > data.len() || end < start {
            continue;
        }
        out.insert(
            name.to_string(),
            ElfFunc {
                code: data[start as usize..end as usize].to_vec(),
                gap: (end - start) as usize,
                ftrace: ftrace_sites.contains(&(idx.0, start)),
            },
        );
    }
    Ok(out)
}

/// Offsets of `f` grouped by predicted outcome for a target: 0 for
/// accepted, else the errno.
pub fn offsets_by_outcome(f: &Func, target: WatchTarget) -> HashMap<i32, Vec<u32>> {
    let mut out: HashMap<i32, Vec<u32>> = HashMap::new();
    if f.code.is_none() || f.size > MAX_FUNCTION_SIZE {
        return out;
    }
    for off in 0..f.size as u32 {
        let key = match predict_func(f, Some(off), target) {
            Pred::Ok => 0,
            Pred::Err(e) => e,
            Pred::Unknown => continue,
        };
        out.entry(key).or_default().push(off);
    }
    out
}

/// The errnos `Documentation/kstackwatch.md` lists under "Errors".
pub fn documented_errnos(doc: &str) -> HashSet<i32> {
    let mut out = HashSet::new();
    let mut in_errors = false;
    for line in doc.lines() {
        if line.starts_with('#') {
            in_errors = line.trim_start_matches('#').trim() == "Errors";
            continue;
        }
        if !in_errors || !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.split('|').collect();
        let Some(cell) = cells.get(2) else { continue };
        for word in cell.split(|c: char| !c.is_ascii_alphanumeric()) {
            if word.len() > 1
                && word.starts_with('E')
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            {
                if let Some(e) = errno_of_name(word) {
                    out.insert(e);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_round_trip() {
        for e in [
            ENOENT,
            E2BIG,
            EBUSY,
            EEXIST,
            EINVAL,
            EFBIG,
            ERANGE,
            ENAMETOOLONG,
            ENODATA,
            EILSEQ,
            EOPNOTSUPP,
        ] {
            assert_eq!(errno_of_name(&errno_name(e)), Some(e));
        }
    }

    #[test]
    fn documented_errnos_come_from_the_errors_table() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../Documentation/kstackwatch.md"
        ))
        .unwrap();
        let set = documented_errnos(&doc);
        for e in [
            EINVAL,
            ERANGE,
            EEXIST,
            E2BIG,
            ENAMETOOLONG,
            ENOENT,
            EILSEQ,
            EOPNOTSUPP,
            EFBIG,
            ENODATA,
            EBUSY,
        ] {
            assert!(set.contains(&e), "{} not found in the table", errno_name(e));
        }
    }

    /// A frameless leaf, a framed function with a canary store, and the
    /// outcomes the analysis gives them.
    #[test]
    fn predictions_follow_the_layout() {
        // nop5; lea 0x1(%rdi,%rdi,2),%rax; ret
        let leaf = Func {
            name: "leaf".into(),
            size: 16,
            code: Some(
                [
                    &[0x0f, 0x1f, 0x44, 0, 0, 0x48, 0x8d, 0x44, 0x7f, 0x01, 0xc3][..],
                    &[0x90; 5],
                ]
                .concat(),
            ),
            ftrace: true,
        };
        assert_eq!(
            predict_func(&leaf, None, WatchTarget::Canary),
            Pred::Err(EINVAL)
        );
        assert_eq!(
            predict_func(&leaf, Some(16), WatchTarget::Canary),
            Pred::Err(ERANGE)
        );
        assert_eq!(
            predict_func(&leaf, Some(6), WatchTarget::Canary),
            Pred::Err(EILSEQ)
        );
        assert_eq!(
            predict_func(&leaf, Some(5), WatchTarget::Canary),
            Pred::Err(ENODATA)
        );
        let big = Func {
            size: MAX_FUNCTION_SIZE + 1,
            code: None,
            ..leaf.clone()
        };
        assert_eq!(
            predict_func(&big, None, WatchTarget::Canary),
            Pred::Err(EFBIG)
        );
        let unknown = Func { code: None, ..leaf };
        assert_eq!(
            predict_func(&unknown, None, WatchTarget::Canary),
            Pred::Unknown
        );
    }
}
