//! The small trait a language implements (STYLE.md rule 21: a stable boundary).

use crate::request::Request;
use crate::response::{Framing, MemoryOutput, Response};

/// A language: loads the app named by the options. Lives in the language crate.
pub trait Language: Sync {
    /// The loaded app.
    type App: App;

    /// A short name for logs (`python`).
    fn name(&self) -> &'static str;

    /// Loads the app from the options list (`module`, `wsgi-file`, `chdir`, `env`...). Runs in
    /// each worker (lazy-apps) or once in the zygote (prefork), single-threaded in both cases.
    fn load(&self, options: &[(String, String)]) -> Result<Self::App, LoadError>;

    /// Runs in a worker the zygote just forked, before anything else (CPython:
    /// `PyOS_AfterFork_Child`).
    fn after_fork_child(&self) {}
}

/// A loaded app. `call` runs on the worker's interpreter threads (`threads`), one request at a
/// time per thread.
pub trait App: Sync {
    /// Serves one complete request: calls [`Response::start`], then writes the body through
    /// [`Response::write`] / [`Response::send_file`]. The runtime finishes the response
    /// afterwards (content length or last chunk), and answers 500 itself when this returns an
    /// error before the head went out.
    fn call(&self, request: Request, response: &mut Response<'_>) -> Result<(), AppError>;
}

/// Calls `app` and finishes the response as the runtime does when the call succeeded, into
/// memory: for the languages' tests and tools that call an app without a connection.
pub fn call_into_memory<A: App + ?Sized>(
    app: &A,
    request: Request,
    framing: Framing,
) -> (Result<(), AppError>, MemoryOutput) {
    let mut out = MemoryOutput::default();
    let mut r = Response::new(&mut out, framing);
    let result = app.call(request, &mut r);
    if result.is_ok() && r.finish().is_err() {
        drop(r);
        return (Err(AppError("finishing the response failed".into())), out);
    }
    drop(r);
    (result, out)
}

/// The app failed while serving a request. The language has already logged the details (the
/// traceback); this is the one-line summary for the request log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AppError(pub String);

/// The app could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);
