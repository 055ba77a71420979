//! Reading hooks: order, private hooks, and the errors a mistake gets (with file and line).
//! What they do on a real kernel is tested in tests/hooks.

use std::path::PathBuf;
use std::sync::Arc;

use liege_config::{Options, Origin};
use liege_sys::mount::{ATTR_NOATIME, ATTR_NODEV, ATTR_NOSUID, ATTR_RDONLY, Propagation};

use super::parse::{Action, Mount, MountWhat, Owner, Umount};
use super::{HookError, Hooks, Phase};

fn file() -> Arc<str> {
    Arc::from("/etc/liege/vassals/a.ini")
}

fn options(entries: &[(&str, &str)]) -> Options {
    let mut o = Options::new();
    for (i, (k, v)) in entries.iter().enumerate() {
        let line = u32::try_from(i).unwrap() + 2;
        o.push(*k, *v, Origin::file(&file(), line));
    }
    o
}

/// `(option, shown)` of each hook of `phase`, in run order.
fn listed(hooks: &Hooks, phase: Phase) -> Vec<(String, String)> {
    hooks.phases[phase.index()]
        .iter()
        .map(|h| (h.option.clone(), h.shown.clone()))
        .collect()
}

fn only(entry: (&str, &str)) -> Action {
    let hooks = Hooks::from_options(&options(&[entry])).unwrap();
    let all: Vec<_> = hooks.phases.iter().flatten().collect();
    assert_eq!(all.len(), 1);
    all[0].action.clone()
}

fn error(entry: (&str, &str)) -> String {
    Hooks::from_options(&options(&[entry]))
        .unwrap_err()
        .to_string()
}

#[test]
fn a_phase_runs_hook_entries_first_then_mount_umount_exec_each_in_file_order() {
    let hooks = Hooks::from_options(&options(&[
        ("exec-as-root", "echo e1"),
        ("umount-as-root", "/u1"),
        ("hook-as-root", "print:h1"),
        ("mount-as-root", "tmpfs none /m1"),
        ("hook-asap", "print:asap"),
        ("exec-as-root", "echo e2"),
        ("hook-as-root", "mkdir:/h2"),
        ("mount-as-root", "proc none /m2"),
        ("exec-as-user", "echo user"),
        ("hook-as-user", "print:user"),
        ("socket", ":3031"),
    ]))
    .unwrap();
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        listed(&hooks, Phase::AsRoot),
        [
            s("hook-as-root", "print:h1"),
            s("hook-as-root", "mkdir:/h2"),
            s("mount-as-root", "mount:tmpfs none /m1"),
            s("mount-as-root", "mount:proc none /m2"),
            s("umount-as-root", "umount:/u1"),
            s("exec-as-root", "exec:echo e1"),
            s("exec-as-root", "exec:echo e2"),
        ]
    );
    assert_eq!(listed(&hooks, Phase::Asap), [s("hook-asap", "print:asap")]);
    assert_eq!(
        listed(&hooks, Phase::AsUser),
        [
            s("hook-as-user", "print:user"),
            s("exec-as-user", "exec:echo user")
        ]
    );
    for phase in [Phase::PreJail, Phase::InJail, Phase::PostJail] {
        assert!(hooks.is_empty(phase), "{phase}");
    }
    assert!(!hooks.is_empty(Phase::AsRoot));
    // An entry keeps the origin of its line.
    assert_eq!(
        hooks.phases[Phase::AsRoot.index()][0].origin.to_string(),
        "/etc/liege/vassals/a.ini:4"
    );
}

#[test]
fn phases_are_named_as_their_options() {
    let names: Vec<String> = Phase::ALL.iter().map(ToString::to_string).collect();
    assert_eq!(
        names,
        [
            "asap",
            "pre-jail",
            "in-jail",
            "post-jail",
            "as-root",
            "as-user"
        ]
    );
}

#[test]
fn a_bang_hides_the_arguments_from_the_log_and_from_errors() {
    let hooks = Hooks::from_options(&options(&[(
        "hook-pre-jail",
        "!exec:curl -u admin:s3cret x",
    )]))
    .unwrap();
    let h = &hooks.phases[Phase::PreJail.index()][0];
    assert!(h.private);
    assert_eq!(h.shown, "!exec:(private)");
    assert_eq!(
        h.action,
        Action::Exec {
            command: "curl -u admin:s3cret x".to_string(),
            safe: false
        }
    );
    assert_eq!(
        error(("hook-asap", "!frob:s3cret")),
        "/etc/liege/vassals/a.ini:2: `hook-asap = !frob:(private)`: unknown hook action `frob`"
    );
    assert_eq!(
        error(("hook-asap", "!s3cret")),
        "/etc/liege/vassals/a.ini:2: `hook-asap = !(private)`: expected `action:args`"
    );
    // The shorthands take their value as it is: `!` is the shell's.
    assert_eq!(
        only(("exec-asap", "! false")),
        Action::Exec {
            command: "! false".to_string(),
            safe: false
        }
    );
}

