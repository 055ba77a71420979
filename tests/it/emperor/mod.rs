//! The emperor, through real processes: `liege --emperor` in a fresh network namespace,
//! real vassals in their own namespaces and cgroups, customers as real uids.
//!
//! - `guard`: starts an emperor with its own folders and cgroup root; cleans up when dropped.
//! - `lifecycle`: spawn, touch, limits, namespaces, removal, crash loops, broken files,
//!   adoption after a kill -9, SIGHUP, SIGINT.
//! - `isolation`: pid 1, hostname, IPC and network per vassal; memory, CPU and pids limits.
//! - `files`: trust and tyrant rules; a thousand files, a third broken.
//! - `rundir`: the vassals' run dirs from the host: `liege request`, planted symlinks,
//!   removal (issue 5).

mod files;
pub(crate) mod guard;
pub(crate) mod isolation;
mod lifecycle;
mod rundir;
