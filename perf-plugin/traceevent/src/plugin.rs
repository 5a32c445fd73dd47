//! Safe API for libtraceevent *plugins*, restricted to [`sys::perf61`]: the
//! symbols Debian's perf 6.1 exports from its bundled libtraceevent. A plugin
//! built on this module loads under perf 6.1 and under anything that uses
//! libtraceevent.so.1 (trace-cmd 3.1, newer perf).
//!
//! Everything the host hands over (`tep_handle`, `tep_event`, `tep_record`,
//! `trace_seq`) stays an opaque pointer: perf's bundled copy and the system
//! library do not promise the same layouts. Fields are read by name through
//! `tep_get_field_val` / `tep_get_field_raw`, which apply the file's
//! endianness for us.
//!
//! A plugin exports `tep_plugin_loader(struct tep_handle *)` itself (and
//! optionally `tep_plugin_unloader`), wraps the pointer with
//! [`Tep::from_raw`], and registers [`Handler`]s with [`Tep::register`].

use core::ffi::CStr;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::sys::{self, c_int, c_void, perf61};

/// A libtraceevent call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The function that failed.
    pub op: &'static str,
    /// What it returned.
    pub code: i32,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed ({})", self.op, self.code)
    }
}

impl std::error::Error for Error {}

/// The host's `struct tep_handle`, as given to `tep_plugin_loader`.
#[derive(Debug, Clone, Copy)]
pub struct Tep<'a> {
    ptr: NonNull<sys::tep_handle>,
    _host: PhantomData<&'a sys::tep_handle>,
}

/// A kernel function found by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function<'a> {
    /// Its name, as the host knows it.
    pub name: &'a CStr,
    /// Its start address (0 when the host did not say).
    pub start: u64,
}

impl Function<'_> {
    /// `name+0xoff` for `addr` (just `name` at the start).
    pub fn describe(&self, addr: u64) -> String {
        let name = self.name.to_string_lossy();
        match addr.checked_sub(self.start) {
            Some(0) => name.into_owned(),
            Some(off) if self.start != 0 => format!("{name}+{off:#x}"),
            _ => name.into_owned(),
        }
    }
}

impl<'a> Tep<'a> {
    /// Wraps the handle a host passed to `tep_plugin_loader` or
    /// `tep_plugin_unloader`. `None` for a null pointer.
    ///
    /// # Safety
    /// `ptr` must be a live `tep_handle` of the host that loaded this plugin,
    /// valid for `'a`; for [`Tep::register`], valid until the handler is
    /// unregistered (hosts free the handle only after unloading plugins).
    pub unsafe fn from_raw(ptr: *mut sys::tep_handle) -> Option<Tep<'a>> {
        NonNull::new(ptr).map(|ptr| Tep {
            ptr,
            _host: PhantomData,
        })
    }

    /// The raw handle.
    pub fn as_ptr(&self) -> *mut sys::tep_handle {
        self.ptr.as_ptr()
    }

    /// `tep_find_function` + `tep_find_function_address`: the function
    /// holding `addr`, if the host has a symbol table that covers it.
    pub fn find_function(&self, addr: u64) -> Option<Function<'a>> {
        // SAFETY: `self.ptr` is a live tep_handle (from_raw's contract); the
        // function only reads the host's function map.
        let name = unsafe { perf61::tep_find_function(self.ptr.as_ptr(), addr) };
        if name.is_null() {
            return None;
        }
        // SAFETY: as above.
        let start = unsafe { perf61::tep_find_function_address(self.ptr.as_ptr(), addr) };
        // SAFETY: a non-null result is a NUL-terminated name owned by the
        // host's function map, which lives as long as the handle ('a).
        let name = unsafe { CStr::from_ptr(name) };
        Some(Function { name, start })
    }

    /// Registers `handler` for `system:event` (any id). The handler replaces
    /// or precedes the event's `print fmt` output, see [`Output`].
    pub fn register<H: Handler>(
        &self,
        system: &CStr,
        event: &CStr,
        handler: H,
    ) -> Result<Registration<H>, Error> {
        let ctx = Box::into_raw(Box::new(HandlerCtx {
            handler,
            tep: self.ptr.as_ptr(),
        }));
        // SAFETY: the strings are NUL-terminated and only read during the
        // call (libtraceevent copies them); `trampoline::<H>` has the
        // tep_event_handler_func signature and `ctx` points to a
        // HandlerCtx<H>, which stays allocated until `unregister`.
        let ret = unsafe {
            perf61::tep_register_event_handler(
                self.ptr.as_ptr(),
                -1,
                system.as_ptr(),
                event.as_ptr(),
                Some(trampoline::<H>),
                ctx.cast(),
            )
        };
        if ret < 0 {
            // SAFETY: registration failed, so libtraceevent kept no pointer
            // to `ctx`; it came from Box::into_raw above.
            drop(unsafe { Box::from_raw(ctx) });
            return Err(Error {
                op: "tep_register_event_handler",
                code: ret,
            });
        }
        Ok(Registration {
            ctx,
            system: system.to_owned(),
            event: event.to_owned(),
        })
    }
}

