//! A cgroup's limits, written live.

use std::path::PathBuf;

use crate::tree::Cgroup;
use crate::{Error, Version, cpu, io, memory, pids};

/// The limits of a vassal's cgroup. `None` is "unlimited": applying it removes a limit set before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Memory in bytes; swap is capped with it (v1 memsw set to the same value, v2 swap 0).
    pub memory: Option<u64>,
    /// CPU time in percent of one core (200 is two cores), at least 1.
    pub cpu_percent: Option<u32>,
    /// The most tasks (processes and threads) the cgroup may hold.
    pub pids: Option<u64>,
    /// Raw `(file, value)` pairs (uWSGI's `cgroup-opt`), written after the limits above, in
    /// order, in the hierarchy that has the file. Unlike the limits above, removing one leaves the
    /// value it wrote in place.
    pub raw: Vec<(String, String)>,
}

impl Cgroup {
    /// Writes `limits`: memory, then CPU, then pids, then the raw files. Idempotent, so the same
    /// call serves at creation and live: a limit that is `None` now is set back to unlimited.
    /// Everything is checked before anything is written; a write that the kernel refuses stops
    /// here and names the file and value (a memory limit below what the cgroup uses now can be
    /// refused with `Device or resource busy`).
    pub fn apply(&self, limits: &Limits) -> Result<(), Error> {
        if let Some(percent) = limits.cpu_percent
            && percent == 0
        {
            return Err(Error::CpuPercent { percent });
        }
        let roles = &self.layout.roles;
        let need = |controller: &'static str, index: Option<usize>, asked: bool| {
            if asked && index.is_none() {
                Err(Error::NoController {
                    controller,
                    cgroup: self.name.clone(),
                })
            } else {
                Ok(())
            }
        };
        need("memory", roles.memory, limits.memory.is_some())?;
        need("cpu", roles.cpu, limits.cpu_percent.is_some())?;
        need("pids", roles.pids, limits.pids.is_some())?;
        let raw = limits
            .raw
            .iter()
            .map(|(file, value)| Ok((self.raw_path(file)?, value.as_str())))
            .collect::<Result<Vec<_>, Error>>()?;

        if let Some((dir, version)) = self.dir(roles.memory) {
            memory::apply(version, dir, limits.memory)?;
        }
        if let Some((dir, version)) = self.dir(roles.cpu) {
            cpu::apply(version, dir, limits.cpu_percent)?;
        }
        if let Some((dir, _)) = self.dir(roles.pids) {
            pids::apply(dir, limits.pids)?;
        }
        for (path, value) in raw {
            io::write(&path, value)?;
        }
        Ok(())
    }

    /// Where the raw file `file` is written: in the hierarchy its controller prefix names
    /// (`memory.swappiness` in the memory one), or for a core file (`cgroup.max.descendants`,
    /// `notify_on_release`) in the v2 hierarchy, else the first v1 one, that has it.
    fn raw_path(&self, file: &str) -> Result<PathBuf, Error> {
        check_file(file)?;
        let prefix = file.split('.').next().unwrap_or(file);
        let slots = &self.layout.slots;
        let controller = slots
            .iter()
            .zip(self.dirs.iter())
            .filter(|(s, _)| s.controllers.iter().any(|c| c == prefix))
            .map(|(_, d)| d.join(file))
            .find(|p| io::exists(p));
        if let Some(path) = controller {
            return Ok(path);
        }
        if is_core_file(prefix) {
            let v2_first = slots
                .iter()
                .zip(self.dirs.iter())
                .filter(|(s, _)| s.version == Version::V2)
                .chain(
                    slots
                        .iter()
                        .zip(self.dirs.iter())
                        .filter(|(s, _)| s.version == Version::V1),
                );
            if let Some(path) = v2_first.map(|(_, d)| d.join(file)).find(|p| io::exists(p)) {
                return Ok(path);
            }
        }
        Err(Error::UnknownFile {
            cgroup: self.name.clone(),
            file: file.to_string(),
        })
    }
}

/// Core cgroup files, which are in every hierarchy rather than a controller's.
fn is_core_file(prefix: &str) -> bool {
    matches!(prefix, "cgroup" | "notify_on_release")
}

/// Refuses a raw file name that is not a plain file name.
pub(crate) fn check_file(file: &str) -> Result<(), Error> {
    let refuse = |reason| {
        Err(Error::InvalidFile {
            file: file.to_string(),
            reason,
        })
    };
    if file.is_empty() {
        return refuse("empty");
    }
    if file.contains(['/', '\0']) {
        return refuse("contains `/` or a NUL");
    }
    if file.starts_with('.') {
        return refuse("starts with `.`");
    }
    if matches!(
        file,
        "cgroup.procs" | "cgroup.threads" | "tasks" | "cgroup.kill"
    ) {
        return refuse("moves or kills processes, which is not a limit");
    }
    Ok(())
}
