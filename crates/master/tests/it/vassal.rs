//! The master as a vassal, and `uid`/`gid`: the real `liege` and `liege-python` (built beside
//! this test binary by `cargo build --workspace --bins`), each inside `unshare --net` with its
//! HTTP socket a unix socket in the test's temp dir, so nothing listens outside.
//!
//! The vassal tests play the emperor: a listening control socket in a 0700 dir, a memfd with the
//! resolved options, both handed to `liege` at known descriptor numbers
//! (`liege_sys::pass_fds`), then the control connection's messages both ways.

use std::io::{Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use liege_proto::emperor::{
    self, CONFIG_FD, CONTROL_FD, ConfigEntry, Decoder, ToEmperor, ToMaster, VASSAL_NAME,
};
use rustix::process::Signal;

use crate::support::{Reply, descendants, get_unix, kill, proc_alive, wait_until};

const LONG: Duration = Duration::from_secs(30);

/// The app: its pid, uid, gid, `GREETING`, and whether the emperor's variables reached it.
const APP: &str = r#"
import os, time

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "1"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    env = os.environ
    body = "%d %d %d %s %s %s" % (
        os.getpid(), os.getuid(), os.getgid(), env.get("GREETING", "-"),
        env.get("LIEGE_EMPEROR_CONTROL_FD", "-"), env.get("LIEGE_EMPEROR_CONFIG_FD", "-"))
    return [body.encode()]
"#;

/// `target/debug`, where cargo put `liege` and `liege-python` (this binary is in its `deps/`).
fn bin_dir() -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let dir = me
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    for exe in ["liege", "liege-python"] {
        assert!(
            dir.join(exe).exists(),
            "{} is missing: run `cargo build --workspace --bins` first",
            dir.join(exe).display()
        );
    }
    dir
}

/// A temp dir that every user may enter and read (the workers may run as nobody), holding the
/// app.
fn app_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("liege-vassal-")
        .tempdir_in("/tmp")
        .expect("temp dir");
    fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    fs_err::write(dir.path().join("app.py"), APP).expect("app");
    dir
}

/// A `liege` process (under `unshare --net`, which execs it: same pid), stopped with its whole
/// tree by pid when dropped.
struct Liege {
    child: Option<Child>,
    log: PathBuf,
}

impl Liege {
    fn start(mut cmd: Command, log: PathBuf) -> Liege {
        let out = fs_err::File::create(&log).expect("log").into_parts().0;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out);
        Liege {
            child: Some(cmd.spawn().expect("start liege")),
            log,
        }
    }

    fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map_or(0, |c| i32::try_from(c.id()).unwrap_or(0))
    }

    fn log(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str) {
        assert!(
            wait_until(LONG, || self.log().contains(needle)),
            "no {needle:?} in the log:\n{}",
            self.log()
        );
    }

    /// Its exit status, once it exits within `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let mut code = None;
        wait_until(timeout, || match child.try_wait() {
            Ok(Some(s)) => {
                code = Some(s.code().unwrap_or(-1));
                true
            }
            _ => false,
        });
        if code.is_some() {
            self.child = None;
        }
        code
    }
}

impl Drop for Liege {
    fn drop(&mut self) {
        let Some(child) = &mut self.child else {
            return;
        };
        let pid = i32::try_from(child.id()).unwrap_or(0);
        let tree = descendants(pid);
        kill(pid, Signal::INT);
        if !wait_until(Duration::from_secs(6), || {
            matches!(child.try_wait(), Ok(Some(_)))
        }) {
            kill(pid, Signal::KILL);
            let _ = child.wait();
        }
        for p in tree.iter().skip(1) {
            if proc_alive(*p) {
                kill(*p, Signal::KILL);
            }
        }
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "--- liege log ---\n{}", self.log());
        }
    }
}

/// `GET path` on the instance's unix HTTP socket.
fn get(socket: &Path, path: &str) -> std::io::Result<Reply> {
    get_unix(socket, path)
}

/// The app's answer, split: pid, uid, gid, GREETING, control fd var, config fd var.
fn fields(r: &Reply) -> Vec<String> {
    r.body.split(' ').map(str::to_string).collect()
}

