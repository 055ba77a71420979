//! A real emperor for a test: `liege --emperor` in a fresh network namespace, with its own
//! vassal folder, run dir, log dir and cgroup root, so tests never collide and nothing
//! reaches the host network. Dropping the guard stops it (SIGINT), then kills whatever is
//! left in its cgroups and removes them, even when the test failed.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::common::repo;
use crate::server::{Addr, get, require_python_worker};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The cgroup hierarchies of this host (every mount under /sys/fs/cgroup).
pub(crate) fn hierarchies() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(text) = fs_err::read_to_string("/proc/self/mountinfo") else {
        return out;
    };
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split_whitespace().next().unwrap_or_default();
        if (fstype == "cgroup" || fstype == "cgroup2")
            && let Some(mount) = left.split_whitespace().nth(4)
        {
            out.push(PathBuf::from(mount));
        }
    }
    out
}

/// The hierarchy dir of a v1 controller (or the v2 mount when the controller is there).
pub(crate) fn controller_dir(controller: &str) -> Option<PathBuf> {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.join("cgroup.procs").exists() {
        return Some(v1);
    }
    hierarchies().into_iter().find(|h| {
        fs_err::read_to_string(h.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|x| x == controller))
    })
}

/// Kills every process in a cgroup folder and below, then removes the folders bottom-up.
fn purge_cgroup(dir: &Path) {
    let Ok(rd) = fs_err::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            purge_cgroup(&e.path());
        }
    }
    for _ in 0..50 {
        let procs = fs_err::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        let pids: Vec<i32> = procs
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        if pids.is_empty() && fs_err::remove_dir(dir).is_ok() {
            return;
        }
        if fs_err::write(dir.join("cgroup.kill"), "1").is_err() {
            for p in pids {
                if let Some(pid) = Pid::from_raw(p) {
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running emperor and its folders.
#[derive(Debug)]
pub(crate) struct Emperor {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub(crate) vassals: PathBuf,
    pub(crate) run: PathBuf,
    pub(crate) logs: PathBuf,
    /// Where vassals put their sockets (their mount namespace sees this host folder).
    pub(crate) sockets: PathBuf,
    /// World-readable copies of the test apps (customers' uids cannot read the checkout).
    pub(crate) apps: PathBuf,
    pub(crate) cgroup_root: String,
    args: Vec<String>,
    /// The emperor's stderr, across restarts.
    pub(crate) log: PathBuf,
}

impl Emperor {
    /// Starts an emperor with the given extra options (`--emperor-throttle 100`...).
    pub(crate) fn start(extra: &[&str]) -> Emperor {
        require_python_worker();
        let dir = tempfile::Builder::new()
            .prefix("liege-emperor-it-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        fs_err::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let sub = |n: &str, mode: u32| {
            let p = dir.path().join(n);
            fs_err::create_dir(&p).unwrap();
            fs_err::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let vassals = sub("vassals", 0o755);
        let logs = sub("logs", 0o755);
        let sockets = sub("sockets", 0o777);
        let apps = sub("apps", 0o755);
        for app in ["hello.py", "shell.py", "environ_keys.py"] {
            let to = apps.join(app);
            fs_err::copy(repo().join("tests/apps/python").join(app), &to).unwrap();
            fs_err::set_permissions(&to, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let run = dir.path().join("run");
        let cgroup_root = format!(
            "liege-it-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut args: Vec<String> = vec![
            "--emperor".into(),
            vassals.display().to_string(),
            "--emperor-run-dir".into(),
            run.display().to_string(),
            "--emperor-log-dir".into(),
            logs.display().to_string(),
            "--emperor-cgroup-root".into(),
            cgroup_root.clone(),
            "--emperor-stats".into(),
            dir.path().join("stats.sock").display().to_string(),
            "--emperor-metrics".into(),
            dir.path().join("metrics.sock").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let log = dir.path().join("emperor.log");
        let mut e = Emperor {
            child: None,
            dir,
            vassals,
            run,
            logs,
            sockets,
            apps,
            cgroup_root,
            args,
            log,
        };
        e.launch();
        e
    }

    /// Starts the emperor process (again), in a network namespace of its own.
    pub(crate) fn launch(&mut self) {
        assert!(self.child.is_none(), "the emperor runs already");
        let out = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log")
            .into_parts()
            .0;
        let child = Command::new("unshare")
            .arg("--net")
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_liege"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn the emperor");
        self.child = Some(child);
        // Wait for its stats socket: it is up once that answers.
        let start = Instant::now();
        while self.try_stats().is_none() {
            if let Some(s) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("the emperor exited with {s}:\n{}", self.log_text());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the emperor's stats never answered:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("running").id()).expect("pid")
    }

    pub(crate) fn signal(&self, sig: Signal) {
        let pid = Pid::from_raw(self.pid()).expect("pid");
        rustix::process::kill_process(pid, sig).expect("kill");
    }

    /// SIGKILL, the emperor alone: its vassals live on.
    pub(crate) fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGINT and wait; the exit status.
    pub(crate) fn stop(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal(Signal::INT);
        let mut child = self.child.take().expect("running");
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().expect("wait") {
                return s;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the emperor did not stop in {limit:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The emperor's network namespace (`/proc/PID/ns/net`): where its router listens.
    pub(crate) fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid()))
    }

    /// A TCP connection made from inside the emperor's network namespace. The connect runs on
    /// a thread of its own that joins the namespace (setns changes the calling thread's only);
    /// the socket keeps its namespace wherever it is used from.
    pub(crate) fn connect(
        &self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<std::net::TcpStream> {
        let ns = fs_err::File::open(self.netns())?;
        std::thread::spawn(move || {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )?;
            let s = std::net::TcpStream::connect(addr)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            Ok(s)
        })
        .join()
        .map_err(|_| std::io::Error::other("the connecting thread panicked"))?
    }

    /// One HTTP/1.1 request for `host` and `path` on a new connection to `addr` in the
    /// emperor's namespace (its router).
    pub(crate) fn request_in_netns(
        &self,
        addr: std::net::SocketAddr,
        host: &str,
        path: &str,
    ) -> std::io::Result<crate::server::Resp> {
        let mut s = self.connect(addr)?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )?;
        crate::server::read_response(&mut std::io::BufReader::new(s), false)
    }

    /// A command run inside the emperor's network namespace (`nsenter --net=...`): for
    /// clients such as curl and h2load.
    pub(crate) fn command_in_netns(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns().display()))
            .arg("--")
            .arg(program);
        c
    }

    pub(crate) fn log_text(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }

    /// A vassal's own log (what its master and workers wrote).
    pub(crate) fn vassal_log(&self, name: &str) -> String {
        fs_err::read_to_string(self.logs.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Writes a vassal file the way a panel does: a temporary name, then a rename.
    pub(crate) fn write_vassal(&self, file: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{file}.tmp"));
        fs_err::write(&tmp, text).unwrap();
        fs_err::rename(&tmp, self.vassals.join(file)).unwrap();
    }

    /// A hello-world vassal's ini, with `extra` lines.
    pub(crate) fn app_ini(&self, name: &str, app: &str, extra: &str) -> String {
        format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\nprocesses = 1\nvacuum = true\n{extra}",
            self.sock_path(name).display(),
            self.apps.join(app).display()
        )
    }

    /// Customer `name`'s home on the host: `homes/NAME`, owned by `uid`, mode 0700, holding a
    /// copy of each test app (made on first use).
    pub(crate) fn home(&self, name: &str, uid: u32) -> PathBuf {
        let homes = self.dir.path().join("homes");
        if !homes.exists() {
            fs_err::create_dir(&homes).unwrap();
            fs_err::set_permissions(&homes, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let home = homes.join(name);
        if !home.exists() {
            fs_err::create_dir(&home).unwrap();
            for app in ["hello.py", "shell.py"] {
                fs_err::copy(self.apps.join(app), home.join(app)).unwrap();
                std::os::unix::fs::chown(home.join(app), Some(uid), Some(uid)).unwrap();
            }
            std::os::unix::fs::chown(&home, Some(uid), Some(uid)).unwrap();
            fs_err::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        home
    }

    /// A jailed vassal's ini (`jail-root = host`, running as `uid`): `app` from its home
    /// (`/home/NAME` in the jail), listening on `/run/app.sock`, which the host reaches as
    /// [`Emperor::jail_addr`]; `extra` lines at the end.
    pub(crate) fn jailed_ini(&self, name: &str, uid: u32, app: &str, extra: &str) -> String {
        let home = self.home(name, uid);
        format!(
            "[uwsgi]\nhttp-socket = /run/app.sock\nwsgi-file = /home/{name}/{app}\nprocesses = 1\n\
             vacuum = true\nuid = {uid}\ngid = {uid}\njail-root = host\njail-home = {}\n{extra}",
            home.display()
        )
    }

    /// Where the host reaches a jailed vassal's `/run/app.sock`.
    pub(crate) fn jail_addr(&self, name: &str) -> Addr {
        Addr::Unix(self.run.join("vassals").join(name).join("app.sock"))
    }

    /// Waits until the jailed vassal `name` answers `GET /` with 200.
    pub(crate) fn wait_jailed(&self, name: &str) {
        let addr = self.jail_addr(name);
        self.eventually(
            Duration::from_secs(30),
            &format!("jailed vassal {name} serving"),
            || get(&addr, "/").is_ok_and(|r| r.status == 200),
        );
    }

    pub(crate) fn sock_path(&self, name: &str) -> PathBuf {
        self.sockets.join(format!("{name}.sock"))
    }

    pub(crate) fn addr(&self, name: &str) -> Addr {
        Addr::Unix(self.sock_path(name))
    }

    pub(crate) fn try_stats(&self) -> Option<serde_json::Value> {
        let mut s =
            std::os::unix::net::UnixStream::connect(self.dir.path().join("stats.sock")).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut s, &mut text).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub(crate) fn stats(&self) -> serde_json::Value {
        self.try_stats().expect("the emperor's stats")
    }

    /// One vassal's entry in the stats.
    pub(crate) fn vassal(&self, name: &str) -> Option<serde_json::Value> {
        self.stats()["vassals"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
    }

    /// The Prometheus text of `emperor-metrics`.
    pub(crate) fn metrics(&self) -> String {
        let mut s =
            std::os::unix::net::UnixStream::connect(self.dir.path().join("metrics.sock")).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut s, &mut text).unwrap();
        text
    }

    /// Polls until `f` holds, failing with `what` and the emperor's log after `limit`.
    pub(crate) fn eventually(&self, limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < limit,
                "{what} did not happen in {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Waits until vassal `name` answers `GET /` with 200.
    pub(crate) fn wait_serving(&self, name: &str) {
        let addr = self.addr(name);
        self.eventually(
            Duration::from_secs(30),
            &format!("vassal {name} serving"),
            || get(&addr, "/").is_ok_and(|r| r.status == 200),
        );
    }

    /// The folders of vassal `name`'s cgroup, in every hierarchy that has one.
    pub(crate) fn cgroup_dirs(&self, name: &str) -> Vec<PathBuf> {
        hierarchies()
            .into_iter()
            .map(|h| h.join(&self.cgroup_root).join(name))
            .filter(|p| p.exists())
            .collect()
    }

    /// Every cgroup folder of this emperor's root that exists.
    pub(crate) fn cgroup_roots(&self) -> Vec<PathBuf> {
        hierarchies()
            .into_iter()
            .map(|h| h.join(&self.cgroup_root))
            .filter(|p| p.exists())
            .collect()
    }

    /// The pids in vassal `name`'s cgroup.
    pub(crate) fn pids(&self, name: &str) -> Vec<i32> {
        let dir = controller_dir("pids")
            .expect("a pids hierarchy")
            .join(&self.cgroup_root)
            .join(name);
        let mut pids: Vec<i32> = fs_err::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }
}

impl Drop for Emperor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)) {
                let _ = rustix::process::kill_process(pid, Signal::INT);
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(15) {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Whatever the emperor could not stop or remove.
        for root in hierarchies().into_iter().map(|h| h.join(&self.cgroup_root)) {
            purge_cgroup(&root);
        }
    }
}
