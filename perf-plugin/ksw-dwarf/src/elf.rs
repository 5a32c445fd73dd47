//! Loading a vmlinux or a module (.ko, or any relocatable .o): its function
//! symbols, its code as the layout analysis needs it, and its DWARF with
//! the relocations of a relocatable file applied.
//!
//! A relocatable file has no addresses: every section starts at 0, so the
//! DWARF of two code sections (`.text`, `.init.text`) would overlap. Each
//! allocated section is therefore given a base address of its own
//! (`(index + 1) << 32`), symbols and DWARF addresses are relocated
//! against those bases, and a function's offsets are taken from its
//! section's base: the same offsets from the function's start that the
//! loaded module has, which is what `/proc/kstackwatch` wants. Calls and
//! jumps in the code are relocated as `tests/objcheck` does: to their
//! target in the same section, else far away, so that a tail call leaves
//! the function.

use std::fmt;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use object::elf;
use object::{
    Object, ObjectKind, ObjectSection, ObjectSymbol, RelocationFlags, RelocationTarget,
    SectionFlags, SectionIndex, SymbolKind, SymbolSection,
};

/// The DWARF reader: slices of one reference-counted copy of the file.
pub type R = gimli::EndianArcSlice<gimli::LittleEndian>;

/// Where calls and jumps to other sections and undefined symbols of a
/// relocatable file are pointed (relative to the section): outside any
/// function.
const FAR: u64 = 0x4000_0000;

/// An allocated section.
#[derive(Clone, Debug)]
pub struct Section {
    pub name: String,
    /// Its address: the real one in a linked file, a synthetic base in a
    /// relocatable one.
    pub base: u64,
    pub size: u64,
    file_off: Option<u64>,
}

/// A function symbol.
#[derive(Clone, Debug)]
pub struct Symbol {
    pub name: String,
    pub addr: u64,
    pub size: u64,
    /// Index into [`Binary::sections`].
    pub section: usize,
    pub global: bool,
}

/// One ELF file with its DWARF.
pub struct Binary {
    pub path: PathBuf,
    /// The module's name (`.modinfo` `name=`, else the file name); None
    /// for a linked kernel image.
    pub module: Option<String>,
    pub relocatable: bool,
    pub build_id: Option<Vec<u8>>,
    pub sections: Vec<Section>,
    /// Function symbols, by address.
    pub symbols: Vec<Symbol>,
    pub dwarf: Arc<gimli::Dwarf<R>>,
    /// Whether the file has a `.debug_info` section.
    pub has_debug_info: bool,
    data: Arc<[u8]>,
    ctx: std::cell::OnceCell<Option<addr2line::Context<R>>>,
}

impl fmt::Debug for Binary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Binary")
            .field("path", &self.path)
            .field("module", &self.module)
            .field("relocatable", &self.relocatable)
            .field("symbols", &self.symbols.len())
            .field("has_debug_info", &self.has_debug_info)
            .finish_non_exhaustive()
    }
}

fn sh_flags(s: &object::Section<'_, '_>) -> u64 {
    match s.flags() {
        SectionFlags::Elf { sh_flags } => sh_flags,
        _ => 0,
    }
}

