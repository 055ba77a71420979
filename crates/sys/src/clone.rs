//! Cloning a vassal: the emperor starts each vassal's master with `clone3` in new namespaces and
//! gets a pidfd for it in the same call, so the child is addressed by that fd and never by a bare
//! pid that could be reused.

use std::fmt;
use std::ops::BitOr;
use std::os::fd::{FromRawFd, OwnedFd};

/// A set of namespaces to create for a child, named as uWSGI's `emperor-use-clone` and
/// `unshare` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Namespaces(u64);

/// The names [`Namespaces`] prints, in this order, with the flag each stands for.
const CANONICAL: [(&str, Namespaces); 7] = [
    ("fs", Namespaces::NEWNS),
    ("ipc", Namespaces::NEWIPC),
    ("uts", Namespaces::NEWUTS),
    ("net", Namespaces::NEWNET),
    ("pid", Namespaces::NEWPID),
    ("cgroup", Namespaces::NEWCGROUP),
    ("user", Namespaces::NEWUSER),
];

/// Widens a `CLONE_*` flag (a positive `c_int`) to the `u64` of `clone_args.flags`.
const fn flag(bits: libc::c_int) -> u64 {
    bits.cast_unsigned() as u64
}

impl Namespaces {
    /// A new mount namespace (`fs`, also spelled `ns`, `mount` or `mnt`).
    pub const NEWNS: Namespaces = Namespaces(flag(libc::CLONE_NEWNS));
    /// A new System V IPC and POSIX message queue namespace (`ipc`).
    pub const NEWIPC: Namespaces = Namespaces(flag(libc::CLONE_NEWIPC));
    /// A new hostname and domain name (`uts`).
    pub const NEWUTS: Namespaces = Namespaces(flag(libc::CLONE_NEWUTS));
    /// A new network stack with only a loopback interface, which starts down (`net`).
    pub const NEWNET: Namespaces = Namespaces(flag(libc::CLONE_NEWNET));
    /// A new pid namespace, in which the child is pid 1 (`pid`).
    pub const NEWPID: Namespaces = Namespaces(flag(libc::CLONE_NEWPID));
    /// A new cgroup namespace, rooted at the cgroups the process is in when it is made
    /// (`cgroup`).
    pub const NEWCGROUP: Namespaces = Namespaces(flag(libc::CLONE_NEWCGROUP));
    /// A new user namespace (`user`); useful only with a uid/gid map written for it.
    pub const NEWUSER: Namespaces = Namespaces(flag(libc::CLONE_NEWUSER));

    /// No new namespace: the child shares all of its parent's (`none`).
    pub const fn empty() -> Namespaces {
        Namespaces(0)
    }

    /// Parses a list of uWSGI namespace names separated by commas or spaces: `fs` (or `ns`,
    /// `mount`, `mnt`), `ipc`, `uts`, `net`, `pid`, `cgroup`, `user`; `none`, alone, is the empty
    /// set. A name may repeat. An empty list is an error, so that "no namespaces" is written out.
    pub fn parse(list: &str) -> Result<Namespaces, UnknownNamespace> {
        let words = || {
            list.split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|w| !w.is_empty())
        };
        if words().next().is_none() {
            return Err(UnknownNamespace {
                word: String::new(),
            });
        }
        if words().eq(["none"]) {
            return Ok(Namespaces::empty());
        }
        let mut set = Namespaces::empty();
        for word in words() {
            let one = match word {
                "fs" | "ns" | "mount" | "mnt" => Namespaces::NEWNS,
                "ipc" => Namespaces::NEWIPC,
                "uts" => Namespaces::NEWUTS,
                "net" => Namespaces::NEWNET,
                "pid" => Namespaces::NEWPID,
                "cgroup" => Namespaces::NEWCGROUP,
                "user" => Namespaces::NEWUSER,
                _ => {
                    return Err(UnknownNamespace {
                        word: word.to_string(),
                    });
                }
            };
            set = set | one;
        }
        Ok(set)
    }

    /// The namespaces in either set.
    #[must_use]
    pub const fn union(self, other: Namespaces) -> Namespaces {
        Namespaces(self.0 | other.0)
    }

    /// The namespaces of `self` that are not in `other`.
    #[must_use]
    pub const fn difference(self, other: Namespaces) -> Namespaces {
        Namespaces(self.0 & !other.0)
    }

    /// Whether every namespace of `other` is in `self`.
    pub const fn contains(self, other: Namespaces) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether the set is empty (`none`).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The `CLONE_NEW*` bits, as `clone3` and `unshare` take them.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

