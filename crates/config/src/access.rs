//! The one door through which expansion touches the filesystem: reading config files, `@(file)`,
//! `if-exists` and friends, `for-glob`, and `exec://`.
//!
//! `liege --ini` run by hand uses [`HostAccess`] with every uWSGI form allowed. The emperor will
//! resolve a customer's vassal file through an implementation that reads as that customer and
//! refuses `exec://`; nothing else in this crate needs to change for that.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a file could not be read through the policy.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("`{path}` is {size} bytes, more than max-config-size ({limit} bytes)")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("`{path}` is not a regular file")]
    NotAFile { path: String },
    #[error("`exec://` is not allowed here (`{command}`)")]
    ExecRefused { command: String },
    #[error("`{command}` failed: {reason}")]
    Exec { command: String, reason: String },
    #[error("the `{scheme}://` scheme is not supported")]
    Scheme { scheme: String },
}

/// Reads `file` whole, refusing it when it is over `limit` bytes: by `len` (its size, when it
/// has one) before reading, and by what it gives (a pipe or a /proc file has no size: at most
/// one byte past the limit is read). `shown` names it in errors.
pub fn read_limited(
    file: impl Read,
    len: Option<u64>,
    shown: &str,
    limit: u64,
) -> Result<Vec<u8>, AccessError> {
    let too_large = |size| AccessError::TooLarge {
        path: shown.to_owned(),
        size,
        limit,
    };
    if let Some(len) = len
        && len > limit
    {
        return Err(too_large(len));
    }
    let mut data = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|source| AccessError::Read {
            path: shown.to_owned(),
            source,
        })?;
    if data.len() as u64 > limit {
        return Err(too_large(data.len() as u64));
    }
    Ok(data)
}

/// What expansion may ask of the filesystem.
pub trait FileAccess {
    /// Reads a whole file, refusing it by its size, before reading, when it is over `limit`.
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, AccessError>;
    /// Runs a command (`exec://`) and returns its standard output, or refuses.
    fn exec(&self, command: &str, limit: u64) -> Result<Vec<u8>, AccessError>;
    /// `if-exists`: the path exists (following links).
    fn exists(&self, path: &str) -> bool;
    /// `if-file`: the path is a regular file.
    fn is_file(&self, path: &str) -> bool;
    /// `if-dir`: the path is a directory.
    fn is_dir(&self, path: &str) -> bool;
    /// `for-glob`: the matches of a pattern, directories marked with a trailing `/`, the
    /// pattern itself when nothing matches (glob(3) with GLOB_MARK|GLOB_NOCHECK).
    fn glob(&self, pattern: &str) -> Vec<String>;
    /// Facts about a config file for the magic variables: its canonical path (`%p`; a
    /// symbolic link is not resolved, as in uWSGI) and its inode (`%i`).
    fn file_facts(&self, path: &str) -> Option<FileFacts>;
}

/// What the magic variables need to know about a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// Absolute path: realpath(3), or for a symbolic link cwd + name.
    pub path: String,
    pub inode: u64,
}

/// Access to the host filesystem with the rights of the calling process.
#[derive(Debug, Clone)]
pub struct HostAccess {
    allow_exec: bool,
    cwd: PathBuf,
}

impl HostAccess {
    /// Everything uWSGI allows, `exec://` included: for files a person runs by hand.
    pub fn trusted(cwd: PathBuf) -> Self {
        Self {
            allow_exec: true,
            cwd,
        }
    }

    /// The same without `exec://`.
    pub fn without_exec(cwd: PathBuf) -> Self {
        Self {
            allow_exec: false,
            cwd,
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.cwd.join(path)
    }
}

impl FileAccess for HostAccess {
    // std::fs here, not fs-err: AccessError::Read names the path already, as the user wrote it.
    #[allow(clippy::disallowed_methods)]
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, AccessError> {
        let err = |source| AccessError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(self.resolve(path)).map_err(err)?;
        let meta = file.metadata().map_err(err)?;
        if meta.is_dir() {
            return Err(AccessError::NotAFile {
                path: path.to_owned(),
            });
        }
        read_limited(file, meta.is_file().then_some(meta.len()), path, limit)
    }

    fn exec(&self, command: &str, limit: u64) -> Result<Vec<u8>, AccessError> {
        if !self.allow_exec {
            return Err(AccessError::ExecRefused {
                command: command.to_owned(),
            });
        }
        let fail = |reason: String| AccessError::Exec {
            command: command.to_owned(),
            reason,
        };
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let mut data = Vec::new();
        if let Some(out) = child.stdout.take() {
            out.take(limit.saturating_add(1))
                .read_to_end(&mut data)
                .map_err(|e| fail(e.to_string()))?;
        }
        let status = child.wait().map_err(|e| fail(e.to_string()))?;
        if data.len() as u64 > limit {
            return Err(fail(format!("its output is more than {limit} bytes")));
        }
        // uWSGI takes the output whatever the exit status; so do we.
        let _ = status;
        Ok(data)
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(path).exists()
    }

