//! A vassal's life under the emperor: spawn, touch (graceful reload under load), limits
//! edited live, namespaces edited (restart), removal, a crash loop, broken files, the emperor
//! killed and adopted back, SIGHUP and SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rustix::process::Signal;

use super::guard::{Emperor, controller_dir};
use crate::server::{Addr, get};

const LONG: Duration = Duration::from_secs(30);

fn master_pid(e: &Emperor, name: &str) -> i64 {
    e.vassal(name).map_or(0, |v| v["pid"].as_i64().unwrap_or(0))
}

fn worker_pid(addr: &Addr) -> Option<String> {
    // shell.py answers `/pid` with its worker's pid.
    get(addr, "/pid")
        .ok()
        .filter(|r| r.status == 200)
        .map(|r| r.text())
}

/// Requests in a loop on another thread until stopped: (ok, failed).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(addr: Addr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (s, o, f) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failed));
        let thread = std::thread::spawn(move || {
            let mut errors = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match get(&addr, "/") {
                    Ok(r) if r.status == 200 => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        f.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{other:?}"));
                    }
                }
            }
            errors
        });
        Load {
            stop,
            ok,
            failed,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let errors = self
            .thread
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}

#[test]
fn a_vassal_is_spawned_reloaded_on_touch_under_load_and_removed_without_a_trace() {
    let e = Emperor::start(&[]);
    e.write_vassal("app.ini", &e.app_ini("app", "shell.py", ""));
    e.wait_serving("app");
    let addr = e.addr("app");
    e.eventually(LONG, "the vassal accepting in the stats", || {
        e.vassal("app").is_some_and(|v| v["state"] == "accepting")
    });
    let master = master_pid(&e, "app");
    let before = worker_pid(&addr).unwrap();

    // touch: a graceful reload, no request lost, same master, new worker.
    let load = Load::start(addr.clone());
    std::thread::sleep(Duration::from_millis(300));
    let file = e.vassals.join("app.ini");
    let now = std::time::SystemTime::now() + Duration::from_secs(2);
    fs_err::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(now)
        .unwrap();
    e.eventually(LONG, "a new worker after the touch", || {
        worker_pid(&addr).is_some_and(|p| p != before)
    });
    std::thread::sleep(Duration::from_millis(300));
    let (ok, failed, errors) = load.finish();
    assert_eq!(failed, 0, "requests failed during the reload: {errors:?}");
    assert!(ok > 10, "the load ran ({ok} requests)");
    assert_eq!(
        master_pid(&e, "app"),
        master,
        "a touch reloads, it does not restart"
    );
    assert!(e.log_text().contains("vassal app: reloading it gracefully"));

    // Removal: the vassal stops, its cgroup, control socket and /run folder go.
    assert!(!e.cgroup_dirs("app").is_empty());
    fs_err::remove_file(&file).unwrap();
    e.eventually(LONG, "the vassal gone from the stats", || {
        e.vassal("app").is_none()
    });
    assert!(get(&addr, "/").is_err(), "nothing answers any more");
    assert!(
        e.cgroup_dirs("app").is_empty(),
        "{:?}",
        e.cgroup_dirs("app")
    );
    assert!(!e.run.join("emperor/app.sock").exists());
    assert!(!e.run.join("vassals/app").exists());
    let log = e.vassal_log("app");
    assert!(log.contains("master spawned"), "{log}");
}

#[test]
fn limits_change_live_and_a_namespace_change_restarts_the_vassal() {
    let e = Emperor::start(&[]);
    e.write_vassal(
        "lim.ini",
        &e.app_ini("lim", "hello.py", "memory-limit = 128m\npids-limit = 64\n"),
    );
    e.wait_serving("lim");
    let master = master_pid(&e, "lim");
    let memory = controller_dir("memory")
        .unwrap()
        .join(&e.cgroup_root)
        .join("lim");
    let pids = controller_dir("pids")
        .unwrap()
        .join(&e.cgroup_root)
        .join("lim");
    let read = |p: std::path::PathBuf| fs_err::read_to_string(p).unwrap().trim().to_owned();
    let mem_file = if memory.join("memory.max").exists() {
        memory.join("memory.max")
    } else {
        memory.join("memory.limit_in_bytes")
    };
    assert_eq!(read(mem_file.clone()), (128u64 << 20).to_string());
    assert_eq!(read(pids.join("pids.max")), "64");

    e.write_vassal(
        "lim.ini",
        &e.app_ini("lim", "hello.py", "memory-limit = 256m\npids-limit = 100\n"),
    );
    e.eventually(LONG, "the new limits written", || {
        read(mem_file.clone()) == (256u64 << 20).to_string() && read(pids.join("pids.max")) == "100"
    });
    assert_eq!(
        master_pid(&e, "lim"),
        master,
        "limits apply without a restart"
    );
    e.wait_serving("lim");

    // Another namespace (cgroup): the master is replaced.
    e.write_vassal(
        "lim.ini",
        &e.app_ini(
            "lim",
            "hello.py",
            "memory-limit = 256m\npids-limit = 100\nunshare = cgroup\n",
        ),
    );
    e.eventually(LONG, "a new master after the namespace change", || {
        let p = master_pid(&e, "lim");
        p != 0 && p != master
    });
    e.wait_serving("lim");
    assert!(
        e.log_text()
            .contains("vassal lim: its namespaces or identity changed: restarting it")
    );
}