/// What a [`Handler`] did with the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The handler's text replaces the event's `print fmt` output.
    Replace,
    /// The host prints the `print fmt` output after the handler's text.
    AppendDefault,
}

/// Formats one event. Called by the host for each record of the event it
/// was registered for.
pub trait Handler: Send + Sync + 'static {
    /// Writes the event's text into `cx`. A panic is caught at the
    /// boundary and reported as [`Output::AppendDefault`].
    fn handle(&self, cx: &mut Context<'_>) -> Output;
}

struct HandlerCtx<H> {
    handler: H,
    tep: *mut sys::tep_handle,
}

/// A registered handler. Dropping it without [`Registration::unregister`]
/// leaks its state, which is what a host that never unloads expects.
#[derive(Debug)]
pub struct Registration<H: Handler> {
    ctx: *mut HandlerCtx<H>,
    system: CString,
    event: CString,
}

// SAFETY: a Registration is an owned heap allocation holding an `H`
// (Send + Sync) and the host's tep address; moving it to another thread
// moves only that ownership. libtraceevent is called with it in
// `unregister`, which takes the `Tep` the caller vouches for.
unsafe impl<H: Handler> Send for Registration<H> {}

impl<H: Handler> Registration<H> {
    /// The `system` and `event` names it was registered for.
    pub fn names(&self) -> (&CStr, &CStr) {
        (&self.system, &self.event)
    }

    /// `tep_unregister_event_handler`, then frees the handler. `tep` must be
    /// the handle it was registered with; otherwise nothing is unregistered,
    /// the handler is leaked and an error is returned.
    pub fn unregister(self, tep: &Tep<'_>) -> Result<(), Error> {
        // SAFETY: `self.ctx` came from Box::into_raw and is still allocated;
        // reading the stored tep address does not dereference it.
        let registered_with = unsafe { (*self.ctx).tep };
        if registered_with != tep.as_ptr() {
            return Err(Error {
                op: "tep_unregister_event_handler (another tep)",
                code: -1,
            });
        }
        // SAFETY: same handle, names, function and context as registered;
        // libtraceevent only compares them and frees its own entry.
        let ret = unsafe {
            perf61::tep_unregister_event_handler(
                tep.as_ptr(),
                -1,
                self.system.as_ptr(),
                self.event.as_ptr(),
                Some(trampoline::<H>),
                self.ctx.cast(),
            )
        };
        if ret < 0 {
            return Err(Error {
                op: "tep_unregister_event_handler",
                code: ret,
            });
        }
        // SAFETY: libtraceevent dropped its reference to ctx above, and the
        // Box came from Box::into_raw in `register`.
        drop(unsafe { Box::from_raw(self.ctx) });
        Ok(())
    }
}

/// One call of a handler: the record, its event and the output sequence.
#[derive(Debug)]
pub struct Context<'a> {
    seq: NonNull<sys::trace_seq>,
    record: NonNull<sys::tep_record>,
    event: NonNull<sys::tep_event>,
    tep: Tep<'a>,
}

