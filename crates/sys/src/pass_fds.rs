//! Giving a child process descriptors at numbers of the caller's choosing (what an emperor does
//! for a vassal's master, and the tests that play the emperor): the caller keeps its copies
//! close-on-exec, so no other child, started meanwhile by another thread, inherits them.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// The lowest number the descriptors are moved to before the fork, above every target, so
/// that placing one never overwrites another that is still to be placed.
const ABOVE: i32 = 64;

/// Arranges for `cmd`'s child to hold each descriptor of `fds` at its target number (3 and up),
/// not close-on-exec; the descriptors are owned by `cmd` until it is dropped.
pub fn pass_fds(cmd: &mut Command, fds: Vec<(OwnedFd, i32)>) -> std::io::Result<()> {
    let top = fds.iter().map(|(_, n)| *n).max().unwrap_or(0);
    if let Some((_, n)) = fds.iter().find(|(_, n)| *n < 3) {
        return Err(std::io::Error::other(format!(
            "descriptor number {n} is stdio: pass descriptors at 3 and up"
        )));
    }
    // Copies numbered above every target (close-on-exec, like the originals).
    let mut moved = Vec::with_capacity(fds.len());
    for (fd, target) in fds {
        let copy = rustix::io::fcntl_dupfd_cloexec(&fd, top.max(ABOVE) + 1)?;
        moved.push((copy, target));
    }
    // SAFETY: the closure runs in the child between fork and exec, where only async-signal-safe
    // functions may be called: it only calls dup2(2), a plain syscall that neither allocates
    // nor takes a lock, on descriptors that stay open in the child because `moved` (owned by the
    // closure, so by `cmd`) keeps them open in the parent until `cmd` is dropped. Every source
    // number is above every target number, so no dup2 closes a source still to be copied.
    // dup2 leaves the new descriptor without close-on-exec, so the exec'd program inherits it.
    unsafe {
        cmd.pre_exec(move || {
            for (fd, target) in &moved {
                if libc::dup2(fd.as_raw_fd(), *target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_holds_the_descriptors_at_their_numbers() {
        let (r1, w1) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let (r2, w2) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo one >&7; echo two >&8"]);
        // Targets that cross: a source may sit at the other's target number.
        let a = rustix::io::fcntl_dupfd_cloexec(&w1, 8).unwrap();
        drop(w1);
        pass_fds(&mut cmd, vec![(a, 7), (w2, 8)]).unwrap();
        let status = cmd.status().unwrap();
        assert!(status.success());
        drop(cmd);
        let read = |fd: OwnedFd| {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s).unwrap();
            s
        };
        assert_eq!(read(r1), "one\n");
        assert_eq!(read(r2), "two\n");
        let (r3, _w3) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        assert!(pass_fds(&mut Command::new("true"), vec![(r3, 2)]).is_err());
    }
}
