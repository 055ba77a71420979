//! Failures behind the emperor's router: a vassal's workers killed in the middle of a streamed
//! response (over HTTP and over the uwsgi protocol), a vassal's master killed, a vassal
//! stopped under load. The client sees the right thing each time, and the router process goes
//! on with the same pid.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::process::{Pid, Signal};

use crate::emperor::guard::Emperor;
use crate::server::{Resp, read_response};

use super::support::{LONG, ROUTER, customer_vassal, in_netns, router_app};

fn get(e: &Emperor, host: &str, path: &str) -> std::io::Result<Resp> {
    e.request_in_netns(ROUTER, host, path)
}

/// The pids in vassal `name`'s cgroup whose command is `comm`.
fn processes(e: &Emperor, name: &str, comm: &str) -> Vec<i32> {
    e.pids(name)
        .into_iter()
        .filter(|p| {
            fs_err::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .collect()
}

fn kill(pid: i32) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, Signal::KILL);
    }
}

/// The router's pid and restarts, from the emperor's stats.
fn router(e: &Emperor) -> (u64, u64) {
    let r = e.stats()["router"].clone();
    (
        r["pid"].as_u64().expect("the router's pid"),
        r["restarts"].as_u64().unwrap_or_default(),
    )
}

/// Starts a slow stream for `host`, waits for its first line, kills the vassal's workers, and
/// checks the client's stream is cut: the connection ends (no hang) before the stream's end.
/// `proto`: how the router speaks to the vassal (`http` or `uwsgi`).
fn stream_cut_by_killed_workers(e: &Emperor, host: &str, vassal: &str, proto: &str) {
    let mut s = e.connect(ROUTER).unwrap();
    write!(
        s,
        "GET /stream?n=200&ms=100 HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{host}: {status:?}");
    let mut chunked = false;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line
            .to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
        {
            chunked = true;
        }
        if line == "\r\n" {
            break;
        }
    }
    // The first line of the body has come: the stream runs.
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("line 1\n") {
        let mut buf = [0u8; 256];
        let n = r.read(&mut buf).unwrap();
        assert!(n > 0, "{host}: the stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    let workers = processes(e, vassal, "liege-python");
    assert!(!workers.is_empty(), "no worker in {vassal}'s cgroup");
    for w in &workers {
        kill(*w);
    }
    // The rest: the connection ends (EOF or reset), not a read timeout, and before the end of
    // the stream.
    let end = loop {
        let mut buf = [0u8; 4096];
        match r.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break Err(e),
        }
    };
    assert!(
        match &end {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        },
        "{host}: the cut stream did not end: {end:?}"
    );
    let text = String::from_utf8_lossy(&got);
    assert!(!text.contains("line 199"), "{host}: the stream was not cut");
    // Over HTTP the node's chunked answer stops short of its last chunk, and the router cuts
    // the client's alike. Over the uwsgi protocol a response ends when the node closes the
    // connection, so a worker killed mid-stream looks like a response that ended (as behind
    // nginx's uwsgi_pass): the client gets a whole but short stream.
    if chunked && proto == "http" {
        assert!(
            !text.ends_with("0\r\n\r\n"),
            "{host}: a cut stream ended as a whole one"
        );
    }
    // The master respawns its worker; the next request is served.
    e.eventually(LONG, &format!("{host} served after the respawn"), || {
        get(e, host, "/").is_ok_and(|r| r.status == 200 && r.text() == vassal)
    });
    let again = processes(e, vassal, "liege-python");
    assert!(
        again.iter().all(|p| !workers.contains(p)),
        "{workers:?} {again:?}"
    );
}

/// A vassal of customer 10001 serving router_app.py as `name` for `NAME.test`, on an HTTP
/// (`http-socket`) or uwsgi (`socket`) socket in its run dir.
fn vassal(e: &Emperor, name: &str, key: &str) {
    customer_vassal(
        e,
        name,
        10001,
        &format!(
            "[uwsgi]\n{key} = {}\nwsgi-file = {}\nprocesses = 1\nenv = WHO={name}\ndomain = {name}.test\n",
            e.run.join("vassals").join(name).join("app.sock").display(),
            router_app(e).display()
        ),
    );
    e.eventually(LONG, &format!("{name}.test served"), || {
        get(e, &format!("{name}.test"), "/").is_ok_and(|r| r.text() == name)
    });
}

