//! uWSGI's raw `cgroup = /abs/dir` and `cgroup-opt = file=value`: a cgroup named by its path.

use std::path::Path;

use rustix::io::Errno;

use crate::{Error, io, limits};

/// Puts the process `pid` in the cgroup directory `dir` as uWSGI's `cgroup` option does: creates
/// the directory and any missing parent with mode `mode` (an existing one gets `mode` too, as
/// uWSGI chmods on EEXIST), then writes the pid to its `cgroup.procs` (which v1 and v2 both have;
/// uWSGI wrote v1's `tasks`).
pub fn place_in_dir(dir: &Path, pid: u32, mode: u32) -> Result<(), Error> {
    mkdir_all(dir, mode)?;
    io::write(&dir.join("cgroup.procs"), &pid.to_string())
}

/// Writes `value` to the file `file` of the cgroup directory `dir` (uWSGI's `cgroup-opt` for a
/// `cgroup` directory). A file the directory does not have is an error naming it (uWSGI skipped
/// it silently).
pub fn write_in_dir(dir: &Path, file: &str, value: &str) -> Result<(), Error> {
    limits::check_file(file)?;
    let path = dir.join(file);
    if !io::exists(&path) {
        return Err(Error::UnknownFile {
            cgroup: dir.display().to_string(),
            file: file.to_string(),
        });
    }
    io::write(&path, value)
}

/// `mkdir -p`: missing directories are created with `mode` (less the umask); `dir` itself gets `mode` even when
/// it exists; existing parents are left as they are.
fn mkdir_all(dir: &Path, mode: u32) -> Result<(), Error> {
    if let Some(parent) = dir.parent()
        && rustix::fs::mkdir(dir, rustix::fs::Mode::from_raw_mode(mode)) == Err(Errno::NOENT)
    {
        mkdir_parents(parent, mode)?;
    }
    io::mkdir(dir, mode)
}

/// Creates `dir` and its missing parents with `mode` (less the umask), leaving existing ones alone.
fn mkdir_parents(dir: &Path, mode: u32) -> Result<(), Error> {
    match rustix::fs::mkdir(dir, rustix::fs::Mode::from_raw_mode(mode)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(Errno::NOENT) => {
            if let Some(parent) = dir.parent() {
                mkdir_parents(parent, mode)?;
            }
            io::mkdir_if_missing(dir, mode)
        }
        Err(errno) => Err(Error::CreateDir {
            path: dir.to_path_buf(),
            errno,
        }),
    }
}
