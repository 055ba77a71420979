//! The Rack app behind the runtime's [`App`]: one call hands the request to the C side, which
//! builds `env`, calls the app and gives [status, headers, body] back through the callbacks
//! here, choosing the cheapest way the body allows: an Array of Strings whole (so it gets a
//! Content-Length), `to_path` with sendfile, or one flushed chunk per `each`.

use std::ffi::{c_int, c_long, c_void};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};

use liege_worker::{App, AppError, Body, HeaderError, Request, Response};

use crate::env::Keys;
use crate::ffi::{self, RawRequest, RawSink, Value};

/// A loaded Rack app, served on the thread that loaded it.
#[derive(Debug)]
pub struct RackApp {
    app: Value,
    keys: Keys,
    /// `rb-gc-freq`: a full GC after every this many requests (0: never, Ruby decides).
    gc_freq: u64,
    served: AtomicU64,
}

/// What went wrong on the Rust side of a response.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("the response status {0} is not an HTTP status (100 to 999)")]
    Status(c_long),
    #[error("the response head is refused: {0}")]
    Head(HeaderError),
    #[error("sending the response failed: {0}")]
    Send(io::Error),
}

/// The callbacks' state: the response, the headers gathered before `start`, what failed.
struct Sink<'r, 'a> {
    response: &'r mut Response<'a>,
    headers: Vec<(String, String)>,
    failure: Option<Failure>,
    /// The Ruby exceptions' descriptions, in order.
    errors: Vec<String>,
}

impl Sink<'_, '_> {
    fn fail(&mut self, f: Failure) -> c_int {
        if self.failure.is_none() {
            self.failure = Some(f);
        }
        -1
    }
}

/// The `Sink` behind a callback's `ctx`.
///
/// # Safety
/// `ctx` must be the `Sink` given to `ffi::call` for the request being served, and no other
/// reference to it may be used meanwhile.
unsafe fn sink<'s>(ctx: *mut c_void) -> &'s mut Sink<'s, 's> {
    // SAFETY: the caller promises `ctx` is the live, otherwise unused `Sink`.
    unsafe { &mut *ctx.cast::<Sink<'s, 's>>() }
}

/// The bytes C passed.
///
/// # Safety
/// `p` must point to `n` readable bytes that stay valid for the callback (or `n` must be 0).
unsafe fn bytes<'b>(p: *const u8, n: usize) -> &'b [u8] {
    if n == 0 || p.is_null() {
        return &[];
    }
    // SAFETY: the caller promises `n` readable bytes at `p`.
    unsafe { std::slice::from_raw_parts(p, n) }
}

/// Bytes as text, one character per byte (latin-1), as HTTP heads carry them: the runtime's
/// `Response` writes each character below U+0100 back as that byte, so the bytes go out as the
/// app gave them.
fn latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => s.to_string(),
        _ => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

extern "C" fn on_header(
    ctx: *mut c_void,
    name: *const u8,
    name_len: usize,
    value: *const u8,
    value_len: usize,
) -> c_int {
    // SAFETY: C calls this with the sink it was given and two live Ruby strings' bytes.
    let (sink, name, value) =
        unsafe { (sink(ctx), bytes(name, name_len), bytes(value, value_len)) };
    sink.headers.push((latin1(name), latin1(value)));
    0
}

extern "C" fn on_start(ctx: *mut c_void, status: c_long) -> c_int {
    // SAFETY: C calls this with the sink it was given.
    let sink = unsafe { sink(ctx) };
    let Some(code) = u16::try_from(status)
        .ok()
        .filter(|c| (100..=999).contains(c))
    else {
        return sink.fail(Failure::Status(status));
    };
    let headers = std::mem::take(&mut sink.headers);
    match sink.response.start_code(code, headers) {
        Ok(()) => 0,
        Err(e) => sink.fail(Failure::Head(e)),
    }
}

