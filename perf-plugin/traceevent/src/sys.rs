//! Raw declarations of the libtraceevent 1.7.1 API used by this project.
//!
//! Written by hand in the shape `bindgen` gives them (same names, same
//! parameter names, same C types), and checked against `bindgen`'s output for
//! `/usr/include/traceevent/event-parse.h` by `tests/bindings.rs`.
//!
//! The functions are split by *who provides them at run time*:
//!
//! * [`perf61`]: the symbols `/usr/bin/perf` 6.1 (Debian 12) exports from its
//!   bundled libtraceevent. A plugin loaded by perf 6.1 may reference only
//!   these; anything else is an unresolved symbol and `dlopen` fails. The same
//!   symbols exist in libtraceevent.so.1, so trace-cmd resolves them too.
//! * [`libtraceevent`]: further symbols of the system libtraceevent.so.1,
//!   for host programs that link it (parsing formats, printing events).
//!
//! Structures a plugin receives (`tep_handle`, `tep_event`, `tep_record`,
//! `tep_format_field`, `trace_seq`) are opaque to plugins: perf's bundled
//! copy and the system library need not agree on their layout. The three
//! mirrored layouts ([`tep_record`], [`tep_format_field`], [`trace_seq`]) are
//! those of the system library 1.7.1 and may be used only on the host side.

#![allow(non_camel_case_types)]

use core::marker::{PhantomData, PhantomPinned};

pub use core::ffi::{c_char, c_int, c_uchar, c_uint, c_ulong, c_ulonglong, c_void};

macro_rules! opaque {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(stringify!($name))
            }
        }
    )*};
}

opaque! {
    /// `struct tep_handle`: one parsing context (events, functions, comms).
    tep_handle;
    /// `struct tep_event`: one parsed event format.
    tep_event;
}

/// `enum tep_errno` (0 is success, errors are below -100000).
pub type tep_errno = c_int;
/// `enum tep_endian`.
pub type tep_endian = c_uint;
/// `TEP_LITTLE_ENDIAN`.
pub const TEP_LITTLE_ENDIAN: tep_endian = 0;
/// `TEP_BIG_ENDIAN`.
pub const TEP_BIG_ENDIAN: tep_endian = 1;

/// `enum tep_format_flags` bits of [`tep_format_field::flags`].
pub const TEP_FIELD_IS_ARRAY: c_ulong = 1;
pub const TEP_FIELD_IS_POINTER: c_ulong = 2;
pub const TEP_FIELD_IS_SIGNED: c_ulong = 4;
pub const TEP_FIELD_IS_STRING: c_ulong = 8;
pub const TEP_FIELD_IS_DYNAMIC: c_ulong = 16;
pub const TEP_FIELD_IS_LONG: c_ulong = 32;
pub const TEP_FIELD_IS_RELATIVE: c_ulong = 256;

/// `TEP_EVENT_FL_FAILED` bit of [`tep_event_head::flags`]: parsing failed.
pub const TEP_EVENT_FL_FAILED: c_uint = 0x8000_0000;

/// `TEP_PRINT_INFO`: the `print fmt` output of an event (with `tep_print_event`).
pub const TEP_PRINT_INFO: &core::ffi::CStr = c"INFO";

/// `tep_event_handler_func`: a plugin's replacement for an event's
/// `print fmt`. Returning 0 suppresses the default output; non-zero makes
/// the host append it after the handler's text.
pub type tep_event_handler_func = ::std::option::Option<
    unsafe extern "C" fn(
        s: *mut trace_seq,
        record: *mut tep_record,
        event: *mut tep_event,
        context: *mut c_void,
    ) -> c_int,
>;

/// `struct tep_record` as in libtraceevent 1.7.1 (built without
/// `DEBUG_RECORD`). Host side only.
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct tep_record {
    pub ts: c_ulonglong,
    pub offset: c_ulonglong,
    pub missed_events: ::std::os::raw::c_longlong,
    pub record_size: c_int,
    pub size: c_int,
    pub data: *mut c_void,
    pub cpu: c_int,
    pub ref_count: c_int,
    pub locked: c_int,
    pub priv_: *mut c_void,
}

