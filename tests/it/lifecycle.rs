//! The master's supervision, through real processes, with Python: keep-alive fairness, running
//! as pid 1, touch-reload, need-app, reload-on-rss, socket ownership. Respawn, harakiri,
//! max-requests, reloads under load, stats and prefork are tested for every language in
//! `languages::supervision`, with the helpers here.

use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::server::{Addr, Instance, app, bin_dir, children_of, free_port, get, read_response};
use crate::wsgi::matrix;

pub(crate) fn pid_of(addr: &Addr) -> i32 {
    get(addr, "/pid")
        .expect("GET /pid")
        .text()
        .parse()
        .expect("a pid")
}

/// Polls `f` every 50 ms until it holds, failing with `what` and the log after `limit`.
pub(crate) fn eventually(
    inst: &Instance,
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen in {limit:?}:\n{}",
            inst.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Keeps `conns` keep-alive connections busy until `stop`; counts answers per connection and
/// failures (an error or a status other than 200).
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    counts: Vec<Arc<AtomicU64>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    pub(crate) fn start(addr: &Addr, conns: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut counts = Vec::new();
        let mut threads = Vec::new();
        for _ in 0..conns {
            let (stop, failures, addr) = (stop.clone(), failures.clone(), addr.clone());
            let count = Arc::new(AtomicU64::new(0));
            counts.push(count.clone());
            threads.push(std::thread::spawn(move || {
                let mut conn: Option<BufReader<crate::server::Stream>> = None;
                while !stop.load(Ordering::Relaxed) {
                    let c = match conn.as_mut() {
                        Some(c) => c,
                        None => match addr.connect() {
                            Ok(s) => conn.insert(BufReader::new(s)),
                            Err(e) => {
                                failures.lock().unwrap().push(format!("connect: {e}"));
                                continue;
                            }
                        },
                    };
                    let sent = c.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                    match sent.and_then(|()| read_response(c, false)) {
                        Ok(r) if r.status == 200 => {
                            count.fetch_add(1, Ordering::Relaxed);
                            if r.header("connection")
                                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                            {
                                conn = None;
                            }
                        }
                        Ok(r) => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("status {}", r.status));
                            conn = None;
                        }
                        Err(e) => {
                            failures.lock().unwrap().push(format!("request: {e}"));
                            conn = None;
                        }
                    }
                }
            }));
        }
        Load {
            stop,
            failures,
            counts,
            threads,
        }
    }

    pub(crate) fn finish(self) -> (Vec<u64>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        let counts = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let failures = self.failures.lock().unwrap().clone();
        (counts, failures)
    }
}

#[test]
fn keep_alive_is_fair_to_every_connection() {
    let (_inst, addr) = matrix(&["--processes", "2", "--disable-logging"]);
    let load = Load::start(&addr, 8);
    std::thread::sleep(Duration::from_secs(10));
    let (counts, failures) = load.finish();
    let total: u64 = counts.iter().sum();
    let fair = total as f64 / 8.0;
    assert!(failures.is_empty(), "{failures:?}");
    for (i, c) in counts.iter().enumerate() {
        assert!(
            *c as f64 >= fair / 2.0,
            "connection {i} got {c} of {total} ({counts:?})"
        );
    }
}

#[test]
fn as_pid_1_the_master_reaps_orphans() {
    let port = free_port();
    let sock = format!("127.0.0.1:{port}");
    let file = app("it_matrix.py");
    let dir = tempfile::tempdir().unwrap();
    let liege = bin_dir().join("liege");
    let log = dir.path().join("log.txt");
    let out = fs_err::File::create(&log).unwrap().into_parts().0;
    let child = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(&liege)
        .args([
            "--http-socket",
            &sock,
            "--wsgi-file",
            &file,
            "--processes",
            "1",
        ])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("unshare");
    let mut inst = Instance {
        child: Some(child),
        dir,
        log,
    };
    let addr = Addr::Tcp(sock.parse().unwrap());
    inst.wait_ready(&addr, "/", Duration::from_secs(30));
    let master = children_of(inst.pid());
    assert_eq!(master.len(), 1, "unshare runs one child, the master");
    let master = master[0];
    assert_eq!(get(&addr, "/orphans?100").unwrap().text(), "forked");
    let zombies = || {
        children_of(master)
            .into_iter()
            .filter(|p| {
                fs_err::read_to_string(format!("/proc/{p}/stat"))
                    .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
            })
            .count()
    };
    std::thread::sleep(Duration::from_millis(300));
    eventually(
        &inst,
        Duration::from_secs(10),
        "every orphan reaped",
        || children_of(master).len() == 1 && zombies() == 0,
    );
}

#[test]
fn touch_reload_replaces_the_workers() {
    let dir = tempfile::tempdir().unwrap();
    let touch = dir.path().join("reload.txt");
    fs_err::write(&touch, "1").unwrap();
    let t = touch.to_str().unwrap().to_string();
    let (inst, addr) = matrix(&["--processes", "1", "--touch-reload", &t]);
    let first = pid_of(&addr);
    std::thread::sleep(Duration::from_millis(1100));
    fs_err::write(&touch, "2").unwrap();
    eventually(&inst, Duration::from_secs(15), "touch-reload", || {
        get(&addr, "/pid")
            .ok()
            .and_then(|r| r.text().parse::<i32>().ok())
            .is_some_and(|p| p != first)
    });
}