extern "C" fn on_write(ctx: *mut c_void, p: *const u8, n: usize, last: c_int) -> c_int {
    // SAFETY: C calls this with the sink it was given and a live Ruby string's bytes.
    let (sink, data) = unsafe { (sink(ctx), bytes(p, n)) };
    if sink.failure.is_some() {
        return -1;
    }
    let sent = if last != 0 {
        sink.response.write_last(data)
    } else {
        sink.response.write(data)
    };
    match sent {
        Ok(()) => 0,
        Err(e) => sink.fail(Failure::Send(e)),
    }
}

extern "C" fn on_send_path(ctx: *mut c_void, p: *const u8, n: usize) -> c_int {
    // SAFETY: C calls this with the sink it was given and a live Ruby string's bytes.
    let (sink, path) = unsafe { (sink(ctx), bytes(p, n)) };
    if sink.failure.is_some() {
        return -1;
    }
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(path));
    // A file that cannot be opened, or is not a regular file: the body's `each` answers.
    let file = match fs_err::File::open(path) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f.into_parts().0,
        _ => return 1,
    };
    match sink.response.send_file(file, 0, None) {
        Ok(()) => 0,
        Err(e) => sink.fail(Failure::Send(e)),
    }
}

extern "C" fn on_error(ctx: *mut c_void, p: *const u8, n: usize) {
    // SAFETY: C calls this with the sink it was given and a live Ruby string's bytes.
    let (sink, text) = unsafe { (sink(ctx), bytes(p, n)) };
    sink.errors.push(String::from_utf8_lossy(text).into_owned());
}

impl RackApp {
    pub(crate) fn new(app: Value, keys: Keys, gc_freq: u64) -> RackApp {
        RackApp {
            app,
            keys,
            gc_freq,
            served: AtomicU64::new(0),
        }
    }
}

impl App for RackApp {
    fn call(&self, request: Request, response: &mut Response<'_>) -> Result<(), AppError> {
        let Request { vars, body, scheme } = request;
        let server_name = vars.server_name_fallback();
        let raw_vars = self.keys.vars(&vars, server_name.as_deref());
        let (body_ptr, body_len, body_fd) = match &body {
            Body::Empty => (std::ptr::null(), 0, -1),
            Body::Memory(v) => (v.as_ptr(), v.len(), -1),
            Body::File { file, len } => (
                std::ptr::null(),
                usize::try_from(*len).unwrap_or(usize::MAX),
                file.as_raw_fd(),
            ),
        };
        let raw = RawRequest {
            vars: raw_vars.as_ptr(),
            nvars: raw_vars.len(),
            https: c_int::from(scheme == "https"),
            body: body_ptr,
            body_len,
            body_fd,
            head: c_int::from(vars.get(b"REQUEST_METHOD") == Some(b"HEAD")),
        };
        let mut sink = Sink {
            response,
            headers: Vec::new(),
            failure: None,
            errors: Vec::new(),
        };
        let raw_sink = RawSink {
            ctx: (&raw mut sink).cast(),
            header: on_header,
            start: on_start,
            write: on_write,
            send_path: on_send_path,
            error: on_error,
        };
        let ok = ffi::call(self.app, &raw, &raw_sink).map_err(|e| AppError(e.to_string()))?;
        if self.gc_freq > 0
            && (self.served.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(self.gc_freq)
        {
            ffi::gc();
        }
        if ok && sink.failure.is_none() {
            return Ok(());
        }
        let line = vars.request_line();
        for e in &sink.errors {
            liege_worker::log::line(&format!("{line}: the app raised an exception: {e}"));
        }
        let summary = match (sink.failure, sink.errors.first()) {
            (Some(f), _) => {
                let text = f.to_string();
                liege_worker::log::line(&format!("{line}: {text}"));
                text
            }
            (None, Some(e)) => e.lines().next().unwrap_or_default().to_string(),
            (None, None) => "the app failed".to_string(),
        };
        Err(AppError(summary))
    }
}
