//! Prefork: the app is loaded once, the process forks, and the child serves after
//! `after_fork_child`. A fork needs a single-threaded process, so this test is its own `main`
//! (no libtest threads).

use std::io::{self, Write};

use liege_python::Python;
use liege_worker::response::Framing;
use liege_worker::{App, Body, Language, Request, Response, Vars};

/// Collects what a response sends, files included.
type Collect = liege_worker::response::MemoryOutput;

/// Answers with its pid and how many times the at-fork child hook ran; starts a thread first,
/// which needs the thread machinery PyOS_AfterFork_Child repairs.
const APP: &str = r#"
import os
import threading

forked = []
os.register_at_fork(after_in_child=lambda: forked.append(os.getpid()))

def application(environ, start_response):
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d %d" % (os.getpid(), len(forked))]
"#;

fn body(app: &impl App) -> String {
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
    app.call(request, &mut response).expect("the app answers");
    response.finish().expect("the response finishes");
    drop(response);
    let text = String::from_utf8(out.bytes).expect("text");
    text.split_once("\r\n\r\n").expect("a head").1.to_string()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("fork_app.py"), APP).unwrap();
    let language = Python::new();
    let app = language
        .load(&[
            (
                "pythonpath".to_string(),
                dir.path().to_str().unwrap().to_string(),
            ),
            ("module".to_string(), "fork_app".to_string()),
        ])
        .unwrap();

    // SAFETY: this process is single-threaded here (no libtest, and the interpreter started no
    // thread), and the GIL is released, as the zygote forks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            language.after_fork_child();
            body(&app)
        }));
        let code = match answer {
            Ok(b) if b == format!("{} 1", std::process::id()) => 0,
            Ok(b) => {
                let _ = writeln!(io::stderr(), "child answered {b:?}");
                1
            }
            Err(_) => 2,
        };
        // SAFETY: ends the child without running the parent's exit handlers twice.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    let waited = unsafe { libc::waitpid(pid, &raw mut status, 0) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the forked child failed (status {status:#x})"
    );
    // The parent is untouched: no at-fork child hook ran here, and it still serves.
    assert_eq!(body(&app), format!("{} 0", std::process::id()));
    let _ = writeln!(io::stdout(), "fork: ok");
}
