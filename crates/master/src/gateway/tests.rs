//! The gateway's process handling, against a fake router: a Python script that prints its
//! arguments, its environment and every control frame it reads as JSON lines on its output,
//! answers a settings frame with `applied` and counters, and serves "hi" on its first
//! listener.

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use liege_proto::router::{Balance, Counters, NodeProto, NodeState};

use super::*;

const FAKE: &str = r#"#!/usr/bin/python3
import json, os, socket, struct, sys, threading
env = {k: v for k, v in os.environ.items() if k.startswith("LIEGE_ROUTER")}
print(json.dumps({"argv": sys.argv[1:], "env": env, "uid": os.getuid()}), flush=True)
ctl = socket.socket(fileno=int(env["LIEGE_ROUTER_CONTROL_FD"]))
listeners = []
for item in env["LIEGE_ROUTER_LISTENERS"].split(","):
    fd, kind = item.split(":")
    s = socket.socket(fileno=int(fd))
    s.setblocking(True)
    listeners.append(s)
def serve():
    while True:
        c, _ = listeners[0].accept()
        c.sendall(b"hi")
        c.close()
threading.Thread(target=serve, daemon=True).start()
def frame(msg):
    data = json.dumps(msg).encode()
    return struct.pack("<I", len(data)) + data
buf = b""
while True:
    data = ctl.recv(65536)
    if not data:
        break
    buf += data
    while len(buf) >= 4:
        n = struct.unpack("<I", buf[:4])[0]
        if len(buf) < 4 + n:
            break
        msg = json.loads(buf[4:4 + n])
        buf = buf[4 + n:]
        print(json.dumps(msg), flush=True)
        if "settings" in msg:
            ctl.sendall(frame({"applied": {"error": None}}))
            ctl.sendall(frame({"counters": [{"vassal": "a", "requests": 3, "status_4xx": 1,
                "status_5xx": 0, "bytes_in": 10, "bytes_out": 20}]}))
print("bye", flush=True)
"#;

struct Fixture {
    dir: tempfile::TempDir,
    out: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-router");
        fs_err::write(&script, FAKE).unwrap();
        fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = dir.path().join("out");
        Fixture { dir, out }
    }

    /// A gateway on a listener of 127.0.0.1, running the fake.
    fn gateway(&self, identity: Option<(u32, u32)>) -> Gateway {
        // Not close-on-exec: the fake is a script, which its interpreter opens by a
        // /dev/fd path after the exec.
        let exe = rustix::fs::open(
            self.dir.path().join("fake-router"),
            rustix::fs::OFlags::PATH,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let out: OwnedFd = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .unwrap()
            .into_parts()
            .0
            .into();
        let config = Config::from_options(
            &{
                let mut o = liege_config::Options::new();
                o.push("http", "127.0.0.1:0", liege_config::Origin::Builtin);
                o
            },
            Path::new("/"),
        )
        .unwrap()
        .unwrap();
        Gateway::new(exe, config.bind().unwrap(), identity, Some(out))
    }

    /// The fake's output lines, parsed (`bye` as a string).
    fn lines(&self) -> Vec<serde_json::Value> {
        fs_err::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| serde_json::Value::from(l)))
            .collect()
    }

    fn wait_for(&self, what: &str, f: impl Fn(&[serde_json::Value]) -> bool) {
        let start = Instant::now();
        while !f(&self.lines()) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what}: the fake wrote {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn settings() -> Settings {
    Settings {
        certs: Vec::new(),
        trusted_proxies: Vec::new(),
        http_to: vec!["127.0.0.1:9".into()],
        run_dir: "/run/liege".into(),
        connect_timeout_ms: 5000,
        header_timeout_ms: 10_000,
        idle_timeout_ms: 60_000,
        max_header_bytes: 16384,
        max_conns_per_ip: 256,
        balance: Balance::LeastConn,
        access_log: true,
    }
}

fn route(domain: &str) -> Route {
    Route {
        domain: domain.into(),
        vassal: "a".into(),
        uid: 1000,
        socket: "app.sock".into(),
        proto: NodeProto::Http,
        limit_post: None,
        state: NodeState::Up,
    }
}

/// Waits until `fd` is readable.
fn wait_readable(fd: BorrowedFd<'_>) {
    let mut pfd = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let limit = rustix::time::Timespec {
        tv_sec: 20,
        tv_nsec: 0,
    };
    assert_eq!(rustix::event::poll(&mut pfd, Some(&limit)).unwrap(), 1);
}

fn reap(g: &mut Gateway) -> String {
    wait_readable(g.pidfd().expect("running"));
    g.reap().expect("exited")
}

fn hello(addr: std::net::SocketAddr) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn the_router_gets_its_descriptors_settings_and_routes_and_answers() {
    let f = Fixture::new();
    let mut g = f.gateway(Some((999, 995)));
    let addr = g.bound().local_addrs()[0].unwrap();
    // Set before the spawn: sent first thing, settings then routes.
    g.set_settings(settings());
    g.set_routes(vec![route("a.test")]);
    let pid = g.spawn().unwrap();
    assert_eq!(g.pid(), Some(pid));
    f.wait_for("two frames", |l| l.len() >= 3);
    let lines = f.lines();
    let mut argv = vec!["router-gateway"];
    if rustix::process::geteuid().is_root() {
        argv.extend(["--uid", "999", "--gid", "995"]);
    }
    assert_eq!(lines[0]["argv"], serde_json::json!(argv));
    assert_eq!(lines[0]["env"]["LIEGE_ROUTER_CONTROL_FD"], "3");
    assert_eq!(lines[0]["env"]["LIEGE_ROUTER_LISTENERS"], "4:plain");
    assert!(
        lines[0]["env"]
            .get("LIEGE_ROUTER_SUBSCRIPTION_FD")
            .is_none()
    );
    assert_eq!(lines[1]["settings"]["http_to"][0], "127.0.0.1:9");
    assert_eq!(lines[2]["routes"][0]["domain"], "a.test");
    // The listener the parent bound is the router's.
    assert_eq!(hello(addr), "hi");
    // The answers to the settings.
    let mut got = Vec::new();
    while got.len() < 2 {
        wait_readable(g.control().unwrap());
        let r = g.read();
        assert_eq!(r.closed, None);
        got.extend(r.messages);
    }
    assert_eq!(got[0], FromRouter::Applied { error: None });
    assert_eq!(
        got[1],
        FromRouter::Counters(vec![Counters {
            vassal: "a".into(),
            requests: 3,
            status_4xx: 1,
            status_5xx: 0,
            bytes_in: 10,
            bytes_out: 20,
        }])
    );
    // A change is sent; the same table again is not.
    g.set_routes(vec![route("a.test"), route("b.test")]);
    g.set_routes(vec![route("a.test"), route("b.test")]);
    f.wait_for("the new table", |l| l.len() >= 4);
    // Told to stop: its control socket closes, it says bye and exits; no respawn follows.
    g.stop(Instant::now());
    assert_eq!(reap(&mut g), "exited with status 0");
    assert_eq!(g.exited("exited with status 0", Instant::now()), None);
    assert!(g.is_stopped());
    let lines = f.lines();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[3]["routes"].as_array().unwrap().len(), 2);
    assert_eq!(lines[4], "bye");
    assert_eq!(g.status().restarts, 0);
}