#[test]
fn mistakes_are_reported_with_file_line_option_and_value() {
    let cases = [
        (
            ("hook-asap", "frob:x"),
            "`hook-asap = frob:x`: unknown hook action `frob`",
        ),
        (
            ("hook-as-root", "mkdir /x"),
            "`hook-as-root = mkdir /x`: expected `action:args`",
        ),
        (
            ("hook-asap", "mkdir:"),
            "`hook-asap = mkdir:`: `mkdir` needs a path",
        ),
        (
            ("hook-asap", "mkdir:/x/.."),
            "`hook-asap = mkdir:/x/..`: `mkdir` needs a path that ends in a name, not `/x/..`",
        ),
        (("exec-asap", ""), "`exec-asap = `: `exec` needs a command"),
        (
            ("hook-asap", "write:/x"),
            "`hook-asap = write:/x`: `write` needs `PATH STRING`",
        ),
        (
            ("hook-asap", "chmod:/x 9z9"),
            "`hook-asap = chmod:/x 9z9`: `9z9` is no mode: expected 3 or 4 octal digits such as 755",
        ),
        (
            ("hook-asap", "symlink:/x"),
            "`hook-asap = symlink:/x`: `symlink` needs `TARGET LINKPATH`",
        ),
        (
            ("mount-post-jail", "tmpfs none"),
            "`mount-post-jail = tmpfs none`: `mount` needs `FSTYPE SOURCE TARGET [FLAGS [DATA]]`",
        ),
        (
            ("mount-post-jail", "none /a /b bind,readwrite"),
            "`mount-post-jail = none /a /b bind,readwrite`: unknown mount flag `readwrite`",
        ),
        (
            ("hook-post-jail", "mount:none /a /b"),
            "`hook-post-jail = mount:none /a /b`: `none` is no filesystem type: name one, or \
             give `bind`, `remount`, `move` or a propagation flag",
        ),
        (
            ("mount-as-root", "none /a /b bind,move"),
            "`mount-as-root = none /a /b bind,move`: `bind` and `move` do not go together",
        ),
        (
            ("mount-as-root", "none none / private,shared"),
            "`mount-as-root = none none / private,shared`: `shared`: a mount takes one \
             propagation flag",
        ),
        (
            ("mount-as-root", "none /a /b bind size=1m"),
            "`mount-as-root = none /a /b bind size=1m`: a bind takes no DATA, `sync` or `dirsync`",
        ),
        (
            ("mount-as-root", "none none /b bind"),
            "`mount-as-root = none none /b bind`: a source is needed here, not `none`",
        ),
        (
            ("umount-as-root", "/.old_root rec,lazy"),
            "`umount-as-root = /.old_root rec,lazy`: unknown umount flag `lazy`",
        ),
        (
            ("hook-asap", "exit:300"),
            "`hook-asap = exit:300`: `exit` takes a status from 0 to 255, not `300`",
        ),
        (
            ("hook-asap", "call:my_function"),
            "`hook-asap = call:my_function`: `call` is a uWSGI hook action liege does not \
             implement",
        ),
        (
            ("hook-asap", "putenv:=x"),
            "`hook-asap = putenv:=x`: `putenv` needs `NAME=VALUE`",
        ),
        (
            ("hook-asap", "chown2:/x www-data 33"),
            "`hook-asap = chown2:/x www-data 33`: `chown2` takes numbers: `www-data` is no user id",
        ),
    ];
    for (entry, message) in cases {
        assert_eq!(
            error(entry),
            format!("/etc/liege/vassals/a.ini:2: {message}")
        );
    }
    // The first bad entry of the file is the one reported, with its own line.
    let e = Hooks::from_options(&options(&[
        ("hook-asap", "print:fine"),
        ("exec-asap", "true"),
        ("hook-in-jail", "mkdir:"),
    ]))
    .unwrap_err();
    assert!(matches!(&e, HookError::Syntax { .. }));
    assert_eq!(e.origin().to_string(), "/etc/liege/vassals/a.ini:4");
}

