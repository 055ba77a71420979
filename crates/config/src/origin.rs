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

    /// Reads back what [`Display`](fmt::Display) wrote (`/etc/liege/a.ini:12`, `command line
    /// argument 3`, `liege`), for options that crossed a process boundary as text (the emperor
    /// hands a vassal's master its resolved options this way). `None` for any other text.
    pub fn parse(text: &str) -> Option<Origin> {
        if text == "liege" {
            return Some(Origin::Builtin);
        }
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        if let Some(n) = text.strip_prefix("command line argument ").and_then(number) {
            return Some(Origin::Argv { position: n });
        }
        let (path, line) = text.rsplit_once(':')?;
        Some(Origin::File {
            path: Arc::from(path),
            line: number(line)?,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_back_what_display_writes() {
        let path: Arc<str> = Arc::from("/etc/liege/vassals/a:b.ini");
        for o in [
            Origin::file(&path, 12),
            Origin::Argv { position: 3 },
            Origin::Builtin,
        ] {
            assert_eq!(Origin::parse(&o.to_string()), Some(o));
        }
        for bad in ["", "a.ini", "a.ini:", "a.ini:x", "a.ini:-1", "a.ini:+1"] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }
}
