//! Host side: a [`Tep`] handle over the system libtraceevent.so.1, to parse
//! event formats and decode raw records with libtraceevent (e.g. to check
//! the project's pure-Rust decoder against it).
//!
//! This crate does not link libtraceevent into its dependents (see the crate
//! docs): a program using this module adds `-ltraceevent` itself, e.g. with
//! `println!("cargo:rustc-link-lib=traceevent")` in its build script.
//!
//! Every accessor that takes record bytes checks that what libtraceevent
//! will read lies inside them: the record must be of the event asked for,
//! every static field must fit, every `__data_loc`/`__rel_loc` payload too.

use core::cell::Cell;
use core::ffi::CStr;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::ffi::CString;

use crate::sys::{self, c_char, c_int, c_ulong, c_void, libtraceevent as lib, perf61};

/// Why a host-side call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `tep_alloc` returned NULL.
    Alloc,
    /// A name or string argument contains a NUL byte.
    Nul(String),
    /// The format text has no `name:` line.
    NoName,
    /// `tep_parse_event` failed.
    Parse { code: i32, message: String },
    /// libtraceevent parsed the format only in part (`TEP_EVENT_FL_FAILED`);
    /// the event stays known, with what it could parse.
    Incomplete(String),
    /// [`Tep::register_function`] after the function map was built (by a
    /// look-up or a `%pS` print): libtraceevent 1.7 would not rebuild it and
    /// would read past it.
    FunctionsFrozen,
    /// No event `system:name` is known.
    NoEvent(String),
    /// The event has no field of that name.
    NoField(String),
    /// A field (or its dynamic payload) ends past the record.
    OutOfBounds {
        field: String,
        end: usize,
        len: usize,
    },
    /// The record's `common_type` is not this event's id.
    WrongEvent { expected: i32, found: u64 },
    /// libtraceevent could not read the field (unsupported size).
    Unreadable(String),
    /// Another libtraceevent call failed.
    Call { op: &'static str, code: i32 },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Alloc => f.write_str("tep_alloc failed"),
            Error::Nul(s) => write!(f, "{s:?} contains a NUL byte"),
            Error::NoName => f.write_str("event format has no `name:` line"),
            Error::Parse { code, message } => {
                write!(f, "tep_parse_event failed ({code}): {message}")
            }
            Error::Incomplete(e) => write!(f, "event {e}: format only partly parsed"),
            Error::FunctionsFrozen => {
                f.write_str("functions must be registered before the first look-up")
            }
            Error::NoEvent(e) => write!(f, "no event {e}"),
            Error::NoField(n) => write!(f, "no field {n}"),
            Error::OutOfBounds { field, end, len } => {
                write!(f, "field {field} ends at byte {end}, record has {len}")
            }
            Error::WrongEvent { expected, found } => {
                write!(f, "record is of event id {found}, not {expected}")
            }
            Error::Unreadable(n) => write!(f, "libtraceevent cannot read field {n}"),
            Error::Call { op, code } => write!(f, "{op} failed ({code})"),
        }
    }
}

impl std::error::Error for Error {}

fn cstring(s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::Nul(s.to_owned()))
}

/// A libtraceevent parsing context (`struct tep_handle`), owned.
#[derive(Debug)]
pub struct Tep {
    ptr: NonNull<sys::tep_handle>,
    /// Set once libtraceevent may have built its function map.
    functions_frozen: Cell<bool>,
}

impl Tep {
    /// `tep_alloc`, with the long size of this machine and the file byte
    /// order of this machine (change them for foreign data).
    pub fn new() -> Result<Tep, Error> {
        // SAFETY: tep_alloc has no preconditions.
        let ptr = NonNull::new(unsafe { lib::tep_alloc() }).ok_or(Error::Alloc)?;
        let mut tep = Tep {
            ptr,
            functions_frozen: Cell::new(false),
        };
        tep.set_long_size(core::mem::size_of::<c_ulong>());
        tep.set_file_big_endian(cfg!(target_endian = "big"));
        Ok(tep)
    }

