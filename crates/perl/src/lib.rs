//! The Perl worker (`liege-perl`): Debian's libperl embedded through a small C shim
//! (`src/shim.c`), serving a PSGI app behind the language-neutral worker runtime
//! (`liege-worker`), which parses requests in Rust and hands each complete one to [`PsgiApp`].
//!
//! - `ffi`: the shim's functions and the callbacks it calls (the only unsafe code).
//! - `interpreter`: the one interpreter of the process, started once, used under a lock.
//! - `load`: the options (`psgi`, `perl-local-lib`, `perl-args`, `perl-arg`, `env`, `chdir`).
//! - `psgi`: the call: the env, the response (array, filehandle, delayed, streaming).
//!
//! One interpreter, which is not thread-safe: `threads` > 1 is refused at load.

mod ffi;
mod interpreter;
mod load;
mod psgi;

#[cfg(test)]
mod tests;

use liege_worker::{Language, LoadError};

pub use load::LoadFailure;
pub use psgi::PsgiApp;

/// The Perl language, for `liege_worker::main`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Perl {
    _private: (),
}

impl Perl {
    /// The language; nothing starts before [`Language::load`].
    pub const fn new() -> Self {
        Perl { _private: () }
    }
}

impl Language for Perl {
    type App = PsgiApp;

    fn name(&self) -> &'static str {
        "perl"
    }

    /// Starts the interpreter (once per process) and loads the `.psgi` file.
    fn load(&self, options: &[(String, String)]) -> Result<PsgiApp, LoadError> {
        load::load(options).map_err(|e| LoadError(e.to_string()))
    }

    fn after_fork_child(&self) {
        interpreter::after_fork_child();
    }
}
