//! C types from DWARF: their names and sizes, and the byte range a member
//! path (`.field`, `[index]`) selects inside a variable.

use gimli::{constants as dw, AttributeValue, UnitOffset};

use crate::elf::R;
use crate::location::lossy;

type U<'a> = gimli::UnitRef<'a, R>;

/// One step of a member path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Field(String),
    Index(u64),
}

/// `VAR[.field|[index]]...`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarPath {
    pub var: String,
    pub steps: Vec<Step>,
}

fn ident_len(s: &str) -> usize {
    s.char_indices()
        .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(s.len(), |(i, _)| i)
}

impl VarPath {
    pub fn parse(text: &str) -> Result<VarPath, String> {
        let bad = |why: &str| {
            Err(format!(
                "'{text}': {why} (expected VAR, VAR.field, VAR[index], combined)"
            ))
        };
        let n = ident_len(text);
        if n == 0 {
            return bad("does not start with a variable name");
        }
        let var = text[..n].to_string();
        let mut rest = &text[n..];
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if rest.starts_with("->") {
                return Err(format!(
                    "'{text}': `->` follows a pointer, and what it points to is not in this frame: watch it in the function whose frame holds it"
                ));
            }
            if let Some(r) = rest.strip_prefix('.') {
                let n = ident_len(r);
                if n == 0 {
                    return bad("a field name must follow '.'");
                }
                steps.push(Step::Field(r[..n].to_string()));
                rest = &r[n..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let Some(close) = r.find(']') else {
                    return bad("unclosed '['");
                };
                let idx = r[..close].trim();
                let value = match idx.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16),
                    None => idx.parse(),
                };
                let Ok(value) = value else {
                    return bad("an index must be a number");
                };
                steps.push(Step::Index(value));
                rest = &r[close + 1..];
            } else {
                return bad("unexpected text after the name");
            }
        }
        Ok(VarPath { var, steps })
    }
}

impl std::fmt::Display for VarPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.var)?;
        for s in &self.steps {
            match s {
                Step::Field(n) => write!(f, ".{n}")?,
                Step::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A type as seen while walking a path: a DIE, or the rest of a
/// multi-dimensional array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    Die(Option<UnitOffset>),
    SubArray {
        elem: Option<UnitOffset>,
        dims: Vec<Option<u64>>,
    },
}

/// What a member path selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// Byte offset inside the variable.
    pub offset: u64,
    /// Its size in bytes (None: unknown, e.g. a flexible array).
    pub size: Option<u64>,
    pub ty: Ty,
    /// A bit-field: the selection is its storage unit (bits at, bits).
    pub bitfield: Option<(u64, u64)>,
}

/// Type queries within one unit.
#[derive(Clone, Copy, Debug)]
pub struct Types<'a> {
    pub unit: U<'a>,
}

fn attr_u64(v: Option<AttributeValue<R>>) -> Option<u64> {
    v.and_then(|v| v.udata_value())
}

impl<'a> Types<'a> {
    fn with_entry<T>(
        &self,
        off: UnitOffset,
        f: impl FnOnce(&gimli::DebuggingInformationEntry<'_, '_, R>) -> Option<T>,
    ) -> Option<T> {
        let e = self.unit.entry(off).ok()?;
        f(&e)
    }

    fn type_ref(e: &gimli::DebuggingInformationEntry<'_, '_, R>) -> Option<UnitOffset> {
        match e.attr_value(dw::DW_AT_type).ok()? {
            Some(AttributeValue::UnitRef(o)) => Some(o),
            _ => None,
        }
    }

    fn tag(&self, off: UnitOffset) -> Option<gimli::DwTag> {
        self.with_entry(off, |e| Some(e.tag()))
    }

    fn name_of(&self, e: &gimli::DebuggingInformationEntry<'_, '_, R>) -> Option<String> {
        let v = e.attr_value(dw::DW_AT_name).ok()??;
        Some(lossy(self.unit.attr_string(v).ok()?))
    }

    /// Follows typedefs and qualifiers.
    pub fn strip(&self, mut off: Option<UnitOffset>) -> Option<UnitOffset> {
        for _ in 0..32 {
            let o = off?;
            match self.tag(o)? {
                dw::DW_TAG_typedef
                | dw::DW_TAG_const_type
                | dw::DW_TAG_volatile_type
                | dw::DW_TAG_restrict_type
                | dw::DW_TAG_atomic_type => {
                    off = self.with_entry(o, |e| Some(Self::type_ref(e)))?;
                }
                _ => return Some(o),
            }
        }
        None
    }

    /// Array element type and dimensions.
    fn array(&self, off: UnitOffset) -> Option<(Option<UnitOffset>, Vec<Option<u64>>)> {
        let elem = self.with_entry(off, |e| Some(Self::type_ref(e)))?;
        let mut tree = self.unit.entries_tree(Some(off)).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        let mut dims = Vec::new();
        while let Ok(Some(child)) = children.next() {
            let e = child.entry();
            if e.tag() != dw::DW_TAG_subrange_type {
                continue;
            }
            let count = attr_u64(e.attr_value(dw::DW_AT_count).ok().flatten()).or_else(|| {
                let ub = e.attr_value(dw::DW_AT_upper_bound).ok().flatten()?;
                let ub = ub
                    .udata_value()
                    .or_else(|| ub.sdata_value().map(|v| v as u64))?;
                // A flexible array can have upper bound -1.
                (ub != u64::MAX).then(|| ub + 1)
            });
            dims.push(count);
        }
        if dims.is_empty() {
            dims.push(None);
        }
        Some((elem, dims))
    }

