//! From inside jailed vassal `a` (uid 10001), with vassal `b` (uid 10002) beside it: the
//! properties of ../shared/security-checklist.md section 3 this issue owns, each named by its
//! number.

use std::os::unix::fs::PermissionsExt as _;

use super::{install_probe, probe};
use crate::emperor::isolation::{sh, two_customers};

/// Accepts an errno a denied write may give.
fn denied(result: &str) -> bool {
    matches!(result, "EROFS" | "EACCES" | "EPERM")
}

#[test]
fn a_vassal_sees_only_its_own_processes_files_and_sockets() {
    let e = two_customers("", "");
    install_probe(&e, "a", 10001);
    let (a, b) = (e.jail_addr("a"), e.jail_addr("b"));

    // 1. Its own pid namespace: not the host's, and only the customer's processes.
    let host_ns = fs_err::read_link("/proc/self/ns/pid").unwrap();
    let (_, ns) = sh(&a, "readlink /proc/self/ns/pid");
    assert_ne!(ns.trim(), host_ns.to_str().unwrap());
    let (code, ps) = sh(&a, "ps -eo uid=,pid=,comm=");
    assert_eq!(code, "0", "{ps}");
    let rows: Vec<Vec<&str>> = ps.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(!rows.is_empty() && rows.len() < 10, "{ps}");
    for row in &rows {
        assert_eq!(row[0], "10001", "only the customer's processes: {ps}");
    }
    assert!(
        rows.iter().any(|r| r.get(2) == Some(&"liege-python")),
        "the worker goes by its name: {ps}"
    );
    // The worker's parent is pid 1, the master; root's and the master's entries are hidden
    // (hidepid=invisible; the master is not dumpable once it dropped to the customer's uid).
    let (_, ppid) = sh(&a, "grep '^PPid:' /proc/$PPID/status");
    assert_eq!(ppid.split_whitespace().nth(1), Some("1"), "{ppid}");
    // 2. Another uid's /proc entries cannot be read: the master (pid 1) is not there.
    let (code, out) = sh(&a, "cat /proc/1/cmdline /proc/1/environ");
    assert_ne!(code, "0", "{out}");
    assert!(out.contains("No such file"), "{out}");
    // 14. A unique, unprivileged identity, with no supplementary group.
    let (_, id) = sh(&a, "id -u; id -g; id -G");
    assert_eq!(
        id.split_whitespace().collect::<Vec<_>>(),
        ["10001", "10001", "10001"]
    );

    // The other customer's home, files and sockets are not there.
    let (_, homes) = sh(&a, "ls -A /home");
    assert_eq!(homes.trim(), "a");
    let (_, run) = sh(&a, "ls -A /run");
    assert_eq!(run.trim(), "app.sock", "only its own socket in /run");
    let (code, _) = sh(&b, "echo secret > /tmp/b-secret");
    assert_eq!(code, "0");
    let (_, tmp) = sh(&a, "ls -A /tmp");
    assert!(!tmp.contains("b-secret"), "{tmp}");
    let (_, root) = sh(&a, "ls -A /");
    let mut root: Vec<&str> = root.split_whitespace().collect();
    root.sort_unstable();
    assert_eq!(
        root,
        [
            "bin", "dev", "etc", "home", "lib", "lib64", "opt", "proc", "run", "sbin", "tmp",
            "usr", "var"
        ],
        "nothing of the host but what the jail names"
    );
    // liege's own configuration is hidden, if the host has one.
    let (_, own) = sh(&a, "ls -A /etc/liege 2>/dev/null | wc -l");
    assert_eq!(own.trim(), "0");

    // 19. Its own network: only lo; a host abstract socket is neither listed nor reached.
    install_probe(&e, "b", 10002);
    let name = format!("liege-it-host-{}", std::process::id());
    let host_sock = std::os::unix::net::UnixListener::bind_addr(
        &<std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            name.as_bytes(),
        )
        .unwrap(),
    )
    .unwrap();
    let (_, links) = sh(&a, "ip -o link show | cut -d: -f2");
    assert_eq!(
        links.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{links}"
    );
    let (_, unix) = sh(&a, "cat /proc/net/unix");
    assert!(!unix.contains(&name), "{unix}");
    let c = probe(&a, "a", &format!("connect-abstract {name}"));
    assert_eq!(c.result("connect-abstract"), "ECONNREFUSED", "{}", c.text);
    drop(host_sock);
    // b's service on 127.0.0.1 is out of a's reach (each has its own loopback).
    let listen = "nohup /usr/bin/python3 -c 'import socket,time;s=socket.socket();s.bind((\"127.0.0.1\",7001));s.listen();time.sleep(20)' >/dev/null 2>&1 & sleep 0.5; echo started";
    assert_eq!(sh(&b, listen).1.trim(), "started");
    let reach = probe(&b, "b", "connect-tcp 127.0.0.1 7001");
    assert_eq!(reach.result("connect-tcp"), "ok", "{}", reach.text);
    let reach = probe(&a, "a", "connect-tcp 127.0.0.1 7001");
    assert_eq!(
        reach.result("connect-tcp"),
        "ECONNREFUSED",
        "{}",
        reach.text
    );
    // 25. Its own SysV IPC: b's shared memory key is not there for a, nor listed.
    let made = probe(&b, "b", "shm-create 0x4c494547");
    assert_eq!(made.result("shm-create"), "ok", "{}", made.text);
    let got = probe(&a, "a", "shm-get 0x4c494547");
    assert_eq!(got.result("shm-get"), "ENOENT", "{}", got.text);
    let (_, ipcs) = sh(&a, "ipcs -m");
    assert!(!ipcs.contains("0x4c494547"), "{ipcs}");
    let (_, ipcs_b) = sh(&b, "ipcs -m");
    assert!(ipcs_b.contains("0x4c494547"), "{ipcs_b}");

    // 33. No leaked descriptor: nothing open is a folder (a way out of the root), and the
    // working folder is the home, inside the root.
    let fds = probe(&a, "a", "fds");
    for (check, (kind, target)) in &fds.checks {
        assert_ne!(
            kind, "dir",
            "descriptor {check} is a folder: {target}\n{}",
            fds.text
        );
    }
    let cwd = probe(&a, "a", "getcwd");
    assert_eq!(cwd.result("getcwd"), "ok", "{}", cwd.text);
    assert_eq!(cwd.detail("getcwd"), "/home/a");
    // Nothing leads out through /proc: the master's entry is not there, this process's root
    // is the jail's.
    let (code, out) = sh(&a, "ls /proc/1/root/");
    assert_ne!(code, "0", "{out}");
    let (_, root_link) = sh(&a, "readlink /proc/self/root");
    assert_eq!(root_link.trim(), "/");
    // 34. No host binary can be written through /proc/*/exe.
    let exe = probe(&a, "a", "exe-write");
    assert!(!exe.checks.is_empty(), "{}", exe.text);
    for (check, (result, _)) in &exe.checks {
        assert!(
            matches!(result.as_str(), "EACCES" | "ETXTBSY" | "EPERM" | "ENOENT"),
            "{check}: {result}\n{}",
            exe.text
        );
    }
}

