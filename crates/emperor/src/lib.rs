//! The emperor (ARCHITECTURE.md decisions 2, 3, 7, 10): it watches a source of vassal files,
//! spawns one vassal per file in its own namespaces and cgroup, reloads it when the file
//! changes, stops it when the file goes away, throttles crash loops, and reports stats.
//!
//! - [`source`]: where vassal files come from (a trait; a folder or glob watched with inotify).
//! - [`policy`]: names, trust (which options a file may hold), reading a file as its owner.

pub mod spawn;
