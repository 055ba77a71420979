//! The master's supervision, the same for every language: a worker that crashes or is killed
//! comes back, harakiri answers 504 and replaces the worker, max-requests recycles it, graceful
//! reloads under load fail no request, stats show the workers, and prefork (a zygote that loaded
//! the app) works as lazy-apps does.

use std::io::Read;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use super::{Lang, each_language, matrix};
use crate::lifecycle::{Load, eventually, pid_of};
use crate::server::{free_port, get};

each_language!(
    a_crashed_or_killed_worker_comes_back,
    harakiri_answers_504_and_replaces_the_worker,
    max_requests_recycles_the_worker,
    graceful_reloads_under_load_fail_no_request,
    stats_show_the_workers_in_uwsgi_layout,
    prefork_and_lazy_apps_both_serve,
);

/// Waits until `/pid` answers with a pid other than `old`.
fn replaced(inst: &crate::server::Instance, addr: &crate::server::Addr, old: i32) {
    eventually(inst, Duration::from_secs(15), "a new worker", || {
        get(addr, "/pid")
            .ok()
            .and_then(|r| r.text().parse::<i32>().ok())
            .is_some_and(|p| p != old)
    });
}

fn a_crashed_or_killed_worker_comes_back(lang: Lang) {
    let (inst, addr) = matrix(lang, &["--processes", "1"]);
    // The app exits in the middle of a request (os._exit, POSIX::_exit, exit!).
    let first = pid_of(&addr);
    if let Ok(r) = get(&addr, "/crash") {
        assert_ne!(r.status, 200, "a crashed request cannot succeed");
    }
    replaced(&inst, &addr, first);
    // Killed from outside.
    let second = pid_of(&addr);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(second).unwrap(),
        Signal::KILL,
    )
    .unwrap();
    replaced(&inst, &addr, second);
    assert_eq!(inst.children().len(), 1);
    assert_eq!(get(&addr, "/").unwrap().status, 200);
}

fn harakiri_answers_504_and_replaces_the_worker(lang: Lang) {
    let (inst, addr) = matrix(lang, &["--processes", "1", "--harakiri", "2"]);
    let first = pid_of(&addr);
    let started = Instant::now();
    let r = get(&addr, "/sleep?30").expect("an answer, not a reset");
    assert_eq!(r.status, 504);
    assert!(started.elapsed() < Duration::from_secs(20));
    replaced(&inst, &addr, first);
    let log = inst.log_text();
    assert!(log.contains("HARAKIRI") && log.contains("/sleep"), "{log}");
}

fn max_requests_recycles_the_worker(lang: Lang) {
    let (_inst, addr) = matrix(
        lang,
        &[
            "--processes",
            "1",
            "--max-requests",
            "5",
            "--max-requests-delta",
            "0",
        ],
    );
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..16 {
        pids.insert(pid_of(&addr));
    }
    assert!(
        pids.len() >= 3,
        "16 requests with max-requests 5 saw pids {pids:?}"
    );
}

fn graceful_reloads_under_load_fail_no_request(lang: Lang) {
    let (inst, addr) = matrix(lang, &["--processes", "2", "--disable-logging"]);
    let load = Load::start(&addr, 32);
    std::thread::sleep(Duration::from_millis(500));
    let mut seen = inst.children();
    for round in 0..5 {
        inst.signal(Signal::HUP);
        // Wait until this reload's workers replaced the previous ones.
        eventually(
            &inst,
            Duration::from_secs(30),
            &format!("reload {round}"),
            || {
                let now = inst.children();
                now.len() == 2 && now.iter().all(|p| !seen.contains(p))
            },
        );
        seen = inst.children();
    }
    std::thread::sleep(Duration::from_millis(500));
    let (counts, failures) = load.finish();
    let total: u64 = counts.iter().sum();
    assert!(
        failures.is_empty(),
        "{} failures of {total}: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(total > 500, "only {total} requests were served");
}

fn stats_show_the_workers_in_uwsgi_layout(lang: Lang) {
    let port = free_port();
    let stats = format!("127.0.0.1:{port}");
    let (inst, addr) = matrix(lang, &["--processes", "2", "--stats", &stats]);
    for _ in 0..10 {
        assert_eq!(get(&addr, "/").unwrap().status, 200);
    }
    assert_eq!(get(&addr, "/raise").unwrap().status, 500);
    let mut s = std::net::TcpStream::connect(&stats).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("stats json");
    assert_eq!(v["pid"], inst.pid());
    let workers = v["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    let mut pids: Vec<i64> = workers.iter().map(|w| w["pid"].as_i64().unwrap()).collect();
    pids.sort_unstable();
    let children: Vec<i64> = inst.children().into_iter().map(i64::from).collect();
    assert_eq!(pids, children);
    let sum = |key: &str| -> i64 { workers.iter().map(|w| w[key].as_i64().unwrap()).sum() };
    assert!(sum("requests") >= 11, "{text}");
    assert_eq!(sum("exceptions"), 1, "{text}");
    for key in [
        "id",
        "status",
        "rss",
        "avg_rt",
        "harakiri_count",
        "respawn_count",
    ] {
        assert!(
            workers[0].get(key).is_some(),
            "worker has no `{key}`: {text}"
        );
    }
}

fn prefork_and_lazy_apps_both_serve(lang: Lang) {
    // Prefork: a zygote loads the app once and forks the workers.
    let (inst, addr) = matrix(lang, &["--processes", "2", "--lazy-apps=false"]);
    eventually(
        &inst,
        Duration::from_secs(10),
        "a zygote and two workers",
        || inst.children().len() == 3,
    );
    let children = inst.children();
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..50 {
        pids.insert(pid_of(&addr));
    }
    assert!(
        pids.iter().all(|p| children.contains(p)),
        "{pids:?} not among {children:?}"
    );
    assert_eq!(get(&addr, "/environ").unwrap().status, 200);
    // A killed prefork worker is forked again by the zygote.
    let victim = *pids.iter().next().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(victim).unwrap(),
        Signal::KILL,
    )
    .unwrap();
    eventually(
        &inst,
        Duration::from_secs(15),
        "a new prefork worker",
        || {
            let c = inst.children();
            c.len() == 3 && !c.contains(&victim)
        },
    );
    assert_eq!(get(&addr, "/").unwrap().status, 200);
    drop(inst);
    // Lazy-apps (the default): each worker loads the app, no zygote.
    let (inst, addr) = matrix(lang, &["--processes", "2", "--lazy-apps"]);
    assert_eq!(inst.children().len(), 2, "{}", inst.log_text());
    assert_eq!(get(&addr, "/environ").unwrap().status, 200);
}
