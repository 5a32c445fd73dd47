//! libtraceevent plugin for the kstackwatch trace events.
//!
//! `perf script` and `trace-cmd report` load it (see `trace-scripts/README.md`
//! for where to put it) and then print `kstackwatch:ksw_arm`, `ksw_hit` and
//! `ksw_disarm` as readable lines, e.g.
//!
//! ```text
//! ksw_hit: watch 1 slot 0: ksw-writer wrote 0xabcdabcd over 0xdeadbef7 at 0xffff8880003cfe50 by ksw_test_corrupt+0x3 [kstackwatch_test]; victim ksw-victim/84 armed at ksw_test_victim+0xd7
//! ```
//!
//! Addresses are named with the project's one symbolizer (`ksw-symbols`,
//! the rules of `ksw report`): from the kallsyms file in `KSW_KALLSYMS`
//! when it is set (the recording machine's: it wins); else by the host
//! (`tep_find_function`: trace-cmd knows the recorded kallsyms), its answer
//! held to the same rules (Rust names demangled, 256 KiB bound, module from
//! `/proc/kallsyms`); else from `/proc/kallsyms` if it is readable with
//! real addresses. Without any, addresses stay hex.
//!
//! The plugin uses only the libtraceevent symbols perf 6.1 exports
//! (`traceevent::plugin`), and catches panics at every entry point.

mod format;

use std::ffi::CString;
use std::sync::{Mutex, OnceLock};

use ksw_core::events;
use ksw_symbols::{format_location, Kallsyms, MAX_FUNCTION_SIZE};
use traceevent::plugin::{guard, Context, Handler, Output, Registration, Tep};
use traceevent::sys::{c_int, tep_handle};

use format::{Fields, Missing, Symbolize};

/// Environment variable naming a kallsyms file for the table.
pub const KALLSYMS_ENV: &str = "KSW_KALLSYMS";

/// The table, read on first use, and whether it was named explicitly.
fn table() -> &'static (Option<Kallsyms>, bool) {
    static TABLE: OnceLock<(Option<Kallsyms>, bool)> = OnceLock::new();
    TABLE.get_or_init(|| {
        let (path, explicit) = match std::env::var_os(KALLSYMS_ENV) {
            Some(p) => (std::path::PathBuf::from(p), true),
            None => ("/proc/kallsyms".into(), false),
        };
        let table = match std::fs::read(&path).map(|b| Kallsyms::load(&b)) {
            Ok(Ok(t)) => Some(t),
            Ok(Err(err)) => {
                if explicit && !std::fs::metadata(&path).is_ok_and(|m| m.len() == 0) {
                    eprintln!("ksw plugin: {KALLSYMS_ENV}={}: {err}", path.display());
                }
                None
            }
            Err(err) => {
                if explicit {
                    eprintln!(
                        "ksw plugin: cannot read {KALLSYMS_ENV}={}: {err}",
                        path.display()
                    );
                }
                None
            }
        };
        (table, explicit)
    })
}

struct Symbols<'a>(Tep<'a>);

impl Symbolize for Symbols<'_> {
    fn symbolize(&self, addr: u64) -> String {
        let (table, explicit) = table();
        if let (Some(t), true) = (table, explicit) {
            return t.describe(addr);
        }
        if let Some(func) = self.0.find_function(addr) {
            let name = func.name.to_string_lossy();
            if func.start != 0 && addr >= func.start && addr - func.start < MAX_FUNCTION_SIZE {
                let module = table
                    .as_ref()
                    .and_then(|t| t.lookup(&name))
                    .filter(|s| s.addr == func.start)
                    .and_then(|s| s.module.clone());
                return format_location(&name, addr - func.start, module.as_deref());
            }
        }
        match table {
            Some(t) => t.describe(addr),
            None => format!("{addr:#x}"),
        }
    }
}

struct RecordFields<'c, 'a>(&'c Context<'a>);

