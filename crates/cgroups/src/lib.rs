//! cgroup v1 and v2 behind one interface, for the emperor: each vassal gets the cgroup
//! `ROOT/NAME` under every hierarchy it uses, with its limits written live.
//!
//! - [`Hierarchies`] finds the mounted hierarchies in mountinfo: v1 ones with their controllers,
//!   the v2 one with the controllers of its `cgroup.controllers`. A host may mix them (hybrid: the
//!   controllers on v1, an empty cgroup2 beside them, used for `cgroup.kill` and `populated`).
//! - [`Tree`] is `ROOT` under each hierarchy used: the v1 memory, cpu, cpuacct, pids and freezer
//!   ones present, and v2 always (its memory, cpu and pids controllers enabled for the children of
//!   `ROOT`). It creates, finds and lists the vassals' cgroups.
//! - [`Cgroup`] is one vassal's `ROOT/NAME`: place a process, list and check members, apply
//!   [`Limits`], read [`Stats`], kill everything in it, remove it.
//! - [`place_in_dir`] and [`write_in_dir`] serve uWSGI's raw `cgroup` and `cgroup-opt` options.
//!
//! There is no global state: the mount points come from mountinfo (tests pass a text naming
//! imitation directories) and `/proc` is injectable ([`Hierarchies::with_proc_root`]).
//! Everything is synchronous and returns typed [`Error`]s naming the file (and the value written).

mod cpu;
mod dir;
mod error;
mod hierarchy;
mod io;
mod kill;
mod limits;
mod memory;
mod pids;
mod stats;
mod tree;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use cpu::CPU_PERIOD_US;
pub use dir::{place_in_dir, write_in_dir};
pub use error::{Error, MountinfoError};
pub use hierarchy::{Hierarchies, Hierarchy, Version};
pub use kill::KILL_WAIT;
pub use limits::Limits;
pub use stats::Stats;
pub use tree::{Cgroup, REMOVE_WAIT, Tree, V1_CONTROLLERS, V2_CONTROLLERS};
