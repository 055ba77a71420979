//! The tests, each run by `main` in a child with its own mount and uts namespaces, on a fresh
//! tmpfs at `d`. A test panics on failure.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use liege_config::{Options, Origin};
use liege_jail::hooks::{HookError, Hooks, Phase};
use liege_jail::mount::{self, Attr};
use rustix::fs::{AtFlags, StatVfsMountFlags, StatxAttributes, StatxFlags};

pub(crate) type Case = (&'static str, fn(&Path));

pub(crate) const ALL: &[Case] = &[
    ("file_actions_leave_what_they_say_on_disk", file_actions),
    ("a_phase_runs_in_uwsgi_order", phase_order),
    ("exec_fails_on_a_nonzero_status_or_a_signal", exec_statuses),
    (
        "a_bind_remounted_read_only_refuses_writes",
        bind_and_remount,
    ),
    ("new_filesystems_get_their_flags_and_data", new_filesystems),
    ("a_planted_symlink_makes_every_hook_fail", planted_symlinks),
    ("hostname_print_and_exit", hostname_print_exit),
];

const FILE: &str = "/etc/liege/vassals/t.ini";

/// `key = value` entries, each on its own line of [`FILE`].
fn hooks(entries: &[(&str, String)]) -> Hooks {
    let path: Arc<str> = Arc::from(FILE);
    let mut o = Options::new();
    for (i, (k, v)) in entries.iter().enumerate() {
        o.push(
            *k,
            v.as_str(),
            Origin::file(&path, u32::try_from(i).unwrap() + 1),
        );
    }
    Hooks::from_options(&o).unwrap_or_else(|e| panic!("{e}"))
}

/// An as-root hook entry.
fn root(value: impl Into<String>) -> (&'static str, String) {
    ("hook-as-root", value.into())
}

fn run(entries: &[(&str, String)]) -> Result<(), HookError> {
    hooks(entries).run(Phase::AsRoot)
}

fn ok(entries: &[(&str, String)]) {
    run(entries).unwrap_or_else(|e| panic!("{e}"));
}

/// The errno the hooks fail with.
fn errno(entries: &[(&str, String)]) -> i32 {
    let e = run(entries).expect_err("the hook should have failed");
    e.raw_os_error()
        .unwrap_or_else(|| panic!("no errno in: {e}"))
}

fn read(path: &Path) -> String {
    fs_err::read_to_string(path).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs_err::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn is_mount_root(path: &Path) -> bool {
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )
    .unwrap();
    assert!(st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT));
    st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
}

fn vfs_flags(path: &Path) -> StatVfsMountFlags {
    rustix::fs::statvfs(path).unwrap().f_flag
}

