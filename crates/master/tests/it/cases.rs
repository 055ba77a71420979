//! The tests, each through a real master process and the fake worker.

use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustix::process::Signal;

use crate::support::{
    Instance, all_accepting, all_processes, children_of, free_port, get, get_unix, kill, stats,
    uwsgi_unix, wait_until, worker_pids,
};
use crate::vassal;

/// Every test, by name.
pub(crate) static ALL: &[(&str, fn())] = &[
    (
        "bad_options_name_file_and_line_and_start_nothing",
        bad_options_name_file_and_line_and_start_nothing,
    ),
    (
        "tcp_and_unix_sockets_are_served_logto_chmod_vacuum",
        tcp_and_unix_sockets_are_served_logto_chmod_vacuum,
    ),
    ("a_killed_worker_comes_back", a_killed_worker_comes_back),
    ("a_crash_loop_is_throttled", a_crash_loop_is_throttled),
    (
        "exit_0_is_a_recycle_only_after_serving",
        exit_0_is_a_recycle_only_after_serving,
    ),
    (
        "sighup_replaces_every_worker_without_a_failed_request",
        sighup_replaces_every_worker_without_a_failed_request,
    ),
    (
        "a_reload_asked_during_a_reload_is_queued_once",
        a_reload_asked_during_a_reload_is_queued_once,
    ),
    (
        "touch_reload_replaces_the_workers",
        touch_reload_replaces_the_workers,
    ),
    (
        "a_worker_deaf_to_sighup_is_killed_after_the_mercy",
        a_worker_deaf_to_sighup_is_killed_after_the_mercy,
    ),
    (
        "stats_show_workers_sockets_and_counts",
        stats_show_workers_sockets_and_counts,
    ),
    (
        "harakiri_answers_504_and_replaces_the_worker",
        harakiri_answers_504_and_replaces_the_worker,
    ),
    (
        "prefork_zygote_forks_workers_as_the_masters_children",
        prefork_zygote_forks_workers_as_the_masters_children,
    ),
    (
        "need_app_stops_the_instance_with_22",
        need_app_stops_the_instance_with_22,
    ),
    (
        "sigterm_reloads_brutally_or_stops_with_die_on_term",
        sigterm_reloads_brutally_or_stops_with_die_on_term,
    ),
    (
        "as_pid_1_every_orphan_is_reaped",
        as_pid_1_every_orphan_is_reaped,
    ),
    (
        "the_emperor_drives_a_vassal_master",
        vassal::the_emperor_drives_a_vassal_master,
    ),
    (
        "a_vassal_with_bad_options_names_the_emperors_file_and_line",
        vassal::a_vassal_with_bad_options_names_the_emperors_file_and_line,
    ),
    (
        "uid_nobody_runs_master_and_workers_as_nobody",
        vassal::uid_nobody_runs_master_and_workers_as_nobody,
    ),
    (
        "what_the_emperor_applies_is_refused_by_hand",
        vassal::what_the_emperor_applies_is_refused_by_hand,
    ),
];

/// Tests that need root (a new pid or network namespace, a uid to drop to); without it they
/// are reported as ignored.
pub(crate) static NEEDS_ROOT: &[&str] = &[
    "as_pid_1_every_orphan_is_reaped",
    "the_emperor_drives_a_vassal_master",
    "a_vassal_with_bad_options_names_the_emperors_file_and_line",
    "uid_nobody_runs_master_and_workers_as_nobody",
];

const LONG: Duration = Duration::from_secs(15);

fn stats_until(addr: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    wait_until(LONG, || {
        if let Ok(doc) = stats(addr) {
            let ok = f(&doc);
            last = doc;
            ok
        } else {
            false
        }
    });
    last
}

