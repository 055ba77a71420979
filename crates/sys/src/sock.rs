//! Socket queries that rustix does not wrap: the accept queue of a listening TCP socket, read
//! from `TCP_INFO` (what uWSGI's stats call `queue` and `max_queue`).

use std::os::fd::{AsFd, AsRawFd};

/// The accept queue of a listening TCP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenQueue {
    /// Connections the kernel completed that no one accepted yet (`tcpi_unacked` of a
    /// listening socket).
    pub len: u32,
    /// The most it holds: the backlog given to `listen` (`tcpi_sacked` of a listening socket).
    pub max: u32,
}

/// Reads the accept queue of the listening TCP socket `fd` (`getsockopt(TCP_INFO)`).
pub fn listen_queue(fd: impl AsFd) -> std::io::Result<ListenQueue> {
    let fd = fd.as_fd();
    // SAFETY: tcp_info is a plain C struct of integers, for which all-zero bytes are a valid
    // value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::tcp_info>())
        .map_err(|_| std::io::Error::other("tcp_info does not fit socklen_t"))?;
    // SAFETY: `fd` is a live descriptor borrowed for the call; `info` is a writable tcp_info of
    // `len` bytes, and the kernel writes at most `len` bytes and updates `len`.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            std::ptr::from_mut(&mut info).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ListenQueue {
        len: info.tcpi_unacked,
        max: info.tcpi_sacked,
    })
}

/// The credentials of a unix socket's peer, as the kernel recorded them at connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// The peer's pid in the caller's pid namespace; 0 when the peer is outside it (an
    /// emperor seen from a vassal's namespace).
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// `getsockopt(SO_PEERCRED)`. rustix's wrapper cannot return a pid of 0, which is what a
/// process in a child pid namespace sees for a peer outside it.
pub fn peer_cred(fd: impl AsFd) -> std::io::Result<PeerCred> {
    let fd = fd.as_fd();
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = libc::socklen_t::try_from(std::mem::size_of::<libc::ucred>())
        .map_err(|_| std::io::Error::other("ucred does not fit socklen_t"))?;
    // SAFETY: `fd` is a live descriptor borrowed for the call; `cred` is a writable ucred of
    // `len` bytes, and the kernel writes at most `len` bytes and updates `len`.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            std::ptr::from_mut(&mut cred).cast(),
            &mut len,
        )
    };
    if ret != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn peer_credentials_of_a_socket_pair_are_this_process() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let c = peer_cred(&a).unwrap();
        assert_eq!(c.pid, i32::try_from(std::process::id()).unwrap());
        assert_eq!(c.uid, rustix::process::getuid().as_raw());
    }

    #[test]
    fn counts_connections_waiting_to_be_accepted() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert_eq!(listen_queue(&l).unwrap().len, 0);
        let _a = TcpStream::connect(addr).unwrap();
        let _b = TcpStream::connect(addr).unwrap();
        let q = listen_queue(&l).unwrap();
        assert_eq!(q.len, 2);
        assert!(q.max >= 2, "{q:?}");
        let _ = l.accept().unwrap();
        assert_eq!(listen_queue(&l).unwrap().len, 1);
    }

    #[test]
    fn a_unix_socket_has_no_tcp_info() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(listen_queue(&a).is_err());
    }
}