fn file_actions(d: &Path) {
    let p = |rel: &str| d.join(rel).display().to_string();
    ok(&[
        root(format!("mkdir:{}", p("a"))),
        root(format!("mkdir:{}", p("a/b"))),
        root(format!("write:{} hello  world", p("a/w"))),
        root(format!("writen:{} line", p("a/n"))),
        root(format!("append:{} more", p("a/n"))),
        root(format!("appendn:{}", p("a/n"))),
        root(format!("appendn:{} last", p("a/n"))),
        root(format!("write:{} a long first text", p("a/t"))),
        root(format!("write:{} x", p("a/t"))),
        root(format!("create:{}", p("a/empty"))),
        root(format!("create:{}", p("a/gone"))),
        root(format!("symlink:../a/w {}", p("a/link"))),
        root(format!("symlink:w {}", p("a/link2"))),
        root(format!("chmod:{} 640", p("a/w"))),
        root(format!("sticky:{}", p("a/b"))),
        root(format!("chown2:{} 1234 5678", p("a/w"))),
        root(format!("chown:{} nobody nogroup", p("a/n"))),
        root(format!("unlink:{}", p("a/gone"))),
        root(format!("unlink:{}", p("a/link2"))),
        // Relative paths are from the folder `cd` went to.
        root(format!("cd:{}", p("a"))),
        root("mkdir:rel"),
        root("write:rel/f relative"),
    ]);
    let a = d.join("a");
    assert!(a.join("b").is_dir());
    assert_eq!(mode(&a), 0o755, "mkdir: 0777 less the umask");
    assert_eq!(mode(&a.join("b")), 0o1755, "sticky adds the sticky bit");
    assert_eq!(read(&a.join("w")), "hello  world");
    assert_eq!(read(&a.join("n")), "line\nmore\nlast\n");
    assert_eq!(read(&a.join("t")), "x", "write empties the file first");
    assert_eq!(read(&a.join("empty")), "");
    assert_eq!(mode(&a.join("empty")), 0o644, "create: 0666 less the umask");
    assert!(!a.join("gone").exists());
    assert_eq!(
        fs_err::read_link(a.join("link")).unwrap(),
        PathBuf::from("../a/w")
    );
    assert!(
        fs_err::symlink_metadata(a.join("link2")).is_err(),
        "unlink removed the link"
    );
    assert_eq!(read(&a.join("w")), "hello  world", "...not its target");
    assert_eq!(mode(&a.join("w")), 0o640);
    let w = fs_err::metadata(a.join("w")).unwrap();
    assert_eq!((w.uid(), w.gid()), (1234, 5678));
    let n = fs_err::metadata(a.join("n")).unwrap();
    assert_eq!((n.uid(), n.gid()), (65534, 65534), "nobody:nogroup");
    assert_eq!(read(&a.join("rel/f")), "relative");

    // chmod of what cannot be opened for reading: a socket.
    let sock = a.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert!(fs_err::metadata(&sock).unwrap().file_type().is_socket());
    ok(&[root(format!("chmod:{} 600", sock.display()))]);
    assert_eq!(mode(&sock), 0o600);

    // write refuses what is not a regular file, and a file with other hard links.
    let fifo = a.join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    // Without a reader the open fails at once (it would block without O_NONBLOCK)...
    assert_eq!(
        errno(&[root(format!("write:{} x", fifo.display()))]),
        libc::ENXIO
    );
    // ...and with one, the type is refused.
    let _reader = rustix::fs::open(
        &fifo,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let e = run(&[root(format!("write:{} x", fifo.display()))]).unwrap_err();
    assert!(e.to_string().ends_with("not a regular file"), "{e}");
    fs_err::hard_link(a.join("t"), a.join("t2")).unwrap();
    let e = run(&[root(format!("write:{} y", a.join("t2").display()))]).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("the file has 2 hard links: refused"),
        "{e}"
    );
    assert_eq!(read(&a.join("t")), "x");
}

fn phase_order(d: &Path) {
    let log = d.join("log").display().to_string();
    let m = d.join("m");
    fs_err::create_dir(&m).unwrap();
    let hooks = hooks(&[
        ("exec-asap", format!("echo exec1 >> {log}")),
        ("umount-asap", m.display().to_string()),
        ("hook-asap", format!("appendn:{log} hook1")),
        ("mount-asap", format!("tmpfs none {}", m.display())),
        ("hook-pre-jail", format!("appendn:{log} pre-jail")),
        ("hook-asap", format!("appendn:{log} hook2")),
        ("exec-asap", format!("echo exec2 >> {log}")),
    ]);
    // The umount succeeds only if the mount ran before it, though written after it.
    hooks.run(Phase::Asap).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(Path::new(&log)), "hook1\nhook2\nexec1\nexec2\n");
    assert!(!is_mount_root(&m), "mounted, then unmounted");
    hooks.run(Phase::AsRoot).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read(Path::new(&log)), "hook1\nhook2\nexec1\nexec2\n");
    hooks.run(Phase::PreJail).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        read(Path::new(&log)),
        "hook1\nhook2\nexec1\nexec2\npre-jail\n"
    );
}

