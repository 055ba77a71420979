//! Starting a worker executable with its handoff (see `liege_proto::handoff`): the listening
//! sockets, the options and the scoreboard as inherited descriptors, named in the environment.
//! The master is single-threaded, so clearing close-on-exec on those descriptors just for the
//! spawn cannot leak them into a child started by another thread; they are close-on-exec again
//! before `spawn` returns, so later children (cron jobs, daemons) never inherit them.
//!
//! Every child is tracked by a pidfd opened right after the spawn: the child is not reaped yet
//! (only the master reaps, in its loop), so its pid cannot have been reused.

use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use crate::exe::Program;
use std::process::Stdio;

use liege_proto::emperor;
use liege_proto::handoff::{self, Role};
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use rustix::io::FdFlags;
use rustix::process::{Pid, PidfdFlags};

/// A child the master started (or that a zygote forked for it), and the pidfd it is addressed by.
#[derive(Debug)]
pub(crate) struct Child {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
}

/// A child could not be started.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    #[error("cannot pass descriptor {fd} to a child: {source}")]
    Inherit { fd: i32, source: rustix::io::Errno },
    #[error("cannot reopen the options for a child: {0}")]
    Options(rustix::io::Errno),
    #[error("cannot start `{exe}`: {source}")]
    Exec {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open a pidfd for the new process {pid}: {source}")]
    Pidfd { pid: i32, source: rustix::io::Errno },
}

/// Clears close-on-exec on some descriptors until dropped.
struct Inherit<'a> {
    fds: Vec<BorrowedFd<'a>>,
}

impl<'a> Inherit<'a> {
    fn new(fds: impl IntoIterator<Item = BorrowedFd<'a>>) -> Result<Self, SpawnError> {
        let mut guard = Inherit { fds: Vec::new() };
        for fd in fds {
            rustix::io::fcntl_setfd(fd, FdFlags::empty()).map_err(|source| {
                SpawnError::Inherit {
                    fd: fd.as_raw_fd(),
                    source,
                }
            })?;
            guard.fds.push(fd);
        }
        Ok(guard)
    }
}

impl Drop for Inherit<'_> {
    fn drop(&mut self) {
        for fd in &self.fds {
            let _ = rustix::io::fcntl_setfd(fd, FdFlags::CLOEXEC);
        }
    }
}

/// What every worker of a generation is handed.
#[derive(Debug)]
pub(crate) struct Handoff<'a> {
    pub(crate) exe: &'a Program,
    /// The listening sockets, in the order `sockets_env` names them.
    pub(crate) sockets: Vec<BorrowedFd<'a>>,
    /// [`handoff::SOCKETS`]'s value.
    pub(crate) sockets_env: String,
    /// The sealed options memfd of the generation.
    pub(crate) options: BorrowedFd<'a>,
    pub(crate) scoreboard: BorrowedFd<'a>,
    /// What the `putenv` hooks set (`None`: removed), in order.
    pub(crate) env: &'a [(std::ffi::OsString, Option<std::ffi::OsString>)],
}

/// Writes the options list into a sealed memfd, made once per generation.
pub(crate) fn options_memfd(options: &[(String, String)]) -> std::io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(
        "liege-options",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let bytes = handoff::encode_options(options.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut file = std::fs::File::from(fd);
    file.write_all(&bytes)?;
    let fd = OwnedFd::from(file);
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )?;
    Ok(fd)
}

/// A descriptor of its own onto the options memfd, at offset 0, so that a worker reading it
/// does not move the offset another worker reads from. Falls back to a duplicate (shared
/// offset) where /proc is not mounted.
fn reopen(memfd: BorrowedFd<'_>) -> Result<OwnedFd, SpawnError> {
    let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
    match rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(_) => rustix::io::fcntl_dupfd_cloexec(memfd, 3).map_err(SpawnError::Options),
    }
}

