//! Spawning one vassal's master: clone it in its namespaces, hold it until the emperor has put
//! it in its cgroups, then let it set itself up and exec the liege binary.
//!
//! The steps, in the order the code takes them:
//!
//! 1. Parent, before the clone: check the fd map, build the exec pointer arrays, make a sync
//!    pipe and an error pipe (both close-on-exec), and copy the error pipe's write end and the
//!    binary's fd above every target of the fd map, where the moves cannot replace them.
//!    Nothing the child does after the clone allocates: the pointer arrays and the room for the
//!    fd copies are made here.
//! 2. `clone3(CLONE_PIDFD | namespaces)`, fork semantics. `cgroup` is left out of the clone and
//!    unshared by the child once it is placed (step 5), so its cgroup namespace is rooted at its
//!    own cgroups and not at the emperor's.
//! 3. Child: reset signal dispositions and the blocked mask, then wait for one byte on the sync
//!    pipe. End of file means the emperor gave up: exit 1 at once.
//! 4. Parent: `place(pid)` (the emperor writes the pid into `ROOT/NAME` of every hierarchy and
//!    the limits). If it fails: SIGKILL through the pidfd, reap, [`SpawnError::Place`].
//!    Otherwise write the go byte.
//! 5. Child: unshare the cgroup namespace (if `cgroup`), set the hostname to the vassal's name
//!    (if `uts`), bring `lo` up (if `net`), [the jail of issue 5], move the fd map into place,
//!    mark everything else close-on-exec, exec the binary held as an fd. A failed step writes
//!    (step, errno) on the error pipe and `_exit(127)`s: the child never returns or unwinds
//!    into the emperor's code.
//! 6. Parent: read the error pipe to end of file. Nothing = the exec succeeded (the pipe closed
//!    on exec); a report = [`SpawnError::Child`], after reaping the child.
//!
//! No `PDEATHSIG`: vassals outlive their emperor on purpose.

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::panic::AssertUnwindSafe;

use liege_sys::Namespaces;
use liege_sys::clone::{Cloned, clone_vassal, exit_now, unshare_cgroup};
use liege_sys::exec::{ExecArgs, cloexec_from, dup_onto, reset_signals};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;
use rustix::process::{Signal, WaitId, WaitIdOptions};

/// What to spawn: one vassal master.
#[derive(Debug)]
pub struct SpawnRequest<'a> {
    /// The vassal's name: its hostname in a new uts namespace.
    pub name: &'a str,
    /// The namespaces to create for it.
    pub namespaces: Namespaces,
    /// The liege binary, opened `O_PATH | O_CLOEXEC` by the emperor (an ELF binary: a script
    /// cannot be exec'd from a close-on-exec fd).
    pub exe: BorrowedFd<'a>,
    /// The argument vector, `argv[0]` included (e.g. `liege [vassal NAME]`).
    pub args: Vec<CString>,
    /// The whole environment, each `KEY=VALUE`.
    pub env: Vec<CString>,
    /// The working directory the binary starts in (uWSGI runs a vassal from its file's
    /// folder); `None` keeps the emperor's.
    pub cwd: Option<&'a std::ffi::CStr>,
    /// Descriptors the child gets, each at the fixed number beside it (`/dev/null` at 0, the log
    /// pipe at 1 and 2, the control listener at 3, the config memfd at 4, ...). Every other
    /// descriptor of the emperor is closed on exec, so 0, 1 and 2 belong here too. A source may
    /// sit at another entry's target number, and one source may go to several targets.
    pub fds: Vec<(BorrowedFd<'a>, i32)>,
}

/// A vassal master that was spawned: it exec'd the binary.
#[derive(Debug)]
pub struct Spawned {
    /// Its pid in the emperor's pid namespace.
    pub pid: i32,
    /// A pidfd for it, close-on-exec: signal and wait through this, never through the pid.
    pub pidfd: OwnedFd,
}