fn exec_statuses(d: &Path) {
    let ran = d.join("ran");
    let ran_hook = || root(format!("appendn:{} ran", ran.display()));
    ok(&[root("exec:true")]);
    // The command's stdin is /dev/null.
    ok(&[root("exec:[ \"$(readlink /proc/self/fd/0)\" = /dev/null ]")]);

    let e = run(&[root("exec:exit 3"), ran_hook()]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{FILE}:1: `hook-as-root`: exec: `exit 3` exited with status 3")
    );
    assert!(!ran.exists(), "the failure stopped the phase");
    let e = run(&[("exec-as-root", "kill -9 $$".to_string())]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{FILE}:1: `exec-as-root`: exec: `kill -9 $$` was killed by signal 9")
    );
    // safeexec's failure is only logged.
    ok(&[root("safeexec:exit 5"), ran_hook()]);
    assert_eq!(read(&ran), "ran\n");
    // A private hook's command stays out of the message.
    let e = run(&[root("!exec:exit 4 # s3cret")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{FILE}:1: `hook-as-root`: exec: `(private)` exited with status 4")
    );

    // putenv reaches the commands, cd their working folder.
    ok(&[
        root("putenv:LIEGE_T_X=forty two"),
        root("exec:[ \"$LIEGE_T_X\" = 'forty two' ]"),
        root("putenv:LIEGE_T_X"),
        root("exec:[ -z \"${LIEGE_T_X+set}\" ]"),
        root(format!("cd:{}", d.display())),
        root(format!("exec:[ \"$(pwd)\" = {} ]", d.display())),
    ]);
    let h = hooks(&[root("putenv:LIEGE_T_Y=y")]);
    h.run(Phase::AsRoot).unwrap();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "printf %s \"$LIEGE_T_Y\""]);
    h.apply_environment(&mut cmd);
    assert_eq!(cmd.output().unwrap().stdout, b"y");

    // binsh is the shell.
    let bash = ("exec-as-root", "[ -n \"$BASH_VERSION\" ]".to_string());
    assert!(matches!(
        run(std::slice::from_ref(&bash)),
        Err(HookError::Command { .. })
    ));
    ok(&[("binsh", "/bin/bash".to_string()), bash.clone()]);
    let e = run(&[("binsh", d.join("nosh").display().to_string()), bash]).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
}

fn bind_and_remount(d: &Path) {
    let (src, dst, dst2) = (d.join("src"), d.join("dst"), d.join("dst2"));
    for dir in [&src, &dst, &dst2] {
        fs_err::create_dir(dir).unwrap();
    }
    fs_err::write(src.join("f"), "from src").unwrap();
    ok(&[
        root(format!(
            "mount:none {} {} bind",
            src.display(),
            dst.display()
        )),
        root(format!(
            "write:{} through the bind",
            dst.join("g").display()
        )),
    ]);
    assert!(is_mount_root(&dst));
    assert_eq!(read(&dst.join("f")), "from src");
    assert_eq!(read(&src.join("g")), "through the bind");

    ok(&[root(format!(
        "mount:none none {} remount,bind,ro",
        dst.display()
    ))]);
    assert!(vfs_flags(&dst).contains(StatVfsMountFlags::RDONLY));
    assert_eq!(
        errno(&[root(format!("write:{} no", dst.join("h").display()))]),
        libc::EROFS
    );
    assert_eq!(
        rustix::fs::open(
            dst.join("f"),
            rustix::fs::OFlags::WRONLY,
            rustix::fs::Mode::empty()
        )
        .unwrap_err(),
        rustix::io::Errno::ROFS
    );
    assert!(!dst.join("h").exists());
    // The source stays writable, and the bind shows what it gets.
    ok(&[root(format!("write:{} yes", src.join("h").display()))]);
    assert_eq!(read(&dst.join("h")), "yes");

    // Flags given with the bind itself apply at once (mount(2) would need a remount).
    ok(&[root(format!(
        "mount:none {} {} bind,ro,nosuid,nodev,noatime",
        src.display(),
        dst2.display()
    ))]);
    let f = vfs_flags(&dst2);
    for flag in [
        StatVfsMountFlags::RDONLY,
        StatVfsMountFlags::NOSUID,
        StatVfsMountFlags::NODEV,
        StatVfsMountFlags::NOATIME,
    ] {
        assert!(f.contains(flag), "{flag:?} in {f:?}");
    }
    // A remount without `ro` makes it writable, and keeps nosuid and nodev.
    ok(&[root(format!(
        "mount:none none {} remount,bind",
        dst2.display()
    ))]);
    let f = vfs_flags(&dst2);
    assert!(!f.contains(StatVfsMountFlags::RDONLY), "{f:?}");
    assert!(f.contains(StatVfsMountFlags::NOSUID | StatVfsMountFlags::NODEV));
    fs_err::write(dst2.join("w"), "writable again").unwrap();

    ok(&[
        ("umount-as-root", dst.display().to_string()),
        root(format!("umount:{} detach", dst2.display())),
    ]);
    assert!(!is_mount_root(&dst) && !is_mount_root(&dst2));
    assert!(!dst.join("f").exists(), "the bind is gone");
    // Unmounting what is no mount point fails with the kernel's answer.
    assert_eq!(
        errno(&[root(format!("umount:{}", dst.display()))]),
        libc::EINVAL
    );
}

