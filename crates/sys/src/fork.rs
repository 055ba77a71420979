//! Forking a sibling: a zygote (a worker executable that loaded the app once) forks each worker
//! as a child of the master, with `CLONE_PARENT`, so the master reaps and supervises it as it does
//! the workers it execs itself.

/// What a fork returned in the process that called it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the caller: the new process's pid.
    Parent(i32),
    /// In the new process.
    Child,
}

/// Forks a process whose parent is the caller's parent (`clone(CLONE_PARENT | SIGCHLD)`), like
/// `fork` otherwise: the child gets a copy-on-write copy of the caller's memory.
///
/// The caller must be single-threaded: only the calling thread exists in the child, so a lock
/// another thread held would stay locked forever. The zygote calls this before it starts any
/// thread. glibc's `atfork` handlers do not run; a language runtime's own after-fork hook
/// (`PyOS_AfterFork_Child`) must be called by the child.
pub fn fork_sibling() -> std::io::Result<Forked> {
    let flags = libc::CLONE_PARENT as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: the raw clone syscall with a null stack and no pointer arguments behaves as fork:
    // the child resumes here on a copy of the caller's stack. The caller is single-threaded (the
    // documented precondition), so no lock is held by a thread that the child lacks. glibc 2.36
    // keeps no pid cache that this would leave stale.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match ret {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(i32::try_from(pid).map_err(|_| {
            std::io::Error::other(format!("clone returned pid {pid}"))
        })?)),
    }
}
