//! The one Perl interpreter of the process: started on the first load, never destroyed, and used
//! under one lock (a Perl interpreter belongs to one thread at a time; the shim makes it the
//! calling thread's current one on each entry). A worker refuses `threads` > 1, so the lock is
//! only ever contended in tests.

use std::ffi::{CString, c_int, c_void};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ffi::{self, Str, Sv, Var};
use crate::psgi::KNOWN;

/// The interpreter's state on the Rust side.
#[derive(Debug)]
pub(crate) struct Interp {
    /// The request's variables for the shim, kept between requests (cleared after each).
    pub(crate) vars: Vec<Var>,
}

// SAFETY: `Interp` holds raw pointers only between the start and end of one `call`, both under
// the lock, and the shim makes the interpreter current on the calling thread at every entry.
unsafe impl Send for Interp {}

static PERL: Mutex<Option<Interp>> = Mutex::new(None);

/// A loaded app: a Perl code reference, owned (one reference count) by this value for the
/// life of the process.
#[derive(Debug)]
pub(crate) struct AppRef(Sv);

// SAFETY: the code reference is only touched by the shim under the interpreter lock.
unsafe impl Send for AppRef {}
// SAFETY: as above: every use goes through `call`, which holds the lock.
unsafe impl Sync for AppRef {}

/// The interpreter, started if it was not: locked for the caller.
pub(crate) fn lock() -> Result<MutexGuard<'static, Option<Interp>>, String> {
    let mut guard = PERL.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.is_none() {
        let known: Vec<Str> = KNOWN.iter().map(|k| Str::from(k.as_bytes())).collect();
        let mut err = Str::EMPTY;
        // SAFETY: the callbacks are a static table; `known` lives across the call (the shim
        // copies the names into shared Perl keys); `err` is written on failure only.
        let rc =
            unsafe { ffi::liege_perl_init(&ffi::CALLBACKS, known.as_ptr(), known.len(), &mut err) };
        if rc != 0 {
            return Err(ffi::owned(err));
        }
        *guard = Some(Interp { vars: Vec::new() });
    }
    Ok(guard)
}

/// Runs Perl code (the lock is held by the caller); `$@` on failure.
pub(crate) fn eval(_held: &mut Interp, code: &str) -> Result<(), String> {
    let code = CString::new(code).map_err(|e| e.to_string())?;
    let mut err = Str::EMPTY;
    // SAFETY: the lock is held (`_held`); `code` is NUL-terminated and lives across the call.
    let rc = unsafe { ffi::liege_perl_eval(code.as_ptr(), &mut err) };
    if rc != 0 {
        return Err(ffi::owned(err));
    }
    Ok(())
}

/// Loads a `.psgi` file with `@ARGV` = `args`: the app, or `$@`.
pub(crate) fn load_file(
    _held: &mut Interp,
    file: &[u8],
    args: &[String],
) -> Result<AppRef, String> {
    let strs: Vec<Str> = args.iter().map(|a| Str::from(a.as_bytes())).collect();
    let mut err = Str::EMPTY;
    // SAFETY: the lock is held; every pointer lives across the call; the result is a new
    // reference we own, or NULL with `err` set.
    let app = unsafe {
        ffi::liege_perl_load(
            file.as_ptr().cast(),
            file.len(),
            strs.as_ptr(),
            strs.len(),
            &mut err,
        )
    };
    if app.is_null() {
        return Err(ffi::owned(err));
    }
    Ok(AppRef(app))
}

/// Serves one request: the shim builds the env from `vars`, calls the app and sends the
/// response through the callbacks, which get `ctx`. Returns whether the app asked for
/// harakiri, or `$@`.
pub(crate) fn call(
    held: &mut Interp,
    app: &AppRef,
    ctx: *mut c_void,
    https: bool,
) -> Result<bool, String> {
    let mut harakiri: c_int = 0;
    let mut err = Str::EMPTY;
    // SAFETY: the lock is held; `held.vars` points into the request's variables, alive across
    // the call; `ctx` is the caller's live Ctx, used by the callbacks during this call only.
    let rc = unsafe {
        ffi::liege_perl_call(
            app.0,
            ctx,
            held.vars.as_ptr(),
            held.vars.len(),
            c_int::from(https),
            &mut harakiri,
            &mut err,
        )
    };
    held.vars.clear();
    if rc != 0 {
        return Err(ffi::owned(err));
    }
    Ok(harakiri != 0)
}

/// In a worker the zygote just forked.
pub(crate) fn after_fork_child() {
    let guard = PERL.lock().unwrap_or_else(PoisonError::into_inner);
    if guard.is_some() {
        // SAFETY: the interpreter was started (the guard holds its state) and the lock is held.
        unsafe { ffi::liege_perl_after_fork() };
    }
}