impl BitOr for Namespaces {
    type Output = Namespaces;

    fn bitor(self, other: Namespaces) -> Namespaces {
        self.union(other)
    }
}

/// Prints the canonical list, as [`Namespaces::parse`] reads it back: `fs,ipc,uts,net,pid`, or
/// `none`.
impl fmt::Display for Namespaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (name, one) in CANONICAL {
            if self.contains(one) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A namespace list that [`Namespaces::parse`] refused: a word that names no namespace, `none`
/// with other names, or no word at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownNamespace {
    /// The word refused: empty when the list was empty, `none` when it was not alone.
    pub word: String,
}

impl fmt::Display for UnknownNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.word.as_str() {
            "" => f.write_str("empty namespace list\nhint: write `none` for no new namespace"),
            "none" => f.write_str("`none` cannot be combined with other namespaces"),
            word => write!(
                f,
                "unknown namespace `{word}`\nhint: the names are fs (or ns, mount, mnt), ipc, \
                 uts, net, pid, cgroup, user, or none alone"
            ),
        }
    }
}

impl std::error::Error for UnknownNamespace {}

/// What [`clone_vassal`] returned in the process that called it.
#[derive(Debug)]
pub enum Cloned {
    /// In the caller: the child's pid (as the caller's pid namespace sees it) and a pidfd for it.
    Parent {
        /// The child's pid in the caller's pid namespace.
        pid: i32,
        /// A pidfd for the child (close-on-exec), to signal and wait on it without pid reuse.
        pidfd: OwnedFd,
    },
    /// In the new process.
    Child,
}

/// The kernel's `struct clone_args` (linux/sched.h, `CLONE_ARGS_SIZE_VER2`): every field is a
/// 64-bit integer whatever the architecture, pointers included.
#[repr(C, align(8))]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Clones a child in the namespaces `ns`, with fork semantics (no `CLONE_VM`: the child gets a
/// copy-on-write copy of the caller's memory and file table) and `SIGCHLD` as its exit signal,
/// and returns a pidfd for it in the parent (`clone3(CLONE_PIDFD | ns)`).
///
/// The caller must be single-threaded: only the calling thread exists in the child, so a lock
/// another thread held (malloc's included) would stay locked forever in it. The emperor is. A
/// test under libtest's threaded harness may call this only if its child takes no lock (does not
/// allocate) and leaves through `_exit`, never by returning into the harness. glibc's `atfork`
/// handlers do not run in the child. In a new pid namespace the child is pid 1 and `getpid`
/// says so (glibc 2.36 keeps no pid cache).
///
/// With [`Namespaces::NEWCGROUP`] the new cgroup namespace is rooted at the cgroups the caller is
/// in at the time of the call; a child that is moved into its own cgroups afterwards should
/// instead `unshare` its cgroup namespace once placed (see [`unshare_cgroup`]).
pub fn clone_vassal(ns: Namespaces) -> std::io::Result<Cloned> {
    let mut pidfd: libc::c_int = -1;
    let args = CloneArgs {
        flags: flag(libc::CLONE_PIDFD) | ns.bits(),
        pidfd: std::ptr::from_mut(&mut pidfd) as u64,
        exit_signal: flag(libc::SIGCHLD),
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM and with a zero stack behaves as fork: the child resumes
    // here on a copy-on-write copy of the caller's stack and memory. `args` is a valid,
    // fully initialised clone_args of the size passed; the only pointer in it, `pidfd`, points at
    // a live c_int of this frame that the kernel writes in the parent before it returns. The
    // caller is single-threaded (the documented precondition), so no lock is held by a thread
    // that the child lacks.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::from_ref(&args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Cloned::Child),
        pid => {
            // SAFETY: clone3 succeeded with CLONE_PIDFD, so the kernel stored a new pidfd
            // (opened close-on-exec) in `pidfd`; nothing else in this process knows its number,
            // so the OwnedFd is its only owner.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            let pid = i32::try_from(pid)
                .map_err(|_| std::io::Error::other(format!("clone3 returned pid {pid}")))?;
            Ok(Cloned::Parent { pid, pidfd })
        }
    }
}

