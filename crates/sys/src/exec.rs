//! Exec from a cloned child: put the descriptors the new program gets at their numbers, mark
//! every other one close-on-exec, reset the signal state, and exec a binary held open as an fd
//! (`execveat`), so the program run is the one opened before the clone whatever happens to its
//! path since.
//!
//! These functions are meant for a child between `clone` and `exec`, which either execs or
//! `_exit`s: they change process-wide state (descriptor numbers, signal dispositions) that the
//! code the child was cloned from does not expect. Each one that can be needed after a clone
//! takes no lock and allocates nothing.

use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};

/// An argument vector and an environment made ready for `execve`: the null-terminated pointer
/// arrays are built when this is made, so [`ExecArgs::exec`] allocates nothing (a cloned child of
/// a threaded process must not).
pub struct ExecArgs<'a> {
    argv: Vec<*const c_char>,
    env: Vec<*const c_char>,
    strings: PhantomData<&'a CStr>,
}

impl<'a> ExecArgs<'a> {
    /// Builds the pointer arrays for `argv` and `env` (each `KEY=VALUE`), which must outlive
    /// this.
    pub fn new(argv: &'a [CString], env: &'a [CString]) -> ExecArgs<'a> {
        let nul_terminated = |strings: &'a [CString]| {
            strings
                .iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        ExecArgs {
            argv: nul_terminated(argv),
            env: nul_terminated(env),
            strings: PhantomData,
        }
    }

    /// Execs the program open at `exe` with these arguments and environment
    /// (`execveat(exe, "", argv, env, AT_EMPTY_PATH)`). Returns only if the exec failed, with
    /// why; on success the calling process runs the new program, whose descriptors are the
    /// caller's except those marked close-on-exec.
    ///
    /// `exe` may be opened `O_PATH`, and close-on-exec for an ELF binary. A script (`#!`)
    /// opened close-on-exec fails with `ENOENT`, since its interpreter would open it by a
    /// `/dev/fd` path that the exec closed.
    pub fn exec(&self, exe: BorrowedFd<'_>) -> std::io::Error {
        // SAFETY: `exe` is a live descriptor borrowed for the call; the path is an empty C
        // string; `argv` and `env` are null-terminated arrays of pointers to C strings that
        // `self` borrows for 'a, so they are all valid while the kernel reads them. On success
        // the call does not return, and the process image that owned this memory is gone.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_execveat,
                exe.as_raw_fd(),
                c"".as_ptr(),
                self.argv.as_ptr(),
                self.env.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        debug_assert_eq!(ret, -1, "execveat returned");
        std::io::Error::last_os_error()
    }
}

impl fmt::Debug for ExecArgs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecArgs")
            .field("argc", &(self.argv.len() - 1))
            .field("envc", &(self.env.len() - 1))
            .finish()
    }
}

/// Execs the program open at `exe` with `argv` and `env` (each `KEY=VALUE`) by
/// `execveat(exe, "", argv, env, AT_EMPTY_PATH)`; returns only on failure, with why. It allocates
/// the pointer arrays first; a child that must not allocate builds an [`ExecArgs`] before the
/// clone and calls [`ExecArgs::exec`].
pub fn exec_fd(exe: BorrowedFd<'_>, argv: &[CString], env: &[CString]) -> std::io::Error {
    ExecArgs::new(argv, env).exec(exe)
}

/// Marks every descriptor numbered `first` or above close-on-exec
/// (`close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`), so that only those below `first`, where the
/// caller put what the next program gets, survive an exec. Nothing is closed now.
pub fn cloexec_from(first: i32) -> std::io::Result<()> {
    let first = libc::c_uint::try_from(first).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "negative first descriptor",
        )
    })?;
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC takes no pointer and closes nothing: it only
    // sets the close-on-exec flag, so every descriptor stays valid for whoever owns it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Makes descriptor number `target` a copy of `fd`, without close-on-exec, so the next program
