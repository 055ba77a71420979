//! The memory controller: a limit with swap capped alongside it, usage and OOM kills.
//!
//! v1: `memory.limit_in_bytes`, and `memory.memsw.limit_in_bytes` (memory plus swap) where swap
//! accounting is on. The kernel refuses any write that would leave memsw below the memory limit,
//! so the two files are written in the order that keeps `memsw >= limit` at every step: when the
//! limit goes down (or is set, from unlimited) the limit first, when it goes up (or is removed)
//! memsw first. "Unlimited" is written as `-1` and reads back as the largest page multiple.
//!
//! v2: `memory.max`, and `memory.swap.max` set to 0 while limited (so swap is capped with it), both
//! `max` when unlimited.

use std::path::Path;

use crate::{Error, Stats, Version, io};

/// v1 reads back "unlimited" as `PAGE_COUNTER_MAX * PAGE_SIZE` (9223372036854771712 with 4 KiB
/// pages); anything this large is no real limit.
const V1_UNLIMITED: u64 = 1 << 62;

/// Sets the memory limit of the cgroup directory `dir` to `limit` bytes, or unlimited.
pub(crate) fn apply(version: Version, dir: &Path, limit: Option<u64>) -> Result<(), Error> {
    match version {
        Version::V1 => apply_v1(dir, limit),
        Version::V2 => apply_v2(dir, limit),
    }
}

fn apply_v1(dir: &Path, limit: Option<u64>) -> Result<(), Error> {
    let limit_file = dir.join("memory.limit_in_bytes");
    let memsw_file = dir.join("memory.memsw.limit_in_bytes");
    let value = limit.map_or_else(|| "-1".to_string(), |n| n.to_string());
    if !io::exists(&memsw_file) {
        return io::write(&limit_file, &value);
    }
    let current = io::read_u64(&limit_file)?;
    if limit.unwrap_or(u64::MAX) <= current {
        io::write(&limit_file, &value)?;
        io::write(&memsw_file, &value)
    } else {
        io::write(&memsw_file, &value)?;
        io::write(&limit_file, &value)
    }
}

fn apply_v2(dir: &Path, limit: Option<u64>) -> Result<(), Error> {
    let (max, swap) = match limit {
        Some(n) => (n.to_string(), "0"),
        None => ("max".to_string(), "max"),
    };
    io::write(&dir.join("memory.max"), &max)?;
    let swap_file = dir.join("memory.swap.max");
    if io::exists(&swap_file) {
        io::write(&swap_file, swap)?;
    }
    Ok(())
}

/// Fills the memory fields of `stats` from the cgroup directory `dir`.
pub(crate) fn read(version: Version, dir: &Path, stats: &mut Stats) -> Result<(), Error> {
    match version {
        Version::V1 => {
            stats.memory_bytes = Some(io::read_u64(&dir.join("memory.usage_in_bytes"))?);
            let limit = io::read_u64(&dir.join("memory.limit_in_bytes"))?;
            stats.memory_limit = (limit < V1_UNLIMITED).then_some(limit);
            stats.oom_kills = read_count(&dir.join("memory.oom_control"), "oom_kill")?;
        }
        Version::V2 => {
            stats.memory_bytes = Some(io::read_u64(&dir.join("memory.current"))?);
            stats.memory_limit = io::read_max(&dir.join("memory.max"))?;
            stats.oom_kills = read_count(&dir.join("memory.events"), "oom_kill")?;
        }
    }
    Ok(())
}

/// The `key` counter of a keyed file, `None` when the kernel does not keep it (v1's `oom_kill`
/// came with Linux 4.13).
fn read_count(path: &Path, key: &str) -> Result<Option<u64>, Error> {
    let mut buf = [0u8; 1024];
    let text = io::read_into(path, &mut buf)?;
    Ok(io::keyed(text, key.as_bytes()))
}
