//! Where vassal files come from (ARCHITECTURE.md decision 10): a [`VassalSource`] tells the
//! emperor's loop which vassals exist, which changed and which went away. The folder or glob
//! watched with inotify ([`dir::DirSource`]) is one; a cluster store (etcd) will be another,
//! implementing the same trait, without the rest of the emperor knowing.
//!
//! The loop is one thread around epoll: it waits on [`VassalSource::fd`], calls
//! [`VassalSource::changes`] when it is readable, and [`VassalSource::rescan`] every
//! `emperor-freq` seconds (and once at startup, which lists every vassal).

pub mod dir;

use std::fmt;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;

use liege_config::AccessError;
use liege_config::access::FileFacts;

use crate::name::{NameError, VassalName};

/// What tells one version of a vassal file from another: a `touch` changes the times, `chmod`
/// and `chown` the ctime, mode and owner, a new file (an editor's rename) the inode. The owner
/// and mode are those of the file itself (a symbolic link is followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub dev: u64,
    pub inode: u64,
    pub size: u64,
    /// Nanoseconds since the epoch.
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub uid: u32,
    pub gid: u32,
    /// The permission bits and the file type (`st_mode`).
    pub mode: u32,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(meta: &std::fs::Metadata) -> Stamp {
        let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Stamp {
            dev: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
        }
    }

    /// Whether the file is owned by root and no group or other can write it: only such a file
    /// may hold options that act as root.
    pub fn is_trusted(&self) -> bool {
        self.uid == 0 && self.mode & 0o022 == 0
    }

    /// Why the file is not trusted, for messages (`None` when it is).
    pub fn distrust(&self) -> Option<String> {
        if self.uid != 0 {
            Some(format!("it is owned by uid {}", self.uid))
        } else if self.mode & 0o022 != 0 {
            let who = match (self.mode & 0o020 != 0, self.mode & 0o002 != 0) {
                (true, true) => "its group and others",
                (true, false) => "its group",
                _ => "others",
            };
            Some(format!(
                "it is writable by {who} (mode {:04o})",
                self.mode & 0o7777
            ))
        } else {
            None
        }
    }
}

/// One read of a vassal file: its bytes and what they were read from.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub data: Vec<u8>,
    /// The stamp of the file actually read (fstat of the open file), owner and mode included.
    pub stamp: Stamp,
    /// Its path and inode for the magic variables (`%p`, `%d`, `%n`, `%i`...).
    pub facts: FileFacts,
}

/// How a vassal file is read. The emperor reads the file once through [`EntryReader::fetch`]
/// and hands those bytes to liege_config's loader under [`EntryReader::path`]; what the file
/// pulls in (includes, `@()`, `if-exists`) is read through [`crate::access::OwnerAccess`] with
/// the owner's rights, relative to [`EntryReader::folder`].
pub trait EntryReader: fmt::Debug + Send + Sync {
    /// The name given to the loader: its extension picks the notation, and errors show it.
    fn path(&self) -> &str;
    /// The folder relative paths in the file are resolved against.
    fn folder(&self) -> PathBuf;
    /// Reads the file once (refused, before reading, when it is larger than `limit`).
    fn fetch(&self, limit: u64) -> Result<Fetched, AccessError>;
}

/// A vassal as a source sees it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: VassalName,
    /// Where it comes from, for logs and errors (the file's path).
    pub location: String,
    /// When the stamp differs from the last one seen for the name, the vassal is reloaded
    /// (uWSGI reloads a vassal whose file is touched).
    pub stamp: Stamp,
    /// How to read it.
    pub reader: Arc<dyn EntryReader>,
}

/// What a source reports.
#[derive(Debug, Clone)]
pub enum Change {
    /// A vassal appeared, or its file changed (a new stamp), or another file took its name.
    Upserted(Entry),
    /// No file gives this vassal any more. (A file made and removed between two calls gives
    /// only this, for a name the loop never saw: ignore it then.)
    Removed(VassalName),
    /// Something to log: a file refused, a folder that cannot be watched. The vassals are not
    /// affected.
    Error(SourceError),
}

/// What a source could not take.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(
        "`{refused}`: refused: vassal `{name}` is already given by `{kept}`\nhint: a vassal name (the file name without its extension) must be unique; `{refused}` is taken up if `{kept}` goes away"
    )]
    Duplicate {
        name: VassalName,
        kept: String,
        refused: String,
    },
    #[error("cannot watch `{path}`: {reason}")]
    Watch { path: String, reason: String },
    #[error("cannot list `{path}`: {reason}")]
    List { path: String, reason: String },
    #[error("reading inotify events: {reason}")]
    Events { reason: String },
    #[error("`{pattern}`: {reason}")]
    Pattern { pattern: String, reason: String },
}

/// A source of vassals: a folder or glob watched with inotify, or (later) a cluster store.
pub trait VassalSource: fmt::Debug {
    /// What the loop waits on (readable when [`VassalSource::changes`] has something), or
    /// `None` for a source that is only polled by [`VassalSource::rescan`].
    fn fd(&self) -> Option<BorrowedFd<'_>>;

    /// What changed since the last call, without waiting. A file still being written is not
    /// reported before it is closed.
    fn changes(&mut self) -> Vec<Change>;

    /// A full comparison of what is there with what was reported (the safety net behind the
    /// events, every `emperor-freq` seconds). The first call lists every vassal.
    fn rescan(&mut self) -> Vec<Change>;
}

/// Keeps the last [`Change::Upserted`] or [`Change::Removed`] of each name in a batch, at the
/// place of its last occurrence, so that an editor's save (rename away, write anew) is one
/// change and not a stop and a start. Errors are kept as they are.
pub(crate) fn coalesce(changes: Vec<Change>) -> Vec<Change> {
    let name_of = |c: &Change| match c {
        Change::Upserted(e) => Some(e.name.clone()),
        Change::Removed(n) => Some(n.clone()),
        Change::Error(_) => None,
    };
    let mut last = std::collections::HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if let Some(n) = name_of(c) {
            last.insert(n, i);
        }
    }
    changes
        .into_iter()
        .enumerate()
        .filter(|(i, c)| name_of(c).is_none_or(|n| last.get(&n) == Some(i)))
        .map(|(_, c)| c)
        .collect()
}