#[test]
fn mount_arguments_are_read_as_uwsgi_writes_them() {
    let m = |what: MountWhat, target: &str, attrs: u64, recursive: bool| Mount {
        what,
        target: PathBuf::from(target),
        attrs,
        recursive,
        propagation: None,
        options: Vec::new(),
    };
    assert_eq!(
        only(("mount-post-jail", "none /distros/bookworm /ns bind,rec,ro")),
        Action::Mount(m(
            MountWhat::Bind {
                source: "/distros/bookworm".into()
            },
            "/ns",
            ATTR_RDONLY,
            true
        ))
    );
    assert_eq!(
        only((
            "hook-as-root",
            "mount:none none /usr remount,bind,readonly,nosuid"
        )),
        Action::Mount(m(
            MountWhat::Remount,
            "/usr",
            ATTR_RDONLY | ATTR_NOSUID,
            false
        ))
    );
    assert_eq!(
        only(("mount-asap", "none none / rprivate")),
        Action::Mount(Mount {
            propagation: Some(Propagation::Private),
            ..m(MountWhat::Propagation, "/", 0, true)
        })
    );
    assert_eq!(
        only(("mount-asap", "none /old /new move")),
        Action::Mount(m(
            MountWhat::Move {
                source: "/old".into()
            },
            "/new",
            0,
            false
        ))
    );
    // The DATA is the rest of the line; `sync` joins it for a new filesystem.
    assert_eq!(
        only((
            "mount-as-root",
            "tmpfs  none\t/tmp nodev,nosuid,noatime,sync size=64m,mode=1777,huge=never"
        )),
        Action::Mount(Mount {
            options: vec![
                ("size".to_string(), Some("64m".to_string())),
                ("mode".to_string(), Some("1777".to_string())),
                ("huge".to_string(), Some("never".to_string())),
                ("sync".to_string(), None),
            ],
            ..m(
                MountWhat::New {
                    fstype: "tmpfs".into(),
                    source: None
                },
                "/tmp",
                ATTR_NODEV | ATTR_NOSUID | ATTR_NOATIME,
                false
            )
        })
    );
    assert_eq!(
        only(("mount-as-root", "proc proc /proc")),
        Action::Mount(m(
            MountWhat::New {
                fstype: "proc".into(),
                source: Some("proc".into())
            },
            "/proc",
            0,
            false
        ))
    );
    assert_eq!(
        only(("umount-as-root", "/.old_root rec,detach")),
        Action::Umount(Umount {
            target: "/.old_root".into(),
            detach: true,
            force: false
        })
    );
    assert_eq!(
        only(("hook-as-root", "umount:/mnt force")),
        Action::Umount(Umount {
            target: "/mnt".into(),
            detach: false,
            force: true
        })
    );
}

#[test]
fn file_actions_split_their_arguments_as_uwsgi() {
    let write = |path: &str, data: &[u8], append: bool| Action::Write {
        path: path.into(),
        data: data.to_vec(),
        append,
    };
    // The path runs to the first space; the text is the rest, spaces and all.
    assert_eq!(
        only(("hook-asap", "write:/etc/motd hello  world")),
        write("/etc/motd", b"hello  world", false)
    );
    assert_eq!(
        only(("hook-asap", "writen:/f x")),
        write("/f", b"x\n", false)
    );
    assert_eq!(only(("hook-asap", "append:/f x")), write("/f", b"x", true));
    assert_eq!(only(("hook-asap", "appendn:/f")), write("/f", b"\n", true));
    assert_eq!(only(("hook-asap", "create:/f")), write("/f", b"", false));
    assert_eq!(only(("hook-asap", "creat:/f")), write("/f", b"", false));
    // `symlink:TARGET LINKPATH`, in `ln -s` order.
    assert_eq!(
        only(("hook-asap", "symlink:/run/app.sock /home/a/app.sock")),
        Action::Symlink {
            target: "/run/app.sock".into(),
            link: "/home/a/app.sock".into()
        }
    );
    // The whole argument is the path (uWSGI takes it so).
    assert_eq!(
        only(("hook-asap", "mkdir:/srv/my site")),
        Action::Mkdir("/srv/my site".into())
    );
    assert_eq!(
        only(("hook-asap", "chmod:/srv 1777")),
        Action::Chmod {
            path: "/srv".into(),
            mode: 0o1777
        }
    );
    assert_eq!(
        only(("hook-asap", "chown:/srv www-data 33")),
        Action::Chown {
            path: "/srv".into(),
            user: Owner::Name("www-data".into()),
            group: Owner::Id(33)
        }
    );
    assert_eq!(
        only(("hook-asap", "putenv:PATH=/bin:/usr/bin")),
        Action::Putenv {
            name: "PATH".into(),
            value: Some("/bin:/usr/bin".into())
        }
    );
    assert_eq!(
        only(("hook-asap", "putenv:LANG")),
        Action::Putenv {
            name: "LANG".into(),
            value: None
        }
    );
    assert_eq!(only(("hook-asap", "exit:")), Action::Exit(0));
    assert_eq!(only(("hook-asap", "exit:3")), Action::Exit(3));
    assert_eq!(only(("hook-asap", "log:")), Action::Print(String::new()));
}

#[test]
fn binsh_is_the_last_one_given_or_bin_sh() {
    let hooks = Hooks::from_options(&options(&[])).unwrap();
    assert_eq!(hooks.binsh, PathBuf::from("/bin/sh"));
    let hooks =
        Hooks::from_options(&options(&[("binsh", "/bin/dash"), ("binsh", "/bin/bash")])).unwrap();
    assert_eq!(hooks.binsh, PathBuf::from("/bin/bash"));
}
