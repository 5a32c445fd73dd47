//! Running objdump and reading its output: instruction boundaries and the
//! control-flow class implied by the mnemonic.

use ksw_core::insn::Flow;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// One instruction as objdump printed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OdInsn {
    pub addr: u64,
    /// Number of bytes objdump consumed (the raw-bytes column).
    pub len: u8,
    /// Mnemonic and operands, as printed.
    pub text: String,
}

impl OdInsn {
    /// Whether objdump could not decode the bytes: `(bad)` anywhere in the
    /// text, `{bad}` (EVEX fields it rejects), `%?` (an undefined segment
    /// register), `.byte` (it gave up), or a line of prefixes only (it stops
    /// after 14 prefixes).
    pub fn bad(&self) -> bool {
        let t = self.text.as_str();
        t.contains("(bad)")
            || t.contains("{bad}")
            || t.contains("%?")
            || t.starts_with(".byte")
            || t.is_empty()
            || mnemonic(t).0.is_empty()
    }
}

/// Prefix words objdump prints before the mnemonic.
fn is_prefix_word(w: &str) -> bool {
    matches!(
        w,
        "cs" | "ds"
            | "es"
            | "ss"
            | "fs"
            | "gs"
            | "data16"
            | "data32"
            | "addr32"
            | "addr16"
            | "lock"
            | "rep"
            | "repz"
            | "repe"
            | "repnz"
            | "repne"
            | "bnd"
            | "notrack"
            | "xacquire"
            | "xrelease"
            | "{vex}"
            | "{vex3}"
            | "{evex}"
    ) || w.starts_with("rex")
}

/// Splits objdump's text into (mnemonic, operands), skipping prefix words.
/// The mnemonic is empty for a line of prefixes only.
pub fn mnemonic(text: &str) -> (&str, &str) {
    let mut rest = text.trim_start();
    loop {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (w, tail) = rest.split_at(end);
        if w.is_empty() {
            return ("", "");
        }
        if !is_prefix_word(w) {
            return (w, tail.trim());
        }
        rest = tail.trim_start();
    }
}

/// The flow class of an instruction from objdump's mnemonic, mirroring
/// `Insn::flow`. `repz clac`/`repnz clac` are ERETU/ERETS (FRED), which
/// binutils 2.40 predates.
pub fn flow_of(text: &str) -> Flow {
    let (m, ops) = mnemonic(text);
    // Branch hints print as `jne,pt` / `loop,pn`.
    let m = m.split(',').next().unwrap_or(m);
    let indirect = ops.starts_with('*');
    let words: Vec<&str> = text.split_whitespace().collect();
    match m {
        "ret" | "retq" | "retw" | "retl" => Flow::Ret,
        "jmp" | "jmpq" | "jmpw" => {
            if indirect {
                Flow::IndirectJump
            } else {
                Flow::Jump
            }
        }
        "call" | "callq" | "callw" => {
            if indirect {
                Flow::IndirectCall
            } else {
                Flow::Call
            }
        }
        "loop" | "loope" | "loopne" | "loopl" | "loopel" | "loopnel" | "loopq" | "loopeq"
        | "loopneq" | "xbegin" | "xbeginw" | "xbeginl" => Flow::CondJump,
        "int3" => Flow::Int3,
        "hlt" => Flow::Halt,
        "clac" if words.first().is_some_and(|w| *w == "repz" || *w == "repnz") => Flow::Other,
        "eretu" | "erets" => Flow::Other,
        "lret" | "lretq" | "lretw" | "lretl" | "ljmp" | "ljmpq" | "ljmpw" | "lcall" | "lcallq"
        | "lcallw" | "iret" | "iretq" | "iretw" | "iretl" | "int" | "int1" | "icebp"
        | "syscall" | "sysret" | "sysretq" | "sysretl" | "sysenter" | "sysexit" | "sysexitl"
        | "sysexitq" | "rsm" | "vmlaunch" | "vmresume" => Flow::Other,
        _ if m.starts_with("ud0") || m.starts_with("ud1") || m == "ud2" => Flow::Ud2,
        _ if m.starts_with('j') => Flow::CondJump,
        _ => Flow::Next,
    }
}

/// The branch target objdump printed for a direct branch: the first
/// operand, a hex address (`ffffffff81000000 <sym+0x10>`).
pub fn target_of(text: &str) -> Option<u64> {
    let (_, ops) = mnemonic(text);
    let first = ops.split_whitespace().next()?;
    let first = first.trim_start_matches("0x");
    u64::from_str_radix(first, 16).ok()
}

/// All instructions objdump printed, per section name, in output order.
pub type Listing = HashMap<String, Vec<OdInsn>>;

/// Parses one line of `objdump -d -z -w` output (raw bytes shown).
pub fn parse_insn_line(line: &str) -> Option<OdInsn> {
    // "ffffffff81000000:\t48 89 e5             \tmov    %rsp,%rbp"
    let (addr, rest) = line.split_once(":\t")?;
    let addr = u64::from_str_radix(addr.trim(), 16).ok()?;
    let (bytes, text) = rest.split_once('\t').unwrap_or((rest, ""));
    let mut len = 0u8;
    for b in bytes.split_whitespace() {
        if b.len() != 2 || u8::from_str_radix(b, 16).is_err() {
            return None;
        }
        len = len.checked_add(1)?;
    }
    if len == 0 {
        return None;
    }
    Some(OdInsn {
        addr,
        len,
        text: text.trim().to_string(),
    })
}

