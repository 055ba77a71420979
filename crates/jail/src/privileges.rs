//! Giving up root before customer code runs (ARCHITECTURE.md decision 3), in this order (each
//! step needs a privilege a later one gives up):
//!
//! 1. check the process is single-threaded: the id syscalls change only the calling thread;
//! 2. rlimits: `max-fd` (NOFILE), `limit-nproc` (NPROC), `limit-as` (AS), and no core files;
//! 3. the bounding set: every capability but those `cap` keeps is dropped (as root, which
//!    still holds CAP_SETPCAP), so no later exec can gain one back, root's included;
//! 4. keep-caps when `cap` keeps some, so that they survive the switch of uid;
//! 5. `setgroups([gid])`, `setgid(gid)`, `setuid(uid)`: real, effective and saved ids;
//! 6. the capability sets: effective, permitted and inheritable become exactly what `cap`
//!    keeps (nothing by default, root included), the ambient set holds the same (so that the
//!    workers the master execs keep them), or is emptied;
//! 7. `setuid(0)` must now fail (when the uid is not 0);
//! 8. `PR_SET_NO_NEW_PRIVS`: no exec may gain privileges (setuid binaries, file capabilities);
//! 9. the seccomp filters, last: they need no_new_privs, and refuse what the steps above used.

use liege_config::Origin;
use rustix::io::Errno;
use rustix::process::{Gid, Resource, Rlimit, Uid};
use rustix::thread::{CapabilitySet, CapabilitySets};

/// The capability names `cap` accepts (libcap's, without `cap_`), by number.
const CAP_NAMES: &[&str] = &[
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// The number of capability `name` (`net_bind_service`, `CAP_NET_BIND_SERVICE`, or a number).
pub fn capability(name: &str) -> Option<u32> {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower.strip_prefix("cap_").unwrap_or(&lower);
    if let Ok(n) = bare.parse::<u32>() {
        return (n < 64).then_some(n);
    }
    CAP_NAMES
        .iter()
        .position(|n| *n == bare)
        .and_then(|i| u32::try_from(i).ok())
}

/// The name of capability number `n`.
pub fn capability_name(n: u32) -> String {
    usize::try_from(n)
        .ok()
        .and_then(|i| CAP_NAMES.get(i))
        .map_or_else(|| n.to_string(), |s| (*s).to_string())
}

/// A resource limit to set, both soft and hard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// Which (`Nofile`, `Nproc`, `As`, `Core`).
    pub resource: Resource,
    /// The value, in the kernel's unit (bytes for AS).
    pub value: u64,
    /// The option that set it (`None`: liege's own, no core files).
    pub origin: Option<Origin>,
}

/// What the drop keeps and sets.
#[derive(Debug, Clone, Default)]
pub struct Privileges {
    /// Capabilities `cap` keeps, as a bit mask, and the entry that said so.
    pub keep: u64,
    /// The `cap` entry, when there is one.
    pub keep_origin: Option<Origin>,
    /// The rlimits to set.
    pub limits: Vec<Limit>,
}

/// The drop failed: the master must not go on.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// The process runs several threads.
    #[error("the master runs {threads} threads: it drops its privileges only while it runs one")]
    Threads {
        /// How many.
        threads: usize,
    },
    /// A step's syscall failed.
    #[error("{}{step}: {source}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Step {
        /// The step (`setrlimit NOFILE 1024`, `setuid(1001)`).
        step: String,
        /// The option behind it, if one.
        origin: Option<Origin>,
        /// Why.
        source: Errno,
    },
    /// Root could be regained after the switch.
    #[error("setuid(0) still works after the switch to uid {uid}: refusing to go on")]
    StillRoot {
        /// The uid switched to.
        uid: u32,
    },
}

fn step(step: impl Into<String>, origin: Option<&Origin>) -> impl FnOnce(Errno) -> PrivilegeError {
    let step = step.into();
    let origin = origin.cloned();
    move |source| PrivilegeError::Step {
        step,
        origin,
        source,
    }
}

fn io_step(
    what: impl Into<String>,
    origin: Option<&Origin>,
) -> impl FnOnce(std::io::Error) -> PrivilegeError {
    let f = step(what, origin);
    move |e| f(Errno::from_io_error(&e).unwrap_or(Errno::IO))
}