    /// The raw handle, valid while `self` lives.
    pub fn as_ptr(&self) -> *mut sys::tep_handle {
        self.ptr.as_ptr()
    }

    /// `tep_set_long_size`: bytes of a `long` in the traced kernel.
    pub fn set_long_size(&mut self, bytes: usize) {
        let bytes = c_int::try_from(bytes).unwrap_or(c_int::MAX);
        // SAFETY: live handle owned by self.
        unsafe { lib::tep_set_long_size(self.ptr.as_ptr(), bytes) }
    }

    /// `tep_get_long_size`.
    pub fn long_size(&self) -> usize {
        // SAFETY: live handle owned by self.
        let n = unsafe { perf61::tep_get_long_size(self.ptr.as_ptr()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// `tep_set_file_bigendian`: byte order of the recorded data.
    pub fn set_file_big_endian(&mut self, big: bool) {
        let endian = if big {
            sys::TEP_BIG_ENDIAN
        } else {
            sys::TEP_LITTLE_ENDIAN
        };
        // SAFETY: live handle owned by self.
        unsafe { lib::tep_set_file_bigendian(self.ptr.as_ptr(), endian) }
    }

    /// `tep_is_file_bigendian`.
    pub fn file_big_endian(&self) -> bool {
        // SAFETY: live handle owned by self.
        unsafe { perf61::tep_is_file_bigendian(self.ptr.as_ptr()) }
    }

    /// `tep_parse_event`: parses one tracefs `format` file of `system` and
    /// returns the event it defines.
    pub fn parse_event(&mut self, system: &str, format: &str) -> Result<Event<'_>, Error> {
        let name = format
            .lines()
            .find_map(|l| l.strip_prefix("name:"))
            .map(str::trim)
            .ok_or(Error::NoName)?;
        let sys = cstring(system)?;
        let size = c_ulong::try_from(format.len()).map_err(|_| Error::Call {
            op: "tep_parse_event (format too large)",
            code: -1,
        })?;
        // SAFETY: `format` is valid for `size` bytes (libtraceevent reads
        // exactly that many, no NUL needed) and copies what it keeps; `sys`
        // is NUL-terminated.
        let code = unsafe {
            lib::tep_parse_event(
                self.ptr.as_ptr(),
                format.as_ptr().cast::<c_char>(),
                size,
                sys.as_ptr(),
            )
        };
        if code != 0 {
            return Err(Error::Parse {
                code,
                message: self.strerror(code),
            });
        }
        let event = self.event(system, name)?;
        if event.is_failed() {
            return Err(Error::Incomplete(format!("{system}:{name}")));
        }
        Ok(event)
    }

    fn strerror(&self, code: c_int) -> String {
        let mut buf = [0u8; 256];
        // SAFETY: buf is writable for its length; tep_strerror NUL-terminates
        // within it.
        let ret = unsafe {
            lib::tep_strerror(
                self.ptr.as_ptr(),
                code,
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len(),
            )
        };
        if ret < 0 {
            return format!("error {code}");
        }
        CStr::from_bytes_until_nul(&buf)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| format!("error {code}"))
    }

    /// `tep_find_event_by_name`.
    pub fn event(&self, system: &str, name: &str) -> Result<Event<'_>, Error> {
        let (sys, cname) = (cstring(system)?, cstring(name)?);
        // SAFETY: live handle; NUL-terminated strings only read.
        let ptr =
            unsafe { lib::tep_find_event_by_name(self.ptr.as_ptr(), sys.as_ptr(), cname.as_ptr()) };
        NonNull::new(ptr)
            .map(|ptr| Event { ptr, tep: self })
            .ok_or_else(|| Error::NoEvent(format!("{system}:{name}")))
    }