    fn is_file(&self, path: &str) -> bool {
        self.resolve(path).is_file()
    }

    fn is_dir(&self, path: &str) -> bool {
        self.resolve(path).is_dir()
    }

    fn glob(&self, pattern: &str) -> Vec<String> {
        let absolute = Path::new(pattern).is_absolute();
        let full = self.resolve(pattern);
        let Some(full) = full.to_str() else {
            return vec![pattern.to_owned()];
        };
        let mut found = Vec::new();
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: true,
        };
        if let Ok(paths) = glob::glob_with(full, opts) {
            for p in paths.flatten() {
                let shown = if absolute {
                    p.clone()
                } else {
                    p.strip_prefix(&self.cwd).unwrap_or(&p).to_path_buf()
                };
                let mut s = shown.to_string_lossy().into_owned();
                if p.is_dir() {
                    s.push('/');
                }
                found.push(s);
            }
        }
        if found.is_empty() {
            found.push(pattern.to_owned());
        }
        found
    }

    fn file_facts(&self, path: &str) -> Option<FileFacts> {
        let full = self.resolve(path);
        let link = fs_err::symlink_metadata(&full).ok()?;
        let absolute = if link.file_type().is_symlink() {
            full.to_string_lossy().into_owned()
        } else {
            fs_err::canonicalize(&full)
                .ok()?
                .to_string_lossy()
                .into_owned()
        };
        Some(FileFacts {
            path: absolute,
            inode: link.ino(),
        })
    }
}

/// Files held in memory, for tests and fuzzing: no disk, no commands.
#[derive(Debug, Clone, Default)]
pub struct MemoryAccess {
    files: std::collections::BTreeMap<String, Vec<u8>>,
}

impl MemoryAccess {
    /// An empty filesystem.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file (at a relative or absolute path; relative paths are under `/mem`).
    pub fn with(mut self, path: &str, content: impl Into<Vec<u8>>) -> Self {
        self.files.insert(Self::absolute(path), content.into());
        self
    }

    fn absolute(path: &str) -> String {
        if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/mem/{path}")
        }
    }

    fn is_dir_path(&self, path: &str) -> bool {
        let dir = format!("{}/", Self::absolute(path).trim_end_matches('/'));
        self.files.keys().any(|k| k.starts_with(&dir))
    }
}

impl FileAccess for MemoryAccess {
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, AccessError> {
        let data = self
            .files
            .get(&Self::absolute(path))
            .ok_or_else(|| AccessError::Read {
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            })?;
        if data.len() as u64 > limit {
            return Err(AccessError::TooLarge {
                path: path.to_owned(),
                size: data.len() as u64,
                limit,
            });
        }
        Ok(data.clone())
    }

    fn exec(&self, command: &str, _limit: u64) -> Result<Vec<u8>, AccessError> {
        Err(AccessError::ExecRefused {
            command: command.to_owned(),
        })
    }

    fn exists(&self, path: &str) -> bool {
        self.is_file(path) || self.is_dir_path(path)
    }

    fn is_file(&self, path: &str) -> bool {
        self.files.contains_key(&Self::absolute(path))
    }

    fn is_dir(&self, path: &str) -> bool {
        self.is_dir_path(path)
    }

    fn glob(&self, pattern: &str) -> Vec<String> {
        let Ok(p) = glob::Pattern::new(pattern) else {
            return vec![pattern.to_owned()];
        };
        let found: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| {
                k.strip_prefix("/mem/")
                    .map(str::to_owned)
                    .or_else(|| Some(k.clone()))
            })
            .filter(|k| p.matches(k))
            .collect();
        if found.is_empty() {
            vec![pattern.to_owned()]
        } else {
            found
        }
    }

    fn file_facts(&self, path: &str) -> Option<FileFacts> {
        self.is_file(path).then(|| FileFacts {
            path: Self::absolute(path),
            inode: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_by_its_size() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("big.ini"), vec![b'a'; 100]).unwrap();
        let access = HostAccess::trusted(dir.path().to_path_buf());
        let err = access.read("big.ini", 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`big.ini` is 100 bytes, more than max-config-size (10 bytes)"
        );
        assert_eq!(access.read("big.ini", 100).unwrap().len(), 100);
    }

    #[test]
    fn exec_is_refused_without_the_right() {
        let access = HostAccess::without_exec(PathBuf::from("/"));
        let err = access.exec("echo hi", 100).unwrap_err();
        assert!(matches!(err, AccessError::ExecRefused { .. }));
        let access = HostAccess::trusted(PathBuf::from("/"));
        assert_eq!(access.exec("echo hi", 100).unwrap(), b"hi\n");
    }

    #[test]
    fn glob_marks_directories_and_falls_back_to_the_pattern() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("b")).unwrap();
        fs_err::write(dir.path().join("a"), "").unwrap();
        let access = HostAccess::trusted(dir.path().to_path_buf());
        assert_eq!(access.glob("*"), ["a", "b/"]);
        assert_eq!(access.glob("nothing*"), ["nothing*"]);
    }
}