#[test]
fn the_jail_filesystem_is_read_only_private_minimal_and_bounded() {
    let e = two_customers("jail-tmp-size = 8m\njail-shm-size = 4m\n", "");
    install_probe(&e, "a", 10001);
    let a = e.jail_addr("a");

    // 3. Private propagation: no shared peer group, and a host mount made now is not seen.
    let (_, mountinfo) = sh(&a, "cat /proc/self/mountinfo");
    assert!(!mountinfo.contains("shared:"), "{mountinfo}");
    let home = e.home("a", 10001);
    let later = home.join("later");
    fs_err::create_dir(&later).unwrap();
    let host_mount = HostMount::tmpfs(&later);
    fs_err::write(later.join("marker"), "host").unwrap();
    let (_, seen) = sh(&a, "ls -A /home/a/later");
    assert_eq!(
        seen.trim(),
        "",
        "a host mount made after the jail started is not seen"
    );
    drop(host_mount);

    // 4. The root is read-only; the home, /tmp and /run are writable.
    for path in ["/x", "/usr/x", "/etc/passwd", "/var/x"] {
        let r = probe(&a, "a", &format!("write {path}"));
        assert!(denied(r.result("write")), "{path}: {}", r.text);
    }
    for path in ["/home/a/ok", "/tmp/ok", "/run/ok"] {
        let r = probe(&a, "a", &format!("write {path}"));
        assert_eq!(r.result("write"), "ok", "{path}: {}", r.text);
    }
    // 5. Read-only is recursive: every mount outside the writable ones is read-only.
    for line in mountinfo.lines() {
        let mount_point = line.split_whitespace().nth(4).unwrap_or_default();
        let writable = ["/dev", "/proc", "/sys", "/tmp", "/run", "/home/a"]
            .iter()
            .any(|w| mount_point == *w || mount_point.starts_with(&format!("{w}/")));
        if writable {
            continue;
        }
        let s = probe(&a, "a", &format!("statvfs {mount_point}"));
        assert!(
            s.detail(&format!("statvfs:{mount_point}"))
                .contains("rdonly"),
            "{mount_point} is not read-only: {}",
            s.text
        );
    }
    // 6 and 7. nosuid everywhere, nodev wherever it is not /dev; no privilege gain.
    for path in ["/", "/usr", "/tmp", "/home/a", "/run", "/dev/shm", "/proc"] {
        let s = probe(&a, "a", &format!("statvfs {path}"));
        let flags = s.detail(&format!("statvfs:{path}"));
        assert!(flags.contains("nosuid"), "{path}: {}", s.text);
        assert!(flags.contains("nodev"), "{path}: {}", s.text);
    }
    let (_, nnp) = sh(&a, "grep NoNewPrivs /proc/self/status");
    assert_eq!(nnp.split_whitespace().nth(1), Some("1"), "{nnp}");
    // A setuid-root program the host put in the home does not make the customer root.
    let suid = home.join("suid-id");
    fs_err::copy("/usr/bin/id", &suid).unwrap();
    std::os::unix::fs::chown(&suid, Some(0), Some(0)).unwrap();
    fs_err::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let (_, euid) = sh(&a, "/home/a/suid-id -u");
    assert_eq!(euid.trim(), "10001");
    let m = probe(&a, "a", "mknod /tmp/null");
    assert_eq!(m.result("mknod"), "EPERM", "{}", m.text);
    // 8. A minimal /dev.
    let (_, dev) = sh(&a, "ls -A /dev");
    let mut dev: Vec<&str> = dev.split_whitespace().collect();
    dev.sort_unstable();
    assert_eq!(
        dev,
        [
            "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin",
            "stdout", "tty", "urandom", "zero"
        ]
    );
    // 9. A private devpts: only its own ptmx, none of the host's terminals.
    let (_, pts) = sh(&a, "ls -A /dev/pts");
    assert_eq!(pts.trim(), "ptmx");
    let (_, devpts) = sh(&a, "grep ' /dev/pts ' /proc/self/mountinfo");
    assert!(devpts.contains("devpts"), "{devpts}");
    // 10. Kernel tunables are read-only.
    for path in [
        "/proc/sys/kernel/hostname",
        "/proc/sysrq-trigger",
        "/proc/sys/vm/drop_caches",
    ] {
        let r = probe(&a, "a", &format!("write {path}"));
        // /proc/sysrq-trigger is absent where the kernel has no magic SysRq.
        let absent = r.result("write") == "ENOENT" && !path.contains("/sys/");
        assert!(absent || denied(r.result("write")), "{path}: {}", r.text);
    }
    // 11. Sensitive entries are masked by a genuine /dev/null (char 1:3), those this kernel
    // has (no /proc/kcore without CONFIG_PROC_KCORE); reading them gives nothing.
    let masked: Vec<&str> = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/kallsyms",
    ]
    .into_iter()
    .filter(|p| std::path::Path::new(p).exists())
    .collect();
    assert!(masked.len() >= 3, "{masked:?}");
    for path in masked {
        let (_, out) = sh(
            &a,
            &format!("stat -c '%F %t:%T' {path}; head -c 64 {path} 2>/dev/null | wc -c"),
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.first().copied(),
            Some("character special file 1:3"),
            "{path}: {out}"
        );
        assert_eq!(lines.get(1).map(|l| l.trim()), Some("0"), "{path}: {out}");
    }
    // 12. /sys (and with it the cgroup fs, release_agent) is not there at all.
    let (code, out) = sh(&a, "ls /sys/fs/cgroup");
    assert_ne!(code, "0", "{out}");
    // 26. /tmp and /dev/shm are bounded.
    for (path, size) in [("/tmp", 8), ("/dev/shm", 4)] {
        let (code, out) = sh(
            &a,
            &format!(
                "dd if=/dev/zero of={path}/fill bs=1M count=64 2>&1; echo rc=$?; rm -f {path}/fill"
            ),
        );
        assert_eq!(code, "0");
        assert!(out.contains("No space left on device"), "{path}: {out}");
        // dd copies whole megabytes until the tmpfs is full: about its size, never 64.
        let copied: u32 = out
            .lines()
            .find(|l| l.contains("records out"))
            .and_then(|l| l.split('+').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(u32::MAX);
        assert!(copied <= size, "{path}: {out}");
    }
}