/// The test's end of the control connection.
struct Control {
    s: UnixStream,
    d: Decoder<ToEmperor>,
}

impl Control {
    fn connect(path: &Path) -> Control {
        Control {
            s: UnixStream::connect(path).expect("connect to the control socket"),
            d: Decoder::new(),
        }
    }

    /// The next message within `timeout`; `None` on timeout or when the master closed.
    fn next(&mut self, timeout: Duration) -> Option<ToEmperor> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(m) = self.d.next_message().expect("a good frame") {
                return Some(m);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.s.set_read_timeout(Some(left)).expect("timeout");
            let mut buf = [0u8; 4096];
            match self.s.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.d.feed(&buf[..n]),
            }
        }
    }

    /// Reads until `want` arrives (panics after `timeout`); the messages before it.
    fn until(&mut self, want: ToEmperor, timeout: Duration) -> Vec<ToEmperor> {
        let end = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.next(left) {
                Some(m) if m == want => return seen,
                Some(m) => seen.push(m),
                None => panic!("no {want:?} within {timeout:?}; got {seen:?}"),
            }
        }
    }

    /// The next message that is not a heartbeat.
    fn next_event(&mut self, timeout: Duration) -> Option<ToEmperor> {
        let end = Instant::now() + timeout;
        loop {
            match self.next(end.saturating_duration_since(Instant::now())) {
                Some(ToEmperor::Heartbeat) => {}
                other => return other,
            }
        }
    }

    /// Whether the master closed the connection within `timeout`.
    fn closed(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.s.set_read_timeout(Some(left)).expect("timeout");
            let mut buf = [0u8; 4096];
            match self.s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    fn send(&mut self, m: &ToMaster) {
        self.s.write_all(&m.encode()).expect("send to the master");
    }

    /// `LogFd`, with `fd` in the same `sendmsg`.
    fn send_log_fd(&mut self, fd: BorrowedFd<'_>) {
        let frame = ToMaster::LogFd.encode();
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        assert!(control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds)));
        let n = rustix::net::sendmsg(
            &self.s,
            &[std::io::IoSlice::new(&frame)],
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        )
        .expect("sendmsg");
        assert_eq!(n, frame.len());
    }
}

fn entry(key: &str, value: &str, origin: String) -> ConfigEntry {
    ConfigEntry {
        key: key.into(),
        value: value.into(),
        origin,
    }
}

/// A sealed memfd holding `bytes`, as the emperor makes it.
fn memfd(bytes: &[u8]) -> OwnedFd {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create("options", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .expect("memfd");
    let mut f = std::fs::File::from(fd);
    f.write_all(bytes).expect("write the options");
    let fd = OwnedFd::from(f);
    rustix::fs::fcntl_add_seals(
        &fd,
        SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL,
    )
    .expect("seal");
    fd
}

/// Starts `liege` as a vassal: `control` at descriptor 10, the options memfd at 11.
fn start_vassal(dir: &Path, control: OwnedFd, config: &[u8]) -> Liege {
    let mut cmd = Command::new("unshare");
    cmd.arg("--net")
        .arg(bin_dir().join("liege"))
        .current_dir(dir)
        .env(CONTROL_FD, "10")
        .env(CONFIG_FD, "11")
        .env(VASSAL_NAME, "app");
    liege_sys::pass_fds::pass_fds(&mut cmd, vec![(control, 10), (memfd(config), 11)])
        .expect("pass the descriptors");
    Liege::start(cmd, dir.join("master.log"))
}

/// A root-only dir holding the control socket, and the listener.
fn control_socket(dir: &Path) -> (PathBuf, OwnedFd) {
    let ctl = dir.join("ctl");
    fs_err::create_dir(&ctl).expect("ctl dir");
    fs_err::set_permissions(&ctl, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let path = ctl.join("app.sock");
    let listener = UnixListener::bind(&path).expect("bind the control socket");
    (path, OwnedFd::from(listener))
}

/// Requests `GET /` on `socket` until `stop`, counting answers and failures.
fn load(socket: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let mut ok = 0;
        let mut failed = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match get(&socket, "/") {
                Ok(r) if r.status == 200 => ok += 1,
                Ok(r) => failed.push(format!("{r:?}")),
                Err(e) => failed.push(e.to_string()),
            }
        }
        (ok, failed)
    })
}

