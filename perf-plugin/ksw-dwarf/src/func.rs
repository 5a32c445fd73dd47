//! One function as its DWARF describes it: its variables and parameters
//! with their scopes and locations, its line table rows.

use std::ops::Range;
use std::path::PathBuf;

use gimli::{constants as dw, AttributeValue, UnitOffset};

use crate::elf::R;
use crate::location::{self, lossy, Piece, Place};

pub type U<'a> = gimli::UnitRef<'a, R>;

/// Where a function was inlined: into which function, from which line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineSite {
    /// The inlined function.
    pub callee: String,
    pub call_file: String,
    pub call_line: u64,
}

/// A variable's location attribute.
#[derive(Clone, Debug)]
pub enum Loc {
    /// No location: optimized out.
    Missing,
    /// `DW_AT_const_value`: a constant, stored nowhere.
    Const,
    /// One expression, valid wherever the variable is in scope.
    Single(gimli::Expression<R>),
    /// A location list.
    List(Vec<(Range<u64>, gimli::Expression<R>)>),
}

/// A parameter or local.
#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub param: bool,
    pub ty: Option<UnitOffset>,
    pub decl: Option<(String, u64)>,
    pub loc: Loc,
    /// The innermost enclosing scope's address ranges.
    pub scope: Vec<Range<u64>>,
    /// Lexical nesting depth (0: the function's own).
    pub depth: usize,
    /// Inlined callees this variable belongs to, outermost first.
    pub inlined: Vec<InlineSite>,
}

impl Var {
    pub fn in_scope(&self, pc: u64) -> bool {
        self.scope.iter().any(|r| r.contains(&pc))
    }

    /// Where the variable is at `pc`: the pieces and the address range
    /// over which that holds. None: not covered at `pc`.
    pub fn at(&self, f: &FuncInfo<'_>, pc: u64) -> Option<(Vec<Piece>, Range<u64>, bool)> {
        match &self.loc {
            Loc::Missing => None,
            Loc::Const => None,
            Loc::Single(e) => {
                let r = self.scope.iter().find(|r| r.contains(&pc))?;
                Some((f.classify(e), r.clone(), true))
            }
            Loc::List(list) => list
                .iter()
                .find(|(r, _)| r.contains(&pc))
                .map(|(r, e)| (f.classify(e), r.clone(), false)),
        }
    }

    /// "parameter" or "local".
    pub fn kind(&self) -> &'static str {
        if self.param {
            "parameter"
        } else {
            "local"
        }
    }
}

/// A line-table row inside the function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub addr: u64,
    /// Index into [`FuncInfo::files`].
    pub file: usize,
    pub line: u64,
    pub is_stmt: bool,
    pub end: bool,
}

/// The function's DWARF.
#[derive(Debug)]
pub struct FuncInfo<'a> {
    pub unit: U<'a>,
    pub die: UnitOffset,
    pub name: String,
    pub low: u64,
    pub high: u64,
    pub frame_base: Option<Place>,
    pub decl: Option<(String, u64)>,
    pub language: Option<gimli::DwLang>,
    pub vars: Vec<Var>,
    pub files: Vec<String>,
    pub rows: Vec<Row>,
}

/// An attribute of `e`, or of the DIE its `DW_AT_abstract_origin` or
/// `DW_AT_specification` points to.
pub fn attr(unit: U<'_>, off: UnitOffset, at: gimli::DwAt) -> Option<AttributeValue<R>> {
    let mut off = off;
    for _ in 0..8 {
        let e = unit.entry(off).ok()?;
        if let Some(v) = e.attr_value(at).ok().flatten() {
            return Some(v);
        }
        let next = e
            .attr_value(dw::DW_AT_abstract_origin)
            .ok()
            .flatten()
            .or_else(|| e.attr_value(dw::DW_AT_specification).ok().flatten());
        match next {
            Some(AttributeValue::UnitRef(o)) => off = o,
            _ => return None,
        }
    }
    None
}

pub fn name(unit: U<'_>, off: UnitOffset) -> Option<String> {
    let v = attr(unit, off, dw::DW_AT_name)?;
    Some(lossy(unit.attr_string(v).ok()?))
}

/// The path of file `index` of the unit's line program.
pub fn file_path(unit: U<'_>, index: u64) -> Option<String> {
    let program = unit.line_program.as_ref()?;
    let header = program.header();
    let file = header.file(index)?;
    let mut path = PathBuf::new();
    if let Some(comp) = &unit.comp_dir {
        path.push(lossy(comp.clone()));
    }
    if let Some(dir) = file.directory(header) {
        if let Ok(d) = unit.attr_string(dir) {
            path.push(lossy(d));
        }
    }
    path.push(lossy(unit.attr_string(file.path_name()).ok()?));
    Some(path.to_string_lossy().into_owned())
}

