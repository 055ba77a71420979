//! Helpers of the router's whole-process tests: a master run by hand in a network namespace of
//! its own (its router on 127.0.0.1:8080 there), sockets made inside a namespace (from any
//! source address of 127.0.0.0/8), customer vassal files, test certificates, small servers
//! behind `http-to` (threads and std sockets), and the websocket handshake by hand.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsFd as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::emperor::guard::Emperor;
use crate::server::{Resp, children_of, read_response, require_python_worker};

/// How long a test waits for something that should happen (polled, never asserted as a time).
pub(crate) const LONG: Duration = Duration::from_secs(60);
/// Where the router listens in the namespace of the emperor or master under test.
pub(crate) const ROUTER: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));

/// A test app's path under tests/apps/python.
pub(crate) fn test_app(name: &str) -> PathBuf {
    crate::common::repo().join("tests/apps/python").join(name)
}

/// Runs `f` on a thread that joined the network namespace `ns` (`/proc/PID/ns/net`); sockets it
/// makes stay in that namespace wherever they are used from.
pub(crate) fn in_netns<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = fs_err::File::open(ns).expect("the namespace");
    std::thread::spawn(move || {
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns");
        f()
    })
    .join()
    .expect("the thread in the namespace")
}

/// A TCP connection to `to` from `from` (any address of 127.0.0.0/8 on a loopback that is up),
/// made in the caller's namespace, with a 30 s read timeout.
pub(crate) fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddr::V4(SocketAddrV4::new(from, 0)))?;
    connect(&fd, &to)?;
    let s = TcpStream::from(fd);
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Reads one response from a stream the caller keeps (keep-alive, pipelining).
pub(crate) fn read_one(s: &mut BufReader<TcpStream>) -> std::io::Result<Resp> {
    read_response(s, false)
}

/// Whether the peer closed `s`: EOF or a reset, bytes before it (a refusal page, say) skipped;
/// false when the read times out (the stream's read timeout) or fails otherwise.
pub(crate) fn closed_by_peer(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A master run by hand (`liege --master --http 127.0.0.1:8080 ARGS`) in a network namespace
/// of its own with its loopback up, in a temp folder (its cwd, mode 755). Dropping it stops it
/// (SIGINT, then SIGKILL) and kills what is left of its children, by the pids seen before.
#[derive(Debug)]
pub(crate) struct Master {
    child: Option<Child>,
    /// The master's folder, removed when the guard drops.
    _dir: tempfile::TempDir,
    log: PathBuf,
}

impl Master {
    pub(crate) fn start(args: &[&str]) -> Master {
        let dir = tempfile::Builder::new()
            .prefix("liege-router-it-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        Self::start_in(dir, args)
    }

    /// As [`Master::start`], in `dir` (made by the caller, who may have put files there).
    pub(crate) fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Master {
        require_python_worker();
        let log = dir.path().join("log.txt");
        let out = fs_err::File::create(&log).expect("log").into_parts().0;
        let child = Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
            ])
            .arg(env!("CARGO_BIN_EXE_liege"))
            .args(["--master", "--http", &ROUTER.to_string()])
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn liege in a network namespace");
        Master {
            child: Some(child),
            _dir: dir,
            log,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("running").id()).expect("pid")
    }

    pub(crate) fn log_text(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    /// The master's network namespace.
    pub(crate) fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid()))
    }

    /// A connection to the router from 127.0.0.1.
    pub(crate) fn connect(&self) -> TcpStream {
        self.connect_from(Ipv4Addr::LOCALHOST)
    }

    /// A connection to the router from `from` (in 127.0.0.0/8).
    pub(crate) fn connect_from(&self, from: Ipv4Addr) -> TcpStream {
        in_netns(&self.netns(), move || connect_from(from, ROUTER)).expect("connect to the router")
    }

    /// `raw` sent on a new connection; the response.
    pub(crate) fn request(&self, raw: &[u8]) -> std::io::Result<Resp> {
        let mut s = in_netns(&self.netns(), || connect_from(Ipv4Addr::LOCALHOST, ROUTER))?;
        s.write_all(raw)?;
        read_response(&mut BufReader::new(s), raw.starts_with(b"HEAD "))
    }

    /// `GET path` with `Host: host` on a new connection.
    pub(crate) fn get(&self, host: &str, path: &str) -> std::io::Result<Resp> {
        self.request(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// Waits until `GET /` through the router answers 200.
    pub(crate) fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(s) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "liege exited with {s} before it was ready:\n{}",
                    self.log_text()
                );
            }
            if self.get("test", "/").is_ok_and(|r| r.status == 200) {
                return;
            }
            assert!(
                start.elapsed() < LONG,
                "the router never answered:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The router process: the master's child named liege-router.
    pub(crate) fn router_pid(&self) -> Option<i32> {
        children_of(self.pid()).into_iter().find(|p| {
            fs_err::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "liege-router")
        })
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            crate::server::stop(child, Duration::from_secs(15));
        }
    }
}

