//! Starting a master (this very binary, with `--as-master`), talking to it, and cleaning up:
//! every process a test starts is stopped by pid when its guard drops, even if the test fails.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use liege_config::{Context, HostAccess, HostFacts, argv};
use rustix::process::{Pid, Signal};

/// The first argument that makes this binary a master.
pub(crate) const AS_MASTER: &str = "--as-master";
/// Where the master looks for the worker executable (the folder of `liege` in real life).
const EXE_DIR: &str = "LIEGE_TEST_EXE_DIR";

const FAKE_WORKER: &str = include_str!("fake_worker.py");

fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// The master part: resolve `args` as `liege` does, then run.
pub(crate) fn as_master(args: &[String]) -> ExitCode {
    let exe_dir = PathBuf::from(std::env::var(EXE_DIR).unwrap_or_default());
    let cwd = std::env::current_dir().unwrap_or_default();
    let resolve = |is_reload: bool| {
        let parsed = argv::parse(args)?;
        let access = HostAccess::trusted(cwd.clone());
        let env = |name: &str| std::env::var(name).ok();
        let ctx = Context {
            access: &access,
            env: &env,
            host: HostFacts::for_tests(&cwd.display().to_string()),
            is_reload,
        };
        liege_config::resolve_args(&parsed, &ctx)
    };
    let options = match resolve(false) {
        Ok(r) => r.options,
        Err(e) => {
            err_line(&e.to_string());
            return ExitCode::from(2);
        }
    };
    let mut reload = || resolve(true).map(|r| r.options).map_err(|e| e.to_string());
    match liege_master::run(&options, &mut reload, &exe_dir) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            err_line(&e.to_string());
            ExitCode::from(e.exit_code())
        }
    }
}

#[path = "../../../../tests/support/ports.rs"]
mod ports;
pub(crate) use ports::free_port;

/// Polls `f` every 50 ms until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One line of /proc/PID/stat: (pid, state, ppid).
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let text = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut f = rest.split(' ');
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Every process: (pid, state, ppid).
pub(crate) fn all_processes() -> Vec<(i32, char, i32)> {
    let Ok(dir) = fs_err::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(s, pp)| (pid, s, pp)))
        .collect()
}

/// The children of `pid` (live or zombie).
pub(crate) fn children_of(pid: i32) -> Vec<(i32, char)> {
    all_processes()
        .into_iter()
        .filter(|(_, _, pp)| *pp == pid)
        .map(|(p, s, _)| (p, s))
        .collect()
}

/// Whether `pid` is a live process (not a zombie).
pub(crate) fn proc_alive(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(s, _)| s != 'Z')
}

/// `pid` and every process below it.
pub(crate) fn descendants(pid: i32) -> Vec<i32> {
    let all = all_processes();
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            all.iter()
                .filter(|(_, _, pp)| *pp == parent)
                .map(|(p, _, _)| *p),
        );
        i += 1;
    }
    out
}

pub(crate) fn kill(pid: i32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// A master under test, in its own temp dir, with the fake worker as `liege-python`.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) dir: tempfile::TempDir,
    child: Option<Child>,
    /// Under `unshare`, the master is the child of `child`.
    in_namespace: bool,
}

