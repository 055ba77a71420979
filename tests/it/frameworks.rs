//! Real frameworks: Flask and Django from PyPI, in a virtualenv of Debian's python3 that the test
//! makes, served with `home` pointing at it; Dancer2 and Sinatra from Debian's packages
//! (scripts/setup installs them); and nginx in front with `uwsgi_pass`, for every language.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::repo;
use crate::languages::{Lang, each_language};
use crate::server::{Addr, Instance, free_port, get, request};

/// The virtualenv with the pinned frameworks, made once (and kept in /var/cache/liege, keyed by
/// the requirements file, so later runs reuse it).
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let reqs = repo().join("tests/apps/python/frameworks-requirements.txt");
        let wanted = fs_err::read_to_string(&reqs).expect("requirements");
        let dir = PathBuf::from("/var/cache/liege/venv-frameworks");
        let marker = dir.join("liege-requirements.txt");
        if fs_err::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
            return dir;
        }
        let _ = fs_err::remove_dir_all(&dir);
        let ok = Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .status()
            .expect("python3 -m venv")
            .success();
        assert!(
            ok,
            "python3 -m venv failed (is python3-venv installed? scripts/setup installs it)"
        );
        let ok = Command::new(dir.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&reqs)
            .status()
            .expect("pip")
            .success();
        assert!(ok, "pip install -r {} failed", reqs.display());
        fs_err::write(&marker, wanted).expect("marker");
        dir
    })
}

fn serve(file: &str) -> (Instance, Addr) {
    let home = venv().to_str().unwrap().to_string();
    let port = free_port();
    let sock = format!("127.0.0.1:{port}");
    let file = crate::server::app(file);
    let mut inst = Instance::start(&[
        "--http-socket",
        &sock,
        "--wsgi-file",
        &file,
        "--home",
        &home,
    ]);
    let addr = Addr::Tcp(sock.parse().unwrap());
    inst.wait_ready(&addr, "/", Duration::from_secs(60));
    (inst, addr)
}

#[test]
fn a_flask_app_answers_its_routes() {
    let (_inst, addr) = serve("flask_app.py");
    answers_its_routes(&addr, "flask index");
}

/// A framework app's routes: `/`, `/hello/NAME`, a 404, JSON posted and echoed with the method.
fn answers_its_routes(addr: &Addr, index: &str) {
    assert_eq!(get(addr, "/").unwrap().text(), index);
    assert_eq!(get(addr, "/hello/world").unwrap().text(), "hello world");
    assert_eq!(get(addr, "/nope").unwrap().status, 404);
    let body = r#"{"a": [1, 2]}"#;
    let r = request(
        addr,
        format!(
            "POST /json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{e}: {} {}", r.status, r.text()));
    assert_eq!(v["received"]["a"], serde_json::json!([1, 2]));
    assert_eq!(v["method"], "POST");
}

#[test]
fn a_dancer2_app_answers_its_routes() {
    let (_inst, addr) = crate::languages::serve(Lang::Perl, "dancer2", &["--processes", "2"]);
    answers_its_routes(&addr, "dancer2 index");
}

#[test]
fn a_sinatra_app_answers_its_routes() {
    let (_inst, addr) = crate::languages::serve(Lang::Ruby, "sinatra", &["--processes", "2"]);
    answers_its_routes(&addr, "sinatra index");
}

#[test]
fn a_django_app_answers_its_routes_from_the_virtualenv() {
    let (_inst, addr) = serve("django_app.py");
    assert_eq!(get(&addr, "/").unwrap().text(), "django index");
    let r = get(&addr, "/items/42/?q=x").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["item"], 42);
    assert_eq!(v["query"], "x");
    assert_eq!(
        v["prefix"],
        venv().to_str().unwrap(),
        "sys.prefix is the virtualenv"
    );
    assert_eq!(get(&addr, "/missing/").unwrap().status, 404);
    let r = request(
        &addr,
        b"POST /form/ HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\nConnection: close\r\n\r\nfield=abc",
    )
    .unwrap();
    assert_eq!(r.text(), "posted abc");
}

/// nginx (Debian's, installed by scripts/setup) on a free port, passing to `socket` over the
/// uwsgi protocol; stopped by pid when dropped.
struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx(port: u16, socket: &Path) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\npid {t}/nginx.pid;\n\
         error_log {t}/error.log;\nevents {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  uwsgi_temp_path {t}/uwsgi;\n\
         proxy_temp_path {t}/proxy;\n  fastcgi_temp_path {t}/fastcgi;\n  scgi_temp_path {t}/scgi;\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
         include /etc/nginx/uwsgi_params;\n      uwsgi_pass unix:{};\n    }}\n  }}\n}}\n",
        socket.display()
    );
    let path = dir.path().join("nginx.conf");
    fs_err::write(&path, conf).unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .spawn()
        .expect("nginx (scripts/setup installs it)");
    Nginx { child, _dir: dir }
}

each_language!(nginx_uwsgi_pass_serves_the_same_responses);

fn nginx_uwsgi_pass_serves_the_same_responses(lang: Lang) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let file = lang.app("it_matrix");
    let inst = Instance::start_in(
        dir,
        &[
            "--socket",
            sock.to_str().unwrap(),
            lang.option(),
            &file,
            "--processes",
            "2",
        ],
    );
    let port = free_port();
    let _nginx = nginx(port, &sock);
    let addr = Addr::Tcp(format!("127.0.0.1:{port}").parse().unwrap());
    let mut ready = false;
    for _ in 0..200 {
        if get(&addr, "/").is_ok_and(|r| r.status == 200) {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        ready,
        "nginx -> liege never answered: {:?}\n{}",
        get(&addr, "/").map(|r| (r.status, r.text())),
        inst.log_text()
    );
    assert_eq!(get(&addr, "/").unwrap().text(), "Hello World");
    assert_eq!(
        get(&addr, "/path/x%20y?a=b").unwrap().text(),
        "/path/x y?a=b"
    );
    let r = get(&addr, "/stream").unwrap();
    assert_eq!(r.text(), "chunk0;chunk1;chunk2;chunk3;chunk4;");
    let body = "z".repeat(300_000);
    let r = request(
        &addr,
        format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            .as_bytes(),
    )
    .unwrap();
    assert!(
        r.status == 200 && r.text() == body,
        "status {}, {} bytes back",
        r.status,
        r.body.len()
    );
    let r = get(&addr, "/file").unwrap();
    assert_eq!(r.body, fs_err::read(lang.app("it_matrix")).unwrap());
    assert_eq!(get(&addr, "/raise").unwrap().status, 500);
    let r = get(&addr, "/environ").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["REMOTE_ADDR"], "127.0.0.1");
    assert_eq!(v["PATH_INFO"], "/environ");
}