fn decl(
    unit: U<'_>,
    off: UnitOffset,
    file_at: gimli::DwAt,
    line_at: gimli::DwAt,
) -> Option<(String, u64)> {
    let file = match attr(unit, off, file_at)? {
        AttributeValue::FileIndex(i) => i,
        v => v.udata_value()?,
    };
    let line = attr(unit, off, line_at)?.udata_value()?;
    Some((file_path(unit, file)?, line))
}

fn ranges(unit: U<'_>, e: &gimli::DebuggingInformationEntry<'_, '_, R>) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    if let Ok(mut it) = unit.die_ranges(e) {
        while let Ok(Some(r)) = it.next() {
            if r.begin < r.end {
                out.push(r.begin..r.end);
            }
        }
    }
    out
}

/// The subprogram DIE whose code starts at `addr`, in `unit`.
pub fn find_subprogram(unit: U<'_>, addr: u64) -> Option<UnitOffset> {
    let mut entries = unit.entries();
    while let Ok(Some((_, e))) = entries.next_dfs() {
        if e.tag() != dw::DW_TAG_subprogram {
            continue;
        }
        let low = e
            .attr_value(dw::DW_AT_low_pc)
            .ok()
            .flatten()
            .and_then(|v| unit.attr_address(v).ok().flatten());
        if low == Some(addr)
            || (low.is_none() && ranges(unit, e).first().is_some_and(|r| r.start == addr))
        {
            return Some(e.offset());
        }
    }
    None
}

