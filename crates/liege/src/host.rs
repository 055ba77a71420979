//! The facts about this host and process that magic variables show (`%h`, `%u`, `%k`...).

use std::time::{SystemTime, UNIX_EPOCH};

use liege_config::HostFacts;

/// The name of `id` in a passwd- or group-style file (`name:x:id:...`).
fn name_of(file: &str, id: u32) -> Option<String> {
    let text = fs_err::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        (f.next()?.parse::<u32>().ok()? == id).then(|| name.to_owned())
    })
}

/// Online CPUs, as sysconf(_SC_NPROCESSORS_ONLN) counts them (not limited by affinity).
fn online_cpus() -> usize {
    let counted = fs_err::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| {
            s.trim().split(',').try_fold(0usize, |n, range| {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                Some(
                    n + b
                        .parse::<usize>()
                        .ok()?
                        .checked_sub(a.parse::<usize>().ok()?)?
                        + 1,
                )
            })
        });
    counted.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// Gathers the facts of the running process.
pub(crate) fn facts() -> HostFacts {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    HostFacts {
        hostname: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
        cpus: online_cpus(),
        uid,
        user: name_of("/etc/passwd", uid).unwrap_or_else(|| uid.to_string()),
        gid,
        group: name_of("/etc/group", gid).unwrap_or_else(|| gid.to_string()),
        cwd: std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        binary: std::env::current_exe()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        start_secs: now.as_secs(),
        start_micros: u64::try_from(now.as_micros()).unwrap_or(u64::MAX),
    }
}