fn new_filesystems(d: &Path) {
    let (t, t2) = (d.join("t"), d.join("t2"));
    fs_err::create_dir(&t).unwrap();
    fs_err::create_dir(&t2).unwrap();
    ok(&[(
        "mount-as-root",
        format!(
            "tmpfs none {} nosuid,nodev,noexec size=1m,mode=700",
            t.display()
        ),
    )]);
    assert!(is_mount_root(&t));
    assert_eq!(mode(&t), 0o700);
    let size = |p: &Path| {
        let s = rustix::fs::statvfs(p).unwrap();
        s.f_blocks * s.f_frsize
    };
    assert_eq!(size(&t), 1 << 20);
    let f = vfs_flags(&t);
    assert!(f.contains(StatVfsMountFlags::NOSUID | StatVfsMountFlags::NODEV));
    assert!(f.contains(StatVfsMountFlags::NOEXEC));
    // A remount with DATA changes the filesystem, and keeps the flags.
    ok(&[root(format!(
        "mount:none none {} remount size=2m",
        t.display()
    ))]);
    assert_eq!(size(&t), 2 << 20);
    assert!(vfs_flags(&t).contains(StatVfsMountFlags::NOEXEC));
    fs_err::write(t.join("x"), "moved").unwrap();
    // A propagation flag alone, then a move.
    ok(&[
        root(format!("mount:none none {} private", t.display())),
        root(format!("mount:none {} {} move", t.display(), t2.display())),
    ]);
    assert!(!is_mount_root(&t) && is_mount_root(&t2));
    assert_eq!(read(&t2.join("x")), "moved");
    // The kernel's own refusal is reported with its errno.
    assert_eq!(
        errno(&[root(format!("mount:nosuchfs none {}", t.display()))]),
        libc::ENODEV
    );
}