/// Everything read from `fd` until every writer closed it, collected as it arrives.
fn drain_pipe(fd: OwnedFd) -> (Arc<Mutex<String>>, std::thread::JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let t = Arc::clone(&text);
    let h = std::thread::spawn(move || {
        let mut f = std::fs::File::from(fd);
        let mut buf = [0u8; 4096];
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            t.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, h)
}

pub(crate) fn the_emperor_drives_a_vassal_master() {
    let dir = app_dir();
    let d = dir.path();
    let (control_path, listener) = control_socket(d);
    let http = d.join("http.sock");
    let ini = d.join("app.ini").display().to_string();
    let config = |greeting: &str, processes: &str| {
        let at = |n: u32| format!("{ini}:{n}");
        emperor::encode_config(&[
            entry("http-socket", http.to_str().unwrap(), at(2)),
            entry("wsgi-file", d.join("app.py").to_str().unwrap(), at(3)),
            entry("processes", processes, at(4)),
            entry("env", &format!("GREETING={greeting}"), at(5)),
            entry("heartbeat", "1", at(6)),
            entry("worker-reload-mercy", "10", at(7)),
            // Applied by the emperor: the master ignores them.
            entry("memory-limit", "256M", at(8)),
            entry("emperor-tyrant", "true", at(9)),
        ])
    };
    let first = config("one", "2");
    let mut liege = start_vassal(d, listener, &first);

    // A new connection: hello (pid and digest), ready, then accepting once a worker accepts.
    let mut c = Control::connect(&control_path);
    assert_eq!(
        c.next(LONG),
        Some(ToEmperor::Hello {
            pid: u32::try_from(liege.pid()).unwrap(),
            digest: emperor::config_digest(&first),
        }),
        "{}",
        liege.log()
    );
    assert_eq!(c.next_event(LONG), Some(ToEmperor::Ready));
    c.until(ToEmperor::Accepting, LONG);
    let r = get(&http, "/").expect("served");
    assert_eq!(r.status, 200);
    let f = fields(&r);
    assert_eq!(
        f[1..],
        ["0", "0", "one", "-", "-"],
        "{r:?}: no emperor variable reaches a worker"
    );
    // The first request served: loyal; heartbeats every second.
    c.until(ToEmperor::Loyal, Duration::from_secs(5));
    c.until(ToEmperor::Heartbeat, Duration::from_secs(3));
    assert!(
        liege.log().contains("vassal app: options from the emperor"),
        "{}",
        liege.log()
    );

    // Options that cannot work: logged with their file and line, the old ones kept.
    c.send(&ToMaster::Reload {
        config: config("bad", "lots"),
    });
    liege.wait_for_log(&format!(
        "{ini}:4: invalid value `lots` for `processes`: expected a whole number"
    ));
    liege.wait_for_log("the emperor's new options cannot work: keeping the old ones");
    c.until(ToEmperor::Accepting, LONG);
    assert_eq!(fields(&get(&http, "/").unwrap())[3], "one");

    // New options, under load: every request answered, the new ones served.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(http.clone(), Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(300));
    let second = config("two", "2");
    c.send(&ToMaster::Reload {
        config: second.clone(),
    });
    c.until(ToEmperor::Accepting, LONG);
    let switched = wait_until(LONG, || {
        (0..10).all(|_| get(&http, "/").is_ok_and(|r| fields(&r)[3] == "two"))
    });
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = loader.join().expect("load thread");
    assert!(switched, "the new options are not served:\n{}", liege.log());
    assert!(
        failed.is_empty(),
        "{} failed requests: {failed:?}",
        failed.len()
    );
    assert!(ok > 20, "only {ok} requests during the reload");

    // The connection drops: the master serves on, and greets the next one with the digest of
    // what it now runs.
    drop(c);
    liege.wait_for_log("lost the emperor's connection; serving on");
    assert_eq!(get(&http, "/").unwrap().status, 200);
    let mut c = Control::connect(&control_path);
    assert_eq!(
        c.next(LONG),
        Some(ToEmperor::Hello {
            pid: u32::try_from(liege.pid()).unwrap(),
            digest: emperor::config_digest(&second),
        })
    );
    assert_eq!(c.next_event(LONG), Some(ToEmperor::Ready));
    assert_eq!(c.next_event(LONG), Some(ToEmperor::Accepting));
    assert_eq!(c.next_event(LONG), Some(ToEmperor::Loyal));

    // A new connection replaces the old one.
    let mut c2 = Control::connect(&control_path);
    assert!(matches!(c2.next(LONG), Some(ToEmperor::Hello { .. })));
    assert!(c.closed(LONG), "the replaced connection is closed");
    liege.wait_for_log("a new connection from the emperor replaces the old one");
    let mut c = c2;

    // Only root may be the emperor: a connection from nobody is closed unanswered, and the
    // emperor's connection stays.
    let ctl = control_path.parent().unwrap();
    fs_err::set_permissions(ctl, std::fs::Permissions::from_mode(0o711)).unwrap();
    fs_err::set_permissions(&control_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
        ])
        .arg(format!(
            "import socket; s = socket.socket(socket.AF_UNIX); s.settimeout(20); \
             s.connect({:?}); print(repr(s.recv(100)))",
            control_path.display().to_string()
        ))
        .output()
        .expect("setpriv");
    fs_err::set_permissions(&control_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    fs_err::set_permissions(ctl, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "b''",
        "{out:?}"
    );
    liege.wait_for_log("refused a control connection from uid 65534: only root may be the emperor");
    c.until(ToEmperor::Heartbeat, Duration::from_secs(3));

    // A new log pipe: the master's lines and the new workers' go to it.
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let (text, reader) = drain_pipe(read);
    c.send_log_fd(write.as_fd());
    drop(write);
    c.until(ToEmperor::Accepting, LONG);
    let log = || text.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let has = |needle: &str| log().contains(needle);
    assert!(
        wait_until(LONG, || has("the emperor sent a new log")),
        "{}",
        log()
    );
    // Old workers still write to the old log until they stop: ask until a new one answers.
    assert!(
        wait_until(LONG, || {
            get(&http, "/").is_ok_and(|r| r.status == 200) && has("GET / =>")
        }),
        "a new worker's request line is in the new pipe: {}",
        log()
    );
    // Stop: the request being served finishes, then the master exits 0.
    let slow_http = http.clone();
    let slow = std::thread::spawn(move || get(&slow_http, "/sleep?2"));
    std::thread::sleep(Duration::from_millis(500));
    c.send(&ToMaster::Stop);
    c.until(ToEmperor::Stopping, LONG);
    let r = slow.join().expect("slow request").expect("answered");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(liege.wait(LONG), Some(0), "{}", log());
    assert!(c.closed(LONG));
    // Every process that held the new log is gone.
    reader.join().expect("log reader");
    assert!(has("goodbye (exit status 0)"), "{}", log());
}

pub(crate) fn a_vassal_with_bad_options_names_the_emperors_file_and_line() {
    let dir = app_dir();
    let d = dir.path();
    let (_, listener) = control_socket(d);
    let config = emperor::encode_config(&[
        entry(
            "http-socket",
            d.join("http.sock").to_str().unwrap(),
            "/srv/vassals/bad.ini:2".into(),
        ),
        entry("processes", "lots", "/srv/vassals/bad.ini:3".into()),
    ]);
    let mut liege = start_vassal(d, listener, &config);
    assert_eq!(liege.wait(LONG), Some(2), "{}", liege.log());
    assert!(
        liege.log().contains(
            "/srv/vassals/bad.ini:3: invalid value `lots` for `processes`: expected a whole number"
        ),
        "{}",
        liege.log()
    );
    // Bytes that are no config at all.
    let (_, listener) = {
        let sub = d.join("again");
        fs_err::create_dir(&sub).unwrap();
        control_socket(&sub)
    };
    let mut liege = start_vassal(d, listener, b"not options");
    assert_eq!(liege.wait(LONG), Some(2), "{}", liege.log());
    assert!(
        liege.log().contains(
            "liege: the emperor's options: not a liege config (it does not start with `LGC1`)"
        ),
        "{}",
        liege.log()
    );
}

/// `/proc/PID/status`'s line `key:` (its fields).
fn status_line(pid: i32, key: &str) -> Vec<String> {
    let text = fs_err::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|rest| rest.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

pub(crate) fn uid_nobody_runs_master_and_workers_as_nobody() {
    let dir = app_dir();
    let d = dir.path();
    let http = d.join("http.sock");
    let stats = d.join("stats.sock");
    fs_err::write(
        d.join("app.ini"),
        format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = app.py\nprocesses = 2\nuid = nobody\nharakiri = 2\nstats = {}\n",
            http.display(),
            stats.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("unshare");
    cmd.arg("--net")
        .arg(bin_dir().join("liege"))
        .args(["--ini", "app.ini"])
        .current_dir(d);
    let mut liege = Liege::start(cmd, d.join("master.log"));
    liege.wait_for_log("running as uid 65534 gid 65534");
    assert!(
        wait_until(LONG, || get(&http, "/").is_ok_and(|r| r.status == 200)),
        "{}",
        liege.log()
    );
    let r = get(&http, "/").unwrap();
    let f = fields(&r);
    assert_eq!(f[1..3], ["65534", "65534"], "{r:?}");
    let master = liege.pid();
    let workers: Vec<i32> = descendants(master).into_iter().skip(1).collect();
    assert_eq!(workers.len(), 2, "{workers:?}");
    for pid in std::iter::once(master).chain(workers.iter().copied()) {
        assert_eq!(status_line(pid, "Uid:"), ["65534"; 4], "pid {pid}");
        assert_eq!(status_line(pid, "Gid:"), ["65534"; 4], "pid {pid}");
        assert_eq!(status_line(pid, "Groups:"), ["65534"], "pid {pid}");
    }
    // The stats socket still answers, and harakiri still takes the client socket of a stuck
    // worker (pidfd_getfd on a worker of the same uid) to answer 504.
    let mut text = String::new();
    UnixStream::connect(&stats)
        .expect("stats")
        .read_to_string(&mut text)
        .expect("stats document");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(doc["uid"], 65534, "{doc}");
    assert_eq!(doc["workers"].as_array().map(Vec::len), Some(2), "{doc}");
    let stuck = get(&http, "/sleep?30").expect("answered");
    assert_eq!(stuck.status, 504, "{stuck:?}");
    liege.wait_for_log("HARAKIRI");
    assert!(
        wait_until(LONG, || get(&http, "/").is_ok_and(|r| r.status == 200)),
        "{}",
        liege.log()
    );
    kill(master, Signal::INT);
    assert_eq!(liege.wait(LONG), Some(0), "{}", liege.log());
}

pub(crate) fn what_the_emperor_applies_is_refused_by_hand() {
    let dir = app_dir();
    let d = dir.path();
    let http = d.join("http.sock");
    let cases = [
        (
            "memory-limit = 64M",
            "app.ini:4: `memory-limit` is applied by the emperor: run this file as a vassal (`liege --emperor DIR`)",
        ),
        (
            "cgroup-opt = memory.swappiness=0",
            "app.ini:4: `cgroup-opt` is applied by the emperor: run this file as a vassal (`liege --emperor DIR`)",
        ),
        (
            "emperor-stats = 127.0.0.1:9",
            "app.ini:4: `emperor-stats` is an option of the emperor (`liege --emperor DIR`), not of an instance",
        ),
        (
            "emperor = /etc/liege/vassals",
            "app.ini:4: `emperor`: cannot watch `/etc/liege/vassals`",
        ),
    ];
    for (line, want) in cases {
        fs_err::write(
            d.join("app.ini"),
            format!(
                "[uwsgi]\nhttp-socket = {}\nwsgi-file = app.py\n{line}\n",
                http.display()
            ),
        )
        .unwrap();
        let out = Command::new(bin_dir().join("liege"))
            .args(["--ini", "app.ini"])
            .current_dir(d)
            .stdin(Stdio::null())
            .output()
            .expect("liege");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line}: {err}");
        assert!(err.contains(want), "{line}: want {want:?} in {err}");
        assert!(!http.exists(), "{line}: nothing was bound");
    }
}
