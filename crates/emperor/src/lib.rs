//! The emperor (ARCHITECTURE.md decisions 2, 3, 7, 10): it watches a source of vassal files,
//! spawns one vassal per file in its own namespaces and cgroup, reloads it when the file
//! changes, stops it when the file goes away, throttles crash loops, and reports stats.
//!
//! - [`name`]: a vassal's name, from its file name.
//! - [`source`]: where vassal files come from (a trait; a folder or glob watched with inotify).
//! - [`policy`]: trust (which options a file may hold), identity, namespaces and limits: what
//!   the emperor runs for a vassal file.
//! - [`access`]: reading what a vassal file pulls in as the file's owner.

pub mod access;
pub mod name;
pub mod policy;
pub mod source;
pub mod spawn;