fn bad_options_name_file_and_line_and_start_nothing() {
    let port = free_port().to_string();
    let socket = format!("http-socket = 127.0.0.1:{port}\n");
    let cases = [
        (
            format!("[uwsgi]\n{socket}processes = lots\n"),
            "app.ini:3: invalid value `lots` for `processes`: expected a whole number".to_string(),
        ),
        (
            format!("[uwsgi]\n{socket}chmod-socket = rw-rw-rw-\n"),
            "app.ini:3: invalid value `rw-rw-rw-` for `chmod-socket`: expected an octal mode such as 660".to_string(),
        ),
        (
            format!("[uwsgi]\n{socket}limit-post = lots\n"),
            "app.ini:3: option `limit-post`: expected a size (bytes, or with k, m, g) (got `lots`)".to_string(),
        ),
        (
            "[uwsgi]\nprocesses = 2\n".to_string(),
            "no socket to listen on (set `http-socket` or `socket`)".to_string(),
        ),
    ];
    for (ini, want) in cases {
        let mut inst = Instance::new();
        let marks = inst.path("marks");
        fs_err::create_dir_all(&marks).unwrap();
        fs_err::write(inst.path("app.ini"), ini).unwrap();
        inst.start(
            &["--ini", "app.ini"],
            &[("FAKE_MARK_DIR", marks.to_str().unwrap())],
        );
        assert_eq!(inst.wait(LONG), Some(2), "{}", inst.log());
        assert!(
            inst.log().contains(&want),
            "want {want:?} in {:?}",
            inst.log()
        );
        assert_eq!(fs_err::read_dir(&marks).unwrap().count(), 0, "a worker ran");
        assert!(
            std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
            "nothing listens"
        );
    }
    // A language worker that is not there.
    let mut inst = Instance::new();
    fs_err::write(
        inst.path("app.ini"),
        format!("[uwsgi]\n{socket}plugin = python311\n"),
    )
    .unwrap();
    inst.start(&["--ini", "app.ini"], &[]);
    assert_eq!(inst.wait(LONG), Some(2));
    let want = format!(
        "app.ini:3: cannot find the worker executable `liege-python3.11` (looked in {})",
        inst.path("bin").display()
    );
    assert!(
        inst.log().contains(&want),
        "want {want:?} in {:?}",
        inst.log()
    );
}

fn tcp_and_unix_sockets_are_served_logto_chmod_vacuum() {
    let mut inst = Instance::new();
    let port = free_port();
    let http_unix = inst.path("http.sock");
    let uwsgi_sock = inst.path("uwsgi.sock");
    let logto = inst.path("instance.log");
    inst.start(
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--http-socket",
            http_unix.to_str().unwrap(),
            "--socket",
            uwsgi_sock.to_str().unwrap(),
            "--chmod-socket=660",
            "--vacuum",
            "--processes",
            "2",
            "--logto",
            logto.to_str().unwrap(),
        ],
        &[],
    );
    let addr = format!("127.0.0.1:{port}");
    assert!(wait_until(LONG, || get(&addr, "/").is_ok()));
    let tcp = get(&addr, "/").unwrap();
    assert_eq!(tcp.status, 200);
    assert!(tcp.body.contains(" http "), "{tcp:?}");
    let unix = get_unix(&http_unix, "/").unwrap();
    assert_eq!(unix.status, 200);
    assert!(unix.body.contains(" http "), "{unix:?}");
    let uwsgi = uwsgi_unix(&uwsgi_sock).unwrap();
    assert_eq!(uwsgi.status, 200);
    assert!(uwsgi.body.contains(" uwsgi "), "{uwsgi:?}");
    for sock in [&http_unix, &uwsgi_sock] {
        let mode = fs_err::metadata(sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "{}", sock.display());
    }
    // logto: the master's lines go to the file, not to its stderr.
    let log = fs_err::read_to_string(&logto).unwrap();
    assert!(log.contains("spawned worker 2"), "{log}");
    assert!(log.contains("bound to UNIX address"), "{log}");
    let mode = fs_err::metadata(&logto).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0o040, "0640 (umask permitting): {mode:o}");
    assert!(!inst.log().contains("spawned worker"), "{}", inst.log());
    assert_eq!(inst.stop(), Some(0));
    assert!(!http_unix.exists(), "vacuum removes the socket");
    assert!(!uwsgi_sock.exists(), "vacuum removes the socket");
    assert!(fs_err::read_to_string(&logto).unwrap().contains("goodbye"));
}

