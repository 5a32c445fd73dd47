//! What a DWARF location expression says about a variable: in memory
//! relative to the CFA, `%rsp` or `%rbp` (the cases a stack watch can use),
//! in a register, a computed value, a static address; in pieces.

use std::fmt;

use gimli::{Operation, Reader};

use crate::elf::R;

/// DWARF register numbers of x86-64 (System V psABI).
pub const DW_RBP: u16 = 6;
pub const DW_RSP: u16 = 7;

/// The name of DWARF register `r`.
pub fn reg_name(r: u16) -> String {
    gimli::X86_64::register_name(gimli::Register(r))
        .map_or_else(|| format!("reg{r}"), |n| format!("%{n}"))
}

/// What a memory address is relative to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// The canonical frame address (the stack pointer before the call).
    Cfa,
    /// `%rsp` at the pc in question.
    Sp,
    /// `%rbp` at the pc in question.
    Bp,
    /// Another register.
    Reg(u16),
}

impl fmt::Display for Base {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Base::Cfa => f.write_str("CFA"),
            Base::Sp => f.write_str("%rsp"),
            Base::Bp => f.write_str("%rbp"),
            Base::Reg(r) => f.write_str(&reg_name(r)),
        }
    }
}

fn base_of(reg: u16) -> Base {
    match reg {
        DW_RSP => Base::Sp,
        DW_RBP => Base::Bp,
        r => Base::Reg(r),
    }
}

/// Where (a piece of) a variable is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// In memory at `base + off`.
    Mem { base: Base, off: i64 },
    /// In a register.
    Reg(u16),
    /// Not stored anywhere: the expression computes its value (why).
    Value(String),
    /// At a fixed address: not on the stack.
    Static,
    /// The piece is optimized out.
    Empty,
    /// An expression this tool does not follow.
    Unsupported(String),
}

impl Place {
    /// Whether a stack watch can use it.
    pub fn in_frame(&self) -> bool {
        matches!(
            self,
            Place::Mem {
                base: Base::Cfa | Base::Sp | Base::Bp,
                ..
            }
        )
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Mem { base, off } => {
                if *off < 0 {
                    write!(f, "{base}-{:#x}", off.unsigned_abs())
                } else {
                    write!(f, "{base}+{off:#x}")
                }
            }
            Place::Reg(r) => write!(f, "in register {}", reg_name(*r)),
            Place::Value(why) => f.write_str(why),
            Place::Static => f.write_str("a static address (not on the stack)"),
            Place::Empty => f.write_str("optimized out"),
            Place::Unsupported(why) => f.write_str(why),
        }
    }
}

/// One piece of a variable: bytes `start..start+size` (size None: to the
/// end) are at `place`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub size: Option<u64>,
    pub place: Place,
}

/// Classifies a location expression. `frame_base` is the function's
/// `DW_AT_frame_base`, for `DW_OP_fbreg`.
pub fn classify(
    expr: &gimli::Expression<R>,
    encoding: gimli::Encoding,
    frame_base: Option<&Place>,
) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut start = 0u64;
    let mut cur: Option<Place> = None;
    let mut konst: Option<i64> = None;
    let mut ops = expr.clone().operations(encoding);
    let unsupported =
        |what: &str| Place::Unsupported(format!("a location this tool does not follow ({what})"));
    loop {
        let op = match ops.next() {
            Ok(Some(op)) => op,
            Ok(None) => break,
            Err(e) => {
                cur = Some(Place::Unsupported(format!("an unreadable location ({e})")));
                break;
            }
        };
        let next = match (op, cur.take()) {
            (Operation::Piece { size_in_bits, .. }, c) => {
                let size = size_in_bits / 8;
                pieces.push(Piece {
                    start,
                    size: Some(size),
                    place: c.unwrap_or(Place::Empty),
                });
                start += size;
                konst = None;
                None
            }
            (_, Some(p @ (Place::Unsupported(_) | Place::Value(_)))) => Some(p),
            (Operation::Nop, c) => c,
            (Operation::FrameOffset { offset }, None) => Some(match frame_base {
                Some(Place::Mem { base, off }) => Place::Mem {
                    base: *base,
                    off: off + offset,
                },
                Some(Place::Reg(r)) => Place::Mem {
                    base: base_of(*r),
                    off: offset,
                },
                _ => unsupported("DW_OP_fbreg without a usable frame base"),
            }),
            (
                Operation::RegisterOffset {
                    register,
                    offset,
                    base_type,
                },
                None,
            ) if base_type.0 == 0 => Some(Place::Mem {
                base: base_of(register.0),
                off: offset,
            }),
            (Operation::CallFrameCFA, None) => Some(Place::Mem {
                base: Base::Cfa,
                off: 0,
            }),
            (Operation::PlusConstant { value }, Some(Place::Mem { base, off })) => {
                Some(Place::Mem {
                    base,
                    off: off.wrapping_add(value as i64),
                })
            }
            (Operation::UnsignedConstant { value }, c @ Some(Place::Mem { .. })) => {
                konst = Some(value as i64);
                c
            }
            (Operation::SignedConstant { value }, c @ Some(Place::Mem { .. })) => {
                konst = Some(value);
                c
            }
            (Operation::Plus, Some(Place::Mem { base, off })) if konst.is_some() => {
                let k = konst.take().unwrap_or(0);
                Some(Place::Mem {
                    base,
                    off: off.wrapping_add(k),
                })
            }
            (Operation::Minus, Some(Place::Mem { base, off })) if konst.is_some() => {
                let k = konst.take().unwrap_or(0);
                Some(Place::Mem {
                    base,
                    off: off.wrapping_sub(k),
                })
            }
            (Operation::Register { register }, None) => Some(Place::Reg(register.0)),
            (Operation::StackValue, Some(Place::Mem { base, off })) => Some(Place::Value(format!(
                "not in memory: its value is computed ({})",
                Place::Mem { base, off }
            ))),
            (Operation::StackValue, _) => Some(Place::Value(
                "not in memory: its value is computed (a constant or an expression)".into(),
            )),
            (Operation::ImplicitValue { .. }, _) => {
                Some(Place::Value("not in memory: an implicit constant".into()))
            }
            (Operation::ImplicitPointer { .. }, _) => Some(Place::Value(
                "not in memory: a pointer to a variable that is itself optimized out".into(),
            )),
            (Operation::EntryValue { .. }, _) => Some(Place::Value(
                "not in memory: recomputed from the value a register had at the function's entry"
                    .into(),
            )),
            (Operation::Address { .. } | Operation::AddressIndex { .. }, None) => {
                Some(Place::Static)
            }
            (Operation::UnsignedConstant { .. } | Operation::SignedConstant { .. }, None) => {
                // A constant location is an address unless a DW_OP_stack_value follows.
                Some(Place::Static)
            }
            (Operation::Deref { .. }, Some(Place::Mem { base, off })) => {
                Some(Place::Unsupported(format!(
                    "in memory at an address that is itself stored at {}",
                    Place::Mem { base, off }
                )))
            }
            (Operation::TLS, _) => Some(Place::Static),
            (other, _) => Some(unsupported(
                &format!("{other:?}").chars().take(60).collect::<String>(),
            )),
        };
        cur = next;
    }
    if cur.is_some() || pieces.is_empty() {
        pieces.push(Piece {
            start,
            size: None,
            place: cur.unwrap_or(Place::Empty),
        });
    }
    pieces
}