/// Runs `objdump -d -z -w [extra] file` and collects every instruction,
/// streaming the output (it can be hundreds of MB for a vmlinux).
pub fn run(objdump: &str, extra: &[String], file: &str) -> Result<Listing, String> {
    let mut child = Command::new(objdump)
        .args(["-d", "-z", "-w"])
        .args(extra)
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{objdump}: {e}"))?;
    let out = child.stdout.take().ok_or("no objdump stdout")?;
    let mut listing = Listing::new();
    let mut section = String::new();
    let mut cur: Vec<OdInsn> = Vec::new();
    for line in BufReader::with_capacity(1 << 20, out).lines() {
        let line = line.map_err(|e| format!("reading objdump output: {e}"))?;
        if let Some(name) = line.strip_prefix("Disassembly of section ") {
            if !section.is_empty() {
                listing
                    .entry(std::mem::take(&mut section))
                    .or_default()
                    .append(&mut cur);
            }
            section = name.trim_end_matches(':').to_string();
            continue;
        }
        if let Some(i) = parse_insn_line(&line) {
            cur.push(i);
        }
    }
    if !section.is_empty() {
        listing.entry(section).or_default().append(&mut cur);
    }
    let status = child.wait().map_err(|e| format!("{objdump}: {e}"))?;
    if !status.success() {
        return Err(format!("{objdump} {file}: {status}"));
    }
    for v in listing.values_mut() {
        // Output order is ascending per symbol; sort for binary search and
        // keep the first decode of an address (the one from the symbol that
        // starts there or before it).
        v.sort_by_key(|i| i.addr);
        v.dedup_by_key(|i| i.addr);
    }
    Ok(listing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let i =
            parse_insn_line("ffffffff81000000:\t48 89 e5             \tmov    %rsp,%rbp").unwrap();
        assert_eq!(i.addr, 0xffff_ffff_8100_0000);
        assert_eq!(i.len, 3);
        assert_eq!(i.text, "mov    %rsp,%rbp");
        let i = parse_insn_line("  1f:\t0f 0b                \tud2").unwrap();
        assert_eq!((i.addr, i.len), (0x1f, 2));
        assert!(parse_insn_line("0000000000000000 <foo>:").is_none());
        assert!(parse_insn_line("Disassembly of section .text:").is_none());
        let i = parse_insn_line("   0:\t8d                   \t(bad)").unwrap();
        assert!(i.bad());
    }

    #[test]
    fn classifies_mnemonics() {
        assert_eq!(flow_of("ret"), Flow::Ret);
        assert_eq!(flow_of("repz ret"), Flow::Ret);
        assert_eq!(flow_of("ret    $0x8"), Flow::Ret);
        assert_eq!(flow_of("jmp    ffffffff81000010 <foo+0x10>"), Flow::Jump);
        assert_eq!(flow_of("jmp    *%rax"), Flow::IndirectJump);
        assert_eq!(flow_of("notrack jmp *%rax"), Flow::IndirectJump);
        assert_eq!(
            flow_of("cs call ffffffff81e01230 <__x86_indirect_thunk_r11>"),
            Flow::Call
        );
        assert_eq!(flow_of("call   *0x10(%rax)"), Flow::IndirectCall);
        assert_eq!(flow_of("jne    5 <f+0x5>"), Flow::CondJump);
        assert_eq!(flow_of("jrcxz  5 <f+0x5>"), Flow::CondJump);
        assert_eq!(flow_of("loop   5 <f+0x5>"), Flow::CondJump);
        assert_eq!(flow_of("loopne,pn 5 <f+0x5>"), Flow::CondJump);
        assert_eq!(flow_of("repz loopnel 5 <f+0x5>"), Flow::CondJump);
        assert_eq!(flow_of("jne,pt 5 <f+0x5>"), Flow::CondJump);
        assert_eq!(flow_of("int3"), Flow::Int3);
        assert_eq!(flow_of("int    $0x80"), Flow::Other);
        assert_eq!(flow_of("ud2"), Flow::Ud2);
        assert_eq!(flow_of("ud1    0x0(%rax),%eax"), Flow::Ud2);
        assert_eq!(flow_of("ud1l   0x0(%rax),%eax"), Flow::Ud2);
        assert_eq!(flow_of("hlt"), Flow::Halt);
        assert_eq!(flow_of("iretq"), Flow::Other);
        assert_eq!(flow_of("lret"), Flow::Other);
        assert_eq!(flow_of("ljmp   *(%rax)"), Flow::Other);
        assert_eq!(flow_of("repz clac"), Flow::Other);
        assert_eq!(flow_of("clac"), Flow::Next);
        assert_eq!(flow_of("mov    %rsp,%rbp"), Flow::Next);
        assert_eq!(flow_of("rex.W"), Flow::Next);
        assert_eq!(
            target_of("jmp    ffffffff81000010 <foo+0x10>"),
            Some(0xffff_ffff_8100_0010)
        );
        assert_eq!(target_of("bnd jmp 1f <f+0x1f>"), Some(0x1f));
        assert_eq!(target_of("data16 jmp 0x3"), Some(3));
        assert!(OdInsn {
            addr: 0,
            len: 14,
            text: "cs cs cs".into()
        }
        .bad());
    }
}