    /// `tep_find_event`: the event with this id.
    pub fn event_by_id(&self, id: i32) -> Option<Event<'_>> {
        // SAFETY: live handle.
        let ptr = unsafe { lib::tep_find_event(self.ptr.as_ptr(), id) };
        NonNull::new(ptr).map(|ptr| Event { ptr, tep: self })
    }

    /// `tep_register_function`: makes `%pS` in `print fmt` (and
    /// `tep_find_function`) resolve addresses in `[addr, next function)`.
    /// Register every function before the first [`Tep::find_function`] or
    /// [`Event::print_info`]; later calls fail with
    /// [`Error::FunctionsFrozen`].
    pub fn register_function(
        &mut self,
        name: &str,
        addr: u64,
        module: Option<&str>,
    ) -> Result<(), Error> {
        if self.functions_frozen.get() {
            return Err(Error::FunctionsFrozen);
        }
        let name = cstring(name)?;
        let module = module.map(cstring).transpose()?;
        let module_ptr = module
            .as_ref()
            .map_or(core::ptr::null_mut(), |m| m.as_ptr().cast_mut());
        // SAFETY: libtraceevent strdup()s both strings and never writes
        // through the (non-const in C) pointers; module may be NULL.
        let ret = unsafe {
            lib::tep_register_function(
                self.ptr.as_ptr(),
                name.as_ptr().cast_mut(),
                addr,
                module_ptr,
            )
        };
        if ret < 0 {
            return Err(Error::Call {
                op: "tep_register_function",
                code: ret,
            });
        }
        Ok(())
    }

    /// `tep_find_function` + `tep_find_function_address`: `(name, start)`.
    pub fn find_function(&self, addr: u64) -> Option<(String, u64)> {
        self.functions_frozen.set(true);
        // SAFETY: live handle.
        let name = unsafe { perf61::tep_find_function(self.ptr.as_ptr(), addr) };
        if name.is_null() {
            return None;
        }
        // SAFETY: non-null result is a NUL-terminated string owned by the
        // handle's function map; copied out before any other call.
        let name = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: live handle.
        let start = unsafe { perf61::tep_find_function_address(self.ptr.as_ptr(), addr) };
        Some((name, start))
    }
}

impl Drop for Tep {
    fn drop(&mut self) {
        // SAFETY: the handle is owned by self and not used afterwards; Event
        // and Field borrow self, so none outlive it.
        unsafe { lib::tep_free(self.ptr.as_ptr()) }
    }
}

/// A parsed event format, borrowed from its [`Tep`].
#[derive(Debug, Clone, Copy)]
pub struct Event<'t> {
    ptr: NonNull<sys::tep_event>,
    tep: &'t Tep,
}

impl<'t> Event<'t> {
    fn head(&self) -> sys::tep_event_head {
        // SAFETY: tep_event starts with the members of tep_event_head (same
        // types, same order, checked against bindgen by tests/bindings.rs);
        // the event is live while its Tep is borrowed.
        unsafe { *self.ptr.as_ptr().cast::<sys::tep_event_head>() }
    }

    /// The event's name.
    pub fn name(&self) -> String {
        let name = self.head().name;
        if name.is_null() {
            return String::new();
        }
        // SAFETY: a parsed event's name is a NUL-terminated string owned by
        // the event.
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }

    /// The event's id (`common_type` of its records).
    pub fn id(&self) -> i32 {
        self.head().id
    }

    /// Whether libtraceevent gave up on part of the format
    /// (`TEP_EVENT_FL_FAILED`): it keeps such events, with what it parsed.
    pub fn is_failed(&self) -> bool {
        self.head().flags as u32 & sys::TEP_EVENT_FL_FAILED != 0
    }