/// The place holding bytes `off..off+len` of a variable, if one piece
/// holds them all.
pub fn place_of(pieces: &[Piece], off: u64, len: u64) -> Result<(Place, u64), String> {
    for p in pieces {
        let end = p.size.map_or(u64::MAX, |s| p.start + s);
        if p.start <= off && off + len <= end {
            let inner = off - p.start;
            return Ok(match &p.place {
                Place::Mem { base, off } => (
                    Place::Mem {
                        base: *base,
                        off: off + inner as i64,
                    },
                    inner,
                ),
                other => (other.clone(), inner),
            });
        }
    }
    let parts: Vec<String> = pieces
        .iter()
        .map(|p| match p.size {
            Some(s) => format!("bytes {}..{}: {}", p.start, p.start + s, p.place),
            None => format!("bytes {}..: {}", p.start, p.place),
        })
        .collect();
    Err(format!(
        "the variable is split into pieces ({}) and no one piece holds bytes {off}..{}",
        parts.join("; "),
        off + len
    ))
}

/// A frame base (`DW_AT_frame_base`) as a place: `DW_OP_reg6` is `%rbp`,
/// `DW_OP_breg7 +k` is `%rsp+k`, `DW_OP_call_frame_cfa` the CFA.
pub fn frame_base(expr: &gimli::Expression<R>, encoding: gimli::Encoding) -> Option<Place> {
    let pieces = classify(expr, encoding, None);
    match pieces.as_slice() {
        [Piece { place, .. }] => Some(place.clone()),
        _ => None,
    }
}

/// `DW_OP_...` text of an expression, for explanations.
pub fn describe(expr: &gimli::Expression<R>, encoding: gimli::Encoding) -> String {
    let mut out = Vec::new();
    let mut ops = expr.clone().operations(encoding);
    while let Ok(Some(op)) = ops.next() {
        out.push(match op {
            Operation::RegisterOffset {
                register, offset, ..
            } => {
                format!(
                    "DW_OP_breg{} ({}{offset:+})",
                    register.0,
                    reg_name(register.0)
                )
            }
            Operation::Register { register } => {
                format!("DW_OP_reg{} ({})", register.0, reg_name(register.0))
            }
            Operation::FrameOffset { offset } => format!("DW_OP_fbreg {offset}"),
            Operation::CallFrameCFA => "DW_OP_call_frame_cfa".into(),
            Operation::PlusConstant { value } => format!("DW_OP_plus_uconst {value}"),
            Operation::StackValue => "DW_OP_stack_value".into(),
            Operation::Piece { size_in_bits, .. } => format!("DW_OP_piece {}", size_in_bits / 8),
            Operation::EntryValue { .. } => "DW_OP_entry_value(...)".into(),
            Operation::UnsignedConstant { value } => format!("DW_OP_constu {value}"),
            Operation::SignedConstant { value } => format!("DW_OP_consts {value}"),
            other => format!("{other:?}").chars().take(40).collect(),
        });
    }
    if out.is_empty() {
        "(empty)".into()
    } else {
        out.join(", ")
    }
}

/// Reads an attribute's string value lossily.
pub fn lossy(r: R) -> String {
    r.to_string_lossy()
        .map(|s| s.into_owned())
        .unwrap_or_default()
}