    /// Size in bytes.
    pub fn size(&self, ty: &Ty) -> Option<u64> {
        match ty {
            Ty::SubArray { elem, dims } => {
                let mut n = self.size(&Ty::Die(*elem))?;
                for d in dims {
                    n = n.checked_mul((*d)?)?;
                }
                Some(n)
            }
            Ty::Die(None) => None,
            Ty::Die(Some(o)) => {
                let o = self.strip(Some(*o))?;
                if let Some(n) =
                    self.with_entry(o, |e| attr_u64(e.attr_value(dw::DW_AT_byte_size).ok()?))
                {
                    return Some(n);
                }
                match self.tag(o)? {
                    dw::DW_TAG_pointer_type | dw::DW_TAG_reference_type => Some(8),
                    dw::DW_TAG_array_type => {
                        let (elem, dims) = self.array(o)?;
                        self.size(&Ty::SubArray { elem, dims })
                    }
                    _ => None,
                }
            }
        }
    }

    /// The C spelling of a type.
    pub fn name(&self, ty: &Ty) -> String {
        match ty {
            Ty::SubArray { elem, dims } => {
                let mut s = self.name(&Ty::Die(*elem));
                for d in dims {
                    match d {
                        Some(n) => s.push_str(&format!("[{n}]")),
                        None => s.push_str("[]"),
                    }
                }
                s
            }
            Ty::Die(None) => "void".into(),
            Ty::Die(Some(o)) => self.name_depth(*o, 0),
        }
    }

    fn name_depth(&self, o: UnitOffset, depth: usize) -> String {
        if depth > 16 {
            return "...".into();
        }
        let Ok(e) = self.unit.entry(o) else {
            return "?".into();
        };
        let name = self.name_of(&e);
        let inner = |t: Option<UnitOffset>| match t {
            Some(t) => self.name_depth(t, depth + 1),
            None => "void".into(),
        };
        match e.tag() {
            dw::DW_TAG_base_type | dw::DW_TAG_typedef => name.unwrap_or_else(|| "?".into()),
            dw::DW_TAG_structure_type => {
                format!("struct {}", name.unwrap_or_else(|| "<anonymous>".into()))
            }
            dw::DW_TAG_union_type => {
                format!("union {}", name.unwrap_or_else(|| "<anonymous>".into()))
            }
            dw::DW_TAG_enumeration_type => {
                format!("enum {}", name.unwrap_or_else(|| "<anonymous>".into()))
            }
            dw::DW_TAG_pointer_type => format!("{} *", inner(Self::type_ref(&e))),
            dw::DW_TAG_const_type => format!("const {}", inner(Self::type_ref(&e))),
            dw::DW_TAG_volatile_type => format!("volatile {}", inner(Self::type_ref(&e))),
            dw::DW_TAG_restrict_type => inner(Self::type_ref(&e)),
            dw::DW_TAG_atomic_type => format!("_Atomic {}", inner(Self::type_ref(&e))),
            dw::DW_TAG_subroutine_type => "function".into(),
            dw::DW_TAG_array_type => match self.array(o) {
                Some((elem, dims)) => self.name(&Ty::SubArray { elem, dims }),
                None => "array".into(),
            },
            _ => name.unwrap_or_else(|| "?".into()),
        }
    }

