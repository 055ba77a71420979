//! What keeps customers apart, checked from inside real jailed vassals: namespaces (pid 1,
//! hostname, IPC, network) and the cgroup limits (memory, CPU, processes), with two vassals of
//! two customers (uids), each jailed (`jail-root = host`) and running `shell.py`, a test-only
//! app that runs the command it is sent. tests/it/jail checks the rest of the jail.

use std::time::{Duration, Instant};

use super::guard::{Emperor, controller_dir};
use crate::server::{Addr, get, request};

const LONG: Duration = Duration::from_secs(30);

/// Runs `command` in the vassal behind `addr`: (exit status, output).
pub(crate) fn sh(addr: &Addr, command: &str) -> (String, String) {
    let raw = format!(
        "POST /run HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{command}",
        command.len()
    );
    let r = request(addr, raw.as_bytes()).expect("POST /run");
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let (code, out) = text.split_once('\n').unwrap_or((&text, ""));
    (code.to_owned(), out.to_owned())
}

pub(crate) fn info(addr: &Addr) -> serde_json::Value {
    serde_json::from_str(&get(addr, "/info").expect("GET /info").text()).expect("json")
}

/// Two customers, jailed: `a` (uid 10001) and `b` (uid 10002), each with `extra` options.
pub(crate) fn two_customers(extra_a: &str, extra_b: &str) -> Emperor {
    let e = Emperor::start(&[]);
    e.write_vassal("a.ini", &e.jailed_ini("a", 10001, "shell.py", extra_a));
    e.write_vassal("b.ini", &e.jailed_ini("b", 10002, "shell.py", extra_b));
    e.wait_jailed("a");
    e.wait_jailed("b");
    e
}

#[test]
fn each_vassal_has_its_own_pid_1_hostname_ipc_and_network() {
    let e = two_customers("", "");
    let (a, b) = (e.jail_addr("a"), e.jail_addr("b"));
    let (ia, ib) = (info(&a), info(&b));
    assert_eq!(
        ia["ppid"], 1,
        "the master is pid 1 of the vassal's pid namespace: {ia}"
    );
    assert_eq!(ib["ppid"], 1, "{ib}");
    assert_eq!(ia["hostname"], "a");
    assert_eq!(ib["hostname"], "b");
    assert_eq!(
        (ia["uid"].as_u64(), ia["gid"].as_u64()),
        (Some(10001), Some(10001))
    );
    assert_eq!(
        (ib["uid"].as_u64(), ib["gid"].as_u64()),
        (Some(10002), Some(10002))
    );
    // Network: only a loopback, up.
    let (_, dev) = sh(&a, "cat /proc/net/dev");
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(str::trim)
        .collect();
    assert_eq!(ifaces, ["lo"], "{dev}");
    // Both listen on 127.0.0.1:6379 at once, each in its own network.
    let listen = "nohup /usr/bin/python3 -c 'import socket,time;s=socket.socket();s.bind((\"127.0.0.1\",6379));s.listen();time.sleep(20)' >/dev/null 2>&1 & sleep 0.5; echo started";
    assert_eq!(sh(&a, listen).1.trim(), "started");
    assert_eq!(sh(&b, listen).1.trim(), "started");
    let probe = "/usr/bin/python3 -c 'import socket;socket.create_connection((\"127.0.0.1\",6379),2);print(\"reached\")'";
    assert_eq!(sh(&a, probe).1.trim(), "reached");
    assert_eq!(sh(&b, probe).1.trim(), "reached");
    // SysV IPC: a queue made in a is not seen in b.
    let (code, out) = sh(&a, "ipcmk -Q");
    assert_eq!(code, "0", "{out}");
    let (_, qa) = sh(&a, "ipcs -q | grep -c '^0x' || true");
    let (_, qb) = sh(&b, "ipcs -q | grep -c '^0x' || true");
    assert_eq!((qa.trim(), qb.trim()), ("1", "0"));
}