fn a_killed_worker_comes_back() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    inst.start(
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--processes",
            "2",
            "--stats",
            &stats_addr,
        ],
        &[],
    );
    let doc = stats_until(&stats_addr, all_accepting);
    let pids = worker_pids(&doc);
    assert_eq!(pids.len(), 2, "{doc}");
    // The workers are the master's children.
    let children: Vec<i64> = children_of(inst.pid())
        .iter()
        .map(|c| i64::from(c.0))
        .collect();
    assert!(
        pids.iter().all(|p| children.contains(p)),
        "{pids:?} {children:?}"
    );
    kill(i32::try_from(pids[0]).unwrap(), Signal::KILL);
    let doc = stats_until(&stats_addr, |d| {
        let now = worker_pids(d);
        now[0] != pids[0] && now[0] != 0 && d["workers"][0]["accepting"] == 1
    });
    let now = worker_pids(&doc);
    assert_ne!(now[0], pids[0], "{doc}");
    assert_eq!(now[1], pids[1], "the other worker is untouched");
    assert_eq!(doc["workers"][0]["respawn_count"], 1, "{doc}");
    assert_eq!(doc["workers"][1]["respawn_count"], 0, "{doc}");
    assert!(
        inst.log().contains("killed by SIGKILL (9)"),
        "{}",
        inst.log()
    );
    assert_eq!(inst.stop(), Some(0));
}

fn a_crash_loop_is_throttled() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    inst.start(
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--stats",
            &stats_addr,
        ],
        &[("FAKE_MODE", "crash")],
    );
    assert!(
        inst.wait_for_log("respawning in 250 ms", LONG),
        "{}",
        inst.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    let doc = stats(&stats_addr).unwrap();
    let respawns = doc["workers"][0]["respawn_count"].as_u64().unwrap();
    // Without throttling a crashing Python worker respawns dozens of times in 2 s.
    assert!((3..8).contains(&respawns), "{respawns} respawns: {doc}");
    let log = inst.log();
    for delay in [
        "respawning in 125 ms",
        "respawning in 500 ms",
        "respawning in 1 s",
    ] {
        assert!(log.contains(delay), "{delay} in {log}");
    }
    assert_eq!(inst.stop(), Some(0));
}

fn exit_0_is_a_recycle_only_after_serving() {
    // A worker that exits 0 at once is throttled like a crash.
    let mut inst = Instance::new();
    inst.start(
        &["--http-socket", &format!("127.0.0.1:{}", free_port())],
        &[("FAKE_MODE", "exit0")],
    );
    assert!(
        inst.wait_for_log("without serving a request: respawning in 250 ms", LONG),
        "{}",
        inst.log()
    );
    assert_eq!(inst.stop(), Some(0));
    // One that exits 0 after its requests (max-requests) comes back at once, every time.
    let mut inst = Instance::new();
    let addr = format!("127.0.0.1:{}", free_port());
    inst.start(
        &["--http-socket", &addr, "--processes", "1"],
        &[("FAKE_MAX_REQUESTS", "1")],
    );
    let mut pids = Vec::new();
    for _ in 0..4 {
        let mut reply = None;
        assert!(wait_until(LONG, || {
            reply = get(&addr, "/").ok();
            reply.is_some()
        }));
        pids.push(reply.map_or(0, |r| r.pid()));
    }
    pids.dedup();
    assert_eq!(pids.len(), 4, "a new worker for each request: {pids:?}");
    let log = inst.log();
    assert!(
        log.matches("after 1 request(s): recycling it").count() >= 3,
        "{log}"
    );
    assert!(!log.contains("respawning in"), "{log}");
    assert_eq!(inst.stop(), Some(0));
}

/// A client hammering the instance from another thread: (requests, failures).
struct Hammer {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hammer {
    fn start(addr: String) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match get(&addr, "/") {
                    Ok(r) if r.status == 200 => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    other => f.lock().unwrap().push(format!("{other:?}")),
                }
            }
        });
        Hammer {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

impl Drop for Hammer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn sighup_replaces_every_worker_without_a_failed_request() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    let addr = format!("127.0.0.1:{port}");
    inst.start(
        &[
            "--http-socket",
            &addr,
            "--processes",
            "2",
            "--stats",
            &stats_addr,
        ],
        // New workers take a while to load: the old ones must serve meanwhile.
        &[("FAKE_LOAD_DELAY", "0.7")],
    );
    let before = worker_pids(&stats_until(&stats_addr, all_accepting));
    let hammer = Hammer::start(addr.clone());
    assert!(wait_until(LONG, || hammer.ok.load(Ordering::Relaxed) > 20));
    inst.signal(Signal::HUP);
    let doc = stats_until(&stats_addr, |d| {
        let now = worker_pids(d);
        all_accepting(d) && now.iter().all(|p| !before.contains(p))
    });
    let after = worker_pids(&doc);
    assert!(
        after.iter().all(|p| !before.contains(p) && *p != 0),
        "{before:?} -> {doc}"
    );
    // The old workers are gone (stopped gracefully), and the client kept going.
    assert!(wait_until(LONG, || before.iter().all(|p| {
        !children_of(inst.pid()).iter().any(|c| i64::from(c.0) == *p)
    })));
    let served = hammer.ok.load(Ordering::Relaxed);
    assert!(wait_until(LONG, || hammer.ok.load(Ordering::Relaxed) > served + 20));
    let (ok, failed) = hammer.finish();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {:?}",
        failed.len(),
        ok,
        &failed[..failed.len().min(5)]
    );
    let log = inst.log();
    assert!(log.contains("SIGHUP: graceful reload"), "{log}");
    assert!(log.contains("is replaced: stopping it gracefully"), "{log}");
    assert_eq!(inst.stop(), Some(0));
}

