//! Network interfaces: bringing up the loopback of a new network namespace, which the kernel
//! creates down, so that a vassal can bind and reach 127.0.0.1.

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::net::{AddressFamily, SocketFlags, SocketType};

/// Sets `IFF_UP` on `lo` in the caller's network namespace (`SIOCGIFFLAGS`, then
/// `SIOCSIFFLAGS` on an `AF_INET` datagram socket). Needs `CAP_NET_ADMIN` over that namespace.
/// Allocation-free, so a cloned child may call it.
pub fn loopback_up() -> std::io::Result<()> {
    let sock = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let mut req = lo_request();
    ioctl_ifreq(&sock, libc::SIOCGIFFLAGS, &mut req)?;
    // SAFETY: SIOCGIFFLAGS just filled the `ifru_flags` member of the union, so it is the
    // initialised one to read.
    let flags = unsafe { req.ifr_ifru.ifru_flags };
    let up = libc::c_short::try_from(libc::IFF_UP)
        .map_err(|_| std::io::Error::other("IFF_UP does not fit a short"))?;
    if flags & up != 0 {
        return Ok(());
    }
    req.ifr_ifru.ifru_flags = flags | up;
    ioctl_ifreq(&sock, libc::SIOCSIFFLAGS, &mut req)
}

/// An `ifreq` naming `lo`, everything else zero.
fn lo_request() -> libc::ifreq {
    // SAFETY: ifreq is a C struct of a char array and a union of integers, sockaddrs, char
    // arrays and a pointer, for all of which all-zero bytes are a valid value (the pointer is
    // null and never read).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = src.cast_signed();
    }
    req
}

/// `ioctl(sock, request, req)` for the interface requests that take an `ifreq`.
fn ioctl_ifreq(
    sock: &OwnedFd,
    request: libc::c_ulong,
    req: &mut libc::ifreq,
) -> std::io::Result<()> {
    // SAFETY: `sock` is a live socket borrowed for the call; `req` is a valid, writable ifreq
    // with a NUL-terminated name, the argument type of the SIOC[GS]IF* requests this is called
    // with, and the kernel reads and writes only within it.
    let ret = unsafe { libc::ioctl(sock.as_raw_fd(), request, std::ptr::from_mut(req)) };
    if ret == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
