//! The C shim's interface (`src/shim.c`): its functions, the structs that cross, and the
//! callbacks it calls, which turn the raw pointers back into a [`Ctx`] and call its safe methods.

use std::ffi::{c_char, c_int, c_void};

use crate::psgi::Ctx;

/// A byte string lent across the boundary (C's `liege_str`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Str {
    pub(crate) ptr: *const c_char,
    pub(crate) len: usize,
}

impl Str {
    pub(crate) fn from(bytes: &[u8]) -> Str {
        Str {
            ptr: bytes.as_ptr().cast(),
            len: bytes.len(),
        }
    }

    pub(crate) const EMPTY: Str = Str {
        ptr: c"".as_ptr(),
        len: 0,
    };

    /// The bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay alive and unchanged for `'a`.
    unsafe fn bytes<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(self.ptr.cast(), self.len) }
    }
}

/// One CGI variable (C's `liege_var`); `known` indexes the known-names list, or is -1.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Var {
    pub(crate) key: *const c_char,
    pub(crate) key_len: usize,
    pub(crate) value: *const c_char,
    pub(crate) value_len: usize,
    pub(crate) known: isize,
}

/// An opaque Perl value (an `SV*`).
pub(crate) type Sv = *mut c_void;

/// C's `liege_callbacks`.
#[repr(C)]
pub(crate) struct Callbacks {
    start: extern "C" fn(*mut c_void, i64, *const Str, usize) -> c_int,
    write: extern "C" fn(*mut c_void, *const Str, usize, c_int) -> c_int,
    send_fd: extern "C" fn(*mut c_void, c_int, i64) -> c_int,
    send_path: extern "C" fn(*mut c_void, *const c_char, usize) -> c_int,
    input_read: extern "C" fn(*mut c_void, *mut c_char, usize) -> i64,
    input_seek: extern "C" fn(*mut c_void, i64, c_int) -> i64,
    started: extern "C" fn(*mut c_void) -> c_int,
    last_error: extern "C" fn(*mut c_void) -> Str,
}

unsafe extern "C" {
    pub(crate) fn liege_perl_init(
        callbacks: *const Callbacks,
        known: *const Str,
        nknown: usize,
        err: *mut Str,
    ) -> c_int;
    pub(crate) fn liege_perl_eval(code: *const c_char, err: *mut Str) -> c_int;
    pub(crate) fn liege_perl_load(
        file: *const c_char,
        file_len: usize,
        args: *const Str,
        nargs: usize,
        err: *mut Str,
    ) -> Sv;
    pub(crate) fn liege_perl_call(
        app: Sv,
        ctx: *mut c_void,
        vars: *const Var,
        nvars: usize,
        https: c_int,
        harakiri: *mut c_int,
        err: *mut Str,
    ) -> c_int;
    pub(crate) fn liege_perl_after_fork();
}

/// The callbacks, for `liege_perl_init`.
pub(crate) static CALLBACKS: Callbacks = Callbacks {
    start,
    write,
    send_fd,
    send_path,
    input_read,
    input_seek,
    started,
    last_error,
};

/// The [`Ctx`] behind the pointer the shim passes back.
///
/// # Safety
/// `ctx` must be the pointer `liege_perl_call` was given for the request being served (a live,
/// exclusively lent `Ctx`); the shim only calls back while that call runs.
unsafe fn ctx<'c>(ctx: *mut c_void) -> &'c mut Ctx<'c, 'c> {
    // SAFETY: the caller's promise; nothing else uses the Ctx while the shim runs.
    unsafe { &mut *ctx.cast::<Ctx<'c, 'c>>() }
}

/// The status from a Rust result: 0, or -1 with the message kept for `last_error`.
fn status(c: &mut Ctx<'_, '_>, r: Result<c_int, String>) -> c_int {
    r.unwrap_or_else(|e| {
        c.error = e;
        -1
    })
}