fn a_reload_asked_during_a_reload_is_queued_once() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    inst.start(
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--processes",
            "2",
            "--stats",
            &stats_addr,
        ],
        &[("FAKE_LOAD_DELAY", "1")],
    );
    stats_until(&stats_addr, all_accepting);
    inst.signal(Signal::HUP);
    assert!(inst.wait_for_log("generation 2:", LONG));
    // While generation 2 loads, two more reloads are asked: one follows, once.
    inst.signal(Signal::HUP);
    std::thread::sleep(Duration::from_millis(100));
    inst.signal(Signal::HUP);
    assert!(inst.wait_for_log("generation 3:", LONG), "{}", inst.log());
    let log = inst.log();
    let queued = log
        .find("another one follows it")
        .expect("the queue is logged");
    let third = log.find("generation 3:").unwrap_or(0);
    let replaced = log
        .find("of generation 1 is replaced")
        .expect("generation 1 replaced");
    assert!(replaced < third && queued < third, "{log}");
    assert_eq!(log.matches("another one follows it").count(), 1, "{log}");
    let doc = stats_until(&stats_addr, |d| {
        all_accepting(d) && inst.log().contains("of generation 2 is replaced")
    });
    assert!(all_accepting(&doc), "{doc}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!inst.log().contains("generation 4:"), "{}", inst.log());
    assert_eq!(inst.stop(), Some(0));
}

fn touch_reload_replaces_the_workers() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    let touch = inst.path("reload.txt");
    fs_err::write(&touch, "1").unwrap();
    inst.start(
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--stats",
            &stats_addr,
            "--touch-reload",
            touch.to_str().unwrap(),
        ],
        &[],
    );
    let before = worker_pids(&stats_until(&stats_addr, all_accepting));
    // A different mtime (file systems may keep coarse times: set one explicitly).
    let f = fs_err::File::options().write(true).open(&touch).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    drop(f);
    let doc = stats_until(&stats_addr, |d| {
        all_accepting(d) && worker_pids(d).iter().all(|p| !before.contains(p))
    });
    assert!(
        worker_pids(&doc).iter().all(|p| !before.contains(p)),
        "{doc}"
    );
    assert!(
        inst.log().contains("was touched: graceful reload"),
        "{}",
        inst.log()
    );
    assert_eq!(inst.stop(), Some(0));
}

fn a_worker_deaf_to_sighup_is_killed_after_the_mercy() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    inst.start(
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--stats",
            &stats_addr,
            "--worker-reload-mercy",
            "1",
        ],
        &[("FAKE_IGNORE_HUP", "1")],
    );
    let before = worker_pids(&stats_until(&stats_addr, all_accepting));
    inst.signal(Signal::HUP);
    assert!(
        inst.wait_for_log("did not stop within worker-reload-mercy: SIGKILL", LONG),
        "{}",
        inst.log()
    );
    let old = i32::try_from(before[0]).unwrap();
    assert!(wait_until(LONG, || !children_of(inst.pid())
        .iter()
        .any(|c| c.0 == old)));
    assert!(
        inst.log()
            .contains(&format!("worker 1 (pid {old}) stopped (killed by SIGKILL"))
    );
    assert_eq!(inst.stop(), Some(0));
}