#[test]
fn a_crash_loop_is_throttled_and_a_fixed_file_recovers_at_once() {
    let e = Emperor::start(&["--emperor-throttle", "200", "--emperor-max-throttle", "800"]);
    fs_err::write(
        e.apps.join("broken.py"),
        "raise RuntimeError('this app cannot load')\n",
    )
    .unwrap();
    e.write_vassal(
        "loop.ini",
        &e.app_ini("loop", "broken.py", "need-app = true\n"),
    );
    e.eventually(LONG, "three throttled respawns", || {
        let log = e.log_text();
        log.contains("respawning it in 200 ms")
            && log.contains("respawning it in 400 ms")
            && log.contains("respawning it in 800 ms")
    });
    let v = e.vassal("loop").unwrap();
    assert!(v["restarts"].as_u64().unwrap() >= 2, "{v}");
    assert!(e.vassal_log("loop").contains("this app cannot load"));
    // Fixed: it comes back without waiting for the throttle.
    e.write_vassal(
        "loop.ini",
        &e.app_ini("loop", "hello.py", "need-app = true\n"),
    );
    e.wait_serving("loop");
}

#[test]
fn a_broken_file_is_refused_with_its_line_and_the_others_are_not_disturbed() {
    let e = Emperor::start(&[]);
    e.write_vassal("good.ini", &e.app_ini("good", "hello.py", ""));
    e.wait_serving("good");
    let good = master_pid(&e, "good");
    e.write_vassal(
        "bad.ini",
        &e.app_ini("bad", "hello.py", "processes = lots\n"),
    );
    e.eventually(LONG, "the refusal logged", || {
        e.log_text().contains("bad.ini:6")
    });
    let v = e.vassal("bad").unwrap();
    assert_eq!(v["state"], "broken", "{v}");
    assert!(
        v["last_error"].as_str().unwrap().contains("processes"),
        "{v}"
    );
    assert_eq!(v["pid"], 0);
    // A name liege cannot use, and a second file for a taken name.
    e.write_vassal("Bad Name.ini", &e.app_ini("x", "hello.py", ""));
    e.write_vassal("good.yaml", "uwsgi:\n  processes: 1\n");
    e.eventually(LONG, "both refusals logged", || {
        let log = e.log_text();
        log.contains("Bad Name.ini") && log.contains("good.yaml")
    });
    // An emperor's option in a vassal file would be ignored by its master: refused instead.
    e.write_vassal("sub.ini", &e.app_ini("sub", "hello.py", "emperor = /tmp\n"));
    e.eventually(LONG, "the sub-emperor refused", || {
        e.log_text()
            .contains("sub.ini:6: `emperor` is an option of the emperor, not of a vassal")
    });
    assert_eq!(
        master_pid(&e, "good"),
        good,
        "the good vassal was not touched"
    );
    e.wait_serving("good");
    // Fixed: it runs.
    e.write_vassal("bad.ini", &e.app_ini("bad", "hello.py", "processes = 2\n"));
    e.wait_serving("bad");
}

