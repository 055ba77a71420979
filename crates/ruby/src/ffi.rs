//! The C shim (csrc/rack.c), which makes every call into libruby under `rb_protect`: its
//! declarations, and safe wrappers that refuse to run on any thread but the one that started
//! Ruby (Ruby's GC scans that thread's stack, and libruby is not thread-safe).

use std::ffi::{CString, c_char, c_int, c_long, c_void};
use std::sync::OnceLock;
use std::thread::ThreadId;

/// A Ruby `VALUE` (`uintptr_t`): an object reference or an immediate.
pub(crate) type Value = usize;

/// Receives a text from C (an error's description): `ctx` is a `*mut String`.
pub(crate) type TextFn = extern "C" fn(ctx: *mut c_void, p: *const u8, n: usize);

/// `struct liege_var`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RawVar {
    pub(crate) key: Value,
    pub(crate) name: *const u8,
    pub(crate) name_len: usize,
    pub(crate) value: *const u8,
    pub(crate) value_len: usize,
}

/// `struct liege_request`.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RawRequest {
    pub(crate) vars: *const RawVar,
    pub(crate) nvars: usize,
    pub(crate) https: c_int,
    pub(crate) body: *const u8,
    pub(crate) body_len: usize,
    pub(crate) body_fd: c_int,
    /// A HEAD request: a body object is closed, never iterated.
    pub(crate) head: c_int,
}

/// `struct liege_sink`: callbacks into Rust, which must never unwind (they return a status).
#[repr(C)]
#[derive(Debug)]
pub(crate) struct RawSink {
    pub(crate) ctx: *mut c_void,
    pub(crate) header: extern "C" fn(*mut c_void, *const u8, usize, *const u8, usize) -> c_int,
    pub(crate) start: extern "C" fn(*mut c_void, c_long) -> c_int,
    pub(crate) write: extern "C" fn(*mut c_void, *const u8, usize, c_int) -> c_int,
    pub(crate) send_path: extern "C" fn(*mut c_void, *const u8, usize) -> c_int,
    pub(crate) error: TextFn,
}

unsafe extern "C" {
    fn liege_rb_start(err: TextFn, ctx: *mut c_void) -> c_int;
    fn liege_rb_keys(names: *const *const c_char, n: usize, out: *mut Value) -> c_int;
    fn liege_rb_require(name: *const c_char, err: TextFn, ctx: *mut c_void) -> c_int;
    fn liege_rb_load(path: *const c_char, app: *mut Value, err: TextFn, ctx: *mut c_void) -> c_int;
    fn liege_rb_call(app: Value, req: *const RawRequest, sink: *const RawSink) -> c_int;
    fn liege_rb_gc();
    fn liege_rb_after_fork();
}

/// The thread that started Ruby, once it did.
static RUBY_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// Ruby is called from another thread than the one that started it, or before it started.
#[derive(Debug, thiserror::Error)]
#[error("Ruby was {0}")]
pub(crate) struct WrongThread(&'static str);

fn on_ruby_thread() -> Result<(), WrongThread> {
    match RUBY_THREAD.get() {
        Some(t) if *t == std::thread::current().id() => Ok(()),
        Some(_) => Err(WrongThread(
            "started by another thread: only that one may call it",
        )),
        None => Err(WrongThread("not started")),
    }
}

/// Appends a text from C to the `String` behind `ctx`.
pub(crate) extern "C" fn push_text(ctx: *mut c_void, p: *const u8, n: usize) {
    if ctx.is_null() || p.is_null() {
        return;
    }
    // SAFETY: C passes `n` readable bytes at `p` (a live Ruby string it holds), and `ctx` is the
    // `&mut String` the caller of the C function gave, borrowed by nothing else meanwhile.
    let (bytes, out) = unsafe { (std::slice::from_raw_parts(p, n), &mut *ctx.cast::<String>()) };
    out.push_str(&String::from_utf8_lossy(bytes));
}

fn c_string(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("`{}` has a NUL byte", s.escape_debug()))
}