#[test]
fn sigint_ends_the_workers_even_when_the_app_imported_signal() {
    // CPython's `signal` module catches SIGINT once an app imports it; the runtime puts the
    // default action back after the load, so the master's SIGINT still ends the worker. One
    // worker: the one that answered has loaded (a second one could still be loading, when
    // CPython's handler is in place).
    let (mut inst, sock) = one_worker("signals.py");
    let addr = Addr::Tcp(sock.parse().unwrap());
    inst.wait_ready(&addr, "/", Duration::from_secs(30));
    assert_eq!(get(&addr, "/").unwrap().text(), "signals");
    let workers = inst.children();
    assert_eq!(workers.len(), 1);
    for &pid in &workers {
        let caught = signal_mask(pid, "SigCgt").unwrap();
        // SIGINT is signal 2: bit 1 of the mask.
        assert_eq!(caught & (1 << 1), 0, "worker {pid} catches SIGINT");
    }
    inst.signal(Signal::INT);
    assert!(inst.wait_exit(Duration::from_secs(30)).is_some());
    let log = inst.log_text();
    assert_eq!(log.matches("killed by SIGINT").count(), 1, "{log}");
    assert!(!log.contains("SIGKILL"), "{log}");
}

/// An instance of `file` (tests/apps/python) with one worker on an http-socket, not waited for;
/// and the socket's address.
fn one_worker(file: &str) -> (Instance, String) {
    let sock = format!("127.0.0.1:{}", free_port());
    let file = app(file);
    let inst = Instance::start(&[
        "--master",
        "--processes",
        "1",
        "--http-socket",
        &sock,
        "--wsgi-file",
        &file,
    ]);
    (inst, sock)
}

/// A signal mask line of /proc/PID/status (`SigBlk`, `SigCgt`...), as bits.
fn signal_mask(pid: i32, line: &str) -> Option<u64> {
    let status = fs_err::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(':'))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

#[test]
fn sigint_during_the_load_ends_the_worker_once_it_loaded() {
    // The worker holds SIGINT while its app loads (CPython catches it meanwhile: it would
    // interrupt the import, and the worker would go on without its app until SIGKILLed), then
    // lets it act as its default: the instance stops with the worker killed by SIGINT.
    let (mut inst, _) = one_worker("slow_load.py");
    // SIGINT is signal 2: bit 1 of the mask. Blocked only while the app loads.
    eventually(
        &inst,
        Duration::from_secs(30),
        "a worker loading its app",
        || {
            inst.children()
                .iter()
                .any(|&p| signal_mask(p, "SigBlk").is_some_and(|m| m & (1 << 1) != 0))
        },
    );
    inst.signal(Signal::INT);
    assert!(inst.wait_exit(Duration::from_secs(30)).is_some());
    let log = inst.log_text();
    assert!(log.contains("killed by SIGINT"), "{log}");
    assert!(
        !log.contains("SIGKILL") && !log.contains("KeyboardInterrupt"),
        "{log}"
    );
}

#[test]
fn need_app_stops_the_instance_with_22() {
    let port = free_port();
    let sock = format!("127.0.0.1:{port}");
    let mut inst = Instance::start(&[
        "--http-socket",
        &sock,
        "--wsgi-file",
        "does-not-exist.py",
        "--need-app",
    ]);
    let status = inst
        .wait_exit(Duration::from_secs(20))
        .expect("the master exits");
    assert_eq!(status.code(), Some(22), "{}", inst.log_text());
    assert!(
        inst.log_text().contains("does-not-exist.py"),
        "{}",
        inst.log_text()
    );
}

#[test]
fn plugin_pythonxy_runs_the_worker_built_for_that_version() {
    let plugins = tempfile::tempdir().unwrap();
    let copy = plugins.path().join("liege-python3.11");
    fs_err::copy(bin_dir().join("liege-python"), &copy).unwrap();
    let dir = plugins.path().to_str().unwrap().to_string();
    let (inst, addr) = matrix(&["--plugin", "python311", "--plugins-dir", &dir]);
    let pid = pid_of(&addr);
    let exe = fs_err::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, copy, "{}", inst.log_text());
    // Without the copy, the error names where it looked.
    let missing = tempfile::tempdir().unwrap();
    let port = free_port();
    let r = crate::common::run_in(
        missing.path(),
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--wsgi-file",
            "x.py",
            "--plugin",
            "python399",
        ],
    );
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("liege-python3.99"), "{}", r.stderr);
}

#[test]
fn reload_on_rss_recycles_a_worker_past_its_memory() {
    // 1 MB: every Python worker is past it after its first request.
    let (_inst, addr) = matrix(&["--processes", "1", "--reload-on-rss", "1"]);
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..4 {
        pids.insert(pid_of(&addr));
    }
    assert!(
        pids.len() >= 3,
        "4 requests with reload-on-rss 1 saw pids {pids:?}"
    );
}

#[test]
fn chown_socket_gives_the_unix_socket_away_and_vacuum_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let file = app("it_matrix.py");
    let s = sock.to_str().unwrap().to_string();
    let mut inst = Instance::start_in(
        dir,
        &[
            "--socket",
            &s,
            "--wsgi-file",
            &file,
            "--chown-socket",
            "nobody:nogroup",
            "--vacuum",
        ],
    );
    eventually(&inst, Duration::from_secs(10), "the socket", || {
        sock.exists()
    });
    let meta = fs_err::metadata(&sock).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        65534,
        "owned by nobody"
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&meta),
        65534,
        "group nogroup"
    );
    inst.signal(Signal::INT);
    assert_eq!(
        inst.wait_exit(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
    assert!(!sock.exists(), "vacuum removed the socket");
}
