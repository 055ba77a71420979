//! `home` (a virtualenv) needs its own process: the interpreter starts once, with the venv as its
//! prefix. A test binary of its own is that process.

use std::process::Command;

use liege_python::Python;
use liege_worker::response::Framing;
use liege_worker::{App, Body, Language, Request, Response, Vars};

/// Collects what a response sends, files included.
type Collect = liege_worker::response::MemoryOutput;

const APP: &str = r#"
import sys
import liege_venv_probe

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    lines = [sys.prefix, sys.base_prefix, liege_venv_probe.WHERE, sys.executable]
    return ["\n".join(lines).encode()]
"#;

#[test]
fn home_makes_the_venv_the_prefix_and_its_packages_importable() {
    let venv = tempfile::tempdir().unwrap();
    let status = Command::new("/usr/bin/python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(venv.path())
        .status()
        .unwrap();
    assert!(status.success(), "python3 -m venv failed");
    let site = venv.path().join("lib/python3.11/site-packages");
    fs_err::write(
        site.join("liege_venv_probe.py"),
        "WHERE = 'venv site-packages'\n",
    )
    .unwrap();
    let apps = tempfile::tempdir().unwrap();
    fs_err::write(apps.path().join("venv_app.py"), APP).unwrap();

    let options: Vec<(String, String)> = [
        ("home", venv.path().to_str().unwrap()),
        ("pythonpath", apps.path().to_str().unwrap()),
        ("module", "venv_app"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let app = Python::new().load(&options).unwrap();

    let mut vars = Vars::new();
    vars.push(b"REQUEST_METHOD", b"GET");
    vars.push(b"PATH_INFO", b"/");
    let request = Request {
        vars,
        body: Body::Empty,
        scheme: "http",
    };
    let mut out = Collect::default();
    let framing = Framing {
        http11: true,
        keep_alive: true,
        head_only: false,
        http: true,
    };
    let mut response = Response::new(&mut out, framing);
    app.call(request, &mut response).unwrap();
    response.finish().unwrap();
    drop(response);

    let text = String::from_utf8(out.bytes).unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let lines: Vec<&str> = body.lines().collect();
    let venv_path = venv.path().to_str().unwrap();
    assert_eq!(lines[0], venv_path, "sys.prefix");
    assert_eq!(lines[1], "/usr", "sys.base_prefix");
    assert_eq!(lines[2], "venv site-packages");
    assert_eq!(
        lines[3],
        format!("{venv_path}/bin/python3"),
        "sys.executable"
    );

    // The interpreter runs: another home cannot be taken any more.
    let other = tempfile::tempdir().unwrap();
    let e = Python::new()
        .load(&[
            (
                "home".to_string(),
                other.path().to_str().unwrap().to_string(),
            ),
            ("module".to_string(), "venv_app".to_string()),
        ])
        .unwrap_err();
    assert_eq!(
        e.0,
        format!(
            "option `home`: the interpreter already runs with home `{venv_path}`, cannot switch to `{}`",
            other.path().display()
        )
    );
}
