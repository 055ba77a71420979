//! What can go wrong while the options list is built. Every error names the place (file and
//! line, or command-line position) a person has to look at.

use crate::access::AccessError;
use crate::origin::Origin;

/// An options list could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{origin}: {message}")]
    Syntax { origin: Origin, message: String },
    #[error("{origin}: {source}")]
    Access { origin: Origin, source: AccessError },
    #[error("{origin}: `{path}` is not valid UTF-8")]
    InvalidUtf8 { origin: Origin, path: String },
    #[error("{origin}: `{path}` is a binary file, not a config file")]
    Binary { origin: Origin, path: String },
    #[error("{origin}: `{path}` includes itself (through {chain})")]
    IncludeLoop {
        origin: Origin,
        path: String,
        chain: String,
    },
    #[error("{origin}: includes nested more than {limit} deep")]
    IncludeDepth { origin: Origin, limit: usize },
    #[error(
        "{origin}: cannot tell the notation of `{path}`: name it .ini, .xml, .yaml, .yml or .json"
    )]
    UnknownNotation { origin: Origin, path: String },
    #[error("{origin}: `{key}` inside the `{open_key}` block opened at {open}: blocks do not nest")]
    NestedLogic {
        origin: Origin,
        key: String,
        open_key: String,
        open: Origin,
    },
    #[error("{origin}: `{key}` is never closed\nhint: end it with `{end}`")]
    UnclosedLogic {
        origin: Origin,
        key: String,
        end: &'static str,
    },
    #[error("{origin}: unknown option `{key}` (strict mode){hint}")]
    Strict {
        origin: Origin,
        key: String,
        hint: String,
    },
    #[error("{origin}: `{key}` is an option, it cannot be used as a placeholder")]
    PlaceholderIsOption { origin: Origin, key: String },
    #[error("{origin}: `{key}` takes `name=value`, not `{value}`")]
    BadAssignment {
        origin: Origin,
        key: String,
        value: String,
    },
    #[error("{origin}: `{key}` is not supported by liege: {why}")]
    NotSupported {
        origin: Origin,
        key: String,
        why: &'static str,
    },
    #[error("{origin}: invalid value `{value}` for `{key}`: {why}")]
    InvalidValue {
        origin: Origin,
        key: String,
        value: String,
        why: String,
    },
    #[error("{origin}: expanding `{key}` does not end (a placeholder that refers to itself?)")]
    Runaway { origin: Origin, key: String },
    #[error("{origin}: more than {limit} options")]
    TooManyOptions { origin: Origin, limit: usize },
    #[error("{origin}: unknown option `{name}`{hint}")]
    UnknownArgument {
        origin: Origin,
        name: String,
        hint: String,
    },
    #[error("{origin}: `{name}` needs a value")]
    MissingArgument { origin: Origin, name: String },
}

impl ConfigError {
    /// Where the error is.
    pub fn origin(&self) -> &Origin {
        match self {
            ConfigError::Syntax { origin, .. }
            | ConfigError::Access { origin, .. }
            | ConfigError::InvalidUtf8 { origin, .. }
            | ConfigError::Binary { origin, .. }
            | ConfigError::IncludeLoop { origin, .. }
            | ConfigError::IncludeDepth { origin, .. }
            | ConfigError::UnknownNotation { origin, .. }
            | ConfigError::NestedLogic { origin, .. }
            | ConfigError::UnclosedLogic { origin, .. }
            | ConfigError::Strict { origin, .. }
            | ConfigError::PlaceholderIsOption { origin, .. }
            | ConfigError::BadAssignment { origin, .. }
            | ConfigError::NotSupported { origin, .. }
            | ConfigError::InvalidValue { origin, .. }
            | ConfigError::Runaway { origin, .. }
            | ConfigError::TooManyOptions { origin, .. }
            | ConfigError::UnknownArgument { origin, .. }
            | ConfigError::MissingArgument { origin, .. } => origin,
        }
    }
}

/// Something liege accepts, as uWSGI does, but that is probably a mistake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub origin: Origin,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: warning: {}", self.origin, self.message)
    }
}
