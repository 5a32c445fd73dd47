//! Source lines for kernel addresses given as `FUNC+OFF [MODULE]`: the
//! file:line of the instruction and the chain of functions inlined there,
//! from the vmlinux and modules' DWARF. For `ksw report`: a writer's
//! instruction, call-chain entries, probe points.

use std::path::{Path, PathBuf};

use crate::elf::Binary;
use crate::watch::show_path;

/// One source frame at an address, innermost first: `function` is
/// inlined into the next frame's function, at `file:line`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// How an address was obtained, which decides the instruction to look up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The instruction itself (a probe point).
    Instruction,
    /// The address after the instruction that matters: a return address
    /// in a call chain, or a data breakpoint's ip (it traps after the
    /// store). The line is looked up one byte before.
    After,
}

/// The binaries to symbolize with.
#[derive(Debug, Default)]
pub struct SourceLines {
    bins: Vec<Binary>,
}

impl SourceLines {
    /// From explicit files.
    pub fn load(vmlinux: Option<&Path>, modules: &[PathBuf]) -> Result<SourceLines, String> {
        let mut bins = Vec::new();
        if let Some(v) = vmlinux {
            bins.push(Binary::load(v)?);
        }
        for m in modules {
            bins.push(Binary::load(m)?);
        }
        Ok(SourceLines { bins })
    }

    /// The running kernel's image and `modules`' files, where found at the
    /// usual places (see [`crate::cli::find_vmlinux`]); missing ones are
    /// skipped.
    pub fn running(modules: &[&str]) -> SourceLines {
        let mut bins = Vec::new();
        if let Some(b) = crate::cli::find_vmlinux().and_then(|v| Binary::load(&v).ok()) {
            bins.push(b);
        }
        for m in modules {
            if let Some(b) = crate::cli::find_module(m).and_then(|p| Binary::load(&p).ok()) {
                bins.push(b);
            }
        }
        SourceLines { bins }
    }

    pub fn is_empty(&self) -> bool {
        self.bins.is_empty()
    }

    /// The files in use, for the report's header.
    pub fn files(&self) -> Vec<String> {
        self.bins
            .iter()
            .map(|b| b.path.display().to_string())
            .collect()
    }

    /// Source frames at `func+off` in `module` (None: the kernel image),
    /// innermost first. Empty when unknown.
    pub fn frames(
        &self,
        module: Option<&str>,
        func: &str,
        off: u64,
        kind: Kind,
    ) -> Vec<SourceFrame> {
        let off = match kind {
            Kind::Instruction => off,
            Kind::After => off.saturating_sub(1),
        };
        for bin in &self.bins {
            if bin.module.as_deref() != module {
                continue;
            }
            let Some(sym) = bin.functions_named(func).next() else {
                continue;
            };
            let Some(ctx) = bin.context() else {
                continue;
            };
            let Ok(mut frames) = ctx.find_frames(sym.addr + off).skip_all_loads() else {
                continue;
            };
            let mut out = Vec::new();
            while let Ok(Some(f)) = frames.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.raw_name().ok().map(|s| s.into_owned()))
                    .unwrap_or_else(|| "?".into());
                let (file, line) = f
                    .location
                    .as_ref()
                    .map(|l| {
                        (
                            l.file.map(show_path).unwrap_or_else(|| "?".into()),
                            l.line.unwrap_or(0),
                        )
                    })
                    .unwrap_or_else(|| ("?".into(), 0));
                out.push(SourceFrame {
                    function,
                    file,
                    line,
                });
            }
            return out;
        }
        Vec::new()
    }

    /// `file:line`, with the inlining chain when there is one:
    /// `fs/select.c:937 (do_poll, inlined into do_sys_poll at fs/select.c:1015)`.
    pub fn describe(
        &self,
        module: Option<&str>,
        func: &str,
        off: u64,
        kind: Kind,
    ) -> Option<String> {
        let frames = self.frames(module, func, off, kind);
        let first = frames.first()?;
        let mut s = format!("{}:{}", first.file, first.line);
        if frames.len() > 1 {
            let chain: Vec<String> = frames
                .windows(2)
                .map(|w| {
                    format!(
                        "{} inlined into {} at {}:{}",
                        w[0].function, w[1].function, w[1].file, w[1].line
                    )
                })
                .collect();
            s.push_str(&format!(" ({})", chain.join(", ")));
        }
        Some(s)
    }

    /// [`describe`](Self::describe) for a `FUNC+0xOFF [MODULE]` text as
    /// `ksw report` prints symbols.
    pub fn describe_symbol(&self, text: &str, kind: Kind) -> Option<String> {
        let (sym, module) = match text.split_once(" [") {
            Some((s, m)) => (s, Some(m.trim_end_matches(']'))),
            None => (text, None),
        };
        let (func, off) = sym.split_once('+')?;
        let off = off.split('/').next()?;
        let off = u64::from_str_radix(off.trim_start_matches("0x"), 16).ok()?;
        self.describe(module, func, off, kind)
    }
}