#[test]
fn jailed_processes_have_no_privilege_and_a_seccomp_filter() {
    let e = two_customers("jail-deny-wx = true\nmax-fd = 200\nlimit-nproc = 500\n", "");
    install_probe(&e, "a", 10001);
    install_probe(&e, "b", 10002);
    let (a, b) = (e.jail_addr("a"), e.jail_addr("b"));

    // 13 and 15. No capability in any set; no_new_privs; a seccomp filter.
    let (_, status) = sh(&a, "cat /proc/self/status");
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_default();
        assert_eq!(
            line.split_whitespace().nth(1),
            Some("0000000000000000"),
            "{line}"
        );
    }
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    assert_eq!(field("NoNewPrivs:").as_deref(), Some("1"));
    assert_eq!(field("Seccomp:").as_deref(), Some("2"));
    // 15, 18, 36, 37, 38, 39. Every call the default filter refuses answers EPERM (not a
    // kill), clone3 ENOSYS.
    let s = probe(&a, "a", "syscalls");
    assert!(s.checks.len() > 30, "{}", s.text);
    // The probe's controls: calls the filter lets through (ordinary work).
    let allowed = [
        "clone:plain",
        "unshare:files",
        "unshare:fs",
        "personality:query",
        "personality:linux",
        "socket:netlink-route",
        "socket:inet-stream",
        "socket:inet-dgram",
        "socket:unix",
        "ioctl:tiocgwinsz",
        "getpid",
        "open",
        "fork",
    ];
    for (check, (result, _)) in &s.checks {
        let want = if allowed.contains(&check.as_str()) {
            "ok"
        } else if check.starts_with("clone3") {
            "ENOSYS"
        } else {
            "EPERM"
        };
        assert_eq!(result, want, "{check}\n{}", s.text);
    }
    // 16. The i386 and x32 entries are refused outright.
    for abi in ["i386", "x32"] {
        let r = probe(&a, "a", abi);
        assert!(!r.checks.is_empty(), "{}", r.text);
        for (check, (result, _)) in &r.checks {
            assert_eq!(result, "EPERM", "{abi} {check}\n{}", r.text);
        }
    }
    // 18. No namespace can be made or joined; 36. the master cannot be traced.
    for (args, check) in [
        ("unshare user", "unshare:user"),
        ("unshare ns", "unshare:ns"),
        ("unshare net", "unshare:net"),
        ("setns /proc/self/ns/net", "setns"),
        ("ptrace 1", "ptrace-attach"),
        ("mount-tmpfs /tmp", "mount-tmpfs"),
        ("sethostname other", "sethostname"),
    ] {
        let r = probe(&a, "a", args);
        assert_eq!(r.result(check), "EPERM", "{args}: {}", r.text);
    }
    // 24. Its own hostname.
    let (_, host) = sh(&a, "hostname");
    assert_eq!(host.trim(), "a");
    // 37. The kernel's log and symbols stay hidden.
    let (code, out) = sh(&a, "dmesg");
    assert_ne!(code, "0", "{out}");
    let (_, syms) = sh(&a, "head -c 100 /proc/kallsyms | wc -c");
    assert_eq!(syms.trim(), "0");
    // 42. W^X where asked (a), not elsewhere (b).
    let wx = probe(&a, "a", "wx");
    for check in ["mmap-rwx", "mprotect-rx", "pkey_mprotect-rx", "shmat-exec"] {
        assert_eq!(wx.result(check), "EPERM", "{check}\n{}", wx.text);
    }
    // Writable or executable alone stays allowed (every program maps its code so).
    assert_eq!(wx.result("mmap-rw"), "ok", "{}", wx.text);
    assert_eq!(wx.result("mmap-rx"), "ok", "{}", wx.text);
    let wx = probe(&b, "b", "wx");
    for check in ["mmap-rwx", "mprotect-rx", "pkey_mprotect-rx"] {
        assert_eq!(wx.result(check), "ok", "{check}\n{}", wx.text);
    }
    // (The probe's segment is mode 0600: SHM_EXEC fails on its permissions there, EACCES.)
    assert_ne!(wx.result("shmat-exec"), "EPERM", "{}", wx.text);
    // 32. rlimits: the ones set, and no core files.
    let (_, limits) = sh(&a, "cat /proc/self/limits");
    for (name, value) in [
        ("Max open files", "200"),
        ("Max processes", "500"),
        ("Max core file size", "0"),
    ] {
        let line = limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default();
        let fields: Vec<&str> = line[name.len()..].split_whitespace().collect();
        assert_eq!(fields.get(..2), Some(&[value, value][..]), "{line}");
    }
    let n = probe(&a, "a", "nofile");
    assert_eq!(n.result("nofile"), "EMFILE", "{}", n.text);
    let opened: u32 = n.detail("nofile").trim().parse().unwrap_or(u32::MAX);
    assert!(opened < 200, "{}", n.text);
    // Ordinary work goes on under the filter: threads, subprocesses, sockets.
    let (code, out) = sh(
        &a,
        "/usr/bin/python3 -c 'import threading,subprocess,socket;t=threading.Thread(target=print);t.start();t.join();print(subprocess.run([\"echo\",\"child\"],capture_output=True).stdout.decode().strip());socket.socket().close();print(\"fine\")'",
    );
    assert_eq!(code, "0", "{out}");
    assert!(out.contains("child") && out.contains("fine"), "{out}");
}

/// A tmpfs the test mounts on the host, unmounted when dropped (even when the test fails).
struct HostMount(std::path::PathBuf);

impl HostMount {
    fn tmpfs(at: &std::path::Path) -> HostMount {
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                "size=1m",
                "liege-it",
                at.to_str().unwrap(),
            ])
            .status()
            .expect("mount");
        assert!(status.success());
        HostMount(at.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
