//! Running real instances in tests: a `liege` process with its own temp folder, stopped by pid
//! (SIGINT, then SIGKILL) when the guard drops, even when the test fails; and a small HTTP/1.1
//! client that speaks over TCP or a unix socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::repo;

/// The folder of the binaries under test (`liege` and the language workers beside it).
pub(crate) fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_liege"))
        .parent()
        .expect("bin dir")
        .to_path_buf()
}

/// Fails clearly when the Python worker was not built (scripts/test builds every binary first).
pub(crate) fn require_python_worker() {
    let p = bin_dir().join("liege-python");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
        p.display()
    );
}

#[path = "../support/ports.rs"]
mod ports;
pub(crate) use ports::free_port;

/// A test app's path under tests/apps/python.
pub(crate) fn app(name: &str) -> String {
    repo()
        .join("tests/apps/python")
        .join(name)
        .display()
        .to_string()
}

/// Where a test talks to its instance.
#[derive(Debug, Clone)]
pub(crate) enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// A stream to an instance.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Addr {
    pub(crate) fn connect(&self) -> std::io::Result<Stream> {
        let s = match self {
            Addr::Tcp(a) => Stream::Tcp(TcpStream::connect(a)?),
            Addr::Unix(p) => Stream::Unix(UnixStream::connect(p)?),
        };
        let t = Some(Duration::from_secs(30));
        match &s {
            Stream::Tcp(x) => {
                x.set_read_timeout(t)?;
                x.set_nodelay(true)?;
            }
            Stream::Unix(x) => x.set_read_timeout(t)?,
        }
        Ok(s)
    }
}

/// A running `liege` instance.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) child: Option<Child>,
    /// The instance's folder, removed when the guard drops.
    #[expect(dead_code, reason = "held so the folder lives as long as the instance")]
    pub(crate) dir: tempfile::TempDir,
    pub(crate) log: PathBuf,
}

impl Instance {
    /// Starts `liege ARGS` in a new temp folder (its cwd), logging to `log.txt` there.
    pub(crate) fn start(args: &[&str]) -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, args)
    }

    pub(crate) fn start_in(dir: tempfile::TempDir, args: &[&str]) -> Instance {
        require_python_worker();
        let log = dir.path().join("log.txt");
        let out = fs_err::File::create(&log).expect("log file").into_parts().0;
        let child = Command::new(env!("CARGO_BIN_EXE_liege"))
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn liege");
        Instance {
            child: Some(child),
            dir,
            log,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("running").id()).expect("pid")
    }

    /// What the instance logged so far.
    pub(crate) fn log_text(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the master.
    pub(crate) fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.pid()).expect("pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    /// Waits until `addr` answers `GET path` with 200, failing with the log after `limit`.
    pub(crate) fn wait_ready(&mut self, addr: &Addr, path: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "liege exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            if let Ok(r) = get(addr, path)
                && r.status == 200
            {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "not ready after {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the master to exit; its status.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(s) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The pids of the master's children (its workers), from /proc.
    pub(crate) fn children(&self) -> Vec<i32> {
        children_of(self.pid())
    }
}

/// The pids whose parent is `pid`.
pub(crate) fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(rd) = fs_err::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(n) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs_err::read_to_string(format!("/proc/{n}/stat")) else {
            continue;
        };
        // The field after the `(comm)` is the state, then the parent pid.
        if let Some(rest) = stat.rsplit_once(") ").map(|x| x.1) {
            let mut f = rest.split_whitespace();
            let _state = f.next();
            if f.next().and_then(|p| p.parse::<i32>().ok()) == Some(pid) {
                out.push(n);
            }
        }
    }
    out.sort_unstable();
    out
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child, Duration::from_secs(5));
        }
    }
}

/// Stops a `liege` process the test started: SIGINT, `grace` to exit, then SIGKILL; then
/// SIGKILL to the children it had (by the pids seen before it went) that are still there.
pub(crate) fn stop(mut child: Child, grace: Duration) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let workers = pid
        .map(|p| children_of(p.as_raw_nonzero().get()))
        .unwrap_or_default();
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
    }
    let start = Instant::now();
    while start.elapsed() < grace {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    for w in workers {
        if let Some(p) = rustix::process::Pid::from_raw(w)
            && fs_err::read_to_string(format!("/proc/{w}/stat")).is_ok()
        {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
}

/// A parsed response.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Resp {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `r`; `head` says the request was HEAD (no body follows).
pub(crate) fn read_response(r: &mut impl BufRead, head: bool) -> std::io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "no response",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head || status == 204 || status == 304 || status == 100 {
        return Ok(resp);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(std::io::Error::other)?;
        resp.body = vec![0; len];
        r.read_exact(&mut resp.body)?;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(std::io::Error::other)?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            resp.body.extend_from_slice(&chunk[..n]);
        }
    } else {
        r.read_to_end(&mut resp.body)?;
    }
    Ok(resp)
}

/// One request on a new connection (`Connection: close`).
pub(crate) fn request(addr: &Addr, raw: &[u8]) -> std::io::Result<Resp> {
    let mut s = addr.connect()?;
    s.write_all(raw)?;
    let head = raw.starts_with(b"HEAD ");
    read_response(&mut BufReader::new(s), head)
}

/// `GET path` on a new connection.
pub(crate) fn get(addr: &Addr, path: &str) -> std::io::Result<Resp> {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}