#[test]
fn a_dead_router_is_respawned_with_what_it_was_told_and_keeps_its_port() {
    let f = Fixture::new();
    let mut g = f.gateway(None);
    let addr = g.bound().local_addrs()[0].unwrap();
    g.set_settings(settings());
    g.spawn().unwrap();
    g.set_routes(vec![route("a.test")]);
    f.wait_for("settings and routes", |l| l.len() >= 3);
    rustix::process::pidfd_send_signal(g.pidfd().unwrap(), Signal::KILL).unwrap();
    let how = reap(&mut g);
    assert_eq!(how, "was killed by signal 9");
    // It died young: a respawn after the first back-off step.
    let now = Instant::now();
    let delay = g.exited(&how, now).unwrap();
    assert_eq!(delay, crate::backoff::FIRST);
    assert!(!g.respawn_due(now));
    assert!(g.respawn_due(now + delay));
    assert_eq!(g.deadline(), Some(now + delay));
    g.spawn().unwrap();
    f.wait_for("the second router's frames", |l| l.len() >= 6);
    let lines = f.lines();
    assert!(lines[3].get("argv").is_some());
    assert!(lines[4].get("settings").is_some());
    assert_eq!(lines[5]["routes"][0]["domain"], "a.test");
    assert_eq!(hello(addr), "hi");
    let status = g.status();
    assert_eq!((status.restarts, status.running), (1, true));
    assert_eq!(status.last_exit.as_deref(), Some("was killed by signal 9"));
    g.kill();
    reap(&mut g);
    let _ = g.exited("killed", Instant::now());
}

#[test]
fn a_router_told_to_stop_is_killed_when_late() {
    let f = Fixture::new();
    let mut g = f.gateway(None);
    g.spawn().unwrap();
    f.wait_for("the fake started", |l| !l.is_empty());
    let now = Instant::now();
    g.stop(now);
    assert_eq!(g.deadline(), Some(now + STOP_WAIT));
    assert!(!g.kill_if_late(now));
    // Past its time (the fake has exited by itself meanwhile, or gets SIGKILL).
    assert!(g.kill_if_late(now + STOP_WAIT));
    let how = reap(&mut g);
    assert!(
        how == "exited with status 0" || how == "was killed by signal 9",
        "{how}"
    );
    assert_eq!(g.exited(&how, Instant::now()), None);
    assert!(g.is_stopped());
    assert!(!g.respawn_due(Instant::now() + Duration::from_secs(60)));
}