/// The step of the child's setup that failed, as its report names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildStep {
    /// Resetting signal dispositions and the blocked mask.
    Signals,
    /// Reading the go byte from the sync pipe.
    Wait,
    /// Unsharing the cgroup namespace once placed.
    CgroupNamespace,
    /// Setting the hostname in the new uts namespace.
    Hostname,
    /// Bringing up `lo` in the new net namespace.
    Loopback,
    /// Changing to the vassal's working directory.
    Chdir,
    /// Copying descriptor `fd` of the map above every target before the moves.
    DupHigh {
        /// The source descriptor (the emperor's number).
        fd: i32,
    },
    /// Marking every descriptor close-on-exec before the moves.
    Cloexec,
    /// Putting a descriptor at number `target`.
    Dup {
        /// The number it was to take.
        target: i32,
    },
    /// The exec of the binary.
    Exec,
}

impl ChildStep {
    /// Encodes the step as its report's tag and argument.
    fn encode(self) -> (u8, i32) {
        match self {
            ChildStep::Signals => (1, 0),
            ChildStep::Wait => (2, 0),
            ChildStep::CgroupNamespace => (3, 0),
            ChildStep::Hostname => (4, 0),
            ChildStep::Loopback => (5, 0),
            ChildStep::DupHigh { fd } => (6, fd),
            ChildStep::Cloexec => (7, 0),
            ChildStep::Dup { target } => (8, target),
            ChildStep::Exec => (9, 0),
            ChildStep::Chdir => (10, 0),
        }
    }

    fn decode(tag: u8, arg: i32) -> Option<ChildStep> {
        Some(match tag {
            1 => ChildStep::Signals,
            2 => ChildStep::Wait,
            3 => ChildStep::CgroupNamespace,
            4 => ChildStep::Hostname,
            5 => ChildStep::Loopback,
            6 => ChildStep::DupHigh { fd: arg },
            7 => ChildStep::Cloexec,
            8 => ChildStep::Dup { target: arg },
            9 => ChildStep::Exec,
            10 => ChildStep::Chdir,
            _ => return None,
        })
    }
}

impl fmt::Display for ChildStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildStep::Signals => f.write_str("resetting signals"),
            ChildStep::Wait => f.write_str("waiting to be placed"),
            ChildStep::CgroupNamespace => f.write_str("unsharing the cgroup namespace"),
            ChildStep::Hostname => f.write_str("setting the hostname"),
            ChildStep::Loopback => f.write_str("bringing up lo"),
            ChildStep::DupHigh { fd } => write!(f, "copying descriptor {fd}"),
            ChildStep::Cloexec => f.write_str("marking descriptors close-on-exec"),
            ChildStep::Dup { target } => write!(f, "moving a descriptor to {target}"),
            ChildStep::Exec => f.write_str("exec"),
            ChildStep::Chdir => f.write_str("changing to the working directory"),
        }
    }
}

