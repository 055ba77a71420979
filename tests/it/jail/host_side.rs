//! What the host refuses to trust in a customer's folders: a socket in a vassal's run
//! directory swapped for a symlink to another vassal's, and a symlink planted in a home where
//! a root hook mounts.

use std::process::Command;
use std::time::Duration;

use crate::emperor::guard::Emperor;
use crate::emperor::isolation::{sh, two_customers};

/// `liege request --run-dir RUN VASSAL app.sock /info`: (exit code, stdout, stderr).
fn request(e: &Emperor, vassal: &str) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_liege"))
        .arg("request")
        .arg("--run-dir")
        .arg(&e.run)
        .args([vassal, "app.sock", "/info"])
        .output()
        .expect("run liege request");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_socket_swapped_for_a_symlink_to_another_vassals_is_refused_by_the_host() {
    let e = two_customers("", "");
    let a = e.jail_addr("a");
    // Through the host side, each vassal's own socket answers, from the vassal's uid.
    let (code, out, err) = request(&e, "a");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"uid\": 10001"), "{out}");
    let (code, out, err) = request(&e, "b");
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"uid\": 10002"), "{out}");
    // Customer a swaps its socket for a symlink to b's (the host's path of it).
    let b_sock = e.run.join("vassals/b/app.sock");
    let (code, out) = sh(
        &a,
        &format!(
            "rm /run/app.sock && ln -s {} /run/app.sock && echo swapped",
            b_sock.display()
        ),
    );
    assert_eq!((code.as_str(), out.trim()), ("0", "swapped"));
    // The host refuses it: a symlink is no socket, and it is never followed.
    let (code, out, err) = request(&e, "a");
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(!out.contains("10002"), "b answered for a: {out}");
    assert!(err.contains("app.sock"), "{err}");
    assert!(
        err.contains("symbolic link") || err.contains("symlink"),
        "{err}"
    );
    // b is untouched.
    let (code, out, _) = request(&e, "b");
    assert_eq!(code, Some(0));
    assert!(out.contains("\"uid\": 10002"), "{out}");
}

#[test]
fn a_symlink_planted_in_the_home_does_not_redirect_a_root_mount() {
    let e = Emperor::start(&[]);
    let home = e.home("a", 10001);
    // The customer plants `cache -> /etc` in its home, where a root hook mounts a tmpfs.
    let cache = home.join("cache");
    std::os::unix::fs::symlink("/etc", &cache).unwrap();
    std::os::unix::fs::lchown(&cache, Some(10001), Some(10001)).unwrap();
    let ini = e.jailed_ini(
        "a",
        10001,
        "shell.py",
        "hook-as-root = mount:tmpfs none /home/a/cache\n",
    );
    e.write_vassal("a.ini", &ini);
    e.eventually(Duration::from_secs(30), "the refusal in a's log", || {
        let log = e.vassal_log("a");
        log.contains("/home/a/cache") && (log.contains("symbolic link") || log.contains("symlink"))
    });
    assert_ne!(
        e.vassal("a").map(|v| v["state"].clone()),
        Some(serde_json::json!("accepting")),
        "{}",
        e.vassal_log("a")
    );
    // The host's /etc was never a mount point.
    let mounts = fs_err::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts
            .lines()
            .any(|l| l.split_whitespace().nth(4) == Some("/etc")),
        "{mounts}"
    );
    // Once the customer makes it a folder, the same hook mounts there, and /etc is intact.
    fs_err::remove_file(&cache).unwrap();
    fs_err::create_dir(&cache).unwrap();
    std::os::unix::fs::chown(&cache, Some(10001), Some(10001)).unwrap();
    e.write_vassal("a.ini", &format!("{ini}# fixed\n"));
    e.wait_jailed("a");
    let a = e.jail_addr("a");
    let (_, mount) = sh(&a, "grep ' /home/a/cache ' /proc/self/mountinfo");
    assert!(mount.contains("tmpfs"), "{mount}");
    let (_, passwd) = sh(&a, "grep -c '^root:' /etc/passwd");
    assert_eq!(passwd.trim(), "1");
}

#[test]
fn a_customers_own_file_cannot_loosen_its_jail_but_may_run_as_user_hooks() {
    let e = Emperor::start(&[]);
    let chown = |path: &std::path::Path, uid: u32| {
        std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
    };
    // Owned by the customer (uid 10004): `jail-seccomp = none` is a root-only option.
    let tmp = e.dir().join("loose.ini");
    fs_err::write(
        &tmp,
        e.app_ini("loose", "hello.py", "jail-seccomp = none\n"),
    )
    .unwrap();
    chown(&tmp, 10004);
    fs_err::rename(&tmp, e.vassals.join("loose.ini")).unwrap();
    e.eventually(Duration::from_secs(30), "the refusal", || {
        e.vassal("loose").is_some_and(|v| v["state"] == "broken")
    });
    let v = e.vassal("loose").unwrap();
    let why = v["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("loose.ini:6") && why.contains("jail-seccomp"),
        "{v}"
    );
    // An `exec-as-user` hook of its own runs, as the customer, once root is given up.
    let tmp = e.dir().join("mine.ini");
    let marker = e.dir().join("sockets").join("as-user-marker");
    fs_err::write(
        &tmp,
        e.app_ini(
            "mine",
            "hello.py",
            &format!("exec-as-user = id -u > {}\n", marker.display()),
        ),
    )
    .unwrap();
    chown(&tmp, 10004);
    fs_err::rename(&tmp, e.vassals.join("mine.ini")).unwrap();
    e.wait_serving("mine");
    assert_eq!(fs_err::read_to_string(&marker).unwrap().trim(), "10004");
}
