//! The worker runtime, shared by every language worker (`liege-python`, later `liege-perl` and
//! `liege-ruby`). A worker is an event loop in Rust around an interpreter (ARCHITECTURE.md
//! decision 9): it accepts connections, reads and parses requests (HTTP/1.1 or uwsgi), receives
//! each body whole, serves static files itself, and only then hands a complete [`Request`] to the
//! language's [`App`], whose answer goes out through a [`Response`].
//!
//! A language crate implements [`Language`] and calls [`main`].

pub mod app;
pub mod common;
mod event_loop;
pub mod http;
pub mod log;
pub mod request;
pub mod response;
pub mod runtime;
pub mod settings;
pub mod static_files;
pub mod uwsgi;

pub use app::{App, AppError, Language, LoadError};
pub use common::{Common, CommonError};
pub use request::{Body, Input, Request, Vars};
pub use response::{HeaderError, Output, Response};
pub use runtime::main;
pub use settings::Settings;