#[test]
fn killed_workers_cut_the_stream_and_the_router_goes_on() {
    let e = Emperor::start(&["--http", &ROUTER.to_string()]);
    vassal(&e, "h", "http-socket");
    vassal(&e, "u", "socket");
    let (pid, restarts) = router(&e);

    // Workers killed mid-stream, over HTTP and over uwsgi.
    stream_cut_by_killed_workers(&e, "h.test", "h", "http");
    stream_cut_by_killed_workers(&e, "u.test", "u", "uwsgi");

    // The vassal's master killed (and with it, pid 1 of its namespace, its worker): the emperor
    // spawns it again. Meanwhile requests wait, or get 502 (caught as the vassal died) or 503
    // (no node up in time), never another vassal's answer; then it serves again.
    let masters = processes(&e, "u", "liege");
    assert_eq!(masters.len(), 1, "u's master: {masters:?}");
    kill(masters[0]);
    e.eventually(LONG, "u.test served by the new master", || {
        let r = get(&e, "u.test", "/").unwrap();
        assert!(
            (r.status == 200 && r.text() == "u") || r.status == 502 || r.status == 503,
            "u.test while u respawns: {} {}",
            r.status,
            r.text()
        );
        r.status == 200 && processes(&e, "u", "liege").first() != masters.first()
    });
    assert_eq!(get(&e, "h.test", "/").unwrap().text(), "h");

    // One router all along.
    assert_eq!(router(&e), (pid, restarts), "the router was restarted");
    assert_eq!(restarts, 0);
}

#[test]
fn a_vassal_stopped_under_load_is_withdrawn_without_errors() {
    // The issue: a stopped vassal's routes are withdrawn (404), 503 while it restarts. Twelve
    // clients keep asking h for a slow answer (0.3 s; one worker, so requests queue at its
    // socket) while its file is removed: each gets h's whole answer, 404 or 503, nothing else.
    let e = Emperor::start(&["--http", &ROUTER.to_string()]);
    vassal(&e, "h", "http-socket");
    let (pid, restarts) = router(&e);
    let ns = e.netns();
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let done = done.clone();
            let ns = ns.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !done.load(Ordering::Relaxed) {
                    let r = in_netns(&ns, || {
                        let mut s = std::net::TcpStream::connect(ROUTER)?;
                        s.set_read_timeout(Some(Duration::from_secs(30)))?;
                        s.write_all(
                            b"GET /stream?n=3&ms=100 HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n",
                        )?;
                        read_response(&mut BufReader::new(s), false)
                    });
                    seen.push(r.map_or_else(|e| (0, e.to_string()), |r| (r.status, r.text())));
                }
                seen
            })
        })
        .collect();
    // Let the clients queue up, then stop h.
    std::thread::sleep(Duration::from_millis(500));
    fs_err::remove_file(e.vassals.join("h.ini")).unwrap();
    e.eventually(LONG, "h.test withdrawn", || {
        get(&e, "h.test", "/").is_ok_and(|r| r.status == 404)
    });
    done.store(true, Ordering::Relaxed);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut wrong = Vec::new();
    for c in clients {
        for (status, text) in c.join().unwrap() {
            *statuses.entry(status).or_default() += 1;
            let whole = status == 200 && text == "line 0\nline 1\nline 2\n";
            if !(whole || status == 404 || status == 503) {
                wrong.push(format!("{status} {text:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "h.test while h stopped ({statuses:?}): {wrong:?}\n{}",
        fs_err::read_to_string(e.logs.join("_router.log")).unwrap_or_default()
    );
    e.eventually(LONG, "h gone from the stats", || e.vassal("h").is_none());
    assert_eq!(get(&e, "h.test", "/").unwrap().status, 404);
    assert_eq!(router(&e), (pid, restarts), "the router was restarted");
}
