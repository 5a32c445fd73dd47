//! A sweep of the opcode space: every opcode of every map with a set of
//! prefixes and ModRM forms, plus seeded random byte strings, each as its
//! own function in a generated ELF object that [`crate::check`] compares
//! with objdump like any other file.

use object::write::{Object, StandardSection, Symbol, SymbolSection};
use object::{Architecture, BinaryFormat, Endianness, SymbolFlags, SymbolKind, SymbolScope};

/// Bytes after each candidate: filler for immediates and displacements,
/// then NOPs so that any length resynchronises before the next candidate.
const TAIL: [u8; 24] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
];

/// ModRM forms: every reg with a memory operand without SIB, with SIB,
/// RIP-relative, SIB without base, disp8, disp32, and a register operand.
fn modrm_forms(reg: u8) -> [&'static [u8]; 7] {
    const F: [[[u8; 2]; 7]; 8] = {
        let mut f = [[[0u8; 2]; 7]; 8];
        let mut r = 0;
        while r < 8 {
            let x = (r as u8) << 3;
            f[r] = [
                [x, 0x01],
                [x | 4, 0x24],
                [x | 5, 0x01],
                [x | 4, 0x25],
                [0x40 | x, 0x01],
                [0x80 | x | 4, 0x88],
                [0xc0 | x, 0x01],
            ];
            r += 1;
        }
        f
    };
    let f = &F[usize::from(reg & 7)];
    [
        &f[0][..1],
        &f[1][..],
        &f[2][..1],
        &f[3][..],
        &f[4][..1],
        &f[5][..],
        &f[6][..1],
    ]
}

/// All candidates, each a byte string to place at a function start.
pub fn candidates(random: usize) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let prefixes: [&[u8]; 12] = [
        &[],
        &[0x66],
        &[0xf3],
        &[0xf2],
        &[0x48],
        &[0x66, 0x48],
        &[0x67],
        &[0xf0],
        &[0x66, 0xf3],
        &[0xf3, 0x66],
        &[0x41],
        &[0x2e, 0x3e, 0x64],
    ];
    let maps: [&[u8]; 4] = [&[], &[0x0f], &[0x0f, 0x38], &[0x0f, 0x3a]];
    for p in prefixes {
        for m in maps {
            for op in 0..=255u8 {
                for reg in 0..8u8 {
                    for form in modrm_forms(reg) {
                        let mut c = p.to_vec();
                        c.extend_from_slice(m);
                        c.push(op);
                        c.extend_from_slice(form);
                        out.push(c);
                    }
                }
            }
        }
    }
    // Register forms where rm is part of the opcode.
    for p in [&[][..], &[0x66], &[0xf3], &[0xf2], &[0x48], &[0xf3, 0x48]] {
        for op in [
            0x01u8, 0xa6, 0xa7, 0xae, 0xc7, 0x1e, 0x00, 0x0d, 0x18, 0x1f, 0xb9, 0xff, 0x20, 0x22,
        ] {
            for m in 0xc0..=0xffu8 {
                let mut c = p.to_vec();
                c.extend_from_slice(&[0x0f, op, m]);
                out.push(c);
            }
        }
    }
    // x87, group opcodes, and C6/C7 with every ModRM byte.
    for op in [
        0xd8u8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xc6, 0xc7, 0xf6, 0xf7, 0xfe, 0xff, 0x8c,
        0x8e, 0x8f,
    ] {
        for m in 0..=255u8 {
            out.push(vec![op, m]);
        }
    }
    // 3DNow! suffixes.
    for s in 0..=255u8 {
        out.push(vec![0x0f, 0x0f, 0xc1, s]);
        out.push(vec![0x0f, 0x0f, 0x40, 0x10, s]);
    }
    // VEX3 (and VEX2 for map 1), EVEX and XOP: every opcode with each
    // mandatory prefix, W, L and a few ModRM forms.
    let vforms: [&[u8]; 5] = [
        &[0x00],
        &[0x44, 0x24, 0x10],
        &[0x84, 0x20, 0x01, 0x02, 0x03, 0x04],
        &[0xc1],
        &[0xd7],
    ];
    for map in 1..=3u8 {
        for op in 0..=255u8 {
            for pp in 0..4u8 {
                for wl in 0..4u8 {
                    for f in vforms {
                        let mut c = vec![
                            0xc4,
                            0xe0 | map,
                            ((wl & 2) << 6) | 0x78 | ((wl & 1) << 2) | pp,
                            op,
                        ];
                        c.extend_from_slice(f);
                        out.push(c);
                        if map == 1 && wl & 2 == 0 {
                            let mut c = vec![0xc5, 0xf8 | ((wl & 1) << 2) | pp, op];
                            c.extend_from_slice(f);
                            out.push(c);
                        }
                    }
                }
            }
        }
    }
    for map in [1u8, 2, 3, 5, 6] {
        for op in 0..=255u8 {
            for pp in 0..4u8 {
                for w in 0..2u8 {
                    for ll in 0..3u8 {
                        for f in vforms {
                            let mut c =
                                vec![0x62, 0xf0 | map, (w << 7) | 0x7c | pp, (ll << 5) | 0x09, op];
                            c.extend_from_slice(f);
                            out.push(c);
                        }
                    }
                }
            }
        }
    }
    for map in 8..=10u8 {
        for op in 0..=255u8 {
            for wl in 0..4u8 {
                for f in vforms {
                    let mut c = vec![
                        0x8f,
                        0xe0 | map,
                        ((wl & 2) << 6) | 0x78 | ((wl & 1) << 2),
                        op,
                    ];
                    c.extend_from_slice(f);
                    out.push(c);
                }
            }
        }
    }
    // Prefix order, repetition and the 15-byte limit.
    for n in 0..=15usize {
        let mut c = vec![0x2e; n];
        c.extend_from_slice(&[0x0f, 0x1f, 0x00]);
        out.push(c);
        let mut c = vec![0x66; n];
        c.push(0x90);
        out.push(c);
        let mut c = vec![0x66; n];
        c.extend_from_slice(&[0x48, 0xb8]);
        out.push(c);
    }
    // Seeded random byte strings (xorshift64*).
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..random {
        let mut c = Vec::with_capacity(16);
        for _ in 0..16 {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            c.push((s.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8);
        }
        out.push(c);
    }
    out
}