impl Instance {
    /// A temp dir holding `bin/liege-python` (the fake worker).
    pub(crate) fn new() -> Instance {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        fs_err::create_dir_all(&bin).expect("bin dir");
        let exe = bin.join("liege-python");
        fs_err::write(&exe, FAKE_WORKER).expect("write the fake worker");
        fs_err::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Instance {
            dir,
            child: None,
            in_namespace: false,
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, program: &Path, env: &[(&str, &str)]) -> Command {
        let log = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("master.log"))
            .expect("log file");
        let mut cmd = Command::new(program);
        cmd.current_dir(self.dir.path())
            .env(EXE_DIR, self.path("bin"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log.into_parts().0));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the master with `args` (liege's command line) and extra environment.
    pub(crate) fn start(&mut self, args: &[&str], env: &[(&str, &str)]) {
        let me = std::env::current_exe().expect("own path");
        let mut cmd = self.command(&me, env);
        cmd.arg(AS_MASTER).args(args);
        self.child = Some(cmd.spawn().expect("start the master"));
    }

    /// Starts the master as pid 1 of a new pid namespace (`unshare --pid --fork --kill-child`).
    pub(crate) fn start_as_pid1(&mut self, args: &[&str], env: &[(&str, &str)]) {
        let me = std::env::current_exe().expect("own path");
        let mut cmd = self.command(Path::new("unshare"), env);
        cmd.args(["--pid", "--fork", "--kill-child"])
            .arg(me)
            .arg(AS_MASTER)
            .args(args);
        self.child = Some(cmd.spawn().expect("start unshare"));
        self.in_namespace = true;
    }

    /// The master's pid (as the test sees it).
    pub(crate) fn pid(&self) -> i32 {
        let Some(child) = &self.child else {
            return 0;
        };
        let pid = i32::try_from(child.id()).unwrap_or(0);
        if !self.in_namespace {
            return pid;
        }
        let mut found = 0;
        wait_until(Duration::from_secs(5), || {
            found = children_of(pid).first().map_or(0, |c| c.0);
            found != 0
        });
        found
    }

    pub(crate) fn signal(&self, sig: Signal) {
        kill(self.pid(), sig);
    }

    /// Waits for the master (or unshare) to exit; its exit status.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let mut code = None;
        wait_until(timeout, || match child.try_wait() {
            Ok(Some(status)) => {
                code = Some(status.code().unwrap_or(-1));
                true
            }
            _ => false,
        });
        if code.is_some() {
            self.child = None;
        }
        code
    }

    pub(crate) fn log(&self) -> String {
        fs_err::read_to_string(self.path("master.log")).unwrap_or_default()
    }

    pub(crate) fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.log().contains(needle))
    }

    /// Stops the master with SIGINT and returns its exit status.
    pub(crate) fn stop(&mut self) -> Option<i32> {
        self.signal(Signal::INT);
        self.wait(Duration::from_secs(10))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let master = self.pid();
        let Some(child) = &mut self.child else {
            return;
        };
        let top = i32::try_from(child.id()).unwrap_or(0);
        let tree = descendants(top);
        kill(master, Signal::INT);
        let stopped = wait_until(Duration::from_secs(6), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            for pid in &tree {
                kill(*pid, Signal::KILL);
            }
            let _ = child.wait();
        }
        // Workers that outlived a master that failed: by pid, from the tree seen above.
        for pid in tree.iter().skip(1) {
            if proc_stat(*pid).is_some_and(|(s, _)| s != 'Z') {
                kill(*pid, Signal::KILL);
            }
        }
        if std::thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "--- master log of {} ---\n{}",
                self.dir.path().display(),
                self.log()
            );
        }
    }
}

/// A response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Reply {
    /// The worker pid the fake worker puts first in its body.
    pub(crate) fn pid(&self) -> i32 {
        self.body
            .split(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }
}

fn exchange(mut s: impl Read + Write, request: &[u8]) -> std::io::Result<Reply> {
    s.write_all(request)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no response head in {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    Ok(Reply {
        status,
        body: body.to_string(),
    })
}

fn http_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").into_bytes()
}

/// `GET path` over TCP.
pub(crate) fn get(addr: &str, path: &str) -> std::io::Result<Reply> {
    let s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    exchange(s, &http_request(path))
}

/// `GET path` over a unix socket.
pub(crate) fn get_unix(socket: &Path, path: &str) -> std::io::Result<Reply> {
    let s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    exchange(s, &http_request(path))
}

/// A uwsgi packet for `GET /` over a unix socket.
pub(crate) fn uwsgi_unix(socket: &Path) -> std::io::Result<Reply> {
    let mut vars = Vec::new();
    for (k, v) in [("REQUEST_METHOD", "GET"), ("PATH_INFO", "/")] {
        for s in [k, v] {
            let len = u16::try_from(s.len()).expect("short");
            vars.extend_from_slice(&len.to_le_bytes());
            vars.extend_from_slice(s.as_bytes());
        }
    }
    let mut packet = vec![0u8];
    packet.extend_from_slice(&u16::try_from(vars.len()).expect("short").to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&vars);
    let s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    exchange(s, &packet)
}

/// The stats document from a TCP stats socket.
pub(crate) fn stats(addr: &str) -> std::io::Result<serde_json::Value> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    serde_json::from_str(&text).map_err(std::io::Error::other)
}

/// The pids of the workers in a stats document, by id.
pub(crate) fn worker_pids(doc: &serde_json::Value) -> Vec<i64> {
    doc["workers"]
        .as_array()
        .map(|ws| ws.iter().map(|w| w["pid"].as_i64().unwrap_or(0)).collect())
        .unwrap_or_default()
}

/// Whether every worker in a stats document is accepting.
pub(crate) fn all_accepting(doc: &serde_json::Value) -> bool {
    doc["workers"]
        .as_array()
        .is_some_and(|ws| !ws.is_empty() && ws.iter().all(|w| w["accepting"] == 1))
}