/// Moves the calling process into a new cgroup namespace rooted at the cgroups it is in now
/// (`unshare(CLONE_NEWCGROUP)`), so `/proc/self/cgroup` reads `/` from then on. A vassal calls it
/// once the emperor has placed it in its cgroups.
pub fn unshare_cgroup() -> std::io::Result<()> {
    // SAFETY: CLONE_NEWCGROUP changes only which cgroup directory is this process's namespace
    // root; it touches no memory, file descriptor or other thread's state.
    let ret = unsafe { libc::unshare(libc::CLONE_NEWCGROUP) };
    if ret == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling process into new namespaces of the kinds `ns` names (`unshare(2)`), as
/// uWSGI's `unshare` option does in a master run by hand. A new pid namespace holds the
/// caller's next child, not the caller.
pub fn unshare(ns: Namespaces) -> std::io::Result<()> {
    let flags = libc::c_int::try_from(ns.bits())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: unshare(2) with namespace flags only changes which namespaces this process is
    // in; it touches no memory. The caller is single-threaded for CLONE_NEWNS (the kernel
    // refuses it otherwise).
    let ret = unsafe { libc::unshare(flags) };
    if ret == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Ends the calling process at once with `code` (`_exit`): no destructor, atexit handler or stdio
/// flush runs. The way out of a cloned child that failed before exec, which must never return or
/// unwind into the code it was cloned from.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointer and does not return; it leaves the process without running
    // anything of this one, which is the point.
    unsafe { libc::_exit(code) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::os::fd::AsFd;

    use rustix::process::{WaitId, WaitIdOptions};

    /// Waits for the child behind `pidfd` to exit and returns its exit code (or 1000 + the
    /// signal that killed it).
    fn wait_exit(pidfd: &OwnedFd) -> i32 {
        let status = rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED)
            .expect("waitid")
            .expect("an exited child");
        status
            .exit_status()
            .or_else(|| status.terminating_signal().map(|s| 1000 + s))
            .expect("an exit status or signal")
    }

    /// Runs `checks` in a child cloned in `ns` and returns its exit code. The child takes no
    /// lock (the checks must not allocate) and leaves through `_exit`.
    fn in_child(ns: Namespaces, checks: fn() -> i32) -> (i32, i32) {
        match clone_vassal(ns).expect("clone3") {
            Cloned::Child => {
                let code = std::panic::catch_unwind(checks).unwrap_or(99);
                exit_now(code)
            }
            Cloned::Parent { pid, pidfd } => (pid, wait_exit(&pidfd)),
        }
    }

    #[test]
    fn parses_uwsgi_names_and_prints_them_back() {
        let all = Namespaces::parse("pid,uts, net ipc,mnt").unwrap();
        assert_eq!(all.to_string(), "fs,ipc,uts,net,pid");
        assert_eq!(Namespaces::parse(&all.to_string()).unwrap(), all);
        for fs in ["fs", "ns", "mount", "mnt"] {
            assert_eq!(Namespaces::parse(fs).unwrap(), Namespaces::NEWNS);
        }
        let extra = Namespaces::parse("user cgroup fs fs").unwrap();
        assert_eq!(extra.to_string(), "fs,cgroup,user");
        assert!(extra.contains(Namespaces::NEWUSER | Namespaces::NEWCGROUP));
        assert!(!extra.contains(Namespaces::NEWNET));
        assert_eq!(
            extra.difference(Namespaces::NEWCGROUP).to_string(),
            "fs,user"
        );
        assert_eq!(
            Namespaces::NEWNET.union(Namespaces::NEWPID).bits(),
            (libc::CLONE_NEWNET | libc::CLONE_NEWPID) as u64
        );
        let none = Namespaces::parse(" none ").unwrap();
        assert!(none.is_empty());
        assert_eq!(none.to_string(), "none");
    }

    #[test]
    fn refuses_unknown_names_naming_the_word() {
        let err = Namespaces::parse("pid,nett,uts").unwrap_err();
        assert_eq!(err.word, "nett");
        assert_eq!(
            err.to_string(),
            "unknown namespace `nett`\nhint: the names are fs (or ns, mount, mnt), ipc, uts, net, \
             pid, cgroup, user, or none alone"
        );
        assert_eq!(
            Namespaces::parse("none,net").unwrap_err().to_string(),
            "`none` cannot be combined with other namespaces"
        );
        assert_eq!(
            Namespaces::parse(" , ").unwrap_err().to_string(),
            "empty namespace list\nhint: write `none` for no new namespace"
        );
        assert_eq!(Namespaces::parse("PID").unwrap_err().word, "PID");
    }

    /// In the child: pid 1, its own hostname, its own loopback. Allocation-free; each failed
    /// check exits with its own code.
    fn namespace_checks() -> i32 {
        if rustix::process::getpid().as_raw_nonzero().get() != 1 {
            return 10;
        }
        if rustix::system::sethostname(b"liege-clone-test").is_err() {
            return 11;
        }
        if rustix::system::uname().nodename().to_bytes() != b"liege-clone-test" {
            return 12;
        }
        // A new net namespace: lo is down, so 127.0.0.1 can be bound but not reached.
        let Ok(listener) = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))) else {
            return 13;
        };
        let Ok(addr) = listener.local_addr() else {
            return 14;
        };
        if TcpStream::connect(addr).is_ok() {
            return 15;
        }
        if crate::netif::loopback_up().is_err() {
            return 16;
        }
        if TcpStream::connect(addr).is_err() {
            return 17;
        }
        // Up already: a second call is a no-op.
        if crate::netif::loopback_up().is_err() {
            return 18;
        }
        0
    }

    #[test]
    fn a_child_in_new_namespaces_is_pid_1_with_its_own_hostname_and_loopback() {
        let host = rustix::system::uname().nodename().to_owned();
        let ns = Namespaces::parse("pid,uts,net,ipc,ns").unwrap();
        let (pid, code) = in_child(ns, namespace_checks);
        assert!(pid > 1, "the host pid {pid}");
        assert_eq!(
            code, 0,
            "the check that failed in the child (see namespace_checks)"
        );
        assert_eq!(rustix::system::uname().nodename(), host.as_c_str());
    }

    #[test]
    fn a_child_without_new_namespaces_shares_the_hosts() {
        fn checks() -> i32 {
            i32::from(rustix::process::getpid().as_raw_nonzero().get() == 1)
        }
        let (pid, code) = in_child(Namespaces::empty(), checks);
        assert!(pid > 1);
        assert_eq!(code, 0);
    }

    #[test]
    fn the_pidfd_names_the_child() {
        match clone_vassal(Namespaces::empty()).expect("clone3") {
            Cloned::Child => exit_now(7),
            Cloned::Parent { pid, pidfd } => {
                let fdinfo = format!(
                    "/proc/self/fdinfo/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&pidfd)
                );
                let text = fs_err_free_read(&fdinfo);
                assert!(
                    text.lines().any(|l| l == format!("Pid:\t{pid}")),
                    "{fdinfo}: {text}"
                );
                assert_eq!(wait_exit(&pidfd), 7);
            }
        }
    }

    /// Reads a /proc text file (this crate does not depend on fs-err, so the path goes in the
    /// panic message by hand).
    #[allow(clippy::disallowed_methods)]
    fn fs_err_free_read(path: &str) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn unshare_cgroup_roots_the_namespace_where_the_process_is() {
        fn checks() -> i32 {
            if unshare_cgroup().is_err() {
                return 10;
            }
            // Every line of /proc/self/cgroup now ends in ":/"; read it without allocating.
            let Ok(fd) = rustix::fs::open(
                "/proc/self/cgroup",
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) else {
                return 11;
            };
            let mut buf = [0u8; 4096];
            let Ok(n) = rustix::io::read(&fd, &mut buf) else {
                return 12;
            };
            let text = &buf[..n];
            if n == 0
                || text
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .any(|l| !l.ends_with(b":/"))
            {
                return 13;
            }
            0
        }
        let (_, code) = in_child(Namespaces::empty(), checks);
        assert_eq!(code, 0);
    }
}
