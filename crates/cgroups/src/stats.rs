//! What a cgroup uses, read cheaply (the emperor reads it for thousands of vassals at a time: a
//! few small files each, parsed from a stack buffer).

use crate::tree::Cgroup;
use crate::{Error, cpu, memory, pids};

/// A cgroup's usage and limits. A field is `None` where this host does not give the cgroup the
/// controller it comes from (and the limits also where they are unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory charged to the cgroup, in bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_bytes: Option<u64>,
    /// The memory limit in bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// CPU time used, in nanoseconds (v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec` × 1000).
    pub cpu_usage_ns: Option<u64>,
    /// Tasks (processes and threads) in the cgroup (`pids.current`).
    pub pids_current: Option<u64>,
    /// The task limit; `None` when unlimited.
    pub pids_max: Option<u64>,
    /// Processes the OOM killer killed in the cgroup (v1 `memory.oom_control`, v2
    /// `memory.events`, `oom_kill`).
    pub oom_kills: Option<u64>,
}

impl Cgroup {
    /// Reads the cgroup's [`Stats`].
    pub fn stats(&self) -> Result<Stats, Error> {
        let roles = &self.layout.roles;
        let mut stats = Stats::default();
        if let Some((dir, version)) = self.dir(roles.memory) {
            memory::read(version, dir, &mut stats)?;
        }
        if let Some((dir, version)) = self.dir(roles.cpuacct) {
            cpu::read(version, dir, &mut stats)?;
        }
        if let Some((dir, _)) = self.dir(roles.pids) {
            pids::read(dir, &mut stats)?;
        }
        Ok(stats)
    }
}