/// Starts Ruby on this thread (once per process; later calls from it return at once): load path,
/// RubyGems, `stringio`. Any other thread is refused.
pub(crate) fn start() -> Result<(), String> {
    let me = std::thread::current().id();
    if *RUBY_THREAD.get_or_init(|| me) != me {
        return Err(
            WrongThread("started by another thread: only that one may call it").to_string(),
        );
    }
    let mut err = String::new();
    // SAFETY: this is the thread that starts Ruby (checked above); `push_text` fits TextFn and
    // `err` outlives the call.
    let rc = unsafe { liege_rb_start(push_text, (&raw mut err).cast()) };
    if rc == 0 { Ok(()) } else { Err(err) }
}

/// Frozen US-ASCII strings for `names`, kept alive for good.
pub(crate) fn keys(names: &[&str]) -> Result<Vec<Value>, String> {
    on_ruby_thread().map_err(|e| e.to_string())?;
    let owned = names
        .iter()
        .map(|n| c_string(n))
        .collect::<Result<Vec<_>, _>>()?;
    let ptrs: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    let mut out = vec![0; names.len()];
    // SAFETY: on the Ruby thread (checked); `ptrs` holds `names.len()` NUL-terminated strings
    // alive for the call, and `out` has room for as many values.
    let rc = unsafe { liege_rb_keys(ptrs.as_ptr(), ptrs.len(), out.as_mut_ptr()) };
    if rc == 0 {
        Ok(out)
    } else {
        Err("making the env keys failed".into())
    }
}

/// `require name`.
pub(crate) fn require(name: &str) -> Result<(), String> {
    on_ruby_thread().map_err(|e| e.to_string())?;
    let c = c_string(name)?;
    let mut err = String::new();
    // SAFETY: on the Ruby thread (checked); `c` is NUL-terminated and `err` outlives the call.
    let rc = unsafe { liege_rb_require(c.as_ptr(), push_text, (&raw mut err).cast()) };
    if rc == 0 { Ok(()) } else { Err(err) }
}

/// `Rack::Builder.parse_file(path)`: the app (kept alive for good), or the exception's
/// description.
pub(crate) fn load(path: &str) -> Result<Value, String> {
    on_ruby_thread().map_err(|e| e.to_string())?;
    let c = c_string(path)?;
    let mut err = String::new();
    let mut app: Value = 0;
    // SAFETY: on the Ruby thread (checked); `c` is NUL-terminated, `app` and `err` outlive the
    // call.
    let rc = unsafe { liege_rb_load(c.as_ptr(), &raw mut app, push_text, (&raw mut err).cast()) };
    if rc == 0 { Ok(app) } else { Err(err) }
}

/// Serves one request: `sink`'s callbacks get the response; false when something failed (the
/// sink was told what).
pub(crate) fn call(app: Value, request: &RawRequest, sink: &RawSink) -> Result<bool, WrongThread> {
    on_ruby_thread()?;
    // SAFETY: on the Ruby thread (checked); `app` came from `load` (kept alive by Ruby's GC);
    // `request`'s pointers describe live buffers (its builder borrows them for the call) and
    // `sink.ctx` is what its callbacks expect (built together in `rack::RackApp::call`).
    Ok(unsafe { liege_rb_call(app, request, sink) } == 0)
}

/// A full GC (`rb-gc-freq`).
pub(crate) fn gc() {
    if on_ruby_thread().is_ok() {
        // SAFETY: on the Ruby thread (checked).
        unsafe { liege_rb_gc() };
    }
}

/// In a child the zygote just forked: Ruby's thread bookkeeping, as its own fork does. A no-op
/// when Ruby was not started.
pub(crate) fn after_fork() {
    if on_ruby_thread().is_ok() {
        // SAFETY: on the Ruby thread (checked; the fork kept the forking thread, and its id).
        unsafe { liege_rb_after_fork() };
    }
}