/// The threads of this process, from /proc (`None` where /proc is not mounted).
fn threads() -> Option<usize> {
    Some(fs_err::read_dir("/proc/self/task").ok()?.count())
}

/// The highest capability number this kernel knows.
fn last_cap() -> u32 {
    fs_err::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

impl Privileges {
    /// Steps 1 to 8 of the module doc: the process becomes `uid` (`None`: stays root, without
    /// capabilities) and `gid`, with only the kept capabilities and no_new_privs set. The
    /// caller installs the seccomp filters right after (step 9).
    pub fn drop_to(&self, uid: Option<u32>, gid: u32) -> Result<(), PrivilegeError> {
        // 1.
        if let Some(n) = threads()
            && n != 1
        {
            return Err(PrivilegeError::Threads { threads: n });
        }
        // 2.
        for limit in &self.limits {
            let r = Rlimit {
                current: Some(limit.value),
                maximum: Some(limit.value),
            };
            rustix::process::setrlimit(limit.resource, r).map_err(step(
                format!("setrlimit {:?} {}", limit.resource, limit.value),
                limit.origin.as_ref(),
            ))?;
        }
        // 3. Capabilities this kernel does not know cannot be dropped: EINVAL past the last.
        let keep_origin = self.keep_origin.as_ref();
        for cap in 0..=last_cap() {
            if self.keep & (1 << cap) == 0 {
                liege_sys::caps::drop_from_bounding_set(cap).map_err(io_step(
                    format!("dropping {} from the bounding set", capability_name(cap)),
                    keep_origin,
                ))?;
            }
        }
        // 4.
        let root = uid.is_none_or(|u| u == 0);
        if self.keep != 0 && !root {
            rustix::thread::set_keep_capabilities(true)
                .map_err(step("PR_SET_KEEPCAPS", keep_origin))?;
        }
        // 5.
        let g = Gid::from_raw(gid);
        rustix::thread::set_thread_groups(&[g])
            .map_err(step(format!("setgroups([{gid}])"), None))?;
        rustix::thread::set_thread_gid(g).map_err(step(format!("setgid({gid})"), None))?;
        if let Some(u) = uid {
            rustix::thread::set_thread_uid(Uid::from_raw(u))
                .map_err(step(format!("setuid({u})"), None))?;
        }
        if self.keep != 0 && !root {
            rustix::thread::set_keep_capabilities(false)
                .map_err(step("PR_SET_KEEPCAPS", keep_origin))?;
        }
        // 6.
        let kept = CapabilitySet::from_bits_retain(self.keep);
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: kept,
                permitted: kept,
                inheritable: kept,
            },
        )
        .map_err(step("setting the capability sets", keep_origin))?;
        liege_sys::caps::clear_ambient()
            .map_err(io_step("clearing the ambient capabilities", keep_origin))?;
        for cap in 0..64 {
            if self.keep & (1 << cap) != 0 {
                liege_sys::caps::raise_ambient(cap).map_err(io_step(
                    format!("raising {} in the ambient set", capability_name(cap)),
                    keep_origin,
                ))?;
            }
        }
        // 7.
        if let Some(u) = uid
            && u != 0
            && rustix::thread::set_thread_uid(Uid::ROOT).is_ok()
        {
            return Err(PrivilegeError::StillRoot { uid: u });
        }
        // 8.
        rustix::thread::set_no_new_privs(true).map_err(step("PR_SET_NO_NEW_PRIVS", None))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_as_libcap_writes_them() {
        assert_eq!(capability("net_bind_service"), Some(10));
        assert_eq!(capability("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability(" setuid "), Some(7));
        assert_eq!(capability("checkpoint_restore"), Some(40));
        assert_eq!(capability("12"), Some(12));
        assert_eq!(capability("sys_everything"), None);
        assert_eq!(capability_name(10), "net_bind_service");
        assert_eq!(capability_name(63), "63");
    }

    #[test]
    fn nothing_is_dropped_from_a_threaded_process() {
        // libtest runs each test on a thread of its own: the thread check refuses before any
        // change.
        let e = Privileges::default()
            .drop_to(Some(65534), 65534)
            .unwrap_err();
        assert!(
            matches!(e, PrivilegeError::Threads { threads } if threads > 1),
            "{e}"
        );
        assert_eq!(
            rustix::process::geteuid().is_root(),
            rustix::process::getuid().is_root()
        );
    }
}