extern "C" fn start(c: *mut c_void, code: i64, headers: *const Str, n: usize) -> c_int {
    // SAFETY: called by the shim during liege_perl_call with its ctx.
    let c = unsafe { ctx(c) };
    // SAFETY: the shim passes an array of 2n strings, alive while this runs.
    let strs = unsafe { std::slice::from_raw_parts(headers, n * 2) };
    let pairs = strs
        .chunks_exact(2)
        // SAFETY: each string points into a Perl scalar alive while this runs.
        .map(|p| unsafe { (p[0].bytes(), p[1].bytes()) });
    let r = c.start(code, pairs).map(|()| 0);
    status(c, r)
}

extern "C" fn write(c: *mut c_void, parts: *const Str, n: usize, last: c_int) -> c_int {
    // SAFETY: called by the shim during liege_perl_call with its ctx.
    let c = unsafe { ctx(c) };
    let parts: &[Str] = if n == 0 {
        &[]
    } else {
        // SAFETY: the shim passes an array of n strings, alive while this runs.
        unsafe { std::slice::from_raw_parts(parts, n) }
    };
    // SAFETY: each string points into a Perl scalar alive while this runs.
    let r = c
        .write(parts.iter().map(|p| unsafe { p.bytes() }), last != 0)
        .map(|()| 0);
    status(c, r)
}

extern "C" fn send_fd(c: *mut c_void, fd: c_int, offset: i64) -> c_int {
    // SAFETY: called by the shim during liege_perl_call with its ctx.
    let c = unsafe { ctx(c) };
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) accepts any integer and fails with EBADF on one that is
    // not an open descriptor; it does not touch memory.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    let r = if dup < 0 {
        Err(format!(
            "duplicating the body's descriptor {fd}: {}",
            std::io::Error::last_os_error()
        ))
    } else {
        // SAFETY: `dup` was just made by fcntl and is owned by nothing else.
        let owned = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) };
        c.send_file(
            std::fs::File::from(owned),
            u64::try_from(offset).unwrap_or(0),
        )
        .map(c_int::from)
    };
    status(c, r)
}

extern "C" fn send_path(c: *mut c_void, path: *const c_char, len: usize) -> c_int {
    // SAFETY: called by the shim during liege_perl_call with its ctx.
    let c = unsafe { ctx(c) };
    // SAFETY: the shim passes a Perl string's bytes, alive while this runs.
    let path = unsafe { Str { ptr: path, len }.bytes() };
    let r = c.send_path(path).map(c_int::from);
    status(c, r)
}

extern "C" fn input_read(c: *mut c_void, buf: *mut c_char, len: usize) -> i64 {
    // SAFETY: called by the shim during liege_perl_call with its ctx.
    let c = unsafe { ctx(c) };
    let out: &mut [u8] = if len == 0 {
        &mut []
    } else {
        // SAFETY: the shim grew the Perl buffer to hold `len` bytes at `buf`.
        unsafe { std::slice::from_raw_parts_mut(buf.cast(), len) }
    };
    match c.input_read(out) {
        Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
        Err(e) => {
            c.error = e;
            -1
        }
    }
}

extern "C" fn input_seek(c: *mut c_void, offset: i64, whence: c_int) -> i64 {
    // SAFETY: called by the shim during liege_perl_call with its ctx.
    let c = unsafe { ctx(c) };
    match c.input_seek(offset, whence) {
        Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
        Err(e) => {
            c.error = e;
            -1
        }
    }
}

extern "C" fn started(c: *mut c_void) -> c_int {
    // SAFETY: called by the shim during liege_perl_call with its ctx.
    let c = unsafe { ctx(c) };
    c_int::from(c.started())
}

extern "C" fn last_error(c: *mut c_void) -> Str {
    // SAFETY: called by the shim during liege_perl_call with its ctx.
    let c = unsafe { ctx(c) };
    Str::from(c.error.as_bytes())
}

/// Copies a string the shim lent (an error message).
pub(crate) fn owned(s: Str) -> String {
    if s.ptr.is_null() {
        return String::new();
    }
    // SAFETY: the shim's error strings point into `$@`, alive until the next Perl call, which
    // cannot happen before this copy (the interpreter lock is held).
    String::from_utf8_lossy(unsafe { s.bytes() }).into_owned()
}
