//! The host side of a vassal's run dir (issue 5, ARCHITECTURE.md decision 4): the emperor makes
//! `RUN/vassals/NAME` and hands its master a descriptor of it; `liege request` reaches a
//! vassal's socket there without following anything the customer planted and checks who
//! listens; a removed vassal's folder goes without following its links.
//!
//! The vassals here have no `uid`: the master still listens on its sockets as root before it
//! drops to the vassal's uid, so the listener's credentials (`SO_PEERCRED`) read uid 0, which
//! is the owner of a root vassal's folder. The uid check against a customer's folder is
//! exercised with a folder given to uid 10001 that holds a root listener.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::guard::Emperor;
use crate::common::{Run, liege};
use crate::server::{Addr, get};

const LONG: Duration = Duration::from_secs(30);

fn request(e: &Emperor, args: &[&str]) -> Run {
    liege()
        .arg("request")
        .arg("--run-dir")
        .arg(&e.run)
        .args(args)
        .output()
        .expect("run liege request")
        .into()
}

/// A vassal running shell.py with its sockets in its own run dir.
fn vassal_ini(e: &Emperor, dir: &Path, uwsgi: bool) -> String {
    let mut ini = format!(
        "[uwsgi]\nhttp-socket = {}\nwsgi-file = {}\nprocesses = 1\n",
        dir.join("http.sock").display(),
        e.apps.join("shell.py").display()
    );
    if uwsgi {
        ini.push_str(&format!("socket = {}\n", dir.join("uwsgi.sock").display()));
    }
    ini
}

/// (device, inode) of what `path` leads to.
fn id_of(path: &Path) -> Option<(u64, u64)> {
    fs_err::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether process `pid` holds a descriptor of the file `id`.
fn holds(pid: i32, id: (u64, u64)) -> bool {
    let Ok(fds) = fs_err::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| id_of(&fd.path()) == Some(id))
}

