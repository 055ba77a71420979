//! Where an option came from: a file and line, a command-line position, or liege itself.

use std::fmt;
use std::sync::Arc;

/// The place an option was written, carried with it through every expansion so that an error
/// about its value can name the file and line a person has to edit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A line of a config file (1-based), with the path as it was named.
    File { path: Arc<str>, line: u32 },
    /// A position in the command line (1-based, not counting the program name).
    Argv { position: u32 },
    /// Added by liege itself (for example the `ini = FILE` entry of `liege FILE`).
    Builtin,
}

impl Origin {
    /// An origin in `path` at `line`.
    pub fn file(path: &Arc<str>, line: u32) -> Self {
        Origin::File {
            path: Arc::clone(path),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{path}:{line}"),
            Origin::Argv { position } => write!(f, "command line argument {position}"),
            Origin::Builtin => f.write_str("liege"),
        }
    }
}