/// Writes a vassal file owned by customer `uid` (a temporary name, then a rename): it runs as
/// that uid.
pub(crate) fn customer_vassal(e: &Emperor, name: &str, uid: u32, text: &str) {
    let tmp = e.dir().join(format!(".{name}.ini.tmp"));
    fs_err::write(&tmp, text).unwrap();
    std::os::unix::fs::chown(&tmp, Some(uid), Some(uid)).unwrap();
    fs_err::rename(&tmp, e.vassals.join(format!("{name}.ini"))).unwrap();
}

/// Copies tests/apps/python/router_app.py into the emperor's world-readable apps folder; its
/// path there.
pub(crate) fn router_app(e: &Emperor) -> PathBuf {
    let to = e.apps.join("router_app.py");
    if !to.exists() {
        fs_err::copy(test_app("router_app.py"), &to).unwrap();
        fs_err::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    to
}

/// A self-signed certificate for `name` (also its subjectAltName; EC P-256) and its key, PEM,
/// in `dir`: `NAME.crt`, `NAME.key` (mode 644, so a customer's uid can read them).
pub(crate) fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let file = name.replace('*', "_");
    let crt = dir.join(format!("{file}.crt"));
    let key = dir.join(format!("{file}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [&crt, &key] {
        fs_err::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    (crt, key)
}

/// A server on a unix socket (mode 666, for the router's user) that runs `handler` for each
/// connection on a thread of its own; stopped when dropped.
pub(crate) struct UnixServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    /// The listener, to shut down (which wakes the accepting thread) when dropped.
    listener: UnixListener,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl UnixServer {
    pub(crate) fn start(
        path: &Path,
        handler: impl Fn(UnixStream) + Send + Sync + 'static,
    ) -> UnixServer {
        let listener = UnixListener::bind(path).expect("bind the test server");
        fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let flag = stop.clone();
        let kept = listener.try_clone().expect("dup the listener");
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let h = handler.clone();
                std::thread::spawn(move || h(conn));
            }
        });
        UnixServer {
            path: path.to_owned(),
            stop,
            listener: kept,
            accept: Some(accept),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let _ = fs_err::remove_file(&self.path);
    }
}

/// One HTTP/1.1 request as a server reads it: the head's text, and its body (by Content-Length,
/// or de-chunked).
pub(crate) fn read_request(r: &mut impl BufRead) -> std::io::Result<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    if header_of(&head, "transfer-encoding") == Some("chunked") {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim_end().split(';').next().unwrap_or(""), 16)
                .map_err(std::io::Error::other)?;
            if n == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line)? == 0 || line == "\r\n" {
                        return Ok((head, body));
                    }
                }
            }
            let at = body.len();
            body.resize(at + n + 2, 0);
            r.read_exact(&mut body[at..])?;
            body.truncate(at + n);
        }
    }
    let len = header_of(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok((head, body))
}

