//! liege's options list.
//!
//! Everything liege is told is an ordered list of `(key, value)` pairs, as in uWSGI; argv, ini,
//! xml, yaml and json are five ways of writing it. This crate reads them, applies uWSGI's
//! expansion rules in uWSGI's order (magic variables per file, logic and includes while
//! reading, then `$()`, `@()`, `%()`, then `inherit`), and knows every option (the registry).
//!
//! It does no I/O beyond reading config files, and that through [`FileAccess`], so the emperor
//! can resolve a customer's file with that customer's rights.

pub mod access;
pub mod argv;
mod error;
pub mod expand;
mod loader;
pub mod magic;
pub mod notation;
mod options;
mod origin;
pub mod registry;

pub use access::{AccessError, FileAccess, HostAccess, MemoryAccess};
pub use error::{ConfigError, Warning};
pub use loader::{Context, DEFAULT_MAX_CONFIG_SIZE, Loader, Resolved, parse_size};
pub use magic::HostFacts;
pub use options::{Opt, Options, is_true};
pub use origin::Origin;

/// Resolves a command line (already split by [`argv::parse`]) into the options list.
pub fn resolve_args(args: &[argv::ArgOption], ctx: &Context<'_>) -> Result<Resolved, ConfigError> {
    let mut loader = Loader::new(ctx);
    for a in args {
        loader.add(&a.key, &a.value, a.origin.clone())?;
    }
    loader.finish()
}

/// Resolves one file (`file.ini`, `file.ini:section`...) into the options it holds, after every
/// expansion, as `liege config` shows them.
pub fn resolve_file(given: &str, ctx: &Context<'_>) -> Result<Resolved, ConfigError> {
    let mut loader = Loader::new(ctx);
    loader.load_file(given, &Origin::Builtin)?;
    loader.finish()
}
