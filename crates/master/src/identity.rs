//! `uid` / `gid`: the master drops from root to the instance's user and group once its sockets
//! are bound, before it starts any worker or zygote, so no process of the instance but the
//! binding itself ever runs as root.
//!
//! The steps, in this order (each needs the privilege the next one gives up):
//! 1. check the master is single-threaded: on Linux the id syscalls change only the calling
//!    thread, and the master runs one thread, so the calling thread is the whole process;
//! 2. `setgroups([gid])`: only the instance's group, none of root's supplementary groups;
//! 3. `setgid(gid)`: real, effective and saved group ids;
//! 4. `setuid(uid)`: real, effective and saved user ids (this drops every capability);
//! 5. check that `setuid(0)` now fails, so nothing is left to regain root with.

use rustix::io::Errno;
use rustix::process::{Gid, Uid};

use crate::plan::Identity;

/// The master could not become the instance's user and group.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "liege runs as uid {uid} gid {gid}, not as root: it cannot switch to uid {want_uid} gid {want_gid}"
    )]
    NotRoot {
        uid: u32,
        gid: u32,
        want_uid: u32,
        want_gid: u32,
    },
    #[error("the master runs {threads} threads: it drops its privileges only while it runs one")]
    Threads { threads: usize },
    #[error("{step}({id}) failed: {source}")]
    Syscall {
        step: &'static str,
        id: u32,
        source: Errno,
    },
    #[error("setuid(0) still works after the switch to uid {uid}: refusing to go on")]
    StillRoot { uid: u32 },
}

/// The threads of this process, from /proc (`None` where /proc is not mounted).
fn threads() -> Option<usize> {
    Some(fs_err::read_dir("/proc/self/task").ok()?.count())
}

/// Becomes `id`'s user and group (see the module's steps). Nothing to do when the process
/// already is that user and group; an error, without root, when it is not.
pub(crate) fn drop_to(id: &Identity) -> Result<(), IdentityError> {
    let uid = rustix::process::getuid().as_raw();
    let euid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let want_uid = id.uid.unwrap_or(uid);
    let want_gid = id.gid;
    if euid != 0 {
        if (uid, euid, gid, rustix::process::getegid().as_raw())
            == (want_uid, want_uid, want_gid, want_gid)
        {
            return Ok(());
        }
        return Err(IdentityError::NotRoot {
            uid: euid,
            gid,
            want_uid,
            want_gid,
        });
    }
    // 1.
    if let Some(n) = threads()
        && n != 1
    {
        return Err(IdentityError::Threads { threads: n });
    }
    let step =
        |step: &'static str, id: u32| move |source| IdentityError::Syscall { step, id, source };
    // 2, 3.
    let g = Gid::from_raw(want_gid);
    rustix::thread::set_thread_groups(&[g]).map_err(step("setgroups", want_gid))?;
    rustix::thread::set_thread_gid(g).map_err(step("setgid", want_gid))?;
    // 4, 5.
    if let Some(want) = id.uid {
        rustix::thread::set_thread_uid(Uid::from_raw(want)).map_err(step("setuid", want))?;
        if want != 0 && rustix::thread::set_thread_uid(Uid::ROOT).is_ok() {
            return Err(IdentityError::StillRoot { uid: want });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_who_and_why() {
        assert_eq!(
            IdentityError::NotRoot {
                uid: 1000,
                gid: 1000,
                want_uid: 33,
                want_gid: 33
            }
            .to_string(),
            "liege runs as uid 1000 gid 1000, not as root: it cannot switch to uid 33 gid 33"
        );
        assert_eq!(
            IdentityError::Syscall {
                step: "setgid",
                id: 5,
                source: Errno::PERM
            }
            .to_string(),
            "setgid(5) failed: Operation not permitted (os error 1)"
        );
    }

    #[test]
    fn nothing_is_dropped_from_a_threaded_process_or_without_root() {
        // libtest runs each test on a thread of its own: as root, the thread check refuses
        // before any change; without root, the switch is refused as impossible.
        let root = rustix::process::geteuid().is_root();
        let id = Identity {
            uid: Some(65534),
            gid: 65534,
            origin: liege_config::Origin::Builtin,
        };
        let e = drop_to(&id).unwrap_err();
        if root {
            assert!(
                matches!(e, IdentityError::Threads { threads } if threads > 1),
                "{e}"
            );
        } else {
            assert!(matches!(e, IdentityError::NotRoot { .. }), "{e}");
        }
        assert_eq!(rustix::process::geteuid().is_root(), root);
    }
}