/// finds `fd` there (`dup2`). Whatever `target` held is closed first.
///
/// Only for a child between clone and exec (or `_exit`): any owner of the old `target` in this
/// process (an `OwnedFd` of the code the child was cloned from) now holds another file, which is
/// harmless only because that code never runs again in this process. `fd` and `target` must
/// differ: `dup2` of a descriptor onto itself keeps its close-on-exec flag, so this refuses it
/// with `EINVAL`.
pub fn dup_onto(fd: BorrowedFd<'_>, target: i32) -> std::io::Result<()> {
    if fd.as_raw_fd() == target || target < 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: dup2 takes no pointer; `fd` is live for the call. Replacing `target` breaks the
    // ownership of whoever held it in this process, which the documented precondition makes
    // harmless: the caller is a cloned child that execs or exits without running that code.
    let ret = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    if ret == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `f` with `signals` blocked (one that comes meanwhile stays pending), then puts them back
/// to their default action and unblocks them, so a pending one then acts as its default. A
/// worker loads its app this way: an interpreter may install handlers of its own while it loads
/// (CPython's `signal` module catches SIGINT as soon as an app imports it, and nothing would
/// then end the worker on SIGINT while it waits in the event loop), and a SIGINT sent during
/// the load must still end the worker once the load is over.
pub fn with_default_action_after<T>(signals: &[i32], f: impl FnOnce() -> T) -> T {
    let set = sigset(signals);
    // SAFETY: `set` is an initialised sigset_t; sigprocmask reads it and writes no old mask.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    let out = f();
    default_action(signals);
    // SAFETY: as above.
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    out
}

/// A signal set holding `signals`.
fn sigset(signals: &[i32]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the whole set it is given; sigaddset only sets a bit in
    // it (refusing, with EINVAL, a number that is not a signal).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Puts `signals` back to their default action (SIGKILL and SIGSTOP have no other).
pub fn default_action(signals: &[i32]) {
    for &sig in signals {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is not a function pointer the kernel calls; `signal` takes no other
        // pointer, and refuses (EINVAL) a number it does not know.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Resets the signal state a process passes on across exec: every signal's disposition back to
/// the default (an ignored signal, such as Rust's `SIGPIPE`, stays ignored across exec, and a
/// handler of the cloned-from code must not run in the child), then an empty blocked mask (the
/// emperor blocks the signals it reads from a signalfd, and a blocked mask survives exec too).
/// Allocation-free. glibc's internal signals (32 and 33) keep their disposition: its `signal`
/// refuses them, and glibc installs their handlers itself when it needs them.
pub fn reset_signals() -> std::io::Result<()> {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is not a function pointer the kernel calls; sigaction takes no other
        // pointer. glibc refuses its own signals (32, 33) with EINVAL, and sets their handlers
        // itself when it needs them.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an all-zero sigset_t is the empty set on Linux (a bit array); sigprocmask reads it
    // for the call and writes nothing, the old-mask pointer being null.
    let ret = unsafe {
        let empty: libc::sigset_t = std::mem::zeroed();
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut())
    };
    if ret == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::{Cloned, Namespaces, clone_vassal, exit_now};
    use std::os::fd::{AsFd, OwnedFd};

    use rustix::fs::{Mode, OFlags};
    use rustix::process::{WaitId, WaitIdOptions};

    fn wait_exit(pidfd: &OwnedFd) -> Option<i32> {
        rustix::process::waitid(WaitId::PidFd(pidfd.as_fd()), WaitIdOptions::EXITED)
            .expect("waitid")
            .expect("an exited child")
            .exit_status()
    }

    fn open(path: &str, flags: OFlags) -> OwnedFd {
        rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty())
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Clones a child that execs `exe` with `args` (prepared here, before the clone) and exits
    /// with the errno if the exec fails; returns what the child exited with.
    fn exec_in_child(exe: &OwnedFd, argv: &[CString], env: &[CString]) -> Option<i32> {
        let args = ExecArgs::new(argv, env);
        match clone_vassal(Namespaces::empty()).expect("clone3") {
            Cloned::Child => {
                let err = args.exec(exe.as_fd());
                exit_now(err.raw_os_error().unwrap_or(255))
            }
            Cloned::Parent { pidfd, .. } => wait_exit(&pidfd),
        }
    }

    #[test]
    fn execs_a_binary_held_as_an_o_path_fd() {
        let exe = open("/bin/true", OFlags::PATH);
        assert_eq!(exec_in_child(&exe, &[c"true".into()], &[]), Some(0));
        let exe = open("/bin/false", OFlags::RDONLY);
        assert_eq!(exec_in_child(&exe, &[c"false".into()], &[]), Some(1));
    }

    #[test]
    fn passes_argv_and_env() {
        let exe = open("/bin/sh", OFlags::PATH);
        let argv = [
            c"sh".into(),
            c"-c".into(),
            c"test \"$0 $1 $LIEGE_T\" = \"zero one two\"".into(),
            c"zero".into(),
            c"one".into(),
        ];
        assert_eq!(
            exec_in_child(&exe, &argv, &[c"LIEGE_T=two".into()]),
            Some(0)
        );
    }

    #[test]
    fn a_file_without_exec_permission_fails_with_eacces() {
        let dir = std::env::temp_dir().join(format!("liege-exec-test-{}", std::process::id()));
        let _ = rustix::fs::mkdir(&dir, Mode::from_raw_mode(0o700));
        let path = dir.join("not-exec");
        let fd = rustix::fs::open(
            &path,
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .unwrap();
        rustix::io::write(&fd, b"#!/bin/sh\nexit 0\n").unwrap();
        drop(fd);
        let exe = open(path.to_str().unwrap(), OFlags::PATH);
        let got = exec_in_child(&exe, &[c"x".into()], &[]);
        rustix::fs::unlink(&path).unwrap();
        rustix::fs::rmdir(&dir).unwrap();
        assert_eq!(got, Some(libc::EACCES));
    }

    #[test]
    fn exec_fd_builds_its_own_arrays() {
        let exe = open("/bin/true", OFlags::PATH);
        match clone_vassal(Namespaces::empty()).expect("clone3") {
            Cloned::Child => {
                // This allocates: fine here only because the child execs a moment later and
                // the test threads are idle in waitid or not allocating; the emperor proper is
                // single-threaded.
                let err = exec_fd(exe.as_fd(), &[c"true".into()], &[]);
                exit_now(err.raw_os_error().unwrap_or(255))
            }
            Cloned::Parent { pidfd, .. } => assert_eq!(wait_exit(&pidfd), Some(0)),
        }
    }

    #[test]
    fn only_descriptors_below_first_and_the_dup_targets_survive_exec() {
        // The child dups /dev/null onto 5, marks 6 and above close-on-exec, then execs a shell
        // that checks 5 is open and that the fd the test opened above it is not.
        // Both well above 6, whatever this process has open.
        let null = rustix::io::fcntl_dupfd_cloexec(open("/dev/null", OFlags::RDWR), 40).unwrap();
        let kept_above =
            rustix::io::fcntl_dupfd_cloexec(open("/dev/null", OFlags::RDONLY), 40).unwrap();
        // Make the high descriptor survive exec unless cloexec_from marks it.
        rustix::io::fcntl_setfd(&kept_above, rustix::io::FdFlags::empty()).unwrap();
        let high = kept_above.as_raw_fd();
        let script = CString::new(format!(
            "test -e /proc/self/fd/5 && ! test -e /proc/self/fd/{high}"
        ))
        .unwrap();
        let argv = [c"sh".into(), c"-c".into(), script];
        let args = ExecArgs::new(&argv, &[]);
        // High too: dup_onto(_, 5) must not replace it.
        let exe = rustix::io::fcntl_dupfd_cloexec(open("/bin/sh", OFlags::PATH), 40).unwrap();
        match clone_vassal(Namespaces::empty()).expect("clone3") {
            Cloned::Child => {
                if dup_onto(null.as_fd(), 5).is_err() {
                    exit_now(100);
                }
                if cloexec_from(6).is_err() {
                    exit_now(101);
                }
                let err = args.exec(exe.as_fd());
                exit_now(err.raw_os_error().unwrap_or(255))
            }
            Cloned::Parent { pidfd, .. } => assert_eq!(wait_exit(&pidfd), Some(0)),
        }
    }

    #[test]
    fn reset_signals_leaves_nothing_blocked_or_ignored_across_exec() {
        // libtest ignores SIGPIPE (Rust's runtime does); the child also blocks SIGUSR1 and
        // ignores SIGUSR2, then resets, and the shell it execs reads its own masks.
        // Signals 32 and 33 are glibc's own, which its `signal` refuses to touch (this harness
        // inherits 32 ignored); the check masks them out.
        let script = c"blk=$(sed -n 's/^SigBlk:\t//p' /proc/self/status) \
            && ign=$(sed -n 's/^SigIgn:\t//p' /proc/self/status) \
            && [ $((0x$blk)) -eq 0 ] && [ $((0x$ign & ~0x180000000)) -eq 0 ]";
        let argv = [c"sh".into(), c"-c".into(), script.into()];
        let args = ExecArgs::new(&argv, &[]);
        let exe = open("/bin/sh", OFlags::PATH);
        match clone_vassal(Namespaces::empty()).expect("clone3") {
            Cloned::Child => {
                // SAFETY: this child has one thread and execs or exits right after; the set is
                // a zeroed (empty) sigset_t to which sigaddset adds one signal; SIG_IGN is not
                // a function pointer.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigaddset(&mut set, libc::SIGUSR1);
                    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    libc::signal(libc::SIGUSR2, libc::SIG_IGN);
                }
                if reset_signals().is_err() {
                    exit_now(100);
                }
                let err = args.exec(exe.as_fd());
                exit_now(err.raw_os_error().unwrap_or(255))
            }
            Cloned::Parent { pidfd, .. } => assert_eq!(wait_exit(&pidfd), Some(0)),
        }
    }

    #[test]
    fn dup_onto_itself_is_refused() {
        let null = open("/dev/null", OFlags::RDONLY);
        let err = dup_onto(null.as_fd(), null.as_raw_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert!(cloexec_from(-1).is_err());
    }
}
