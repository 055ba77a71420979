//! Static files beside each language's app: the worker runtime serves them before the app is
//! called, whatever the language.

use std::time::Duration;

use super::{Lang, each_language};
use crate::server::{Addr, Instance, free_port, get};

each_language!(static_files_are_served_beside_the_app);

fn static_files_are_served_beside_the_app(lang: Lang) {
    lang.require_worker();
    let root = tempfile::tempdir().unwrap();
    let www = root.path().join("www");
    fs_err::create_dir_all(&www).unwrap();
    fs_err::write(www.join("style.css"), "body { color: red }").unwrap();
    let port = free_port();
    let sock = format!("127.0.0.1:{port}");
    let file = lang.app("it_matrix");
    let map = format!("/static={}", www.display());
    let mut inst = Instance::start(&[
        "--http-socket",
        &sock,
        lang.option(),
        &file,
        "--static-map",
        &map,
    ]);
    let addr = Addr::Tcp(sock.parse().unwrap());
    inst.wait_ready(&addr, "/", Duration::from_secs(30));
    let r = get(&addr, "/static/style.css").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css"));
    assert_eq!(r.text(), "body { color: red }");
    // A missing file under the map goes to the app, which answers 404 itself.
    let r = get(&addr, "/static/none.css").unwrap();
    assert_eq!((r.status, r.text().as_str()), (404, "not found"));
    assert_eq!(get(&addr, "/").unwrap().text(), "Hello World");
}
