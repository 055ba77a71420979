//! The routing matrix through the real emperor and its router: three vassals of two customers
//! (one jailed), five domains (one a wildcard), a domain two vassals of one customer share
//! (balanced), a second customer's claim on a taken domain refused with its file and line,
//! routing that follows the vassal files as they are added, changed, touched and removed; and
//! what a client must not be able to do: pass its own X-Forwarded-For (or any header the
//! router sets) to an app, or be served another vassal's socket through a symlink.

use std::collections::BTreeSet;
use std::io::Write as _;

use crate::emperor::guard::Emperor;
use crate::server::Resp;

use super::support::{LONG, ROUTER, customer_vassal, router_app};

/// `GET path` for `host` through the emperor's router.
fn get(e: &Emperor, host: &str, path: &str) -> Resp {
    e.request_in_netns(ROUTER, host, path)
        .unwrap_or_else(|err| panic!("GET {path} for {host}: {err}\n{}", e.log_text()))
}

/// Who answered `GET /` for `host` (the vassal's WHO), or the status when it was not 200.
fn who(e: &Emperor, host: &str) -> String {
    let r = get(e, host, "/");
    if r.status == 200 {
        r.text()
    } else {
        format!("status {}", r.status)
    }
}

/// A non-jailed vassal of customer `uid` on an HTTP or uwsgi socket in its run dir, serving
/// router_app.py as `name`, for `domains`.
fn customer_ini(e: &Emperor, name: &str, socket_key: &str, domains: &[&str]) -> String {
    let mut ini = format!(
        "[uwsgi]\n{socket_key} = {}\nwsgi-file = {}\nprocesses = 1\nenv = WHO={name}\n",
        e.run.join("vassals").join(name).join("app.sock").display(),
        router_app(e).display()
    );
    for d in domains {
        ini.push_str(&format!("domain = {d}\n"));
    }
    ini
}

/// A jailed vassal (root's file, `uid`, `jail-root = host`) on the uwsgi socket /run/app.sock,
/// serving router_app.py from its home, for `domains`.
fn jailed_ini(e: &Emperor, name: &str, uid: u32, domains: &[&str]) -> String {
    let home = e.home(name, uid);
    let app = home.join("router_app.py");
    fs_err::copy(router_app(e), &app).unwrap();
    std::os::unix::fs::chown(&app, Some(uid), Some(uid)).unwrap();
    let mut ini = format!(
        "[uwsgi]\nsocket = /run/app.sock\nwsgi-file = /home/{name}/router_app.py\nprocesses = 1\n\
         env = WHO={name}\nuid = {uid}\ngid = {uid}\njail-root = host\njail-home = {}\n",
        home.display()
    );
    for d in domains {
        ini.push_str(&format!("domain = {d}\n"));
    }
    ini
}

#[test]
fn domains_route_to_vassals_as_their_files_say() {
    let e = Emperor::start(&["--http", &ROUTER.to_string()]);
    // Customer 10001: a1 (its own file, an HTTP socket) and a2 (jailed, uwsgi) share
    // shared.test; a1 also has a.test and *.shop.test, a2 a2.test.
    customer_vassal(
        &e,
        "a1",
        10001,
        &customer_ini(
            &e,
            "a1",
            "http-socket",
            &["a.test", "*.shop.test", "shared.test"],
        ),
    );
    e.eventually(LONG, "a.test served by a1", || who(&e, "a.test") == "a1");
    e.write_vassal(
        "a2.ini",
        &jailed_ini(&e, "a2", 10001, &["shared.test", "a2.test"]),
    );
    e.eventually(LONG, "a2.test served by a2", || who(&e, "a2.test") == "a2");
    // Customer 10002: b, uwsgi, b.test and a claim on a.test (line 7), which a1 holds.
    customer_vassal(
        &e,
        "b",
        10002,
        &customer_ini(&e, "b", "socket", &["b.test", "a.test"]),
    );
    e.eventually(LONG, "b.test served by b", || who(&e, "b.test") == "b");

    // The claim is refused, naming the file and line, in the emperor's log and b's stats;
    // a.test stays a1's.
    let refused = format!(
        "{}:7: domain `a.test` is refused: vassal `a1` (uid 10001) claimed it first, and vassal `b` runs as uid 10002",
        e.vassals.join("b.ini").display()
    );
    e.eventually(LONG, "b's refused claim in its stats", || {
        e.vassal("b")
            .is_some_and(|v| v["last_error"].as_str() == Some(refused.as_str()))
    });
    assert!(e.log_text().contains(&refused), "{}", e.log_text());
    for _ in 0..6 {
        assert_eq!(who(&e, "a.test"), "a1");
    }

    // The wildcard: any depth below shop.test, not shop.test itself.
    assert_eq!(who(&e, "www.shop.test"), "a1");
    assert_eq!(who(&e, "a.b.shop.test"), "a1");
    assert_eq!(who(&e, "shop.test"), "status 404");
    // Host matching ignores case, the port and a trailing dot.
    assert_eq!(who(&e, "WWW.Shop.TEST:8080"), "a1");
    assert_eq!(who(&e, "A2.test:80"), "a2");
    assert_eq!(who(&e, "b.test."), "b");
    // An unknown Host: 404 with a plain page.
    let r = get(&e, "nobody.test", "/");
    assert_eq!(r.status, 404);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        r.headers
    );

    // shared.test is balanced between a1 and a2.
    let seen: BTreeSet<String> = (0..20).map(|_| who(&e, "shared.test")).collect();
    assert_eq!(
        seen,
        BTreeSet::from(["a1".to_owned(), "a2".to_owned()]),
        "shared.test answered by {seen:?}"
    );

    // Over the uwsgi protocol (a2, jailed), a client's X-Forwarded-For and look-alikes are
    // not passed on: the app sees the router's view of the client.
    let env = spoofed_env(&e, "a2.test");
    assert_eq!(env["@who"], "a2");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "http", "{env}");
    assert_eq!(env["wsgi.url_scheme"], "http", "{env}");
    for k in [
        "HTTP_X_REAL_IP",
        "HTTP_FORWARDED",
        "HTTP_UWSGI_SCHEME",
        "UWSGI_SCHEME",
        "HTTPS",
        "HTTP_HTTPS",
    ] {
        assert!(env.get(k).is_none(), "{k} reached the app: {env}");
    }

    // A new vassal file (customer 10002): its domain routes.
    customer_vassal(
        &e,
        "c",
        10002,
        &customer_ini(&e, "c", "http-socket", &["c.test"]),
    );
    assert_eq!(who(&e, "c.test"), "status 404", "routed before its file");
    e.eventually(LONG, "c.test served by c", || who(&e, "c.test") == "c");

    // b's file changed (b.test becomes b2.test): the routes follow.
    customer_vassal(
        &e,
        "b",
        10002,
        &customer_ini(&e, "b", "socket", &["b2.test"]),
    );
    e.eventually(LONG, "b2.test served by b", || who(&e, "b2.test") == "b");
    e.eventually(LONG, "b.test withdrawn", || {
        who(&e, "b.test") == "status 404"
    });

    // a1's file touched: a1 reloads (new worker) and a.test is answered throughout.
    let before = get(&e, "a.test", "/pid").text();
    let touched = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    fs_err::File::options()
        .write(true)
        .open(e.vassals.join("a1.ini"))
        .unwrap()
        .set_modified(touched)
        .unwrap();
    e.eventually(LONG, "a1 reloaded (another worker)", || {
        let r = get(&e, "a.test", "/pid");
        assert_eq!(r.status, 200, "a.test while a1 reloads: {}", r.text());
        r.text() != before
    });

    // a1's file removed: its own domains are withdrawn, shared.test is a2's alone, and a.test
    // goes to b, whose claim stands once a1 is gone.
    fs_err::remove_file(e.vassals.join("a1.ini")).unwrap();
    e.eventually(LONG, "www.shop.test withdrawn", || {
        who(&e, "www.shop.test") == "status 404"
    });
    for _ in 0..6 {
        assert_eq!(who(&e, "shared.test"), "a2");
    }
    // b's file no longer claims a.test (changed above): a.test is no one's.
    assert_eq!(who(&e, "a.test"), "status 404");
    assert_eq!(who(&e, "b2.test"), "b");
    assert_eq!(who(&e, "c.test"), "c");
}