/// `struct tep_format_field` as in libtraceevent 1.7.1. Host side only.
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct tep_format_field {
    pub next: *mut tep_format_field,
    pub event: *mut tep_event,
    pub type_: *mut c_char,
    pub name: *mut c_char,
    pub alias: *mut c_char,
    pub offset: c_int,
    pub size: c_int,
    pub arraylen: c_uint,
    pub elementsize: c_uint,
    pub flags: c_ulong,
}

/// The leading members of `struct tep_event` in libtraceevent 1.7.1 (the
/// full struct continues with `format`, `print_fmt`, `system`, ...). Host
/// side only: read through a `*const tep_event` cast, never constructed.
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct tep_event_head {
    pub tep: *mut tep_handle,
    pub name: *mut c_char,
    pub id: c_int,
    pub flags: c_int,
}

/// `enum trace_seq_fail` (0: `TRACE_SEQ__GOOD`).
pub type trace_seq_fail = c_uint;

/// `struct trace_seq` as in libtraceevent 1.7.1. Host side only; plugins get
/// a pointer they must not look into.
#[repr(C)]
#[derive(Debug, Copy, Clone)]
pub struct trace_seq {
    pub buffer: *mut c_char,
    pub buffer_size: c_uint,
    pub len: c_uint,
    pub readpos: c_uint,
    pub state: trace_seq_fail,
}

/// The `tep_*` / `trace_seq_*` symbols Debian's `/usr/bin/perf` 6.1 exports
/// (`nm -D --defined-only /usr/bin/perf`), the whole ABI a plugin running
/// under it can use. Not all are declared in [`perf61`].
pub const PERF61_EXPORTS: &[&str] = &[
    "tep_find_any_field",
    "tep_find_field",
    "tep_find_function",
    "tep_find_function_address",
    "tep_get_field_raw",
    "tep_get_field_val",
    "tep_get_long_size",
    "tep_is_file_bigendian",
    "tep_is_local_bigendian",
    "tep_plugin_add_options",
    "tep_plugin_remove_options",
    "tep_print_func_field",
    "tep_print_num_field",
    "tep_read_number",
    "tep_read_number_field",
    "tep_register_comm",
    "tep_register_event_handler",
    "tep_register_print_function",
    "tep_unregister_event_handler",
    "tep_unregister_print_function",
    "trace_seq_printf",
    "trace_seq_putc",
    "trace_seq_puts",
    "trace_seq_terminate",
];

/// Functions a plugin may call: each is in [`PERF61_EXPORTS`] (the
/// `bindings` test checks it) and in libtraceevent.so.1.
pub mod perf61 {
    use super::*;

