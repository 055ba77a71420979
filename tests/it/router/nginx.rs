//! nginx next to the router: a vassal routed by the emperor's router is also reached by nginx
//! over `uwsgi_pass` on its socket in the run dir; both answer with the same app, before and
//! after the vassal reloads and after the router is killed and respawned.

use std::io::{BufReader, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Child;

use crate::emperor::guard::Emperor;
use crate::server::{Resp, read_response};

use super::support::{LONG, ROUTER, customer_vassal, router_app};

/// Where nginx listens, in the emperor's network namespace.
const NGINX: &str = "127.0.0.1:8081";

/// nginx (Debian's; scripts/setup installs it) in the emperor's network namespace, run as
/// root in the foreground as tests/it/frameworks.rs runs it, passing every request to
/// `socket` over the uwsgi protocol; killed when dropped.
struct Nginx {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx(e: &Emperor, socket: &Path) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\npid {t}/nginx.pid;\n\
         error_log {t}/error.log;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  uwsgi_temp_path {t}/uwsgi;\n\
         proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n  scgi_temp_path {t}/scgi;\n\
         server {{\n    listen {NGINX};\n    location / {{\n\
         include /etc/nginx/uwsgi_params;\n      uwsgi_pass unix:{};\n    }}\n  }}\n}}\n",
        socket.display()
    );
    let path = dir.path().join("nginx.conf");
    fs_err::write(&path, conf).unwrap();
    let child = e
        .command_in_netns("/usr/sbin/nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .spawn()
        .expect("nginx (scripts/setup installs it)");
    Nginx { child, _dir: dir }
}

/// `raw` sent to `addr` in the emperor's namespace.
fn send(e: &Emperor, addr: &str, raw: &[u8]) -> std::io::Result<Resp> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut s = e.connect(addr)?;
    s.write_all(raw)?;
    read_response(&mut BufReader::new(s), false)
}

/// What the app answers to `GET /env` and `POST /echo` through `addr`: its WHO, the request's
/// Host as it saw it, and the echo of a 100 kB body.
fn answers(e: &Emperor, addr: &str) -> (String, String, serde_json::Value) {
    let r = send(
        e,
        addr,
        b"GET /env?x=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{addr}: {}", r.text());
    let env: serde_json::Value = serde_json::from_slice(&r.body).expect("router_app's JSON");
    let body = "n".repeat(100_000);
    let r = send(
        e,
        addr,
        format!(
            "POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{addr}: {}", r.text());
    let mut echo: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(echo["length"], 100_000, "{addr}: {echo}");
    echo["transfer_encoding"] = serde_json::Value::Null;
    (
        env["@who"].as_str().unwrap_or_default().to_owned(),
        format!(
            "{} {}",
            env["HTTP_HOST"].as_str().unwrap_or_default(),
            env["QUERY_STRING"].as_str().unwrap_or_default()
        ),
        echo,
    )
}

#[test]
fn nginx_uwsgi_pass_to_a_vassal_keeps_working_next_to_the_router() {
    let e = Emperor::start(&["--http", &ROUTER.to_string()]);
    let sock = e.run.join("vassals/a/app.sock");
    customer_vassal(
        &e,
        "a",
        10001,
        &format!(
            "[uwsgi]\nsocket = {}\nwsgi-file = {}\nprocesses = 2\nenv = WHO=a\ndomain = a.test\n",
            sock.display(),
            router_app(&e).display()
        ),
    );
    e.eventually(LONG, "a.test through the router", || {
        send(
            &e,
            &ROUTER.to_string(),
            b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        )
        .is_ok_and(|r| r.status == 200 && r.text() == "a")
    });
    // The socket is the customer's and the router's group's: root's nginx may use it too.
    let mode = fs_err::metadata(&sock).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o660);
    let _nginx = nginx(&e, &sock);
    e.eventually(LONG, "a through nginx", || {
        send(
            &e,
            NGINX,
            b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        )
        .is_ok_and(|r| r.status == 200 && r.text() == "a")
    });

    // The same app answers both the same way.
    let via_router = answers(&e, &ROUTER.to_string());
    let via_nginx = answers(&e, NGINX);
    assert_eq!(via_router.0, "a");
    assert_eq!(via_router.1, "a.test x=1");
    assert_eq!(via_nginx, via_router);

    // The vassal reloads (its file touched): both keep answering.
    let touched = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    fs_err::File::options()
        .write(true)
        .open(e.vassals.join("a.ini"))
        .unwrap()
        .set_modified(touched)
        .unwrap();
    e.eventually(LONG, "a's reload logged", || {
        e.vassal_log("a").matches("generation").count() >= 2
    });
    assert_eq!(answers(&e, NGINX).0, "a");
    assert_eq!(answers(&e, &ROUTER.to_string()).0, "a");

    // The router killed: nginx is not concerned; the respawned router serves again.
    let pid = e.stats()["router"]["pid"].as_u64().unwrap();
    let router = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(router, rustix::process::Signal::KILL).unwrap();
    assert_eq!(answers(&e, NGINX).0, "a");
    e.eventually(LONG, "the router respawned", || {
        e.stats()["router"]["pid"]
            .as_u64()
            .is_some_and(|p| p != pid)
    });
    e.eventually(LONG, "a.test through the new router", || {
        send(
            &e,
            &ROUTER.to_string(),
            b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
        )
        .is_ok_and(|r| r.status == 200 && r.text() == "a")
    });
    assert_eq!(answers(&e, &ROUTER.to_string()), answers(&e, NGINX));
}