/// `GET /env` for `host` with every header a client could use to pass for the router or a
/// proxy: what the app saw.
fn spoofed_env(e: &Emperor, host: &str) -> serde_json::Value {
    let mut s = e.connect(ROUTER).unwrap();
    write!(
        s,
        "GET /env HTTP/1.1\r\nHost: {host}\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
         Forwarded: for=6.6.6.6;proto=https\r\nX-Forwarded-Proto: https\r\nUWSGI-Scheme: https\r\n\
         Https: on\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let r = crate::server::read_response(&mut std::io::BufReader::new(s), false).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("router_app's JSON")
}

#[test]
fn spoofed_headers_are_dropped_and_a_socket_swapped_for_a_symlink_is_refused() {
    let e = Emperor::start(&["--http", &ROUTER.to_string()]);
    let vassals = e.run.join("vassals");
    // a and twin: customer 10001; b: customer 10002; all on HTTP sockets in their run dirs.
    customer_vassal(
        &e,
        "a",
        10001,
        &customer_ini(&e, "a", "http-socket", &["a.test"]),
    );
    customer_vassal(
        &e,
        "twin",
        10001,
        &customer_ini(&e, "twin", "http-socket", &["twin.test"]),
    );
    customer_vassal(
        &e,
        "b",
        10002,
        &customer_ini(&e, "b", "http-socket", &["b.test"]),
    );
    for (host, name) in [("a.test", "a"), ("twin.test", "twin"), ("b.test", "b")] {
        e.eventually(LONG, &format!("{host} served by {name}"), || {
            who(&e, host) == name
        });
    }

    // Over HTTP to the vassal, too, the app sees the router's X-Forwarded-For only.
    let env = spoofed_env(&e, "a.test");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "127.0.0.1", "{env}");
    assert_eq!(env["HTTP_X_FORWARDED_PROTO"], "http", "{env}");
    assert_eq!(env["wsgi.url_scheme"], "http", "{env}");
    for k in [
        "HTTP_X_REAL_IP",
        "HTTP_FORWARDED",
        "HTTP_UWSGI_SCHEME",
        "HTTPS",
    ] {
        assert!(env.get(k).is_none(), "{k} reached the app: {env}");
    }

    // twin (same customer as a) and b (another) swap their sockets for symlinks to a's, as
    // their customers may: the router refuses them and never serves a for them.
    for (name, uid) in [("twin", 10001), ("b", 10002)] {
        let sock = vassals.join(name).join("app.sock");
        fs_err::remove_file(&sock).unwrap();
        std::os::unix::fs::symlink("../a/app.sock", &sock).unwrap();
        std::os::unix::fs::lchown(&sock, Some(uid), Some(uid)).unwrap();
        assert!(
            fs_err::symlink_metadata(&sock)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    for _ in 0..5 {
        for host in ["twin.test", "b.test"] {
            let r = get(&e, host, "/");
            assert!(
                r.status == 502 || r.status == 503,
                "{host} through a symlink: {} {}",
                r.status,
                r.text()
            );
            assert_ne!(r.text(), "a");
        }
    }
    // a itself is served as before.
    assert_eq!(who(&e, "a.test"), "a");
}
