//! What every language's loader does the same way before it loads its app: `env` (each
//! `NAME=VALUE` checked here; the language sets them, since changing the process environment is
//! `unsafe` in Rust 2024 and this crate forbids unsafe code) and `chdir` (the last one wins).

use std::io;
use std::path::PathBuf;

/// A bad `env` or `chdir`.
#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error("option `env`: `{0}` is not NAME=VALUE")]
    BadEnv(String),
    #[error("option `chdir`: cannot change to `{path}`: {source}")]
    Chdir { path: PathBuf, source: io::Error },
}

/// The `env` assignments and the `chdir` folder of an options list.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Common {
    /// `(NAME, VALUE)`, in order.
    pub env: Vec<(String, String)>,
    pub chdir: Option<PathBuf>,
}

impl Common {
    /// Reads `env` and `chdir`; a bad `env` value is an error.
    pub fn read(options: &[(String, String)]) -> Result<Common, CommonError> {
        let mut c = Common::default();
        for (key, value) in options {
            match key.as_str() {
                "env" => {
                    let (name, v) = assignment(value)?;
                    c.env.push((name.to_string(), v.to_string()));
                }
                "chdir" => c.chdir = Some(PathBuf::from(value)),
                _ => {}
            }
        }
        Ok(c)
    }

    /// Changes the working folder to `chdir`, when set.
    pub fn change_dir(&self) -> Result<(), CommonError> {
        match &self.chdir {
            Some(dir) => std::env::set_current_dir(dir).map_err(|source| CommonError::Chdir {
                path: dir.clone(),
                source,
            }),
            None => Ok(()),
        }
    }
}

/// `NAME=VALUE`, as `std::env::set_var` accepts it.
pub fn assignment(value: &str) -> Result<(&str, &str), CommonError> {
    match value.split_once('=') {
        Some((name, v)) if !name.is_empty() && !name.contains('\0') && !v.contains('\0') => {
            Ok((name, v))
        }
        _ => Err(CommonError::BadEnv(value.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_values_must_be_assignments() {
        assert_eq!(assignment("A=b=c").unwrap(), ("A", "b=c"));
        assert_eq!(
            assignment("=x").unwrap_err().to_string(),
            "option `env`: `=x` is not NAME=VALUE"
        );
        assert!(assignment("NOEQUALS").is_err());
        assert!(assignment("A=\0").is_err());
    }

    #[test]
    fn env_keeps_its_order_and_the_last_chdir_wins() {
        let c = Common::read(&opts(&[
            ("env", "A=1"),
            ("chdir", "/a"),
            ("env", "B=2"),
            ("chdir", "/b"),
            ("module", "x"),
        ]))
        .unwrap();
        assert_eq!(
            c.env,
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "2".to_string())
            ]
        );
        assert_eq!(c.chdir, Some(PathBuf::from("/b")));
        let e = Common {
            chdir: Some("/nonexistent/liege".into()),
            ..Common::default()
        }
        .change_dir()
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("option `chdir`: cannot change to `/nonexistent/liege`: "),
            "{e}"
        );
    }
}
