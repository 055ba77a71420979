//! The crate's errors: each names the file or directory it failed on, and a write names the value.

use std::path::PathBuf;

use rustix::io::Errno;

/// A cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cgroup interface file (or `/proc/PID/cgroup`, or mountinfo) could not be read.
    #[error("cannot read {}: {errno}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// A value could not be written to a cgroup interface file.
    #[error("cannot write `{value}` to {}: {errno}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The value, as written.
        value: String,
        /// What the kernel said.
        errno: Errno,
    },
    /// A cgroup directory could not be created.
    #[error("cannot create cgroup directory {}: {errno}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// The mode of a cgroup directory could not be set.
    #[error("cannot set mode {mode:o} on {}: {errno}", path.display())]
    Chmod {
        /// The directory.
        path: PathBuf,
        /// The mode asked for.
        mode: u32,
        /// What the kernel said.
        errno: Errno,
    },
    /// A cgroup directory could not be listed.
    #[error("cannot list cgroup directory {}: {errno}", path.display())]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// What the kernel said.
        errno: Errno,
    },
    /// A cgroup directory could not be removed (`Device or resource busy` when processes were
    /// still in it after about a second).
    #[error("cannot remove cgroup directory {}: {errno}", path.display())]
    RemoveDir {
        /// The directory.
        path: PathBuf,
        /// What the kernel said last.
        errno: Errno,
    },
    /// A file held something other than what the kernel writes there.
    #[error("unexpected content in {}: `{content}`", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The part that could not be understood.
        content: String,
    },
    /// The mountinfo text could not be parsed.
    #[error("{}: {error}", path.display())]
    Mountinfo {
        /// The mountinfo file.
        path: PathBuf,
        /// What was wrong with it.
        error: MountinfoError,
    },
    /// No cgroup hierarchy that liege uses is mounted.
    #[error(
        "no cgroup hierarchy with memory, cpu, cpuacct, pids or freezer, and no cgroup2, is mounted"
    )]
    NoHierarchy,
    /// A cgroup name (the root or a vassal's) cannot be used as a directory name.
    #[error("invalid cgroup name `{name}`: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A raw `cgroup-opt` file name cannot be used.
    #[error("invalid cgroup file name `{file}`: {reason}")]
    InvalidFile {
        /// The file name.
        file: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// No hierarchy of the cgroup has the raw `cgroup-opt` file.
    #[error("no hierarchy of cgroup `{cgroup}` has the file `{file}`")]
    UnknownFile {
        /// The cgroup's name.
        cgroup: String,
        /// The file name.
        file: String,
    },
    /// A limit was asked for a controller this host does not give the cgroup.
    #[error(
        "cannot limit {controller} of cgroup `{cgroup}`: no mounted hierarchy has the {controller} controller"
    )]
    NoController {
        /// The controller (`memory`, `cpu`, `pids`).
        controller: &'static str,
        /// The cgroup's name.
        cgroup: String,
    },
    /// A CPU limit below what the kernel accepts.
    #[error("cpu limit of {percent}% is below the minimum of 1% (a quota of 1000 microseconds)")]
    CpuPercent {
        /// The percentage asked for.
        percent: u32,
    },
    /// A process of the cgroup could not be sent SIGKILL.
    #[error("cannot send SIGKILL to process {pid}: {errno}")]
    Kill {
        /// The process.
        pid: u32,
        /// What the kernel said.
        errno: Errno,
    },
    /// Processes kept appearing in the cgroup while it was being killed.
    #[error("processes of cgroup {} were still running after {seconds} s of SIGKILL", path.display())]
    KillUnfinished {
        /// The cgroup directory that still listed processes.
        path: PathBuf,
        /// How long it was tried.
        seconds: u64,
    },
}

/// A line of mountinfo that does not have the kernel's layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: `{text}`")]
pub struct MountinfoError {
    /// The line number, from 1.
    pub line: usize,
    /// The line.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}