    /// All fields, the common ones first, in format order.
    pub fn fields(&self) -> Vec<Field<'t>> {
        let mut out = Vec::new();
        for list in [lib::tep_event_common_fields, lib::tep_event_fields] {
            // SAFETY: live event; the result is NULL or a malloc()ed,
            // NULL-terminated array of pointers to the event's fields.
            let arr = unsafe { list(self.ptr.as_ptr()) };
            if arr.is_null() {
                continue;
            }
            let mut i = 0;
            loop {
                // SAFETY: within the NULL-terminated array (stops at NULL).
                let field = unsafe { *arr.add(i) };
                let Some(ptr) = NonNull::new(field) else {
                    break;
                };
                out.push(Field {
                    ptr,
                    _tep: PhantomData,
                });
                i += 1;
            }
            // SAFETY: the array (not the fields) belongs to the caller and
            // came from malloc().
            unsafe { lib::free(arr.cast::<c_void>()) };
        }
        out
    }

    /// `tep_find_any_field`: a common or event field by name.
    pub fn field(&self, name: &str) -> Result<Field<'t>, Error> {
        let cname = cstring(name)?;
        // SAFETY: live event; NUL-terminated name only read.
        let ptr = unsafe { perf61::tep_find_any_field(self.ptr.as_ptr(), cname.as_ptr()) };
        NonNull::new(ptr)
            .map(|ptr| Field {
                ptr,
                _tep: PhantomData,
            })
            .ok_or_else(|| Error::NoField(name.to_owned()))
    }

    /// Checks that `data` is a record of this event that holds every field
    /// (and every dynamic payload) libtraceevent may read.
    pub fn check(&self, data: &[u8]) -> Result<(), Error> {
        let common_type = self.field("common_type")?.read_number(data)?;
        if common_type != u64::try_from(self.id()).unwrap_or(u64::MAX) {
            return Err(Error::WrongEvent {
                expected: self.id(),
                found: common_type,
            });
        }
        for field in self.fields() {
            field.payload_range(data)?;
        }
        Ok(())
    }

    /// A numeric field (`tep_read_number_field`), unsigned, in host order.
    pub fn read_number(&self, name: &str, data: &[u8]) -> Result<u64, Error> {
        self.field(name)?.read_number(data)
    }

    /// A numeric field, sign-extended if the format says it is signed.
    pub fn read_signed(&self, name: &str, data: &[u8]) -> Result<i64, Error> {
        self.field(name)?.read_signed(data)
    }

    /// A field's bytes (`tep_get_field_raw`): the array for `char x[16]`,
    /// the payload for `__data_loc` fields.
    pub fn field_bytes<'d>(&self, name: &str, data: &'d [u8]) -> Result<&'d [u8], Error> {
        let field = self.field(name)?;
        let range = field.payload_range(data)?;
        let cname = cstring(name)?;
        let mut record = Record::new(data)?;
        let seq = Seq::new();
        let mut len: c_int = 0;
        // SAFETY: the record points at `data`, whose static part holding the
        // field (and its dynamic payload) was bounds-checked above; err = 0
        // so nothing is printed; `len` is a valid out-pointer.
        let ptr = unsafe {
            perf61::tep_get_field_raw(
                seq.as_ptr(),
                self.ptr.as_ptr(),
                cname.as_ptr(),
                record.as_mut_ptr(),
                &mut len,
                0,
            )
        };
        if ptr.is_null() {
            return Err(Error::NoField(name.to_owned()));
        }
        let start = (ptr as usize).wrapping_sub(data.as_ptr() as usize);
        let len = usize::try_from(len).map_err(|_| Error::Unreadable(name.to_owned()))?;
        // Both computations must agree; only then is the slice ours to give.
        if start != range.start || len != range.len() {
            return Err(Error::Unreadable(name.to_owned()));
        }
        Ok(&data[range])
    }

    /// A `char[]` field as text up to its first NUL (lossy UTF-8).
    pub fn field_str(&self, name: &str, data: &[u8]) -> Result<String, Error> {
        let raw = self.field_bytes(name, data)?;
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(String::from_utf8_lossy(&raw[..end]).into_owned())
    }

    /// The event's `print fmt` output for a record (`tep_print_event` with
    /// `TEP_PRINT_INFO`), after [`Event::check`]. `%pS` arguments resolve
    /// through functions given to [`Tep::register_function`].
    pub fn print_info(&self, data: &[u8]) -> Result<String, Error> {
        self.check(data)?;
        self.tep.functions_frozen.set(true);
        let mut record = Record::new(data)?;
        let seq = Seq::new();
        // SAFETY: the record's type is this event's and every field it has
        // lies inside `data` (checked above); the format "%s" takes exactly
        // one `const char *` vararg, TEP_PRINT_INFO.
        unsafe {
            lib::tep_print_event(
                self.tep.as_ptr(),
                seq.as_ptr(),
                record.as_mut_ptr(),
                c"%s".as_ptr(),
                sys::TEP_PRINT_INFO.as_ptr(),
            )
        };
        seq.text()
    }
}