fn stats_show_workers_sockets_and_counts() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    let addr = format!("127.0.0.1:{port}");
    inst.start(
        &[
            "--http-socket",
            &addr,
            "--workers",
            "3",
            "--threads",
            "2",
            "--stats",
            &stats_addr,
            "--listen",
            "77",
        ],
        &[],
    );
    let doc = stats_until(&stats_addr, all_accepting);
    let mut served = std::collections::HashMap::new();
    for _ in 0..12 {
        let r = get(&addr, "/").unwrap();
        *served.entry(i64::from(r.pid())).or_insert(0u64) += 1;
    }
    let doc2 = stats(&stats_addr).unwrap();
    assert_eq!(doc2["pid"], inst.pid(), "{doc2}");
    assert_eq!(doc2["sockets"][0]["name"], addr);
    assert_eq!(doc2["sockets"][0]["proto"], "http");
    assert_eq!(doc2["sockets"][0]["max_queue"], 77);
    assert_eq!(doc2["listen_queue"], 0);
    let workers = doc2["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 3);
    let mut total = 0;
    for (i, w) in workers.iter().enumerate() {
        assert_eq!(w["id"], i + 1);
        assert_eq!(w["pid"], doc["workers"][i]["pid"]);
        assert_eq!(w["cores"].as_array().unwrap().len(), 2);
        assert_eq!(w["status"], "idle");
        assert!(w["rss"].as_u64().unwrap() > 0, "{w}");
        let pid = w["pid"].as_i64().unwrap();
        let requests = w["requests"].as_u64().unwrap();
        assert_eq!(requests, served.get(&pid).copied().unwrap_or(0), "{w}");
        total += requests;
    }
    assert_eq!(total, 12);
    // The workers' pids are the master's children.
    let children: Vec<i64> = children_of(inst.pid())
        .iter()
        .map(|c| i64::from(c.0))
        .collect();
    for p in worker_pids(&doc2) {
        assert!(children.contains(&p), "{p} in {children:?}");
    }
    assert_eq!(inst.stop(), Some(0));
}

fn harakiri_answers_504_and_replaces_the_worker() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    let addr = format!("127.0.0.1:{port}");
    inst.start(
        &[
            "--http-socket",
            &addr,
            "--harakiri",
            "1",
            "--stats",
            &stats_addr,
        ],
        &[],
    );
    let before = worker_pids(&stats_until(&stats_addr, all_accepting));
    let r = get(&addr, "/sleep").unwrap();
    assert_eq!(r.status, 504, "{r:?}");
    assert!(r.body.contains("harakiri"), "{r:?}");
    // The client may read its 504 before the master logs the kill.
    let want = format!(
        "HARAKIRI worker 1 (pid {}): \"GET /sleep\" ran for",
        before[0]
    );
    assert!(inst.wait_for_log(&want, LONG), "{want} in {}", inst.log());
    let doc = stats_until(&stats_addr, |d| {
        all_accepting(d) && worker_pids(d)[0] != before[0]
    });
    assert_eq!(doc["workers"][0]["harakiri_count"], 1, "{doc}");
    assert_eq!(get(&addr, "/").unwrap().status, 200);
    assert_eq!(inst.stop(), Some(0));
}

fn prefork_zygote_forks_workers_as_the_masters_children() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    let addr = format!("127.0.0.1:{port}");
    inst.start(
        &[
            "--http-socket",
            &addr,
            "--processes",
            "2",
            "--lazy-apps=false",
            "--stats",
            &stats_addr,
        ],
        &[],
    );
    let doc = stats_until(&stats_addr, all_accepting);
    let pids = worker_pids(&doc);
    let children: Vec<i64> = children_of(inst.pid())
        .iter()
        .map(|c| i64::from(c.0))
        .collect();
    assert_eq!(children.len(), 3, "a zygote and two workers: {children:?}");
    assert!(
        pids.iter().all(|p| children.contains(p)),
        "{pids:?} {children:?}"
    );
    assert_eq!(get(&addr, "/").unwrap().status, 200);
    assert!(inst.log().contains("from the zygote"), "{}", inst.log());
    // A dead worker is forked again by the zygote.
    kill(i32::try_from(pids[1]).unwrap(), Signal::KILL);
    let doc = stats_until(&stats_addr, |d| {
        all_accepting(d) && worker_pids(d)[1] != pids[1]
    });
    let now = worker_pids(&doc);
    assert_ne!(now[1], pids[1], "{doc}");
    assert!(
        inst.log().contains("respawned worker 2 (new pid"),
        "{}",
        inst.log()
    );
    // A dead zygote is replaced, and its workers are recycled.
    let zygote = children_of(inst.pid())
        .into_iter()
        .map(|c| i64::from(c.0))
        .find(|c| !now.contains(c))
        .unwrap();
    kill(i32::try_from(zygote).unwrap(), Signal::KILL);
    let doc = stats_until(&stats_addr, |d| {
        all_accepting(d) && worker_pids(d).iter().all(|p| !now.contains(p))
    });
    assert!(worker_pids(&doc).iter().all(|p| !now.contains(p)), "{doc}");
    assert!(wait_until(LONG, || children_of(inst.pid()).len() == 3));
    assert!(
        inst.log().contains("a new zygote replaces it"),
        "{}",
        inst.log()
    );
    assert_eq!(get(&addr, "/").unwrap().status, 200);
    assert_eq!(inst.stop(), Some(0));
}

