//! A vassal's name: its file name without the extension (uWSGI's `%n`), checked against
//! `[a-z0-9][a-z0-9_.-]{0,62}` because it names a cgroup, a control socket, a log file and a
//! hostname.

use std::fmt;

/// The extensions of vassal files, in the order they are tried.
pub const EXTENSIONS: &[&str] = &["ini", "xml", "yaml", "yml", "json"];

/// The longest name.
pub const MAX_LEN: usize = 63;

/// A valid vassal name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VassalName(String);

/// Why a file name gives no vassal name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("`{file}`: a vassal file name ends in .ini, .xml, .yaml, .yml or .json")]
    Extension { file: String },
    #[error("`{file}`: the vassal name is empty")]
    Empty { file: String },
    #[error("`{file}`: the vassal name `{name}` is {len} characters long, more than {MAX_LEN}")]
    TooLong {
        file: String,
        name: String,
        len: usize,
    },
    #[error(
        "`{file}`: the vassal name `{name}` starts with `{c}`\nhint: a name starts with a-z or 0-9"
    )]
    First { file: String, name: String, c: char },
    #[error(
        "`{file}`: the vassal name `{name}` holds `{c}`\nhint: a name is made of a-z, 0-9, `_`, `.` and `-`"
    )]
    Char { file: String, name: String, c: char },
}

/// The extension of a vassal file name, if it has one of [`EXTENSIONS`].
pub fn vassal_extension(file_name: &str) -> Option<&'static str> {
    let (_, ext) = file_name.rsplit_once('.')?;
    EXTENSIONS.iter().copied().find(|e| *e == ext)
}

impl VassalName {
    /// The name of the vassal a file (`app.ini`, a bare file name, not a path) describes.
    pub fn from_file_name(file_name: &str) -> Result<VassalName, NameError> {
        let ext = vassal_extension(file_name).ok_or_else(|| NameError::Extension {
            file: file_name.to_owned(),
        })?;
        let stem = &file_name[..file_name.len() - ext.len() - 1];
        Self::check(stem, file_name)
    }

    /// A bare name, for a source that names its vassals without files; `shown` is where it
    /// comes from, for the error.
    pub fn new(name: &str, shown: &str) -> Result<VassalName, NameError> {
        Self::check(name, shown)
    }

    fn check(name: &str, file: &str) -> Result<VassalName, NameError> {
        let err_file = || file.to_owned();
        let mut chars = name.chars();
        let Some(first) = chars.next() else {
            return Err(NameError::Empty { file: err_file() });
        };
        let len = name.chars().count();
        if len > MAX_LEN {
            return Err(NameError::TooLong {
                file: err_file(),
                name: name.to_owned(),
                len,
            });
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(NameError::First {
                file: err_file(),
                name: name.to_owned(),
                c: first,
            });
        }
        if let Some(c) = chars.find(|&c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        }) {
            return Err(NameError::Char {
                file: err_file(),
                name: name.to_owned(),
                c,
            });
        }
        Ok(VassalName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VassalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for VassalName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(f: &str) -> Result<String, String> {
        VassalName::from_file_name(f)
            .map(|n| n.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_known_extension_is_stripped() {
        assert_eq!(name("app.ini").unwrap(), "app");
        assert_eq!(name("app.xml").unwrap(), "app");
        assert_eq!(name("app.yaml").unwrap(), "app");
        assert_eq!(name("app.yml").unwrap(), "app");
        assert_eq!(name("app.json").unwrap(), "app");
        assert_eq!(name("my.app.ini").unwrap(), "my.app");
        assert_eq!(name("a.ini.ini").unwrap(), "a.ini");
        assert_eq!(name("0-a_b.c.ini").unwrap(), "0-a_b.c");
    }

    #[test]
    fn the_name_rules_are_enforced_with_the_file_named() {
        assert_eq!(
            name("app.conf").unwrap_err(),
            "`app.conf`: a vassal file name ends in .ini, .xml, .yaml, .yml or .json"
        );
        assert!(name("app").is_err());
        assert!(name("app.js").is_err());
        assert_eq!(
            name(".ini").unwrap_err(),
            "`.ini`: the vassal name is empty"
        );
        assert_eq!(
            name("App.ini").unwrap_err(),
            "`App.ini`: the vassal name `App` starts with `A`\nhint: a name starts with a-z or 0-9"
        );
        assert_eq!(
            name("-a.ini").unwrap_err(),
            "`-a.ini`: the vassal name `-a` starts with `-`\nhint: a name starts with a-z or 0-9"
        );
        assert_eq!(
            name("_a.ini").unwrap_err().lines().next().unwrap(),
            "`_a.ini`: the vassal name `_a` starts with `_`"
        );
        assert_eq!(
            name("a b.ini").unwrap_err(),
            "`a b.ini`: the vassal name `a b` holds ` `\nhint: a name is made of a-z, 0-9, `_`, `.` and `-`"
        );
        assert!(name("aB.ini").is_err());
        assert!(name("é.ini").is_err());
        assert!(name("a\u{e9}.ini").is_err());
        assert!(name("a/b.ini").is_err());
        let ok = "a".repeat(63);
        assert_eq!(name(&format!("{ok}.ini")).unwrap(), ok);
        let long = "a".repeat(64);
        assert_eq!(
            name(&format!("{long}.ini")).unwrap_err(),
            format!("`{long}.ini`: the vassal name `{long}` is 64 characters long, more than 63")
        );
    }

    #[test]
    fn a_bare_name_is_checked_the_same_way() {
        assert_eq!(
            VassalName::new("web", "etcd:/v/web").unwrap().as_str(),
            "web"
        );
        assert_eq!(
            VassalName::new("Web", "etcd:/v/Web")
                .unwrap_err()
                .to_string()
                .lines()
                .next(),
            Some("`etcd:/v/Web`: the vassal name `Web` starts with `W`")
        );
    }
}