#[test]
fn a_memory_hog_is_killed_inside_its_cgroup_while_the_other_customer_answers() {
    let e = two_customers("memory-limit = 96m\n", "");
    let (a, b) = (e.jail_addr("a"), e.jail_addr("b"));
    let hog = std::thread::spawn(move || {
        sh(
            &a,
            "/usr/bin/python3 -c 'x = bytearray(400 * 1024 * 1024); print(\"survived\")'",
        )
    });
    for _ in 0..20 {
        assert_eq!(get(&b, "/").unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, out) = hog.join().unwrap();
    assert!(
        !out.contains("survived"),
        "the hog was not stopped: {code} {out}"
    );
    // The shell reports its child's SIGKILL as 137.
    assert!(
        code == "137" || code == "-9",
        "killed by the OOM killer: {code} {out}"
    );
    e.eventually(LONG, "the OOM kill in the stats", || {
        e.vassal("a")
            .is_some_and(|v| v["oom_kills"].as_u64().unwrap_or(0) >= 1)
    });
    assert_eq!(e.vassal("b").unwrap()["oom_kills"].as_u64().unwrap_or(0), 0);
    assert_eq!(
        get(&e.jail_addr("a"), "/").unwrap().status,
        200,
        "a itself goes on"
    );
}

#[test]
fn a_cpu_hog_stays_near_its_quota() {
    let e = two_customers("cpu-limit = 20\n", "");
    let usage_file = controller_dir("cpuacct")
        .map(|d| d.join(&e.cgroup_root).join("a").join("cpuacct.usage"))
        .filter(|p| p.exists());
    let read_usage = || -> f64 {
        match &usage_file {
            Some(p) => {
                fs_err::read_to_string(p)
                    .unwrap()
                    .trim()
                    .parse::<f64>()
                    .unwrap()
                    / 1e9
            }
            None => e.vassal("a").unwrap()["cpu_usage_ns"].as_f64().unwrap() / 1e9,
        }
    };
    let before = read_usage();
    let start = Instant::now();
    // Two busy loops (this machine has two cores) for 3 s of wall time.
    let (code, _) = sh(
        &e.jail_addr("a"),
        "timeout 3 sh -c 'while :; do :; done' & timeout 3 sh -c 'while :; do :; done'; wait; echo done",
    );
    assert_eq!(code, "0");
    let wall = start.elapsed().as_secs_f64();
    let used = read_usage() - before;
    // 20% of one core over ~3 s is 0.6 s; the scheduler's period granularity allows a little
    // more. Unlimited, the two loops would take ~6 s.
    assert!(
        used < 0.35 * wall,
        "used {used:.2} s of CPU in {wall:.2} s (quota 20%)"
    );
    assert!(used > 0.05 * wall, "the hog ran ({used:.2} s)");
}

#[test]
fn a_fork_bomb_stops_at_the_pids_limit_and_the_vassal_recovers() {
    let e = two_customers("pids-limit = 40\n", "");
    let (a, b) = (e.jail_addr("a"), e.jail_addr("b"));
    let pids_max = controller_dir("pids")
        .unwrap()
        .join(&e.cgroup_root)
        .join("a");
    let (_, out) = sh(&a, "for i in $(seq 200); do sleep 2 & done; wait; echo end");
    assert_eq!(
        fs_err::read_to_string(pids_max.join("pids.max"))
            .unwrap()
            .trim(),
        "40"
    );
    assert!(
        out.contains("fork") || out.contains("error"),
        "forks were refused: {out}"
    );
    assert_eq!(get(&b, "/").unwrap().status, 200, "b is not affected");
    e.eventually(LONG, "a answers again", || {
        get(&a, "/").is_ok_and(|r| r.status == 200)
    });
    let events = fs_err::read_to_string(pids_max.join("pids.events")).unwrap_or_default();
    assert!(
        events.contains("max") && !events.contains("max 0"),
        "the limit was hit: {events}"
    );
}

#[test]
fn stats_and_metrics_report_what_the_cgroups_say() {
    let e = two_customers("memory-limit = 200m\npids-limit = 50\n", "");
    let cg = |ctl: &str, file: &str| -> u64 {
        let dir = controller_dir(ctl).unwrap().join(&e.cgroup_root).join("a");
        fs_err::read_to_string(dir.join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    e.eventually(LONG, "a accepting", || {
        e.vassal("a").is_some_and(|v| v["state"] == "accepting")
    });
    let v = e.vassal("a").unwrap();
    assert_eq!(v["memory_limit"].as_u64(), Some(200 << 20), "{v}");
    assert_eq!(v["pids_limit"].as_u64(), Some(50), "{v}");
    // The stats read the cgroups at most a few seconds ago.
    e.eventually(LONG, "the stats' pids as the cgroup's", || {
        e.vassal("a")
            .is_some_and(|v| v["pids"].as_u64() == Some(cg("pids", "pids.current")))
    });
    let mem_file = if controller_dir("memory")
        .unwrap()
        .join("cgroup.controllers")
        .exists()
    {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    let mem = cg("memory", mem_file);
    let reported = v["memory_bytes"].as_u64().unwrap();
    assert!(reported > 1 << 20, "{v}");
    assert!(
        reported.abs_diff(mem) < mem / 2 + (4 << 20),
        "stats {reported}, cgroup {mem}"
    );
    let text = e.metrics();
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(text.contains("liege_vassal_up{vassal=\"a\"} 1"), "{text}");
    assert!(
        text.contains("liege_vassal_memory_limit_bytes{vassal=\"a\"} 209715200"),
        "{text}"
    );
    assert!(text.contains("liege_vassal_pids{vassal=\"b\"}"), "{text}");
}
