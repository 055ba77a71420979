//! A vassal jailed the uWSGI way, as the seed and uWSGI's docs write it: a root folder made on
//! the host, bound in `post-jail` hooks, `pivot-root` into it, /proc and /tmp mounted and the
//! old root dropped in `as-root` hooks, `exec-as-root` and `hook-as-user` lines.

use std::os::unix::fs::PermissionsExt as _;

use crate::emperor::guard::Emperor;
use crate::emperor::isolation::sh;
use crate::server::Addr;

#[test]
fn a_vassal_jailed_with_pivot_root_and_hooks_comes_up_jailed() {
    let e = Emperor::start(&[]);
    let uid = 10003;
    // The root, as a uWSGI user's script makes it: empty mount points and the usual links.
    let root = e.dir().join("seedroot");
    for d in [
        "usr",
        "etc",
        "dev",
        "proc",
        "tmp",
        "run",
        "home/s",
        ".old_root",
    ] {
        fs_err::create_dir_all(root.join(d)).unwrap();
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    let home = e.home("s", uid);
    let sockets = e.dir().join("seedrun");
    fs_err::create_dir(&sockets).unwrap();
    std::os::unix::fs::chown(&sockets, Some(uid), Some(uid)).unwrap();
    fs_err::set_permissions(&sockets, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = root.display();
    let ini = format!(
        "[uwsgi]
http-socket = /run/app.sock
wsgi-file = /home/s/shell.py
processes = 1
uid = {uid}
gid = {uid}
jailed = true
hook-post-jail = mount:none {r} {r} bind
hook-post-jail = mount:none /usr {r}/usr bind,ro
mount-post-jail = none /etc {r}/etc bind,ro
hook-post-jail = mount:none /dev {r}/dev bind
hook-post-jail = mount:none {sockets} {r}/run bind
hook-post-jail = mount:none {home} {r}/home/s bind
pivot-root = {r} {r}/.old_root
hook-as-root = mount:proc none /proc nodev,nosuid,noexec
hook-as-root = mount:tmpfs none /tmp nodev,nosuid
hook-as-root = umount:/.old_root rec,detach
exec-as-root = hostname seedhost
hook-as-root = write:/run/as-root done
hook-as-user = write:/tmp/as-user hello
exec-as-user = id -u > /tmp/as-user-id
",
        sockets = sockets.display(),
        home = home.display()
    );
    e.write_vassal("s.ini", &ini);
    let addr = Addr::Unix(sockets.join("app.sock"));
    e.eventually(
        std::time::Duration::from_secs(30),
        "the uWSGI-style vassal serving",
        || crate::server::get(&addr, "/").is_ok_and(|r| r.status == 200),
    );
    // The hooks ran, in their phases: exec-as-root and write as root inside the new root, the
    // as-user ones as the customer.
    let (_, host) = sh(&addr, "hostname");
    assert_eq!(host.trim(), "seedhost");
    assert_eq!(
        fs_err::read_to_string(sockets.join("as-root")).unwrap(),
        "done"
    );
    let (_, as_user) = sh(
        &addr,
        "cat /tmp/as-user; echo; stat -c %u /tmp/as-user; cat /tmp/as-user-id",
    );
    assert_eq!(
        as_user.split_whitespace().collect::<Vec<_>>(),
        ["hello", "10003", "10003"]
    );
    // The root is the seed's: the old one is gone, nothing of the host's tree is there.
    let (_, old) = sh(&addr, "ls -A /.old_root");
    assert_eq!(old.trim(), "");
    let (code, _) = sh(&addr, &format!("ls {}", e.dir().display()));
    assert_ne!(code, "0", "the host's folders are not visible");
    let (code, out) = sh(&addr, "touch /usr/x");
    assert_ne!(code, "0", "/usr is read-only: {out}");
    // Jailed: no capability, no_new_privs, the seccomp filter.
    let (_, status) = sh(
        &addr,
        "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
    );
    let fields: Vec<&str> = status
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        fields,
        ["0000000000000000", "0000000000000000", "1", "2"],
        "{status}"
    );
}
