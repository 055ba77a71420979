//! The pids controller: `pids.max` (a number, or `max`) and `pids.current`, the same on v1 and v2.

use std::path::Path;

use crate::{Error, Stats, io};

/// Sets the cgroup directory `dir`'s process limit to `max` tasks, or none.
pub(crate) fn apply(dir: &Path, max: Option<u64>) -> Result<(), Error> {
    let value = max.map_or_else(|| "max".to_string(), |n| n.to_string());
    io::write(&dir.join("pids.max"), &value)
}

/// Fills the pids fields of `stats` from the cgroup directory `dir`.
pub(crate) fn read(dir: &Path, stats: &mut Stats) -> Result<(), Error> {
    stats.pids_current = Some(io::read_u64(&dir.join("pids.current"))?);
    stats.pids_max = io::read_max(&dir.join("pids.max"))?;
    Ok(())
}
