//! The four ways of writing an options list in a file. Each parser turns the text of one file
//! (magic variables already substituted) into the raw entries of the section asked for, with
//! their line numbers; expansion happens later, in the loader, the same for all four.

mod ini;
mod json;
mod xml;
mod yaml;

use std::fmt;

/// A file's notation, chosen by its extension as uWSGI does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notation {
    Ini,
    Xml,
    Yaml,
    Json,
}

impl Notation {
    /// The notation a file name's extension names (`.ini`, `.xml`, `.yaml`/`.yml`,
    /// `.json`/`.js`), if any.
    pub fn from_path(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "ini" => Some(Notation::Ini),
            "xml" => Some(Notation::Xml),
            "yaml" | "yml" => Some(Notation::Yaml),
            "json" | "js" => Some(Notation::Json),
            _ => None,
        }
    }

    /// The notation an option that loads a file names (`ini = f`, `xml = f`...).
    pub fn from_option(key: &str) -> Option<Self> {
        match key {
            "ini" => Some(Notation::Ini),
            "xml" => Some(Notation::Xml),
            "yaml" | "yml" => Some(Notation::Yaml),
            "json" | "js" => Some(Notation::Json),
            _ => None,
        }
    }

    /// The section read when none is named.
    pub fn default_section(self) -> &'static str {
        "uwsgi"
    }
}

impl fmt::Display for Notation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Notation::Ini => "ini",
            Notation::Xml => "xml",
            Notation::Yaml => "yaml",
            Notation::Json => "json",
        })
    }
}

/// One `key = value` as written, before any expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub key: String,
    pub value: String,
    pub line: u32,
}

/// What a parser found in one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub entries: Vec<RawEntry>,
    /// Whether the section asked for was there at all.
    pub found_section: bool,
    /// Things uWSGI accepts silently that liege reports: (line, message).
    pub warnings: Vec<(u32, String)>,
}

/// A syntax error, at a line of the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    pub line: u32,
    pub message: String,
}

impl SyntaxError {
    pub(crate) fn new(line: u32, message: impl Into<String>) -> Self {
        SyntaxError {
            line,
            message: message.into(),
        }
    }
}

/// Parses `text` written in `notation`, keeping the entries of `section`.
pub fn parse(notation: Notation, text: &str, section: &str) -> Result<Parsed, SyntaxError> {
    match notation {
        Notation::Ini => ini::parse(text, section),
        Notation::Xml => xml::parse(text, section),
        Notation::Yaml => yaml::parse(text, section),
        Notation::Json => json::parse(text, section),
    }
}

/// The 1-based line of byte offset `pos` in `text`.
pub(crate) fn line_of(text: &str, pos: usize) -> u32 {
    let pos = pos.min(text.len());
    let n = text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    u32::try_from(n + 1).unwrap_or(u32::MAX)
}
