//! Taking ownership of descriptors inherited across exec, whose numbers arrive in the
//! environment (the master's handoff to a worker).

use std::collections::HashSet;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Mutex;

use rustix::io::FdFlags;

/// Why an inherited descriptor could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum InheritError {
    #[error("descriptor {0} is not a valid inherited descriptor (0-2 are stdio)")]
    Invalid(i32),
    #[error("descriptor {0} was already taken")]
    Taken(i32),
    #[error("descriptor {fd} is not open: {errno}")]
    NotOpen { fd: i32, errno: rustix::io::Errno },
}

static TAKEN: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Takes ownership of inherited descriptor `fd` and marks it close-on-exec, so nothing this
/// process execs inherits it. Each number can be taken once per process; stdio (0-2) cannot be
/// taken.
pub fn take_inherited(fd: i32) -> Result<OwnedFd, InheritError> {
    if fd < 3 {
        return Err(InheritError::Invalid(fd));
    }
    let mut taken = TAKEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let set = taken.get_or_insert_with(HashSet::new);
    if !set.insert(fd) {
        return Err(InheritError::Taken(fd));
    }
    // SAFETY: `fd` is checked open by fcntl(F_GETFD) right below before anything uses it as
    // owned; it was inherited across exec (the handoff names it), nothing else in this process
    // owns it because every owner of an inherited number goes through this function and the
    // `TAKEN` set lets each number be taken only once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    match rustix::io::fcntl_getfd(&owned) {
        Ok(flags) => {
            rustix::io::fcntl_setfd(&owned, flags | FdFlags::CLOEXEC)
                .map_err(|errno| InheritError::NotOpen { fd, errno })?;
            Ok(owned)
        }
        Err(errno) => {
            // Not open: do not close a number we do not own.
            std::mem::forget(owned);
            Err(InheritError::NotOpen { fd, errno })
        }
    }
}