    /// Finds `field` in a struct or union (looking into anonymous members).
    fn member(&self, o: UnitOffset, field: &str, depth: usize) -> Option<Selected> {
        if depth > 8 {
            return None;
        }
        let mut tree = self.unit.entries_tree(Some(o)).ok()?;
        let root = tree.root().ok()?;
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let e = child.entry();
            if e.tag() != dw::DW_TAG_member {
                continue;
            }
            let ty = Self::type_ref(e);
            let byte_off = attr_u64(e.attr_value(dw::DW_AT_data_member_location).ok().flatten());
            let bit_size = attr_u64(e.attr_value(dw::DW_AT_bit_size).ok().flatten());
            let bit_off = attr_u64(e.attr_value(dw::DW_AT_data_bit_offset).ok().flatten());
            match self.name_of(e) {
                Some(n) if n == field => {
                    if let Some(bits) = bit_size {
                        // The storage unit holding the bit-field: its
                        // type's size, aligned to that size.
                        let unit = self.size(&Ty::Die(ty)).unwrap_or(1).max(1);
                        let at = bit_off.unwrap_or(byte_off.unwrap_or(0) * 8);
                        let start = (at / 8) / unit * unit;
                        return Some(Selected {
                            offset: start,
                            size: Some(unit),
                            ty: Ty::Die(ty),
                            bitfield: Some((at - start * 8, bits)),
                        });
                    }
                    return Some(Selected {
                        offset: byte_off.unwrap_or(0),
                        size: self.size(&Ty::Die(ty)),
                        ty: Ty::Die(ty),
                        bitfield: None,
                    });
                }
                None => {
                    // An anonymous struct or union: its members are ours.
                    let inner = self.strip(ty)?;
                    if let Some(mut s) = self.member(inner, field, depth + 1) {
                        s.offset += byte_off.unwrap_or(0);
                        return Some(s);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// Field names of a struct or union, for messages.
    fn field_names(&self, o: UnitOffset) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(mut tree) = self.unit.entries_tree(Some(o)) else {
            return out;
        };
        let Ok(root) = tree.root() else {
            return out;
        };
        let mut children = root.children();
        while let Ok(Some(child)) = children.next() {
            let e = child.entry();
            if e.tag() == dw::DW_TAG_member {
                out.push(self.name_of(e).unwrap_or_else(|| "<anonymous>".into()));
            }
        }
        out
    }

    /// Applies `steps` to a variable of type `ty`.
    pub fn select(
        &self,
        var: &str,
        ty: Option<UnitOffset>,
        steps: &[Step],
    ) -> Result<Selected, String> {
        let mut cur = Selected {
            offset: 0,
            size: self.size(&Ty::Die(ty)),
            ty: Ty::Die(ty),
            bitfield: None,
        };
        let mut path = var.to_string();
        for step in steps {
            let shown = self.name(&cur.ty);
            match step {
                Step::Field(f) => {
                    let Ty::Die(d) = cur.ty else {
                        return Err(format!(
                            "{path} is an array ({shown}): index it before '.{f}'"
                        ));
                    };
                    let Some(o) = self.strip(d) else {
                        return Err(format!("{path} has no type information"));
                    };
                    match self.tag(o) {
                        Some(dw::DW_TAG_structure_type | dw::DW_TAG_union_type) => {}
                        Some(dw::DW_TAG_pointer_type) => {
                            return Err(format!(
                                "{path} is a pointer ({shown}): what it points to is not in this frame (watch it where it lives)"
                            ))
                        }
                        Some(dw::DW_TAG_array_type) => {
                            return Err(format!("{path} is an array ({shown}): index it before '.{f}'"))
                        }
                        _ => return Err(format!("{path} is of type {shown}, which has no fields")),
                    }
                    let Some(m) = self.member(o, f, 0) else {
                        return Err(format!(
                            "{shown} has no field '{f}' (fields: {})",
                            self.field_names(o).join(", ")
                        ));
                    };
                    cur = Selected {
                        offset: cur.offset + m.offset,
                        ..m
                    };
                    path.push('.');
                    path.push_str(f);
                }
                Step::Index(i) => {
                    let (elem, dims) = match &cur.ty {
                        Ty::SubArray { elem, dims } => (*elem, dims.clone()),
                        Ty::Die(d) => {
                            let o = self.strip(*d);
                            match o.and_then(|o| self.tag(o).map(|t| (o, t))) {
                                Some((o, dw::DW_TAG_array_type)) => self.array(o).ok_or("bad array type")?,
                                Some((_, dw::DW_TAG_pointer_type)) => {
                                    return Err(format!(
                                        "{path} is a pointer ({shown}): what it points to is not in this frame (watch it where it lives)"
                                    ))
                                }
                                _ => return Err(format!("{path} is of type {shown}, not an array")),
                            }
                        }
                    };
                    if let Some(Some(n)) = dims.first() {
                        if i >= n {
                            return Err(format!(
                                "{path}[{i}]: out of bounds, {path} has {n} elements ({shown})"
                            ));
                        }
                    }
                    let rest = dims[1..].to_vec();
                    let ty = if rest.is_empty() {
                        Ty::Die(elem)
                    } else {
                        Ty::SubArray { elem, dims: rest }
                    };
                    let stride = self
                        .size(&ty)
                        .ok_or_else(|| format!("{path}: element size unknown"))?;
                    cur = Selected {
                        offset: cur.offset + i * stride,
                        size: Some(stride),
                        ty,
                        bitfield: None,
                    };
                    path.push_str(&format!("[{i}]"));
                }
            }
        }
        Ok(cur)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = VarPath::parse("table.pt._qproc").unwrap();
        assert_eq!(p.var, "table");
        assert_eq!(
            p.steps,
            vec![Step::Field("pt".into()), Step::Field("_qproc".into())]
        );
        let p = VarPath::parse("buf[8]").unwrap();
        assert_eq!(p.steps, vec![Step::Index(8)]);
        let p = VarPath::parse("a[0x1][2].b").unwrap();
        assert_eq!(
            p.steps,
            vec![Step::Index(1), Step::Index(2), Step::Field("b".into())]
        );
        assert_eq!(p.to_string(), "a[1][2].b");
        assert!(VarPath::parse("req->x").unwrap_err().contains("pointer"));
        assert!(VarPath::parse("9x").is_err());
        assert!(VarPath::parse("a[").is_err());
        assert!(VarPath::parse("a[x]").is_err());
        assert!(VarPath::parse("a.").is_err());
    }
}
