//! The emperor's end of a master's control socket (`RUN/emperor/NAME.sock`, in a folder only
//! root can enter): the master listens on it, the emperor connects, so an emperor that
//! restarts can find its running vassals again. Sends are queued and flushed without ever
//! blocking the emperor's loop.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use liege_proto::emperor::{Decoder, ToEmperor, ToMaster};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// A connection to one master.
#[derive(Debug)]
pub(crate) struct Control {
    fd: OwnedFd,
    decoder: Decoder<ToEmperor>,
    out: Vec<u8>,
}

/// What reading the connection gave.
#[derive(Debug)]
pub(crate) enum Read {
    Messages(Vec<ToEmperor>),
    /// The master closed it (it is exiting), or it broke, or it spoke nonsense.
    Closed(Vec<ToEmperor>, Option<String>),
}

impl Control {
    /// Connects to the listener at `path` (a master's backlog takes the connection even
    /// before the master runs).
    pub(crate) fn connect(path: &Path) -> std::io::Result<Control> {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        let addr = SocketAddrUnix::new(path)?;
        rustix::net::connect(&fd, &addr)?;
        Ok(Control {
            fd,
            decoder: Decoder::new(),
            out: Vec::new(),
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The master's pid as the kernel saw it connect (in the emperor's pid namespace).
    pub(crate) fn peer_pid(&self) -> Option<i32> {
        liege_sys::sock::peer_cred(&self.fd)
            .ok()
            .map(|c| c.pid)
            .filter(|p| *p > 0)
    }

    /// Queues a message and sends what the socket takes.
    pub(crate) fn send(&mut self, msg: &ToMaster) {
        self.out.extend_from_slice(&msg.encode());
        self.flush();
    }

    /// Whether output waits for the socket.
    pub(crate) fn pending(&self) -> bool {
        !self.out.is_empty()
    }

    /// Sends what is queued, as far as the socket takes it.
    pub(crate) fn flush(&mut self) {
        while !self.out.is_empty() {
            match rustix::net::send(&self.fd, &self.out, SendFlags::NOSIGNAL) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(Errno::INTR) => {}
                Err(_) => return,
            }
        }
    }

    /// Reads and decodes what the master sent.
    pub(crate) fn read(&mut self) -> Read {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match rustix::net::recv(&self.fd, &mut buf, RecvFlags::empty()) {
                Ok((0, _)) => return Read::Closed(got, None),
                Ok((n, _)) => {
                    self.decoder.feed(&buf[..n]);
                    loop {
                        match self.decoder.next_message() {
                            Ok(Some(m)) => got.push(m),
                            Ok(None) => break,
                            Err(e) => return Read::Closed(got, Some(e.to_string())),
                        }
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Read::Messages(got),
                Err(e) => return Read::Closed(got, Some(e.to_string())),
            }
        }
    }
}
