//! The Python worker (`liege-python`): Debian's CPython embedded through pyo3, serving a WSGI app
//! (PEP 3333) behind the language-neutral worker runtime (`liege-worker`), which parses requests
//! in Rust and hands each complete one to [`WsgiApp`].
//!
//! - `interpreter`: starting CPython (a virtualenv through its own `pyvenv.cfg`), thread states,
//!   fork.
//! - `load`: the options (`module`, `wsgi-file`, `callable`, `home`, `chdir`, `pythonpath`,
//!   `env`) and the import.
//! - `wsgi`: the call: `environ`, `start_response`, sending the response iterable.
//! - `environ`, `input`, `start_response`, `file_wrapper`: the objects the app sees.

mod environ;
mod file_wrapper;
mod input;
mod interpreter;
mod load;
mod start_response;
mod wsgi;

#[cfg(test)]
mod tests;

use liege_worker::{Language, LoadError};

pub use interpreter::StartError;
pub use load::LoadFailure;
pub use wsgi::WsgiApp;

/// The Python language, for `liege_worker::main`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Python {
    _private: (),
}

impl Python {
    /// The language; nothing starts before [`Language::load`].
    pub const fn new() -> Self {
        Python { _private: () }
    }
}

impl Language for Python {
    type App = WsgiApp;

    fn name(&self) -> &'static str {
        "python"
    }

    /// Starts the interpreter (once per process) and imports the app; the GIL is released when
    /// this returns.
    fn load(&self, options: &[(String, String)]) -> Result<WsgiApp, LoadError> {
        load::load(options).map_err(|e| LoadError(e.to_string()))
    }

    fn after_fork_child(&self) {
        interpreter::after_fork_child();
    }
}