/// Writes the candidates as an ELF relocatable object: one `.text`
/// section, one global function symbol per candidate (candidate + tail).
pub fn write_object(cands: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let text = obj.section_id(StandardSection::Text);
    for (n, c) in cands.iter().enumerate() {
        let mut body = c.clone();
        body.extend_from_slice(&TAIL);
        let off = obj.append_section_data(text, &body, 1);
        obj.add_symbol(Symbol {
            name: format!("c{n}").into_bytes(),
            value: off,
            size: body.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Linkage,
            weak: false,
            section: SymbolSection::Section(text),
            flags: SymbolFlags::None,
        });
    }
    obj.write().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first part of the sweep (no prefix; one-byte, 0F, 0F38 and 0F3A
    /// maps with every ModRM form) through objdump: needs binutils, like
    /// the kernel build.
    #[test]
    fn small_sweep_agrees_with_objdump() {
        let mut cands = candidates(2000);
        cands.truncate(4 * 256 * 8 * 7);
        cands.extend(candidates(2000).into_iter().rev().take(2000));
        let obj = write_object(&cands).unwrap();
        let path = std::env::temp_dir().join(format!("objcheck-test-{}.o", std::process::id()));
        std::fs::write(&path, obj).unwrap();
        let st = crate::check::check_file(path.to_str().unwrap(), "objdump", 20);
        let _ = std::fs::remove_file(&path);
        let st = st.expect("objdump (binutils) is needed for this test");
        assert_eq!(st.functions, cands.len() as u64);
        assert!(st.insns > 100_000, "{}", st.summary("small sweep"));
        assert_eq!(st.mismatches, 0, "{}", st.summary("small sweep"));
    }
}
