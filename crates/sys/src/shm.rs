//! Shared memory as a slice of atomic words: a memfd mapped `MAP_SHARED`, so a master and the
//! workers it execs (which inherit the descriptor) see the same words.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

/// A shared mapping of `len` words, unmapped on drop.
#[derive(Debug)]
pub struct SharedWords {
    ptr: *mut AtomicU64,
    len: usize,
}

// SAFETY: the mapping is only ever reached through `&[AtomicU64]`, whose every access is atomic,
// and it stays mapped until drop, so moving the owner to another thread is sound.
unsafe impl Send for SharedWords {}
// SAFETY: as for Send: shared access is through atomics only.
unsafe impl Sync for SharedWords {}

/// Why shared memory could not be made or mapped.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("cannot create shared memory: {0}")]
    Create(rustix::io::Errno),
    #[error("cannot map shared memory: {0}")]
    Map(rustix::io::Errno),
    #[error("shared memory is {have} bytes, {want} expected")]
    TooSmall { have: u64, want: u64 },
}

impl SharedWords {
    /// Makes a memfd named `name` of `len` zeroed words, sealed against shrinking. Returns the
    /// descriptor (to hand to children) and the mapping.
    pub fn create(name: &str, len: usize) -> Result<(OwnedFd, SharedWords), ShmError> {
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
            .map_err(ShmError::Create)?;
        let bytes = (len * 8) as u64;
        rustix::fs::ftruncate(&fd, bytes).map_err(ShmError::Create)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)
            .map_err(ShmError::Create)?;
        let map = Self::map(fd.as_fd(), len)?;
        Ok((fd, map))
    }

    /// Maps `len` words of an inherited shared-memory descriptor.
    pub fn map(fd: impl AsFd, len: usize) -> Result<SharedWords, ShmError> {
        let want = (len * 8) as u64;
        let have = rustix::fs::fstat(&fd).map_err(ShmError::Map)?.st_size;
        let have = u64::try_from(have).unwrap_or(0);
        if have < want || len == 0 {
            return Err(ShmError::TooSmall { have, want });
        }
        // SAFETY: a fresh shared mapping at an address the kernel picks, of a file at least
        // `len * 8` bytes long (checked above, and sealed against shrinking by `create`); nothing
        // else refers to that address range, and it is unmapped only in `drop`.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len * 8,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(ShmError::Map)?;
        Ok(SharedWords {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The words.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` is a live mapping of `len` 8-byte words (page-aligned, so aligned for
        // AtomicU64), readable and writable, until `drop`; AtomicU64 has no invalid bit patterns,
        // and the returned borrow cannot outlive `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for SharedWords {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `map`, and no borrow of `words()` can
        // outlive `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.cast(), self.len * 8) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn two_mappings_of_one_memfd_share_words() {
        let (fd, a) = SharedWords::create("test", 16).unwrap();
        let b = SharedWords::map(&fd, 16).unwrap();
        a.words()[15].store(42, Ordering::Relaxed);
        assert_eq!(b.words()[15].load(Ordering::Relaxed), 42);
        assert!(SharedWords::map(&fd, 17).is_err());
    }
}