impl<'a> Context<'a> {
    /// The handle the handler was registered with (for function look-ups).
    pub fn tep(&self) -> Tep<'a> {
        self.tep
    }

    /// Whether the event has a (non-common) field `name` (`tep_find_field`).
    pub fn has_field(&self, name: &CStr) -> bool {
        // SAFETY: the event pointer is live for the call; the name is
        // NUL-terminated and only read.
        !unsafe { perf61::tep_find_field(self.event.as_ptr(), name.as_ptr()) }.is_null()
    }

    /// A numeric field's value (`tep_get_field_val`), in host byte order.
    /// `None` if the event has no such field.
    pub fn field_val(&self, name: &CStr) -> Option<u64> {
        let mut val = 0;
        // SAFETY: event, record and seq are live for the call; `val` is a
        // valid out-pointer. With err = 0 nothing is printed on failure.
        let ret = unsafe {
            perf61::tep_get_field_val(
                self.seq.as_ptr(),
                self.event.as_ptr(),
                name.as_ptr(),
                self.record.as_ptr(),
                &mut val,
                0,
            )
        };
        (ret == 0).then_some(val)
    }

    /// A field's bytes in the record (`tep_get_field_raw`): the whole array
    /// for `char x[16]`, the payload for `__data_loc` fields.
    pub fn field_raw(&self, name: &CStr) -> Option<&'a [u8]> {
        let mut len: c_int = 0;
        // SAFETY: as in field_val; `len` is a valid out-pointer.
        let ptr = unsafe {
            perf61::tep_get_field_raw(
                self.seq.as_ptr(),
                self.event.as_ptr(),
                name.as_ptr(),
                self.record.as_ptr(),
                &mut len,
                0,
            )
        };
        let len = usize::try_from(len).ok()?;
        if ptr.is_null() {
            return None;
        }
        // SAFETY: libtraceevent returns a pointer into the record's data and
        // the field's length there; the host keeps the record alive for the
        // whole handler call ('a) and does not write it meanwhile.
        Some(unsafe { core::slice::from_raw_parts(ptr.cast::<u8>(), len) })
    }

    /// A `char[]` field as text, up to its first NUL (lossy UTF-8).
    pub fn field_str(&self, name: &CStr) -> Option<String> {
        let raw = self.field_raw(name)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Some(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    /// Appends `text` to the output (`trace_seq_puts`). NUL bytes are
    /// dropped. Returns false if the sequence is out of memory.
    pub fn puts(&mut self, text: &str) -> bool {
        text.split('\0').all(|chunk| {
            if chunk.is_empty() {
                return true;
            }
            let Ok(chunk) = CString::new(chunk) else {
                return false;
            };
            // SAFETY: seq is the live trace_seq of this call; chunk is a
            // NUL-terminated string that trace_seq_puts copies.
            unsafe { perf61::trace_seq_puts(self.seq.as_ptr(), chunk.as_ptr()) > 0 }
        })
    }
}

impl fmt::Write for Context<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.puts(s) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

/// The `tep_event_handler_func` for handlers of type `H`.
unsafe extern "C" fn trampoline<H: Handler>(
    s: *mut sys::trace_seq,
    record: *mut sys::tep_record,
    event: *mut sys::tep_event,
    context: *mut c_void,
) -> c_int {
    let (Some(seq), Some(record), Some(event), Some(ctx)) = (
        NonNull::new(s),
        NonNull::new(record),
        NonNull::new(event),
        NonNull::new(context.cast::<HandlerCtx<H>>()),
    ) else {
        return 1;
    };
    // SAFETY: `context` is the HandlerCtx<H> registered with this
    // trampoline (Tep::register), alive until unregistered; the host calls
    // handlers only while they are registered.
    let ctx = unsafe { ctx.as_ref() };
    // SAFETY: the host passes its live tep_handle, which outlives the
    // registration (see Tep::from_raw).
    let Some(tep) = (unsafe { Tep::from_raw(ctx.tep) }) else {
        return 1;
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let mut cx = Context {
            seq,
            record,
            event,
            tep,
        };
        ctx.handler.handle(&mut cx)
    }));
    match result {
        Ok(Output::Replace) => 0,
        Ok(Output::AppendDefault) | Err(_) => 1,
    }
}

/// Runs `f` and turns a panic into `on_panic`, for a plugin's own
/// `extern "C"` entry points (`tep_plugin_loader`, `tep_plugin_unloader`):
/// unwinding into C is undefined behaviour.
pub fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}