/// Why a vassal could not be spawned. When [`spawn`] returns one of these no child is left:
/// one that was cloned has been killed if need be and reaped.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// Two entries of the fd map give the same number.
    #[error("the fd map gives descriptor {target} twice")]
    DuplicateTarget {
        /// The number given twice.
        target: i32,
    },
    /// An entry of the fd map has a negative target.
    #[error("the fd map has a negative target {target}")]
    NegativeTarget {
        /// The target.
        target: i32,
    },
    /// A pipe could not be made.
    #[error("making the {which} pipe: {errno}")]
    Pipe {
        /// `sync` or `error`.
        which: &'static str,
        /// Why.
        errno: Errno,
    },
    /// The binary's descriptor could not be copied above the fd map's targets.
    #[error("copying the binary's descriptor: {errno}")]
    Exe {
        /// Why.
        errno: Errno,
    },
    /// `clone3` failed.
    #[error("clone3 with namespaces {namespaces}: {source}")]
    Clone {
        /// The namespaces asked for.
        namespaces: Namespaces,
        /// Why.
        source: std::io::Error,
    },
    /// The caller's `place` failed; the child was killed and reaped.
    #[error("placing pid {pid}: {message}")]
    Place {
        /// The child's pid.
        pid: i32,
        /// What `place` said.
        message: String,
    },
    /// The go byte could not be written (the child died before it); the child was reaped.
    #[error("releasing pid {pid}: {errno}")]
    Go {
        /// The child's pid.
        pid: i32,
        /// Why.
        errno: Errno,
    },
    /// The error pipe could not be read; the child was killed and reaped.
    #[error("reading the error pipe of pid {pid}: {errno}")]
    ErrorPipe {
        /// The child's pid.
        pid: i32,
        /// Why.
        errno: Errno,
    },
    /// The child reported a failed step before exec; it was reaped.
    #[error("pid {pid} failed {step}: {errno}")]
    Child {
        /// The child's pid.
        pid: i32,
        /// The step that failed.
        step: ChildStep,
        /// Why.
        errno: Errno,
    },
    /// The child wrote something on the error pipe that is not a report; it was killed and
    /// reaped.
    #[error("pid {pid} wrote a malformed report of {len} bytes on the error pipe")]
    BadReport {
        /// The child's pid.
        pid: i32,
        /// How many bytes it wrote.
        len: usize,
    },
}

/// The size of a child's report: step tag, step argument, errno.
const REPORT_LEN: usize = 9;

/// Spawns the vassal master of `req` (see the module doc for the steps) and returns it once it
/// has exec'd the binary. `place` is called with the child's pid while the child waits, before
/// any of its own setup runs; an error from it kills the child.
///
/// The caller must be single-threaded (the emperor is): the child is a fork of it. Tests under
/// libtest's threads may call it too, since the child allocates and locks nothing before exec.
/// The child inherits the caller's cwd, umask, rlimits, scheduling and uid; its signal mask and
/// dispositions are reset.
pub fn spawn(
    req: &SpawnRequest<'_>,
    place: &mut dyn FnMut(i32) -> Result<(), String>,
) -> Result<Spawned, SpawnError> {
    // 1. Everything the child needs, made before the clone so it allocates nothing.
    let mut targets: Vec<i32> = req.fds.iter().map(|&(_, target)| target).collect();
    targets.sort_unstable();
    if let Some(&target) = targets.first().filter(|&&t| t < 0) {
        return Err(SpawnError::NegativeTarget { target });
    }
    if let Some(pair) = targets.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(SpawnError::DuplicateTarget { target: pair[0] });
    }
    let above_targets = targets.last().map_or(0, |&t| t.saturating_add(1));
    let exec = ExecArgs::new(&req.args, &req.env);
    let mut copies: Vec<OwnedFd> = Vec::with_capacity(req.fds.len());
    let (sync_read, sync_write) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|errno| SpawnError::Pipe {
            which: "sync",
            errno,
        })?;
    let (error_read, error_low) =
        rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(|errno| SpawnError::Pipe {
            which: "error",
            errno,
        })?;
    // The two descriptors the child uses after the fd moves are lifted above every target, so
    // that no move replaces them. The low write end is closed at once: a copy of it left open
    // here would keep the error pipe from ever reading end of file.
    let error_write = rustix::io::fcntl_dupfd_cloexec(&error_low, above_targets);
    drop(error_low);
    let error_write = error_write.map_err(|errno| SpawnError::Pipe {
        which: "error",
        errno,
    })?;
    let exe = rustix::io::fcntl_dupfd_cloexec(req.exe, above_targets)
        .map_err(|errno| SpawnError::Exe { errno })?;

    // 2. The clone; `cgroup` waits until the child is placed.
    let clone_ns = req.namespaces.difference(Namespaces::NEWCGROUP);
    let cloned = clone_vassal(clone_ns).map_err(|source| SpawnError::Clone {
        namespaces: clone_ns,
        source,
    })?;
    let (pid, pidfd) = match cloned {
        Cloned::Child => {
            // Our copies of the parent's ends: closed, so that the parent's going away reads as
            // end of file and the error pipe ends at exec.
            drop(sync_write);
            drop(error_read);
            let child = Child {
                req,
                exe: exe.as_fd(),
                exec: &exec,
                copies: &mut copies,
                above_targets,
            };
            child.run(&sync_read, &error_write)
        }
        Cloned::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(sync_read);
    drop(error_write);
    drop(exe);

    // 4. Place the child, then release it.
    if let Err(message) = place(pid) {
        kill_and_reap(&pidfd);
        return Err(SpawnError::Place { pid, message });
    }
    if let Err(errno) = write_all(&sync_write, b"g") {
        kill_and_reap(&pidfd);
        return Err(SpawnError::Go { pid, errno });
    }
    drop(sync_write);

    // 6. End of file with nothing before it: the error pipe closed on exec.
    let mut report = [0u8; REPORT_LEN];
    let len = match read_to_end(&error_read, &mut report) {
        Ok(len) => len,
        Err(errno) => {
            kill_and_reap(&pidfd);
            return Err(SpawnError::ErrorPipe { pid, errno });
        }
    };
    if len == 0 {
        return Ok(Spawned { pid, pidfd });
    }
    let [tag, a0, a1, a2, a3, e0, e1, e2, e3] = report;
    let step = ChildStep::decode(tag, i32::from_le_bytes([a0, a1, a2, a3]));
    kill_and_reap(&pidfd);
    match step {
        Some(step) if len == REPORT_LEN => Err(SpawnError::Child {
            pid,
            step,
            errno: Errno::from_raw_os_error(i32::from_le_bytes([e0, e1, e2, e3])),
        }),
        _ => Err(SpawnError::BadReport { pid, len }),
    }
}