/// One field of an event format, borrowed from its [`Tep`].
#[derive(Debug, Clone, Copy)]
pub struct Field<'t> {
    ptr: NonNull<sys::tep_format_field>,
    _tep: PhantomData<&'t Tep>,
}

impl Field<'_> {
    fn raw(&self) -> sys::tep_format_field {
        // SAFETY: the field is live while its Tep is borrowed; the layout is
        // libtraceevent 1.7.1's (checked by tests/bindings.rs).
        unsafe { *self.ptr.as_ptr() }
    }

    fn string(ptr: *const c_char) -> String {
        if ptr.is_null() {
            return String::new();
        }
        // SAFETY: field names and types are NUL-terminated strings owned by
        // the parsed field.
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned()
    }

    /// The field's name.
    pub fn name(&self) -> String {
        Self::string(self.raw().name)
    }

    /// Its C type as written in the format (`char[16]` is `char`).
    pub fn type_name(&self) -> String {
        Self::string(self.raw().type_)
    }

    /// Byte offset in the record.
    pub fn offset(&self) -> usize {
        usize::try_from(self.raw().offset).unwrap_or(usize::MAX)
    }

    /// Size in bytes (of the `__data_loc` word for dynamic fields).
    pub fn size(&self) -> usize {
        usize::try_from(self.raw().size).unwrap_or(usize::MAX)
    }

    /// `TEP_FIELD_IS_*` bits (`sys::TEP_FIELD_IS_ARRAY`, ...).
    pub fn flags(&self) -> c_ulong {
        self.raw().flags
    }

    pub fn is_signed(&self) -> bool {
        self.raw().flags & sys::TEP_FIELD_IS_SIGNED != 0
    }

    pub fn is_array(&self) -> bool {
        self.raw().flags & sys::TEP_FIELD_IS_ARRAY != 0
    }

    pub fn is_dynamic(&self) -> bool {
        self.raw().flags & sys::TEP_FIELD_IS_DYNAMIC != 0
    }

    fn static_range(&self, data: &[u8]) -> Result<core::ops::Range<usize>, Error> {
        let start = self.offset();
        let end = start.saturating_add(self.size());
        if end > data.len() {
            return Err(Error::OutOfBounds {
                field: self.name(),
                end,
                len: data.len(),
            });
        }
        Ok(start..end)
    }

    /// The bytes `tep_get_field_raw` designates, bounds-checked.
    fn payload_range(&self, data: &[u8]) -> Result<core::ops::Range<usize>, Error> {
        let stat = self.static_range(data)?;
        let raw = self.raw();
        if raw.flags & sys::TEP_FIELD_IS_DYNAMIC == 0 {
            return Ok(stat);
        }
        let loc = self.read_number(data)?;
        let len = usize::try_from(loc >> 16).unwrap_or(usize::MAX);
        let mut start = usize::try_from(loc & 0xffff).unwrap_or(usize::MAX);
        if raw.flags & sys::TEP_FIELD_IS_RELATIVE != 0 {
            start = start.saturating_add(stat.end);
        }
        let end = start.saturating_add(len);
        if end > data.len() {
            return Err(Error::OutOfBounds {
                field: self.name(),
                end,
                len: data.len(),
            });
        }
        Ok(start..end)
    }

    /// `tep_read_number_field` (1, 2, 4 or 8 bytes), unsigned, in host
    /// byte order, bounds-checked against `data`.
    pub fn read_number(&self, data: &[u8]) -> Result<u64, Error> {
        self.static_range(data)?;
        let mut value = 0;
        // SAFETY: the field's bytes [offset, offset + size) lie inside
        // `data` (checked above); `value` is a valid out-pointer.
        let ret = unsafe {
            perf61::tep_read_number_field(
                self.ptr.as_ptr(),
                data.as_ptr().cast::<c_void>(),
                &mut value,
            )
        };
        if ret != 0 {
            return Err(Error::Unreadable(self.name()));
        }
        Ok(value)
    }

    /// [`Field::read_number`], sign-extended when the field is signed.
    pub fn read_signed(&self, data: &[u8]) -> Result<i64, Error> {
        let v = self.read_number(data)?;
        let bits = self.size().saturating_mul(8);
        if !self.is_signed() || bits == 0 || bits >= 64 {
            return Ok(v as i64);
        }
        let shift = 64 - bits as u32;
        Ok(((v << shift) as i64) >> shift)
    }
}

