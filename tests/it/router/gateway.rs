//! The emperor's router, end to end: `liege --emperor DIR --http ADDR` in a network namespace
//! of its own, vassals of two customers, requests sent from inside that namespace.

use std::net::SocketAddr;
use std::time::Duration;

use crate::emperor::guard::Emperor;

const LONG: Duration = Duration::from_secs(60);
/// The router's address in the emperor's own network namespace.
const ROUTER: &str = "127.0.0.1:8080";

fn chown(path: &std::path::Path, uid: u32) {
    rustix::fs::chown(
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(uid)),
    )
    .unwrap();
}

/// Writes a vassal file owned by customer `uid` (a temporary name, then a rename).
fn customer_vassal(e: &Emperor, name: &str, uid: u32, text: &str) {
    let tmp = e.dir().join(format!(".{name}.ini.tmp"));
    fs_err::write(&tmp, text).unwrap();
    chown(&tmp, uid);
    fs_err::rename(&tmp, e.vassals.join(format!("{name}.ini"))).unwrap();
}

/// The uid of `name` in /etc/passwd.
fn uid_of(name: &str) -> Option<u32> {
    fs_err::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name)).then(|| f.get(2)?.parse().ok())?
        })
}

/// One line of /proc/PID/status (`NoNewPrivs`), its value.
fn status_line(pid: u64, key: &str) -> String {
    fs_err::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{key}:"))
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default()
}

#[test]
fn vassals_are_served_by_domain_through_an_unprivileged_router() {
    let router_uid =
        uid_of("liege-router").expect("the system user liege-router (scripts/setup creates it)");
    let e = Emperor::start(&["--http", ROUTER]);
    let addr: SocketAddr = ROUTER.parse().unwrap();
    let get = |host: &str| e.request_in_netns(addr, host, "/");
    let run = e.run.join("vassals");

    // Customer 10001's vassal, on a socket in its run dir, for two domains.
    customer_vassal(
        &e,
        "a",
        10001,
        &format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\nprocesses = 1\ndomain = a.test\ndomain = only-a.test\n",
            run.join("a/app.sock").display(),
            e.apps.join("hello.py").display()
        ),
    );
    e.eventually(LONG, "a.test answered through the router", || {
        get("a.test").is_ok_and(|r| r.status == 200 && r.body == b"Hello, World!")
    });
    // curl from inside the namespace, too.
    let out = e
        .command_in_netns("curl")
        .args(["-sS", "-H", "Host: a.test", &format!("http://{ROUTER}/")])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout,
        b"Hello, World!",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The Host is matched without its case or its port; an unknown one is 404.
    assert_eq!(get("ONLY-A.test:8080").unwrap().status, 200);
    assert_eq!(get("nobody.test").unwrap().status, 404);

    // The router runs as liege-router, with no capability and no_new_privs, in the
    // emperor's cgroup ROOT/_router rather than in a vassal's.
    let router = e.stats()["router"].clone();
    assert_eq!(router["running"], true, "{router}");
    let pid = router["pid"].as_u64().expect("the router's pid");
    let uids = status_line(pid, "Uid");
    assert!(
        uids.split_whitespace().all(|u| u == router_uid.to_string()),
        "router uids: {uids}"
    );
    assert_eq!(status_line(pid, "NoNewPrivs"), "1");
    assert_eq!(status_line(pid, "CapEff"), "0000000000000000");
    assert_eq!(status_line(pid, "CapBnd"), "0000000000000000");
    let cgroup = fs_err::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroup.contains(&format!("/{}/_router\n", e.cgroup_root)),
        "{cgroup}"
    );
    // The vassal's socket is its own and the router's group's, mode 660.
    let meta = fs_err::metadata(run.join("a/app.sock")).unwrap();
    use std::os::unix::fs::MetadataExt as _;
    assert_eq!(meta.uid(), 10001);
    assert_eq!(meta.mode() & 0o777, 0o660);

    // Customer 10002 claims a.test too: refused, naming the line; its own domain routes.
    customer_vassal(
        &e,
        "b",
        10002,
        &format!(
            "[uwsgi]\nsocket = {}\nwsgi-file = {}\nprocesses = 1\ndomain = b.test\ndomain = a.test\n",
            run.join("b/app.sock").display(),
            e.apps.join("environ_keys.py").display()
        ),
    );
    e.eventually(LONG, "b.test answered through the router", || {
        get("b.test").is_ok_and(|r| r.status == 200 && r.body.starts_with(b"{"))
    });
    let refused = format!(
        "{}:6: domain `a.test` is refused: vassal `a` (uid 10001) claimed it first, and vassal `b` runs as uid 10002",
        e.vassals.join("b.ini").display()
    );
    e.eventually(LONG, "b's refused claim in its stats", || {
        e.vassal("b")
            .is_some_and(|v| v["last_error"].as_str() == Some(refused.as_str()))
    });
    assert!(e.log_text().contains(&refused), "{}", e.log_text());
    assert_eq!(get("a.test").unwrap().body, b"Hello, World!");
    // The uwsgi protocol reached b with the router's own view of the client.
    let env: serde_json::Value =
        serde_json::from_slice(&get("b.test").unwrap().body).expect("environ_keys' JSON");
    assert_eq!(env["REMOTE_ADDR"][1], "'127.0.0.1'", "{env}");

    // The router's counters reach the emperor's stats and metrics.
    e.eventually(LONG, "a's requests counted", || {
        e.vassal("a")
            .is_some_and(|v| v["router"]["requests"].as_u64() >= Some(3))
    });
    assert!(
        e.metrics()
            .contains("liege_vassal_router_requests_total{vassal=\"a\"}")
    );

    // Its file removed, `a` is withdrawn: only-a.test is no one's (404), and a.test is free
    // for b, which claimed it.
    fs_err::remove_file(e.vassals.join("a.ini")).unwrap();
    e.eventually(LONG, "only-a.test withdrawn", || {
        get("only-a.test").is_ok_and(|r| r.status == 404)
    });
    e.eventually(LONG, "a.test served by b once a is gone", || {
        get("a.test").is_ok_and(|r| r.status == 200 && r.body.starts_with(b"{"))
    });
}