/// The child's side, from the clone to the exec. Everything it touches was made before the
/// clone; it allocates nothing and takes no lock.
struct Child<'r, 'a> {
    req: &'r SpawnRequest<'a>,
    /// The binary, at a number above every target.
    exe: BorrowedFd<'r>,
    exec: &'r ExecArgs<'r>,
    /// Room for one copy per fd map entry, reserved before the clone.
    copies: &'r mut Vec<OwnedFd>,
    /// The lowest number above every target.
    above_targets: i32,
}

/// How the child's setup ended without an exec.
enum Failed {
    /// The emperor closed the sync pipe without the go byte.
    GaveUp,
    /// A step failed with an errno.
    Step(ChildStep, i32),
}

impl Child<'_, '_> {
    /// Runs the child's steps and execs, or reports the failed step on `error` (a number above
    /// every target, which the fd moves leave alone) and exits: never returns, and never unwinds
    /// into the emperor's code.
    fn run(self, sync: &OwnedFd, error: &OwnedFd) -> ! {
        let failed = std::panic::catch_unwind(AssertUnwindSafe(|| self.steps(sync)));
        match failed {
            Ok(Failed::GaveUp) => exit_now(1),
            Ok(Failed::Step(step, errno)) => {
                let (tag, arg) = step.encode();
                let mut report = [0u8; REPORT_LEN];
                report[0] = tag;
                report[1..5].copy_from_slice(&arg.to_le_bytes());
                report[5..].copy_from_slice(&errno.to_le_bytes());
                // Best effort: a report shorter than PIPE_BUF is written whole or not at all.
                let _ = rustix::io::write(error, &report);
                exit_now(127)
            }
            Err(_) => exit_now(127),
        }
    }