fn need_app_stops_the_instance_with_22() {
    for lazy in ["true", "false"] {
        let mut inst = Instance::new();
        inst.start(
            &[
                "--http-socket",
                &format!("127.0.0.1:{}", free_port()),
                "--need-app",
                &format!("--lazy-apps={lazy}"),
            ],
            &[("FAKE_MODE", "need-app")],
        );
        assert_eq!(inst.wait(LONG), Some(22), "{}", inst.log());
        assert!(
            inst.log()
                .contains("need-app is set: stopping the instance"),
            "{}",
            inst.log()
        );
    }
}

fn sigterm_reloads_brutally_or_stops_with_die_on_term() {
    let mut inst = Instance::new();
    let (port, stats_port) = (free_port(), free_port());
    let stats_addr = format!("127.0.0.1:{stats_port}");
    inst.start(
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--processes",
            "2",
            "--stats",
            &stats_addr,
        ],
        &[],
    );
    let before = worker_pids(&stats_until(&stats_addr, all_accepting));
    inst.signal(Signal::TERM);
    let doc = stats_until(&stats_addr, |d| {
        all_accepting(d) && worker_pids(d).iter().all(|p| !before.contains(p))
    });
    assert!(
        worker_pids(&doc).iter().all(|p| !before.contains(p)),
        "{doc}"
    );
    assert!(
        inst.log().contains("SIGTERM: brutal reload"),
        "{}",
        inst.log()
    );
    assert_eq!(inst.stop(), Some(0));

    let mut inst = Instance::new();
    let port = free_port();
    inst.start(
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--die-on-term",
        ],
        &[],
    );
    assert!(wait_until(LONG, || get(&format!("127.0.0.1:{port}"), "/").is_ok()));
    inst.signal(Signal::TERM);
    assert_eq!(inst.wait(LONG), Some(0));
    assert!(
        inst.log().contains("SIGTERM received (die-on-term)"),
        "{}",
        inst.log()
    );
}

fn as_pid_1_every_orphan_is_reaped() {
    let mut inst = Instance::new();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    inst.start_as_pid1(
        &["--http-socket", &addr, "--processes", "2"],
        &[("FAKE_ORPHANS", "50")],
    );
    assert!(inst.wait_for_log("master pid 1,", LONG), "{}", inst.log());
    assert!(wait_until(LONG, || get(&addr, "/").is_ok()));
    let master = inst.pid();
    // 100 orphans (50 per worker), each living 1.5 s, are re-parented to the master...
    assert!(
        wait_until(LONG, || children_of(master).len() > 50),
        "orphans re-parented to the master: {:?}",
        children_of(master)
    );
    // ...and when they end, none may stay a zombie.
    let zombies = |master: i32| {
        all_processes()
            .into_iter()
            .filter(|(_, s, pp)| *pp == master && *s == 'Z')
            .count()
    };
    assert!(
        wait_until(LONG, || children_of(master).len() == 2),
        "{} zombies among {:?}",
        zombies(master),
        children_of(master)
    );
    assert_eq!(zombies(master), 0);
    let children = children_of(master);
    assert_eq!(children.len(), 2, "only the workers remain: {children:?}");
    assert_eq!(inst.stop(), Some(0));
}