/// A header's value in a head's text (the first one, names compared without case).
pub(crate) fn header_of<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// What a [`Recorder`] read, connection by connection.
type Seen = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// An HTTP backend for `http-to` that records, for each connection, everything it read on it
/// (until the peer closed it), and answers each request with what `answer` makes of its head
/// and body.
pub(crate) struct Recorder {
    pub(crate) server: UnixServer,
    pub(crate) seen: Seen,
}

impl Recorder {
    pub(crate) fn start(
        path: &Path,
        answer: impl Fn(&str, &[u8]) -> Vec<u8> + Send + Sync + 'static,
    ) -> Recorder {
        let seen: Seen = Arc::default();
        let all = seen.clone();
        let server = UnixServer::start(path, move |conn| {
            let mine: Arc<Mutex<Vec<u8>>> = Arc::default();
            all.lock().unwrap().push(mine.clone());
            let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
            let mut w = conn.try_clone().expect("dup");
            let mut r = BufReader::new(Tee {
                inner: conn,
                copy: mine,
            });
            while let Ok((head, body)) = read_request(&mut r) {
                if w.write_all(&answer(&head, &body)).is_err() {
                    break;
                }
            }
            // Whatever else comes, until the peer closes (recorded by the tee).
            let mut rest = Vec::new();
            let _ = r.read_to_end(&mut rest);
        });
        Recorder { server, seen }
    }

    /// What each connection so far carried, as text.
    pub(crate) fn connections(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|c| String::from_utf8_lossy(&c.lock().unwrap()).into_owned())
            .collect()
    }

    /// Everything received, every connection.
    pub(crate) fn all_text(&self) -> String {
        self.connections().concat()
    }
}

/// A reader that keeps a copy of what it read.
struct Tee<R> {
    inner: R,
    copy: Arc<Mutex<Vec<u8>>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// A response with `body`, a Content-Length, and the connection kept.
pub(crate) fn ok_response(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// The websocket handshake's digest and encoding (RFC 6455 4.2.2), by hand: SHA-1 and base64.

/// SHA-1 of `data` (FIPS 180-4).
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Standard base64, with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn ws_accept(key: &str) -> String {
    base64(&sha1(
        format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes(),
    ))
}

/// One websocket frame: FIN, opcode, payload (unmasked as read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) fin: bool,
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

/// Writes a frame; `mask`: a client's frame, masked with that key.
pub(crate) fn write_frame(
    w: &mut impl Write,
    opcode: u8,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> std::io::Result<()> {
    let mut out = vec![0x80 | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if let Ok(short) = u8::try_from(n)
        && short < 126
    {
        out.push(m | short);
    } else if let Ok(medium) = u16::try_from(n) {
        out.push(m | 126);
        out.extend_from_slice(&medium.to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    w.write_all(&out)
}

/// Reads a frame (unmasking a client's).
pub(crate) fn read_frame(r: &mut impl Read) -> std::io::Result<Frame> {
    let mut h = [0u8; 2];
    r.read_exact(&mut h)?;
    let len = match h[1] & 0x7F {
        126 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)?;
            u64::from(u16::from_be_bytes(b))
        }
        127 => {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            u64::from_be_bytes(b)
        }
        n => u64::from(n),
    };
    let mask = if h[1] & 0x80 != 0 {
        let mut k = [0u8; 4];
        r.read_exact(&mut k)?;
        Some(k)
    } else {
        None
    };
    let mut payload = vec![0u8; usize::try_from(len).map_err(std::io::Error::other)?];
    r.read_exact(&mut payload)?;
    if let Some(k) = mask {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Ok(Frame {
        fin: h[0] & 0x80 != 0,
        opcode: h[0] & 0x0F,
        payload,
    })
}

#[test]
fn the_hand_made_digest_and_encoding_match_rfc_6455s_example() {
    // RFC 6455 1.3: the sample key and its accept value.
    assert_eq!(
        ws_accept("dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(base64(b"a"), "YQ==");
}