fn planted_symlinks(d: &Path) {
    // A folder of the host, and a customer's home with links into it.
    let outside = d.join("outside");
    let home = d.join("home");
    let src = d.join("src");
    for dir in [
        &outside,
        &home,
        &src,
        &outside.join("sub"),
        &outside.join("mnt"),
    ] {
        fs_err::create_dir(dir).unwrap();
    }
    fs_err::write(outside.join("secret"), "untouched").unwrap();
    fs_err::set_permissions(
        outside.join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let target = mount::open_nofollow(&outside.join("mnt")).unwrap();
    mount::new_fs("tmpfs", None, &[], Attr::NONE)
        .unwrap()
        .attach(std::os::fd::AsFd::as_fd(&target), &outside.join("mnt"))
        .unwrap();
    std::os::unix::fs::symlink("../outside", home.join("evil")).unwrap();
    std::os::unix::fs::symlink(&outside, home.join("evil_abs")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", home.join("evil_file")).unwrap();
    let snapshot = || {
        let mut names: Vec<String> = fs_err::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let s = fs_err::metadata(outside.join("secret")).unwrap();
        (
            names,
            read(&outside.join("secret")),
            s.mode(),
            (s.uid(), s.gid()),
            mode(&outside),
        )
    };
    let before = snapshot();

    let h = |rel: &str| home.join(rel).display().to_string();
    let eloop = [
        format!("mkdir:{}", h("evil/new")),
        format!("mkdir:{}", h("evil_abs/new")),
        format!("write:{} pwned", h("evil/secret")),
        format!("write:{} pwned", h("evil_file")),
        format!("append:{} pwned", h("evil_file")),
        format!("create:{}", h("evil/new")),
        format!("symlink:/etc/shadow {}", h("evil/l")),
        format!("unlink:{}", h("evil/secret")),
        format!("chmod:{} 777", h("evil_file")),
        format!("chmod:{} 777", h("evil")),
        format!("chmod:{} 777", h("evil/secret")),
        format!("sticky:{}", h("evil")),
        format!("chown2:{} 1000 1000", h("evil_file")),
        format!("cd:{}", h("evil")),
        format!("mount:tmpfs none {}", h("evil")),
        format!("mount:tmpfs none {}", h("evil/sub")),
        format!("mount:none {} {} bind", src.display(), h("evil")),
        format!("mount:none {} {} bind", src.display(), h("evil_abs/sub")),
        format!("mount:none {} {} bind,rec", h("evil"), src.display()),
        format!("mount:none none {} remount,bind,ro", h("evil/mnt")),
        format!("mount:none none {} private", h("evil/mnt")),
        format!("mount:none {} {} move", h("evil/mnt"), src.display()),
        format!("umount:{}", h("evil/mnt")),
        format!("umount:{} rec,detach", h("evil_abs/mnt")),
    ];
    for hook in eloop {
        let e = run(&[root(hook.clone())]).expect_err(&hook);
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{hook}: {e}");
    }
    // A link in place of the last name: mkdir finds it there, umount does not follow it.
    assert_eq!(errno(&[root(format!("mkdir:{}", h("evil")))]), libc::EEXIST);
    assert_eq!(
        errno(&[root(format!("umount:{}", h("evil")))]),
        libc::EINVAL
    );
    // Unlinking the link removes the link.
    ok(&[root(format!("unlink:{}", h("evil_file")))]);

    // The first failure stops the phase; the error names the file, line, option, action,
    // path and errno.
    let after = d.join("after");
    let e = run(&[
        root(format!("mkdir:{}", h("evil/new"))),
        root(format!("create:{}", after.display())),
    ])
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{FILE}:1: `hook-as-root`: mkdir: {}: Too many levels of symbolic links (os error 40)",
            h("evil/new")
        )
    );
    assert!(!after.exists());

    assert_eq!(snapshot(), before, "the outside folder is untouched");
    assert!(is_mount_root(&outside.join("mnt")), "still mounted");
    assert!(!is_mount_root(&outside.join("sub")) && !is_mount_root(&outside));
    assert!(!is_mount_root(&src));
    assert!(fs_err::read_dir(&src).unwrap().next().is_none());
}

fn hostname_print_exit(d: &Path) {
    ok(&[
        root("hostname:liege-t-hooks"),
        root("print:printed by a hook"),
    ]);
    let uname = rustix::system::uname();
    assert_eq!(uname.nodename().to_bytes(), b"liege-t-hooks");
    let after = d.join("after");
    let e = run(&[root("exit:7"), root(format!("create:{}", after.display()))]).unwrap_err();
    assert_eq!(e.exit_code(), Some(7));
    assert_eq!(
        e.to_string(),
        format!("{FILE}:1: `hook-as-root`: exit:7 ends the instance")
    );
    assert!(!after.exists());
}