fn cname(name: &str) -> Option<CString> {
    CString::new(name).ok()
}

impl Fields for RecordFields<'_, '_> {
    fn num(&self, name: &str) -> Option<u64> {
        let name = cname(name)?;
        if !self.0.has_field(&name) {
            return None;
        }
        self.0.field_val(&name)
    }

    fn text(&self, name: &str) -> Option<String> {
        let name = cname(name)?;
        if !self.0.has_field(&name) {
            return None;
        }
        self.0.field_str(&name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Arm,
    Hit,
    Disarm,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Arm, Kind::Hit, Kind::Disarm];

    fn event(self) -> &'static str {
        match self {
            Kind::Arm => events::ARM,
            Kind::Hit => events::HIT,
            Kind::Disarm => events::DISARM,
        }
    }
}

#[derive(Debug)]
struct KswHandler(Kind);

impl Handler for KswHandler {
    fn handle(&self, cx: &mut Context<'_>) -> Output {
        let symbols = Symbols(cx.tep());
        let fields = RecordFields(cx);
        let line = match self.0 {
            Kind::Arm => format::arm(&fields, &symbols),
            Kind::Hit => format::hit(&fields, &symbols),
            Kind::Disarm => format::disarm(&fields),
        };
        match line {
            Ok(line) => {
                cx.puts(&line);
                Output::Replace
            }
            Err(Missing(name)) => {
                // An unexpected format: say so, then let the host print it.
                cx.puts(&format!("[ksw plugin: no field {name}] "));
                Output::AppendDefault
            }
        }
    }
}

/// Handlers registered per host handle (address), for the unloader.
static REGISTERED: Mutex<Vec<(usize, Registration<KswHandler>)>> = Mutex::new(Vec::new());

fn load(tep: Tep<'_>) -> c_int {
    let Some(system) = cname(events::SYSTEM) else {
        return -1;
    };
    let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    for kind in Kind::ALL {
        let Some(event) = cname(kind.event()) else {
            return -1;
        };
        match tep.register(&system, &event, KswHandler(kind)) {
            Ok(reg) => registered.push((tep.as_ptr() as usize, reg)),
            Err(err) => {
                eprintln!("ksw plugin: {}: {err}", kind.event());
                return -1;
            }
        }
    }
    0
}

fn unload(tep: Tep<'_>) -> c_int {
    let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
    let key = tep.as_ptr() as usize;
    let (ours, others): (Vec<_>, Vec<_>) = registered.drain(..).partition(|(k, _)| *k == key);
    *registered = others;
    let mut status = 0;
    for (_, reg) in ours {
        if let Err(err) = reg.unregister(&tep) {
            eprintln!("ksw plugin: {err}");
            status = -1;
        }
    }
    status
}

/// Called by libtraceevent (`TEP_PLUGIN_LOADER`) after `dlopen`.
///
/// # Safety
/// `tep` must be the caller's live `tep_handle`, valid until
/// `tep_plugin_unloader` is called with it.
#[no_mangle]
pub unsafe extern "C" fn tep_plugin_loader(tep: *mut tep_handle) -> c_int {
    guard(-1, || {
        // SAFETY: the host passes its live handle (this function's contract),
        // which outlives the registrations (removed in the unloader).
        match unsafe { Tep::from_raw(tep) } {
            Some(tep) => load(tep),
            None => -1,
        }
    })
}

/// Called by libtraceevent (`TEP_PLUGIN_UNLOADER`) before `dlclose`.
///
/// # Safety
/// `tep` must be the live handle given to `tep_plugin_loader`.
#[no_mangle]
pub unsafe extern "C" fn tep_plugin_unloader(tep: *mut tep_handle) -> c_int {
    guard(-1, || {
        // SAFETY: the host's live handle (this function's contract).
        match unsafe { Tep::from_raw(tep) } {
            Some(tep) => unload(tep),
            None => -1,
        }
    })
}