/// Starts `h.exe` in `role`: as worker `slot` (its scoreboard slot) or as a zygote with
/// `zygote` as its control socket.
pub(crate) fn spawn(
    h: &Handoff<'_>,
    role: Role,
    slot: Option<usize>,
    zygote: Option<BorrowedFd<'_>>,
) -> Result<Child, SpawnError> {
    let options = reopen(h.options)?;
    let mut cmd = h.exe.command();
    // A worker never sees the emperor's descriptors (they are close-on-exec in the master) nor
    // the variables that name them.
    cmd.stdin(Stdio::null())
        .env_remove(emperor::CONTROL_FD)
        .env_remove(emperor::CONFIG_FD)
        .env_remove(emperor::LOG_FD)
        .env_remove(emperor::RUN_DIR_FD)
        .env(handoff::ROLE, role.as_str())
        .env(handoff::SOCKETS, &h.sockets_env)
        .env(handoff::OPTIONS_FD, options.as_raw_fd().to_string())
        .env(handoff::SCOREBOARD_FD, h.scoreboard.as_raw_fd().to_string());
    for (name, value) in h.env {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    match slot {
        Some(id) => cmd.env(handoff::WORKER_ID, id.to_string()),
        None => cmd.env_remove(handoff::WORKER_ID),
    };
    match zygote {
        Some(fd) => cmd.env(handoff::ZYGOTE_FD, fd.as_raw_fd().to_string()),
        None => cmd.env_remove(handoff::ZYGOTE_FD),
    };
    let fds = h
        .sockets
        .iter()
        .copied()
        .chain([options.as_fd(), h.scoreboard])
        .chain(zygote);
    let child = {
        let _inherit = Inherit::new(fds)?;
        cmd.spawn().map_err(|source| SpawnError::Exec {
            exe: h.exe.path.clone(),
            source,
        })?
    };
    track(child)
}

/// Opens the pidfd of a child just spawned by `Command` (not reaped: its pid is its own).
fn track(mut child: std::process::Child) -> Result<Child, SpawnError> {
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let opened = Pid::from_raw(pid)
        .ok_or(rustix::io::Errno::SRCH)
        .and_then(|p| rustix::process::pidfd_open(p, PidfdFlags::empty()));
    match opened {
        Ok(pidfd) => Ok(Child { pid, pidfd }),
        Err(source) => {
            // Unreaped, so the pid still names our child; the master's loop reaps it.
            let _ = child.kill();
            Err(SpawnError::Pidfd { pid, source })
        }
    }
}

/// Opens the pidfd of `pid`, which a zygote says it forked for the master, and checks the
/// process is the master's own child (`waitid` on a pidfd answers only for one's children),
/// so a zygote cannot make the master signal a process that is not its worker.
pub(crate) fn adopt(pid: i32) -> Result<Child, rustix::io::Errno> {
    let p = Pid::from_raw(pid).ok_or(rustix::io::Errno::SRCH)?;
    let pidfd = rustix::process::pidfd_open(p, PidfdFlags::empty())?;
    rustix::process::waitid(
        rustix::process::WaitId::PidFd(pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED
            | rustix::process::WaitIdOptions::NOHANG
            | rustix::process::WaitIdOptions::NOWAIT,
    )?;
    Ok(Child { pid, pidfd })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn options_memfd_is_sealed_and_each_reader_starts_at_zero() {
        let list = vec![("processes".to_string(), "2".to_string())];
        let fd = options_memfd(&list).unwrap();
        assert!(
            rustix::io::write(&fd, b"x").is_err(),
            "sealed against writes"
        );
        for _ in 0..2 {
            let mut f = std::fs::File::from(reopen(fd.as_fd()).unwrap());
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            assert_eq!(handoff::decode_options(&bytes).unwrap(), list);
        }
    }

    #[test]
    fn a_child_gets_the_descriptors_and_the_master_keeps_them_close_on_exec() {
        let (listen, _peer) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let opts = options_memfd(&[]).unwrap();
        let (board, _map) = liege_sys::shm::SharedWords::create("t", 8).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = dir.path().join("w");
        // The child lists the descriptors named in its environment that are open.
        fs_err::write(
            &script,
            format!(
                "#!/bin/sh\nfor fd in ${{{}%%,*}} ${} ${}; do [ -e /proc/self/fd/$fd ] && echo $fd; done > {}\necho \"$LIEGE_ROLE $LIEGE_WORKER_ID\" >> {}\n",
                handoff::SOCKETS,
                handoff::OPTIONS_FD,
                handoff::SCOREBOARD_FD,
                out.display(),
                out.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let h = Handoff {
            exe: &Program::open(script.clone()).unwrap(),
            sockets: vec![listen.as_fd()],
            sockets_env: format!("{},http,test", listen.as_raw_fd()),
            options: opts.as_fd(),
            scoreboard: board.as_fd(),
            env: &[],
        };
        let child = spawn(&h, Role::Worker, Some(3), None).unwrap();
        let status = rustix::process::waitpid(
            Pid::from_raw(child.pid),
            rustix::process::WaitOptions::empty(),
        )
        .unwrap()
        .unwrap()
        .1;
        assert_eq!(status.exit_status(), Some(0));
        let text = fs_err::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.len(),
            4,
            "three descriptors open, then the role: {text}"
        );
        assert_eq!(lines[0], listen.as_raw_fd().to_string());
        assert_eq!(lines[2], board.as_raw_fd().to_string());
        assert_eq!(lines[3], "worker 3");
        for fd in [listen.as_fd(), opts.as_fd(), board.as_fd()] {
            assert!(
                rustix::io::fcntl_getfd(fd)
                    .unwrap()
                    .contains(FdFlags::CLOEXEC)
            );
        }
    }

    #[test]
    fn adopt_refuses_a_process_that_is_not_our_child() {
        // Our parent (the test runner's parent) is no child of ours.
        let parent = rustix::process::getppid().unwrap().as_raw_nonzero().get();
        assert_eq!(adopt(parent).unwrap_err(), rustix::io::Errno::CHILD);
    }
}