    /// The steps, in order; returns only on failure.
    fn steps(self, sync: &OwnedFd) -> Failed {
        let ns = self.req.namespaces;
        // 3. No handler of the emperor's may run here, and no signal may stay blocked or
        // ignored in the vassal.
        if let Err(e) = reset_signals() {
            return Failed::Step(ChildStep::Signals, os_errno(&e));
        }
        // Wait for the emperor to place this process in its cgroups.
        let mut go = [0u8; 1];
        loop {
            match rustix::io::read(sync, &mut go) {
                Ok(0) => return Failed::GaveUp,
                Ok(_) => break,
                Err(Errno::INTR) => {}
                Err(errno) => return Failed::Step(ChildStep::Wait, errno.raw_os_error()),
            }
        }

        // 5. Placed: the cgroup namespace is rooted here, at the vassal's own cgroups.
        if ns.contains(Namespaces::NEWCGROUP)
            && let Err(e) = unshare_cgroup()
        {
            return Failed::Step(ChildStep::CgroupNamespace, os_errno(&e));
        }
        if ns.contains(Namespaces::NEWUTS)
            && let Err(errno) = rustix::system::sethostname(self.req.name.as_bytes())
        {
            return Failed::Step(ChildStep::Hostname, errno.raw_os_error());
        }
        if ns.contains(Namespaces::NEWNET)
            && let Err(e) = liege_sys::netif::loopback_up()
        {
            return Failed::Step(ChildStep::Loopback, os_errno(&e));
        }

        if let Some(dir) = self.req.cwd
            && let Err(errno) = rustix::process::chdir(dir)
        {
            return Failed::Step(ChildStep::Chdir, errno.raw_os_error());
        }

        // The jail (issue 5) slots in here, still as root and with every emperor descriptor
        // open: mounts in the new mount namespace, pivot_root into the vassal's root, then the
        // privilege drop (capabilities, no_new_privs). `req.exe` was opened before the clone,
        // so the binary stays reachable after pivot_root. seccomp goes last, just before the
        // exec below, and must allow dup2, close_range and execveat.

        // The fd map. Every source is first copied above every target, so that moving one
        // entry onto its number cannot close the source of another; then everything is marked
        // close-on-exec, and each copy is moved onto its target without the flag.
        for &(fd, _) in &self.req.fds {
            match rustix::io::fcntl_dupfd_cloexec(fd, self.above_targets) {
                // Within the capacity reserved before the clone: no allocation.
                Ok(copy) => self.copies.push(copy),
                Err(errno) => {
                    return Failed::Step(
                        ChildStep::DupHigh { fd: fd.as_raw_fd() },
                        errno.raw_os_error(),
                    );
                }
            }
        }
        if let Err(e) = cloexec_from(0) {
            return Failed::Step(ChildStep::Cloexec, os_errno(&e));
        }
        for (copy, &(_, target)) in self.copies.iter().zip(&self.req.fds) {
            if let Err(e) = dup_onto(copy.as_fd(), target) {
                return Failed::Step(ChildStep::Dup { target }, os_errno(&e));
            }
        }

        let e = self.exec.exec(self.exe);
        Failed::Step(ChildStep::Exec, os_errno(&e))
    }
}

/// The errno of an error from a syscall (EIO if it carries none).
fn os_errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Writes all of `bytes` to `fd`, retrying on EINTR.
fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
    Ok(())
}

/// Reads `fd` to end of file into `buf`, retrying on EINTR; returns how many bytes came (more
/// than `buf` holds counts but is dropped).
fn read_to_end(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut len = 0;
    let mut spill = [0u8; 64];
    loop {
        let into = if len < buf.len() {
            &mut buf[len..]
        } else {
            &mut spill[..]
        };
        match rustix::io::read(fd, into) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

/// SIGKILLs the child behind `pidfd` (it may be dead already) and reaps it.
fn kill_and_reap(pidfd: &OwnedFd) {
    let _ = rustix::process::pidfd_send_signal(pidfd, Signal::KILL);
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED) {
            Err(Errno::INTR) => {}
            _ => return,
        }
    }
}