impl<'a> FuncInfo<'a> {
    /// Reads the function at `die` in `unit`; `high` is its end address
    /// (from the symbol) when DWARF gives none.
    pub fn read(unit: U<'a>, die: UnitOffset, low: u64, size: u64) -> Result<FuncInfo<'a>, String> {
        let e = unit.entry(die).map_err(|e| e.to_string())?;
        let mut high = low + size;
        if let Some(r) = ranges(unit, &e).iter().find(|r| r.start == low) {
            high = high.max(r.end);
        }
        let frame_base = match e.attr_value(dw::DW_AT_frame_base).ok().flatten() {
            Some(AttributeValue::Exprloc(x)) => location::frame_base(&x, unit.encoding()),
            _ => None,
        };
        let language = match unit
            .entry(UnitOffset(unit.header.header_size()))
            .ok()
            .and_then(|root| root.attr_value(dw::DW_AT_language).ok().flatten())
        {
            Some(AttributeValue::Language(l)) => Some(l),
            _ => None,
        };
        let mut f = FuncInfo {
            unit,
            die,
            name: name(unit, die).unwrap_or_default(),
            low,
            high,
            frame_base,
            decl: decl(unit, die, dw::DW_AT_decl_file, dw::DW_AT_decl_line),
            language,
            vars: Vec::new(),
            files: Vec::new(),
            rows: Vec::new(),
        };
        let mut tree = unit.entries_tree(Some(die)).map_err(|e| e.to_string())?;
        let root = tree.root().map_err(|e| e.to_string())?;
        let scope = std::iter::once(low..high).collect::<Vec<_>>();
        f.walk(root, &scope, 0, &mut Vec::new())?;
        f.read_lines();
        Ok(f)
    }

    fn walk(
        &mut self,
        node: gimli::EntriesTreeNode<'_, '_, '_, R>,
        scope: &[Range<u64>],
        depth: usize,
        inlined: &mut Vec<InlineSite>,
    ) -> Result<(), String> {
        let unit = self.unit;
        let mut children = node.children();
        while let Some(child) = children.next().map_err(|e| e.to_string())? {
            let e = child.entry();
            let off = e.offset();
            match e.tag() {
                dw::DW_TAG_formal_parameter | dw::DW_TAG_variable => {
                    let Some(name) = name(unit, off) else {
                        continue;
                    };
                    let ty = match attr(unit, off, dw::DW_AT_type) {
                        Some(AttributeValue::UnitRef(o)) => Some(o),
                        _ => None,
                    };
                    let loc = match e.attr_value(dw::DW_AT_location).ok().flatten() {
                        Some(AttributeValue::Exprloc(x)) => Loc::Single(x),
                        Some(v) => match unit.attr_locations(v) {
                            Ok(Some(mut it)) => {
                                let mut list = Vec::new();
                                while let Ok(Some(l)) = it.next() {
                                    if l.range.begin < l.range.end {
                                        list.push((l.range.begin..l.range.end, l.data));
                                    }
                                }
                                Loc::List(list)
                            }
                            _ => Loc::Missing,
                        },
                        None if attr(unit, off, dw::DW_AT_const_value).is_some() => Loc::Const,
                        None => Loc::Missing,
                    };
                    // A static local has a DW_OP_addr location: keep it,
                    // so that asking for it says where it is.
                    self.vars.push(Var {
                        name,
                        param: e.tag() == dw::DW_TAG_formal_parameter,
                        ty,
                        decl: decl(unit, off, dw::DW_AT_decl_file, dw::DW_AT_decl_line),
                        loc,
                        scope: scope.to_vec(),
                        depth,
                        inlined: inlined.clone(),
                    });
                }
                dw::DW_TAG_lexical_block => {
                    let r = ranges(unit, e);
                    let r = if r.is_empty() { scope.to_vec() } else { r };
                    self.walk(child, &r, depth + 1, inlined)?;
                }
                dw::DW_TAG_inlined_subroutine => {
                    let r = ranges(unit, e);
                    let (call_file, call_line) =
                        decl(unit, off, dw::DW_AT_call_file, dw::DW_AT_call_line)
                            .unwrap_or_default();
                    inlined.push(InlineSite {
                        callee: name(unit, off).unwrap_or_else(|| "?".into()),
                        call_file,
                        call_line,
                    });
                    self.walk(child, &r, depth + 1, inlined)?;
                    inlined.pop();
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn read_lines(&mut self) {
        let unit = self.unit;
        let Some(program) = unit.line_program.clone() else {
            return;
        };
        let mut file_index: std::collections::HashMap<u64, usize> = Default::default();
        let mut rows = program.rows();
        while let Ok(Some((_, row))) = rows.next_row() {
            let addr = row.address();
            if addr < self.low || addr > self.high {
                continue;
            }
            let idx = *file_index.entry(row.file_index()).or_insert_with(|| {
                self.files
                    .push(file_path(unit, row.file_index()).unwrap_or_else(|| "?".into()));
                self.files.len() - 1
            });
            self.rows.push(Row {
                addr,
                file: idx,
                line: row.line().map_or(0, |l| l.get()),
                is_stmt: row.is_stmt(),
                end: row.end_sequence() || addr == self.high,
            });
        }
        self.rows.sort_by_key(|r| (r.addr, r.end));
    }

    pub fn classify(&self, e: &gimli::Expression<R>) -> Vec<Piece> {
        location::classify(e, self.unit.encoding(), self.frame_base.as_ref())
    }

    /// The source line of the instruction at `pc` (file, line).
    pub fn line_at(&self, pc: u64) -> Option<(&str, u64)> {
        let i = self.rows.partition_point(|r| r.addr <= pc);
        let r = self.rows[..i]
            .iter()
            .rev()
            .find(|r| !r.end && r.line != 0)?;
        Some((self.files[r.file].as_str(), r.line))
    }

    /// Rows of `line` in files whose path ends with `file`.
    pub fn rows_of(&self, file: &str, line: u64) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| !r.end && r.line == line && path_matches(&self.files[r.file], file))
            .collect()
    }

    /// Whether some row is in a file matching `file`.
    pub fn has_file(&self, file: &str) -> bool {
        self.files.iter().any(|f| path_matches(f, file))
    }

    /// Lines with code in files matching `file`, sorted.
    pub fn lines_in(&self, file: &str) -> Vec<u64> {
        let mut v: Vec<u64> = self
            .rows
            .iter()
            .filter(|r| !r.end && r.line != 0 && path_matches(&self.files[r.file], file))
            .map(|r| r.line)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The lines of the rows in `range` (in the function's own file when
    /// it has any there), sorted.
    pub fn lines_in_range(&self, range: &Range<u64>) -> Vec<u64> {
        let own = self.decl.as_ref().map(|d| d.0.as_str());
        let mut v: Vec<u64> = self
            .rows
            .iter()
            .filter(|r| !r.end && r.line != 0 && range.contains(&r.addr))
            .filter(|r| own.is_none_or(|o| self.files[r.file] == o))
            .map(|r| r.line)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn is_rust(&self) -> bool {
        self.language == Some(dw::DW_LANG_Rust)
    }
}

/// Whether `path` is `file` or ends with `/file`.
pub fn path_matches(path: &str, file: &str) -> bool {
    let file = file.trim_start_matches("./");
    path == file || path.ends_with(&format!("/{file}"))
}