/// A `tep_record` over borrowed bytes.
struct Record<'d> {
    raw: sys::tep_record,
    _data: PhantomData<&'d [u8]>,
}

impl<'d> Record<'d> {
    fn new(data: &'d [u8]) -> Result<Record<'d>, Error> {
        let size = c_int::try_from(data.len()).map_err(|_| Error::OutOfBounds {
            field: "record".into(),
            end: data.len(),
            len: c_int::MAX as usize,
        })?;
        Ok(Record {
            raw: sys::tep_record {
                ts: 0,
                offset: 0,
                missed_events: 0,
                record_size: size,
                size,
                // libtraceevent takes `void *` but only reads record data.
                data: data.as_ptr().cast_mut().cast::<c_void>(),
                cpu: 0,
                ref_count: 1,
                locked: 1,
                priv_: core::ptr::null_mut(),
            },
            _data: PhantomData,
        })
    }

    fn as_mut_ptr(&mut self) -> *mut sys::tep_record {
        &mut self.raw
    }
}

/// An initialised `trace_seq` on the heap, destroyed and freed on drop.
struct Seq(NonNull<sys::trace_seq>);

impl Seq {
    fn new() -> Seq {
        let seq = Box::new(sys::trace_seq {
            buffer: core::ptr::null_mut(),
            buffer_size: 0,
            len: 0,
            readpos: 0,
            state: 0,
        });
        let ptr = NonNull::from(Box::leak(seq));
        // SAFETY: points to writable heap storage of the 1.7.1 layout,
        // owned by this Seq and only accessed through `ptr`.
        unsafe { lib::trace_seq_init(ptr.as_ptr()) };
        Seq(ptr)
    }

    fn as_ptr(&self) -> *mut sys::trace_seq {
        self.0.as_ptr()
    }

    fn text(&self) -> Result<String, Error> {
        // SAFETY: the trace_seq is initialised and no libtraceevent call is
        // running on it; copy its header out.
        let seq = unsafe { *self.0.as_ptr() };
        if seq.state != 0 || seq.buffer.is_null() {
            return Err(Error::Call {
                op: "trace_seq (out of memory)",
                code: seq.state as i32,
            });
        }
        let len = (seq.len as usize).min(seq.buffer_size as usize);
        // SAFETY: an initialised, GOOD trace_seq holds `len` written bytes
        // in a buffer of `buffer_size` bytes.
        let bytes = unsafe { core::slice::from_raw_parts(seq.buffer.cast::<u8>(), len) };
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

impl Drop for Seq {
    fn drop(&mut self) {
        // SAFETY: initialised in Seq::new, not used afterwards; the storage
        // came from Box::leak there.
        unsafe {
            lib::trace_seq_destroy(self.0.as_ptr());
            drop(Box::from_raw(self.0.as_ptr()));
        }
    }
}
