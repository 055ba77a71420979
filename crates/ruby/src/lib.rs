//! The Ruby worker (`liege-ruby`): Debian's libruby embedded through a small C shim
//! (csrc/rack.c), serving a Rack app (SPEC of Rack 2.2) behind the language-neutral worker
//! runtime (`liege-worker`), which parses requests in Rust and hands each complete one to
//! [`RackApp`].
//!
//! - `ffi`: the shim's functions, callable only from the thread that started Ruby.
//! - `load`: the options (`rack`, `rbrequire`, `chdir`, `env`, `threads`, `rb-gc-freq`).
//! - `env`: the CGI variables of `env`, with Rack's rules.
//! - `rack`: the call, and the response going back to the runtime.
//!
//! One interpreter thread per worker: Ruby's GVL lets one thread run Ruby at a time, so
//! `threads` > 1 is refused; scale with `processes`.

mod env;
mod ffi;
mod load;
mod rack;

use liege_worker::{Language, LoadError};

pub use load::LoadFailure;
pub use rack::RackApp;

/// The Ruby language, for `liege_worker::main`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ruby {
    _private: (),
}

impl Ruby {
    /// The language; nothing starts before [`Language::load`].
    pub const fn new() -> Self {
        Ruby { _private: () }
    }
}

impl Language for Ruby {
    type App = RackApp;

    fn name(&self) -> &'static str {
        "ruby"
    }

    /// Starts Ruby on this thread (once per process) and loads the app; this thread must be the
    /// one that serves it.
    fn load(&self, options: &[(String, String)]) -> Result<RackApp, LoadError> {
        load::load(options).map_err(|e| LoadError(e.to_string()))
    }

    fn after_fork_child(&self) {
        ffi::after_fork();
    }
}
