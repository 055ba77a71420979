//! Static files served by the worker (`static-map`, `static-map2`, `static-index`,
//! `static-expires`, `static-safe`): types, conditional GET, ranges, and no way out of the
//! mapped folder.

use std::time::Duration;

use crate::server::{Addr, Instance, app, free_port, get, request};

fn serve(root: &std::path::Path, extra: &[&str]) -> (Instance, Addr) {
    let port = free_port();
    let sock = format!("127.0.0.1:{port}");
    let file = app("it_matrix.py");
    let map = format!("/static={}", root.join("www").display());
    let mut args = vec![
        "--http-socket",
        &sock,
        "--wsgi-file",
        &file,
        "--static-map",
        &map,
    ];
    args.extend_from_slice(extra);
    let mut inst = Instance::start(&args);
    let addr = Addr::Tcp(sock.parse().unwrap());
    inst.wait_ready(&addr, "/", Duration::from_secs(30));
    (inst, addr)
}

#[test]
fn static_files_with_types_ranges_and_conditional_get() {
    let root = tempfile::tempdir().unwrap();
    let www = root.path().join("www");
    fs_err::create_dir_all(www.join("sub")).unwrap();
    fs_err::write(www.join("style.css"), "body { color: red }").unwrap();
    fs_err::write(www.join("sub/index.html"), "<h1>index</h1>").unwrap();
    let (_inst, addr) = serve(
        root.path(),
        &[
            "--static-index",
            "index.html",
            "--static-expires",
            "/.*\\.css 3600",
        ],
    );

    let r = get(&addr, "/static/style.css").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "body { color: red }"));
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert!(r.header("expires").is_some(), "{:?}", r.headers);
    let modified = r
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();

    let r = request(
        &addr,
        format!("GET /static/style.css HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {modified}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!((r.status, r.body.len()), (304, 0));

    let r = request(&addr, b"GET /static/style.css HTTP/1.1\r\nHost: t\r\nRange: bytes=0-3\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text().as_str()), (206, "body"));
    assert_eq!(r.header("content-range"), Some("bytes 0-3/19"));
    let r = request(&addr, b"GET /static/style.css HTTP/1.1\r\nHost: t\r\nRange: bytes=-3\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text().as_str()), (206, "d }"));
    let r = request(&addr, b"GET /static/style.css HTTP/1.1\r\nHost: t\r\nRange: bytes=100-\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(r.status, 416);

    let r = get(&addr, "/static/sub/").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>index</h1>"));
    let r = request(
        &addr,
        b"HEAD /static/style.css HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!((r.status, r.header("content-length")), (200, Some("19")));
    // Not a static file: the app answers.
    assert_eq!(get(&addr, "/static/nope.css").unwrap().text(), "not found");
}

#[test]
fn static_maps_cannot_be_left() {
    let root = tempfile::tempdir().unwrap();
    let www = root.path().join("www");
    let outside = root.path().join("www-secret");
    let safe = root.path().join("shared");
    fs_err::create_dir_all(&www).unwrap();
    fs_err::create_dir_all(&outside).unwrap();
    fs_err::create_dir_all(&safe).unwrap();
    fs_err::write(root.path().join("secret.txt"), "SECRET").unwrap();
    fs_err::write(outside.join("secret.txt"), "SECRET").unwrap();
    fs_err::write(safe.join("ok.txt"), "shared ok").unwrap();
    std::os::unix::fs::symlink(root.path().join("secret.txt"), www.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(&outside, www.join("dirlink")).unwrap();
    std::os::unix::fs::symlink(safe.join("ok.txt"), www.join("safe.txt")).unwrap();
    let safe_opt = safe.to_str().unwrap().to_string();
    let (_inst, addr) = serve(root.path(), &["--static-safe", &safe_opt]);
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/link.txt",
        "/static/dirlink/secret.txt",
        "/static/../www-secret/secret.txt",
    ] {
        let r = request(
            &addr,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert!(
            !r.text().contains("SECRET"),
            "{path} leaked: {} {}",
            r.status,
            r.text()
        );
        assert_ne!(r.status, 200, "{path}");
    }
    let r = get(&addr, "/static/safe.txt").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "shared ok"));
}