#[test]
fn vassals_outlive_a_killed_emperor_and_the_next_one_adopts_them() {
    let mut e = Emperor::start(&[]);
    e.write_vassal("one.ini", &e.app_ini("one", "shell.py", ""));
    e.write_vassal("two.ini", &e.app_ini("two", "hello.py", ""));
    e.wait_serving("one");
    e.wait_serving("two");
    let (m1, m2) = (master_pid(&e, "one"), master_pid(&e, "two"));
    let procs1 = e.pids("one");

    e.kill9();
    // Still serving without their emperor, an app that writes to its output included (no
    // one reads the vassal's log while no emperor runs).
    for _ in 0..20 {
        assert_eq!(get(&e.addr("one"), "/").unwrap().status, 200);
        assert_eq!(get(&e.addr("two"), "/").unwrap().status, 200);
    }
    for _ in 0..2000 {
        let r = get(&e.addr("one"), "/print").unwrap();
        assert_eq!((r.status, r.text()), (200, "printed".to_owned()));
    }
    e.launch();
    e.eventually(LONG, "both adopted", || {
        e.vassal("one").is_some_and(|v| v["adopted"] == true)
            && e.vassal("two").is_some_and(|v| v["adopted"] == true)
    });
    assert_eq!((master_pid(&e, "one"), master_pid(&e, "two")), (m1, m2));
    // The same processes: no second copy, no restart, no reload.
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(e.pids("one"), procs1, "no second copy of the vassal");
    assert!(
        e.log_text()
            .contains("vassal one: adopted its running master")
    );
    // Its master drained the log while no emperor read it, and says how much it dropped.
    e.eventually(
        LONG,
        "the dropped output reported in the vassal's log",
        || {
            e.vassal_log("one")
                .contains("bytes of output were dropped while no emperor read them")
        },
    );

    // The adopted master still obeys: a touch reloads it, and its log reaches its file again
    // (the new emperor reopened the vassal's log FIFO).
    let before = worker_pid(&e.addr("one")).unwrap();
    let file = e.vassals.join("one.ini");
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    fs_err::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    e.eventually(LONG, "a new worker in the adopted vassal", || {
        worker_pid(&e.addr("one")).is_some_and(|p| p != before)
    });
    let log_len = e.vassal_log("one").len();
    for _ in 0..3 {
        get(&e.addr("one"), "/").unwrap();
    }
    e.eventually(LONG, "request lines in the new log", || {
        e.vassal_log("one").len() > log_len
    });
}

#[test]
fn sighup_reloads_every_vassal_and_sigint_leaves_nothing_behind() {
    let mut e = Emperor::start(&[]);
    e.write_vassal("a.ini", &e.app_ini("a", "shell.py", ""));
    e.write_vassal("b.ini", &e.app_ini("b", "shell.py", ""));
    e.wait_serving("a");
    e.wait_serving("b");
    let (wa, wb) = (
        worker_pid(&e.addr("a")).unwrap(),
        worker_pid(&e.addr("b")).unwrap(),
    );
    e.signal(Signal::HUP);
    e.eventually(LONG, "new workers in both", || {
        worker_pid(&e.addr("a")).is_some_and(|p| p != wa)
            && worker_pid(&e.addr("b")).is_some_and(|p| p != wb)
    });
    assert_eq!(
        e.log_text()
            .matches("vassal a: reloading it gracefully")
            .count(),
        1,
        "one SIGHUP, one reload"
    );
    let mounts_before = fs_err::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    let pids: Vec<i32> = [e.pids("a"), e.pids("b")].concat();
    assert!(pids.len() >= 4, "{pids:?}");

    let status = e.stop(Duration::from_secs(60));
    assert!(status.success(), "{status}");
    for p in pids {
        assert!(
            fs_err::metadata(format!("/proc/{p}")).is_err(),
            "pid {p} of a vassal is still alive"
        );
    }
    assert!(e.cgroup_roots().is_empty(), "{:?}", e.cgroup_roots());
    assert!(
        !e.run.exists(),
        "the run dir is left: {:?}",
        fs_err::read_dir(&e.run).map(|d| d.count())
    );
    assert!(!e.sock_path("a").exists(), "vacuum removed the socket");
    assert!(!e.dir().join("stats.sock").exists());
    let mounts_after = fs_err::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count();
    assert_eq!(mounts_before, mounts_after);
}

#[test]
fn a_master_that_stops_sending_heartbeats_is_killed_and_respawned() {
    let e = Emperor::start(&["--emperor-required-heartbeat", "2"]);
    e.write_vassal("hb.ini", &e.app_ini("hb", "hello.py", "heartbeat = 1\n"));
    e.wait_serving("hb");
    e.eventually(LONG, "a first heartbeat", || {
        e.vassal("hb")
            .is_some_and(|v| v["last_heartbeat_age"].is_u64())
    });
    let master = master_pid(&e, "hb");
    // A master that hangs (stopped) sends no more heartbeats.
    let pid = rustix::process::Pid::from_raw(i32::try_from(master).unwrap()).unwrap();
    rustix::process::kill_process(pid, Signal::STOP).unwrap();
    e.eventually(LONG, "a new master", || {
        let p = master_pid(&e, "hb");
        p != 0 && p != master
    });
    assert!(
        e.log_text()
            .contains("vassal hb: no heartbeat for 2 s: killing it")
    );
    e.wait_serving("hb");
}
