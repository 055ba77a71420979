//! Prefork: the app is loaded once, the process forks (as the zygote does, without Ruby's
//! Process.fork), and the child serves after `after_fork_child`, starting a Ruby thread, which
//! needs the thread bookkeeping `rb_thread_atfork` repairs. A fork needs a single-threaded
//! process, so this test is its own `main`.

use std::io::{self, Write};

use liege_ruby::Ruby;
use liege_worker::response::{Framing, MemoryOutput};
use liege_worker::{App, Body, Language, Request, Response, Vars};

/// Answers with its pid and a value computed on a thread of its own.
const APP: &str = r##"
run(lambda do |env|
  t = Thread.new { Process.pid * 2 }
  [200, { "Content-Type" => "text/plain" }, ["#{Process.pid} #{t.value == Process.pid * 2}"]]
end)
"##;

fn body(app: &impl App) -> String {
    let mut vars = Vars::new();
    vars.push(b"REQUEST_METHOD", b"GET");
    vars.push(b"PATH_INFO", b"/");
    vars.push(b"SERVER_NAME", b"localhost");
    let request = Request {
        vars,
        body: Body::Empty,
        scheme: "http",
    };
    let mut out = MemoryOutput::default();
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
    let ru = dir.path().join("fork.ru");
    fs_err::write(&ru, APP).unwrap();
    let language = Ruby::new();
    let app = language
        .load(&[("rack".to_string(), ru.display().to_string())])
        .unwrap();
    assert_eq!(body(&app), format!("{} true", std::process::id()));

    // SAFETY: this process is single-threaded here (no libtest; the Ruby thread the request
    // started has ended), as the zygote is when it forks.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            language.after_fork_child();
            (body(&app), body(&app))
        }));
        let want = format!("{} true", std::process::id());
        let code = match answer {
            Ok((a, b)) if a == want && b == want => 0,
            Ok(got) => {
                let _ = writeln!(io::stderr(), "child answered {got:?}, not {want:?}");
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
    // The parent still serves.
    assert_eq!(body(&app), format!("{} true", std::process::id()));
    let _ = writeln!(io::stdout(), "fork: ok");
}
