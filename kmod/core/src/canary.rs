// SPDX-License-Identifier: GPL-2.0
//! Where a function keeps its stack-protector canary, read from its code.
//!
//! Scanning a frame for the canary *value* is not enough: every
//! stack-protected function stores the same per-task value, so padding and
//! dead callee frames hold stale copies, and a scan can pick one of those.
//! The function's own code says exactly where the live copy goes: on
//! x86_64 (Linux 6.12, gcc or clang) the prologue loads the canary with
//! `mov %gs:0x28,%reg` and stores it with `mov %reg,disp(%rsp|%rbp)`.
//! [`find_canary_store`] recognises that pair; the probe handler then
//! checks that the word there holds the canary before watching it.

/// The register the canary slot is addressed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// `%rsp`, as it is after the prologue (the probe point's sp).
    Sp,
    /// `%rbp` (frame pointer kept, e.g. for a realigned stack).
    Bp,
}

/// The canary's place in the frame: `base + disp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CanarySlot {
    pub base: Base,
    pub disp: i32,
}

impl CanarySlot {
    /// The slot's address given the probe's `sp` and `bp`.
    pub fn address(&self, sp: usize, bp: usize) -> Option<usize> {
        let base = match self.base {
            Base::Sp => sp,
            Base::Bp => bp,
        };
        base.checked_add_signed(self.disp as isize)
    }
}

const GS_PREFIX: u8 = 0x65;
const REX_W: u8 = 0x48;
const REX_R: u8 = 0x04;
const MOV_LOAD: u8 = 0x8b;
const MOV_STORE: u8 = 0x89;
/// `%gs:0x28`: the per-CPU stack canary of x86_64 kernels before 6.13.
const CANARY_OFFSET: [u8; 4] = [0x28, 0, 0, 0];
/// How far past the load the store may be (a few scheduled instructions).
const STORE_WINDOW: usize = 48;

/// Finds the canary store in the machine code of a function.
pub fn find_canary_store(code: &[u8]) -> Option<CanarySlot> {
    let mut i = 0;
    while i + 9 <= code.len() {
        if let Some(reg) = canary_load_at(&code[i..]) {
            let window_end = (i + 9 + STORE_WINDOW).min(code.len());
            for j in i + 9..window_end {
                if let Some(slot) = store_of(reg, &code[j..]) {
                    return Some(slot);
                }
            }
        }
        i += 1;
    }
    None
}

/// `65 48|4c 8b modrm(00,reg,100) 25 28 00 00 00`: `mov %gs:0x28,%reg`.
fn canary_load_at(code: &[u8]) -> Option<u8> {
    match *code {
        [GS_PREFIX, rex, MOV_LOAD, modrm, 0x25, d0, d1, d2, d3, ..]
            if rex & !REX_R == REX_W
                && modrm & 0xc7 == 0x04
                && [d0, d1, d2, d3] == CANARY_OFFSET =>
        {
            Some(((rex & REX_R) << 1) | ((modrm >> 3) & 7))
        }
        _ => None,
    }
}

/// `48|4c 89 modrm disp`: `mov %reg,disp(%rsp)` or `mov %reg,disp(%rbp)`.
fn store_of(reg: u8, code: &[u8]) -> Option<CanarySlot> {
    let [rex, MOV_STORE, modrm, rest @ ..] = code else {
        return None;
    };
    if rex & !REX_R != REX_W || ((rex & REX_R) << 1) | ((modrm >> 3) & 7) != reg {
        return None;
    }
    let (mode, rm) = (modrm >> 6, modrm & 7);
    let (base, disp_bytes) = match (rm, rest) {
        // rm=100 takes a SIB byte; 0x24 is "base %rsp, no index".
        (0b100, [0x24, disp @ ..]) => (Base::Sp, disp),
        (0b101, disp) if mode != 0 => (Base::Bp, disp),
        _ => return None,
    };
    let disp = match (mode, disp_bytes) {
        (0, _) => 0,
        (1, [d, ..]) => i32::from(*d as i8),
        (2, [a, b, c, d, ..]) => i32::from_le_bytes([*a, *b, *c, *d]),
        _ => return None,
    };
    Some(CanarySlot { base, disp })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Byte sequences as objdump printed them for functions of this
    // project's bench kernel and test module (clang, Linux 6.12).

    #[test]
    fn rsp_based_store_right_after_the_load() {
        // mov %gs:0x28,%rax ; mov %rax,0x80(%rsp) ; movq $0,0x78(%rsp)
        let code = [
            0x49, 0x89, 0xfe, 0x65, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0, 0x48, 0x89, 0x84, 0x24,
            0x80, 0, 0, 0, 0x48, 0xc7, 0x44, 0x24, 0x78, 0, 0, 0, 0,
        ];
        let slot = find_canary_store(&code).unwrap();
        assert_eq!(
            slot,
            CanarySlot {
                base: Base::Sp,
                disp: 0x80
            }
        );
        assert_eq!(slot.address(0x1000, 0), Some(0x1080));
    }

    #[test]
    fn rbp_based_store_with_disp8() {
        // mov %gs:0x28,%rax ; mov %rax,-0x10(%rbp)
        let code = [
            0x65, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0, 0x48, 0x89, 0x45, 0xf0,
        ];
        let slot = find_canary_store(&code).unwrap();
        assert_eq!(
            slot,
            CanarySlot {
                base: Base::Bp,
                disp: -0x10
            }
        );
        assert_eq!(slot.address(0, 0x2000), Some(0x1ff0));
    }

    #[test]
    fn other_registers_and_scheduled_instructions() {
        // mov %gs:0x28,%rcx ; lea 0x8(%rdi),%rbp ; mov %rcx,0x18(%rsp)
        let code = [
            0x65, 0x48, 0x8b, 0x0c, 0x25, 0x28, 0, 0, 0, 0x48, 0x8d, 0x6f, 0x08, 0x48, 0x89, 0x4c,
            0x24, 0x18,
        ];
        assert_eq!(
            find_canary_store(&code),
            Some(CanarySlot {
                base: Base::Sp,
                disp: 0x18
            })
        );
        // mov %gs:0x28,%r10 ; mov %r10,(%rsp)
        let code = [
            0x65, 0x4c, 0x8b, 0x14, 0x25, 0x28, 0, 0, 0, 0x4c, 0x89, 0x14, 0x24,
        ];
        assert_eq!(
            find_canary_store(&code),
            Some(CanarySlot {
                base: Base::Sp,
                disp: 0
            })
        );
    }

    #[test]
    fn a_store_of_another_register_is_not_the_canary() {
        // mov %gs:0x28,%rax ; mov %rcx,0x8(%rsp)
        let code = [
            0x65, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0, 0x48, 0x89, 0x4c, 0x24, 0x08,
        ];
        assert_eq!(find_canary_store(&code), None);
    }

    #[test]
    fn the_epilogue_check_is_not_a_store() {
        // mov %gs:0x28,%rax ; cmp 0x80(%rsp),%rax
        let code = [
            0x65, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0, 0x48, 0x3b, 0x84, 0x24, 0x80, 0, 0, 0,
        ];
        assert_eq!(find_canary_store(&code), None);
    }

    #[test]
    fn no_canary_and_short_inputs() {
        assert_eq!(find_canary_store(&[]), None);
        assert_eq!(find_canary_store(&[0x65, 0x48, 0x8b]), None);
        // Same load with another %gs offset.
        let code = [
            0x65, 0x48, 0x8b, 0x04, 0x25, 0x30, 0, 0, 0, 0x48, 0x89, 0x45, 0xf0,
        ];
        assert_eq!(find_canary_store(&code), None);
    }
}