impl Binary {
    /// Reads `path`. `module_hint` names a module whose file carries no
    /// `.modinfo` (an object file): defaults to the file's stem.
    pub fn load(path: &Path) -> Result<Binary, String> {
        let shown = path.display();
        let mut data = std::fs::read(path).map_err(|e| format!("{shown}: {e}"))?;
        let file =
            object::File::parse(&*data).map_err(|e| format!("{shown}: not an ELF file: {e}"))?;
        if file.architecture() != object::Architecture::X86_64 {
            return Err(format!("{shown}: not an x86-64 ELF file"));
        }
        let relocatable = file.kind() == ObjectKind::Relocatable;
        let mut bases: std::collections::HashMap<SectionIndex, u64> = Default::default();
        let mut sections = Vec::new();
        let mut by_index: std::collections::HashMap<SectionIndex, usize> = Default::default();
        let mut debug = Vec::new();
        let mut compressed = Vec::new();
        for s in file.sections() {
            let flags = sh_flags(&s);
            let name = s.name().unwrap_or("").to_string();
            let alloc = flags & u64::from(elf::SHF_ALLOC) != 0;
            let base = match (relocatable, alloc) {
                (true, true) => (s.index().0 as u64 + 1) << 32,
                (true, false) => 0,
                (false, _) => s.address(),
            };
            bases.insert(s.index(), base);
            let file_off = s.file_range().map(|(o, _)| o);
            if name.starts_with(".debug_") {
                if flags & u64::from(elf::SHF_COMPRESSED) != 0 {
                    compressed.push(name.clone());
                }
                if let Some((o, n)) = s.file_range() {
                    debug.push((name.clone(), o as usize, n as usize));
                }
            }
            if alloc {
                by_index.insert(s.index(), sections.len());
                sections.push(Section {
                    name,
                    base,
                    size: s.size(),
                    file_off,
                });
            }
        }
        if !compressed.is_empty() {
            return Err(format!(
                "{shown}: compressed debug sections ({}): decompress them with `objcopy --decompress-debug-sections`",
                compressed.join(", ")
            ));
        }
        // Relocations: (file offset, bytes) to write.
        let mut patches: Vec<(usize, Vec<u8>)> = Vec::new();
        if relocatable {
            for s in file.sections() {
                let name = s.name().unwrap_or("");
                let exec = sh_flags(&s) & u64::from(elf::SHF_EXECINSTR) != 0;
                let is_debug = name.starts_with(".debug_");
                if !exec && !is_debug {
                    continue;
                }
                let Some((sec_off, sec_len)) = s.file_range() else {
                    continue;
                };
                for (at, r) in s.relocations() {
                    let RelocationFlags::Elf { r_type } = r.flags() else {
                        continue;
                    };
                    let (sym_section, sym_value) = match r.target() {
                        RelocationTarget::Symbol(i) => match file.symbol_by_index(i) {
                            Ok(sym) => (sym.section_index(), sym.address()),
                            Err(_) => (None, 0),
                        },
                        RelocationTarget::Section(i) => (Some(i), 0),
                        _ => (None, 0),
                    };
                    let bytes = if exec {
                        if r_type != elf::R_X86_64_PC32 && r_type != elf::R_X86_64_PLT32 {
                            continue;
                        }
                        // Section-relative: S + A - P.
                        let target = match sym_section {
                            Some(i) if i == s.index() => sym_value.wrapping_add_signed(r.addend()),
                            _ => FAR.wrapping_add_signed(r.addend()),
                        };
                        (target.wrapping_sub(at) as u32).to_le_bytes().to_vec()
                    } else {
                        let s_addr = sym_section
                            .and_then(|i| bases.get(&i))
                            .copied()
                            .unwrap_or(0)
                            .wrapping_add(sym_value);
                        let value = s_addr.wrapping_add_signed(r.addend());
                        match r_type {
                            elf::R_X86_64_64 => value.to_le_bytes().to_vec(),
                            elf::R_X86_64_32 | elf::R_X86_64_32S => {
                                (value as u32).to_le_bytes().to_vec()
                            }
                            elf::R_X86_64_PC32 => {
                                let p = bases.get(&s.index()).copied().unwrap_or(0) + at;
                                (value.wrapping_sub(p) as u32).to_le_bytes().to_vec()
                            }
                            elf::R_X86_64_PC64 => {
                                let p = bases.get(&s.index()).copied().unwrap_or(0) + at;
                                value.wrapping_sub(p).to_le_bytes().to_vec()
                            }
                            _ => continue,
                        }
                    };
                    if at as usize + bytes.len() <= sec_len as usize {
                        patches.push((sec_off as usize + at as usize, bytes));
                    }
                }
            }
        }
        let mut symbols = Vec::new();
        for sym in file.symbols() {
            if sym.kind() != SymbolKind::Text {
                continue;
            }
            let SymbolSection::Section(si) = sym.section() else {
                continue;
            };
            let Some(&section) = by_index.get(&si) else {
                continue;
            };
            let Ok(name) = sym.name() else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let addr = if relocatable {
                sections[section].base + sym.address()
            } else {
                sym.address()
            };
            symbols.push(Symbol {
                name: name.to_string(),
                addr,
                size: sym.size(),
                section,
                global: sym.is_global(),
            });
        }
        symbols.sort_by(|a, b| (a.addr, &a.name).cmp(&(b.addr, &b.name)));
        let module = if relocatable {
            Some(module_name(&file).unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().replace('-', "_"))
                    .unwrap_or_default()
            }))
        } else {
            None
        };
        let build_id = file.build_id().ok().flatten().map(<[u8]>::to_vec);
        drop(file);
        for (off, bytes) in patches {
            data[off..off + bytes.len()].copy_from_slice(&bytes);
        }
        let data: Arc<[u8]> = Arc::from(data.into_boxed_slice());
        let has_debug_info = debug
            .iter()
            .any(|(n, _, len)| n == ".debug_info" && *len > 0);
        let dwarf = gimli::Dwarf::load(|id| -> Result<R, gimli::Error> {
            let reader = debug
                .iter()
                .find(|(n, _, _)| n == id.name())
                .map(|&(_, o, n)| R::new(data.clone(), gimli::LittleEndian).range(o..o + n))
                .unwrap_or_else(|| R::new(Arc::from(&[][..]), gimli::LittleEndian));
            Ok(reader)
        })
        .map_err(|e| format!("{shown}: {e}"))?;
        Ok(Binary {
            path: path.to_path_buf(),
            module,
            relocatable,
            build_id,
            sections,
            symbols,
            dwarf: Arc::new(dwarf),
            has_debug_info,
            data,
            ctx: std::cell::OnceCell::new(),
        })
    }

    /// How the binary is named in messages: `vmlinux` or `[module]`.
    pub fn label(&self) -> String {
        match &self.module {
            Some(m) => format!("[{m}] ({})", self.path.display()),
            None => self.path.display().to_string(),
        }
    }

    /// The bytes of a function.
    pub fn code(&self, sym: &Symbol) -> Option<&[u8]> {
        let sec = self.sections.get(sym.section)?;
        let start = sec.file_off? + (sym.addr - sec.base);
        let end = start.checked_add(sym.size)?;
        self.data.get(start as usize..end as usize)
    }

    /// Function symbols named `name`.
    pub fn functions_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Symbol> + 'a {
        self.symbols.iter().filter(move |s| s.name == name)
    }

    /// The function symbol containing `addr`.
    pub fn symbol_at(&self, addr: u64) -> Option<&Symbol> {
        let i = self.symbols.partition_point(|s| s.addr <= addr);
        self.symbols[..i]
            .iter()
            .rev()
            .take(8)
            .find(|s| addr < s.addr + s.size.max(1))
    }

    /// The address-to-line context (None without debug info).
    pub fn context(&self) -> Option<&addr2line::Context<R>> {
        self.ctx
            .get_or_init(|| {
                if !self.has_debug_info {
                    return None;
                }
                addr2line::Context::from_arc_dwarf(self.dwarf.clone()).ok()
            })
            .as_ref()
    }
}

/// `name=` from `.modinfo`.
fn module_name(file: &object::File<'_>) -> Option<String> {
    let data = file.section_by_name(".modinfo")?.data().ok()?;
    data.split(|&b| b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        kv.strip_prefix("name=").map(str::to_string)
    })
}