    extern "C" {
        pub fn tep_register_event_handler(
            tep: *mut tep_handle,
            id: c_int,
            sys_name: *const c_char,
            event_name: *const c_char,
            func: tep_event_handler_func,
            context: *mut c_void,
        ) -> c_int;
    }
    extern "C" {
        pub fn tep_unregister_event_handler(
            tep: *mut tep_handle,
            id: c_int,
            sys_name: *const c_char,
            event_name: *const c_char,
            func: tep_event_handler_func,
            context: *mut c_void,
        ) -> c_int;
    }
    extern "C" {
        pub fn tep_get_field_raw(
            s: *mut trace_seq,
            event: *mut tep_event,
            name: *const c_char,
            record: *mut tep_record,
            len: *mut c_int,
            err: c_int,
        ) -> *mut c_void;
    }
    extern "C" {
        pub fn tep_get_field_val(
            s: *mut trace_seq,
            event: *mut tep_event,
            name: *const c_char,
            record: *mut tep_record,
            val: *mut c_ulonglong,
            err: c_int,
        ) -> c_int;
    }
    extern "C" {
        pub fn tep_find_field(event: *mut tep_event, name: *const c_char) -> *mut tep_format_field;
    }
    extern "C" {
        pub fn tep_find_any_field(
            event: *mut tep_event,
            name: *const c_char,
        ) -> *mut tep_format_field;
    }
    extern "C" {
        pub fn tep_find_function(tep: *mut tep_handle, addr: c_ulonglong) -> *const c_char;
    }
    extern "C" {
        pub fn tep_find_function_address(tep: *mut tep_handle, addr: c_ulonglong) -> c_ulonglong;
    }
    extern "C" {
        pub fn tep_read_number_field(
            field: *mut tep_format_field,
            data: *const c_void,
            value: *mut c_ulonglong,
        ) -> c_int;
    }
    extern "C" {
        pub fn tep_get_long_size(tep: *mut tep_handle) -> c_int;
    }
    extern "C" {
        pub fn tep_is_file_bigendian(tep: *mut tep_handle) -> bool;
    }
    extern "C" {
        pub fn trace_seq_puts(s: *mut trace_seq, str_: *const c_char) -> c_int;
    }
    extern "C" {
        pub fn trace_seq_putc(s: *mut trace_seq, c: c_uchar) -> c_int;
    }
    extern "C" {
        pub fn trace_seq_terminate(s: *mut trace_seq);
    }
}

/// Functions only the system libtraceevent.so.1 provides (perf 6.1 does not
/// export them). For host programs that link libtraceevent.
pub mod libtraceevent {
    use super::*;

    extern "C" {
        pub fn tep_alloc() -> *mut tep_handle;
    }
    extern "C" {
        pub fn tep_free(tep: *mut tep_handle);
    }
    extern "C" {
        pub fn tep_set_long_size(tep: *mut tep_handle, long_size: c_int);
    }
    extern "C" {
        pub fn tep_set_file_bigendian(tep: *mut tep_handle, endian: tep_endian);
    }
    extern "C" {
        pub fn tep_set_local_bigendian(tep: *mut tep_handle, endian: tep_endian);
    }
    extern "C" {
        pub fn tep_parse_event(
            tep: *mut tep_handle,
            buf: *const c_char,
            size: c_ulong,
            sys: *const c_char,
        ) -> tep_errno;
    }
    extern "C" {
        pub fn tep_strerror(
            tep: *mut tep_handle,
            errnum: tep_errno,
            buf: *mut c_char,
            buflen: usize,
        ) -> c_int;
    }
    extern "C" {
        pub fn tep_find_event(tep: *mut tep_handle, id: c_int) -> *mut tep_event;
    }
    extern "C" {
        pub fn tep_find_event_by_name(
            tep: *mut tep_handle,
            sys: *const c_char,
            name: *const c_char,
        ) -> *mut tep_event;
    }
    extern "C" {
        pub fn tep_event_common_fields(event: *mut tep_event) -> *mut *mut tep_format_field;
    }
    extern "C" {
        pub fn tep_event_fields(event: *mut tep_event) -> *mut *mut tep_format_field;
    }
    extern "C" {
        pub fn tep_data_type(tep: *mut tep_handle, rec: *mut tep_record) -> c_int;
    }
    extern "C" {
        pub fn tep_register_function(
            tep: *mut tep_handle,
            name: *mut c_char,
            addr: c_ulonglong,
            mod_: *mut c_char,
        ) -> c_int;
    }
    extern "C" {
        pub fn tep_print_event(
            tep: *mut tep_handle,
            s: *mut trace_seq,
            record: *mut tep_record,
            fmt: *const c_char,
            ...
        );
    }
    extern "C" {
        pub fn trace_seq_init(s: *mut trace_seq);
    }
    extern "C" {
        pub fn trace_seq_destroy(s: *mut trace_seq);
    }
    extern "C" {
        /// libc's `free`, for the arrays `tep_event_fields` returns.
        pub fn free(ptr: *mut c_void);
    }
}
