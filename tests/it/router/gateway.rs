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

/// A self-signed certificate for `name` (EC P-256) and its key, PEM, in `dir`.
fn certificate(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", &format!("/CN={name}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

/// `curl -vk` to `https://HOST:8443/` in the emperor's namespace: the body, the HTTP version
/// and the certificate's subject it saw.
fn curl_tls(e: &Emperor, host: &str) -> (String, String, String) {
    let out = e
        .command_in_netns("curl")
        .args(["-sSvk", "--max-time", "10", "-w", "\n%{http_version}"])
        .args(["--resolve", &format!("{host}:8443:127.0.0.1")])
        .arg(format!("https://{host}:8443/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').unwrap_or((&text, ""));
    let subject = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find_map(|l| l.trim_start_matches("* ").trim().strip_prefix("subject: "))
        .unwrap_or_default()
        .to_owned();
    (body.to_owned(), version.to_owned(), subject)
}

#[test]
fn the_emperors_router_renews_its_certificate_on_sighup_and_is_respawned() {
    let tls = tempfile::tempdir().unwrap();
    let (crt, key) = certificate(tls.path(), "one.test");
    let e = Emperor::start(&[
        "--https",
        &format!("127.0.0.1:8443,{},{}", crt.display(), key.display()),
    ]);
    customer_vassal(
        &e,
        "a",
        10001,
        &format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\nprocesses = 1\ndomain = a.test\n",
            e.run.join("vassals/a/app.sock").display(),
            e.apps.join("hello.py").display()
        ),
    );
    e.eventually(LONG, "a.test answered over TLS", || {
        curl_tls(&e, "a.test").0 == "Hello, World!"
    });
    // HTTP/2 by ALPN, with the certificate the emperor read.
    let (_, version, subject) = curl_tls(&e, "a.test");
    assert_eq!(version, "2");
    assert_eq!(subject, "CN=one.test");
    let pid = e.stats()["router"]["pid"].as_u64().unwrap();
    // A new certificate at the same paths, then SIGHUP: the running router shows it.
    let (new_crt, new_key) = certificate(tls.path(), "two.test");
    fs_err::rename(&new_key, &key).unwrap();
    fs_err::rename(&new_crt, &crt).unwrap();
    e.signal(rustix::process::Signal::HUP);
    e.eventually(LONG, "the new certificate served", || {
        curl_tls(&e, "a.test").2 == "CN=two.test"
    });
    assert_eq!(
        e.stats()["router"]["pid"].as_u64(),
        Some(pid),
        "not restarted"
    );
    // Killed, the router is respawned on the emperor's listener, with what it was told.
    let router = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(router, rustix::process::Signal::KILL).unwrap();
    e.eventually(LONG, "the router respawned", || {
        let r = e.stats()["router"].clone();
        r["restarts"] == 1 && r["running"] == true && r["pid"].as_u64() != Some(pid)
    });
    e.eventually(LONG, "a.test answered by the new router", || {
        curl_tls(&e, "a.test") == ("Hello, World!".into(), "2".into(), "CN=two.test".into())
    });
    assert!(e.log_text().contains("router: pid"), "{}", e.log_text());
}

#[test]
fn a_master_run_by_hand_serves_its_workers_through_its_router() {
    let port = crate::server::free_port();
    let mut i = crate::server::Instance::start(&[
        "--http",
        &format!("127.0.0.1:{port}"),
        "--wsgi-file",
        &crate::server::app("hello.py"),
    ]);
    let addr = crate::server::Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], port)));
    i.wait_ready(&addr, "/", LONG);
    assert_eq!(
        crate::server::get(&addr, "/").unwrap().body,
        b"Hello, World!"
    );
    // Its router: a child of the master named liege-router, as the user liege-router, with
    // no_new_privs, in front of the http socket file made for it, in a folder only the
    // router's group may enter.
    let router = crate::server::children_of(i.pid())
        .into_iter()
        .find(|p| {
            fs_err::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "liege-router")
        })
        .unwrap_or_else(|| panic!("no router among the master's children:\n{}", i.log_text()));
    let pid = u64::try_from(router).unwrap();
    let uid = uid_of("liege-router").expect("the system user liege-router");
    assert!(status_line(pid, "Uid").starts_with(&uid.to_string()));
    assert_eq!(status_line(pid, "NoNewPrivs"), "1");
    let dir = std::env::temp_dir().join(format!("liege-router-{}", i.pid()));
    let sock = dir.join("http.sock");
    assert!(
        i.log_text()
            .contains(&format!("in front of {}", sock.display())),
        "{}",
        i.log_text()
    );
    let gid = status_line(pid, "Gid")
        .split_whitespace()
        .next()
        .unwrap()
        .parse::<u32>()
        .unwrap();
    use std::os::unix::fs::MetadataExt;
    let d = fs_err::symlink_metadata(&dir).unwrap();
    assert_eq!((d.mode() & 0o7777, d.uid(), d.gid()), (0o710, 0, gid));
    let f = fs_err::symlink_metadata(&sock).unwrap();
    assert_eq!((f.mode() & 0o777, f.gid()), (0o660, gid));
    // Stopped with the instance, its socket and folder gone.
    i.signal(rustix::process::Signal::INT);
    assert!(
        i.wait_exit(LONG).is_some_and(|s| s.success()),
        "{}",
        i.log_text()
    );
    assert!(!std::path::Path::new(&format!("/proc/{router}")).exists());
    assert!(
        fs_err::symlink_metadata(&dir).is_err(),
        "{} left",
        dir.display()
    );
}

#[test]
fn the_next_emperor_routes_the_vassals_it_adopts() {
    let mut e = Emperor::start(&["--http", ROUTER]);
    let addr: SocketAddr = ROUTER.parse().unwrap();
    customer_vassal(
        &e,
        "a",
        10001,
        &format!(
            "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\nprocesses = 1\ndomain = a.test\n",
            e.run.join("vassals/a/app.sock").display(),
            e.apps.join("hello.py").display()
        ),
    );
    e.eventually(LONG, "a.test answered through the router", || {
        e.request_in_netns(addr, "a.test", "/")
            .is_ok_and(|r| r.status == 200)
    });
    let master = e.vassal("a").unwrap()["pid"].as_u64().unwrap();
    let old_router = e.stats()["router"]["pid"].as_u64().unwrap();
    // The emperor dies; its router, whose control socket closed, goes with it; the vassal
    // lives on. The next emperor adopts it and its own router routes to it at once.
    e.kill9();
    e.launch();
    e.eventually(LONG, "a.test answered by the next emperor's router", || {
        e.request_in_netns(addr, "a.test", "/")
            .is_ok_and(|r| r.status == 200 && r.body == b"Hello, World!")
    });
    assert_eq!(
        e.vassal("a").unwrap()["pid"].as_u64(),
        Some(master),
        "adopted, not respawned"
    );
    // The old router is gone (or a zombie its new parent has not reaped yet).
    e.eventually(LONG, "the old router gone", || {
        fs_err::read_to_string(format!("/proc/{old_router}/stat")).map_or(true, |s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    });
}