/// The environment process `pid` started with.
fn environ(pid: i32) -> Vec<String> {
    fs_err::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

#[test]
fn liege_request_reaches_a_vassal_and_refuses_a_planted_symlink() {
    let e = Emperor::start(&[]);
    let a_dir = e.run.join("vassals/a");
    let b_dir = e.run.join("vassals/b");
    e.write_vassal("a.ini", &vassal_ini(&e, &a_dir, true));
    e.write_vassal("b.ini", &vassal_ini(&e, &b_dir, false));
    for dir in [&a_dir, &b_dir] {
        let addr = Addr::Unix(dir.join("http.sock"));
        e.eventually(LONG, &format!("{} serving", dir.display()), || {
            get(&addr, "/").is_ok_and(|r| r.status == 200)
        });
    }

    // The emperor's folders: RUN/emperor is root's alone, RUN/vassals root's, each vassal's
    // folder its uid's (root here).
    let mode = |p: &Path| fs_err::symlink_metadata(p).unwrap().mode() & 0o7777;
    let emperor_dir = fs_err::symlink_metadata(e.run.join("emperor")).unwrap();
    assert!(emperor_dir.is_dir());
    assert_eq!(
        (emperor_dir.uid(), mode(&e.run.join("emperor"))),
        (0, 0o700)
    );
    assert_eq!(mode(&e.run.join("vassals")), 0o755);
    assert_eq!(mode(&a_dir), 0o755);

    // The master was handed its run dir (it would not start with `LIEGE_RUN_DIR_FD` naming a
    // closed descriptor); its workers get neither the descriptor nor the variable.
    let master = e
        .vassal("a")
        .and_then(|v| v["pid"].as_i64())
        .and_then(|p| i32::try_from(p).ok())
        .expect("a's master pid");
    assert!(
        environ(master).contains(&"LIEGE_RUN_DIR_FD=6".to_owned()),
        "{:?}",
        environ(master)
    );
    let a_id = id_of(&a_dir).unwrap();
    let workers: Vec<i32> = e.pids("a").into_iter().filter(|p| *p != master).collect();
    assert!(!workers.is_empty());
    for w in workers {
        assert!(
            !holds(w, a_id),
            "worker {w} holds a descriptor of its run dir"
        );
        let env = environ(w);
        assert!(
            !env.iter().any(|v| v.starts_with("LIEGE_RUN_DIR_FD=")),
            "worker {w}: {env:?}"
        );
    }

    // HTTP and uwsgi, through the run dir.
    let r = request(&e, &["a", "http.sock", "/"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.starts_with("HTTP/1."), "{r:?}");
    assert!(r.stdout.contains(" 200 "), "{r:?}");
    assert!(r.stdout.ends_with("\r\n\r\nok"), "{r:?}");
    let r = request(&e, &["--uwsgi", "a", "uwsgi.sock", "/pid"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stdout.contains(" 200 "), "{r:?}");
    let (_, body) = r.stdout.split_once("\r\n\r\n").expect("a head and a body");
    assert!(body.parse::<u32>().is_ok(), "the worker's pid: {r:?}");

    // The customer swaps its socket for a symlink to b's. A plain connect follows it and
    // reaches b (that is what the symlink would do to a careless host)...
    fs_err::remove_file(a_dir.join("http.sock")).unwrap();
    std::os::unix::fs::symlink(b_dir.join("http.sock"), a_dir.join("http.sock")).unwrap();
    let followed = get(
        &Addr::Unix(a_dir.join("http.sock")),
        "/followed-by-a-plain-connect",
    )
    .expect("a plain connect through the symlink");
    assert_eq!(followed.status, 200);
    // ...liege request does not.
    let r = request(&e, &["a", "http.sock", "/sent-through-the-symlink"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "liege: request: in {}: `http.sock` is a symbolic link, which is never followed\n",
            a_dir.display()
        )
    );
    assert!(r.stdout.is_empty(), "{r:?}");
    // b saw the plain connect's request and then the next one, but not liege request's.
    let r = request(&e, &["b", "http.sock", "/after-the-symlink"]);
    assert_eq!(r.code, Some(0), "{r:?}");
    e.eventually(LONG, "b's request line for /after-the-symlink", || {
        e.vassal_log("b").contains("GET /after-the-symlink")
    });
    let b_log = e.vassal_log("b");
    assert!(
        b_log.contains("GET /followed-by-a-plain-connect"),
        "{b_log}"
    );
    assert!(!b_log.contains("/sent-through-the-symlink"), "{b_log}");

    // A symlinked folder on the way, a FIFO, a socket no one listens on.
    std::os::unix::fs::symlink(&b_dir, a_dir.join("sub")).unwrap();
    let r = request(&e, &["a", "sub/http.sock"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("a folder on the path `sub/http.sock` is a symbolic link"),
        "{r:?}"
    );
    rustix::fs::mknodat(
        rustix::fs::CWD,
        a_dir.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let r = request(&e, &["a", "fifo"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "liege: request: in {}: `fifo` is a FIFO, not a socket\n",
            a_dir.display()
        )
    );
    drop(std::os::unix::net::UnixListener::bind(a_dir.join("dead.sock")).unwrap());
    let r = request(&e, &["a", "dead.sock"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.starts_with(&format!(
            "liege: request: in {}: cannot connect to `dead.sock`: Connection refused",
            a_dir.display()
        )),
        "{r:?}"
    );

    // A customer's folder (uid 10001) holding a root listener (a hard link to a's uwsgi
    // socket): the listener is not the folder owner's, so the connection is refused.
    let c_dir = e.run.join("vassals/c");
    fs_err::create_dir(&c_dir).unwrap();
    std::os::unix::fs::chown(&c_dir, Some(10001), Some(10001)).unwrap();
    fs_err::hard_link(a_dir.join("uwsgi.sock"), c_dir.join("u.sock")).unwrap();
    let r = request(&e, &["--uwsgi", "c", "u.sock"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "liege: request: in {}: the listener of `u.sock` runs as uid 0, not as the vassal's uid 10001\n",
            c_dir.display()
        )
    );
    fs_err::remove_dir_all(&c_dir).unwrap();

    // A vassal folder that is a symlink, and one that is not there, and bad usage.
    std::os::unix::fs::symlink(&a_dir, e.run.join("vassals/d")).unwrap();
    let r = request(&e, &["--uwsgi", "d", "uwsgi.sock"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr,
        format!(
            "liege: request: in {}: `d` is a symbolic link, which is never followed\n",
            e.run.join("vassals").display()
        )
    );
    fs_err::remove_file(e.run.join("vassals/d")).unwrap();
    let r = request(&e, &["nope", "http.sock"]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("cannot open `nope`"), "{r:?}");
    let r = request(&e, &["a/b", "http.sock"]);
    assert_eq!(r.code, Some(2), "{r:?}");
}

#[test]
fn a_removed_vassals_folder_goes_without_following_its_links() {
    let e = Emperor::start(&[]);
    let dir = e.run.join("vassals/gone");
    e.write_vassal("gone.ini", &vassal_ini(&e, &dir, false));
    let addr = Addr::Unix(dir.join("http.sock"));
    e.eventually(LONG, "gone serving", || {
        get(&addr, "/").is_ok_and(|r| r.status == 200)
    });
    // Something outside the run dir the customer would like removed.
    let outside: PathBuf = e.dir().join("outside");
    fs_err::create_dir_all(outside.join("inner")).unwrap();
    fs_err::write(outside.join("precious"), "keep me").unwrap();
    fs_err::write(outside.join("inner/also"), "keep me too").unwrap();
    fs_err::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("escape")).unwrap();
    fs_err::create_dir_all(dir.join("a/b")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("a/b/escape")).unwrap();
    std::os::unix::fs::symlink(outside.join("precious"), dir.join("a/precious")).unwrap();

    fs_err::remove_file(e.vassals.join("gone.ini")).unwrap();
    e.eventually(LONG, "the vassal gone from the stats", || {
        e.vassal("gone").is_none()
    });
    e.eventually(LONG, "its run dir removed", || {
        fs_err::symlink_metadata(&dir).is_err()
    });
    assert_eq!(
        fs_err::read_to_string(outside.join("precious")).unwrap(),
        "keep me"
    );
    assert_eq!(
        fs_err::read_to_string(outside.join("inner/also")).unwrap(),
        "keep me too"
    );
    let log = e.log_text();
    assert!(log.contains("vassal gone: removed"), "{log}");
    assert!(!log.contains("cannot remove"), "{log}");
}

#[test]
fn a_planted_entry_in_place_of_a_vassals_folder_is_replaced() {
    let e = Emperor::start(&[]);
    // Before the vassal exists, RUN/vassals/late is a symlink to a folder outside.
    let outside = e.dir().join("outside");
    fs_err::create_dir(&outside).unwrap();
    fs_err::write(outside.join("precious"), "keep me").unwrap();
    let dir = e.run.join("vassals/late");
    std::os::unix::fs::symlink(&outside, &dir).unwrap();
    e.write_vassal("late.ini", &vassal_ini(&e, &dir, false));
    let addr = Addr::Unix(dir.join("http.sock"));
    e.eventually(LONG, "late serving", || {
        get(&addr, "/").is_ok_and(|r| r.status == 200)
    });
    let md = fs_err::symlink_metadata(&dir).unwrap();
    assert!(md.is_dir(), "the symlink was replaced by a folder");
    assert_eq!(
        fs_err::read_to_string(outside.join("precious")).unwrap(),
        "keep me"
    );
    assert!(!outside.join("http.sock").exists());
    let log = e.log_text();
    assert!(
        log.contains(&format!(
            "vassal late: {} was a symbolic link, not a folder of uid 0: removed it and made the folder again",
            dir.display()
        )),
        "{log}"
    );
}
