//! The cpu controller: a limit in percent of one core, as a CFS quota over a fixed period, and
//! the CPU time used.
//!
//! v1: `cpu.cfs_period_us` = [`CPU_PERIOD_US`], then `cpu.cfs_quota_us` = percent × 1000, or -1
//! for none; usage from cpuacct's `cpuacct.usage` (nanoseconds). v2: `cpu.max` =
//! `QUOTA 100000` or `max 100000`; usage from `cpu.stat` `usage_usec`.

use std::path::Path;

use crate::{Error, Stats, Version, io};

/// The CFS period the CPU limit's quota is a share of, in microseconds (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// The quota for `percent` of one core over [`CPU_PERIOD_US`], in microseconds.
pub(crate) fn quota_us(percent: u32) -> u64 {
    u64::from(percent) * (CPU_PERIOD_US / 100)
}

/// Sets the CPU limit of the cgroup directory `dir` to `percent` of one core, or none.
pub(crate) fn apply(version: Version, dir: &Path, percent: Option<u32>) -> Result<(), Error> {
    match version {
        Version::V1 => {
            io::write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
            let quota = percent.map_or_else(|| "-1".to_string(), |p| quota_us(p).to_string());
            io::write(&dir.join("cpu.cfs_quota_us"), &quota)
        }
        Version::V2 => {
            let value = match percent {
                Some(p) => format!("{} {CPU_PERIOD_US}", quota_us(p)),
                None => format!("max {CPU_PERIOD_US}"),
            };
            io::write(&dir.join("cpu.max"), &value)
        }
    }
}

/// Fills `stats.cpu_usage_ns` from the cgroup directory `dir`.
pub(crate) fn read(version: Version, dir: &Path, stats: &mut Stats) -> Result<(), Error> {
    stats.cpu_usage_ns = Some(match version {
        Version::V1 => io::read_u64(&dir.join("cpuacct.usage"))?,
        Version::V2 => io::read_keyed(&dir.join("cpu.stat"), "usage_usec")?.saturating_mul(1000),
    });
    Ok(())
}
