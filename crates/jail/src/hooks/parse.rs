//! One hook's `action:args`, read into an [`Action`] before anything runs, so that a typing
//! mistake is reported with its file and line when the options are read, not halfway through
//! a jail. The syntax of each action follows uWSGI 2.0's `core/hooks.c` and `core/mount.c`;
//! docs/jail.md says where liege differs.

use std::ffi::OsString;
use std::path::PathBuf;

use liege_sys::mount::{
    ATTR_NOATIME, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY, Propagation,
};

/// What a hook does, with its arguments checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// `exec:COMMAND` (`safe`: `safeexec`, whose failure is only logged).
    Exec { command: String, safe: bool },
    /// `mount:FSTYPE SOURCE TARGET [FLAGS [DATA]]`.
    Mount(Mount),
    /// `umount:TARGET [FLAGS]`.
    Umount(Umount),
    /// `mkdir:PATH`.
    Mkdir(PathBuf),
    /// `hostname:NAME`.
    Hostname(String),
    /// `write`, `writen`, `append`, `appendn`, `create`: `PATH [STRING]`.
    Write {
        path: PathBuf,
        data: Vec<u8>,
        append: bool,
    },
    /// `symlink:TARGET LINKPATH`: a symlink at LINKPATH whose content is TARGET.
    Symlink { target: OsString, link: PathBuf },
    /// `unlink:PATH`.
    Unlink(PathBuf),
    /// `chmod:PATH MODE`.
    Chmod { path: PathBuf, mode: u32 },
    /// `sticky:PATH`: the sticky bit added to the mode.
    Sticky(PathBuf),
    /// `chown:PATH USER GROUP` (names, looked up when the hook runs) and `chown2:PATH UID GID`
    /// (numbers).
    Chown {
        path: PathBuf,
        user: Owner,
        group: Owner,
    },
    /// `cd:PATH`, `chdir:PATH`.
    Chdir(PathBuf),
    /// `putenv:NAME=VALUE`; `putenv:NAME` removes NAME (glibc's `putenv`).
    Putenv {
        name: OsString,
        value: Option<OsString>,
    },
    /// `print:TEXT`, `log:TEXT`.
    Print(String),
    /// `exit:[CODE]`.
    Exit(i32),
}

/// A user or group of `chown`: a name to look up in the current root's /etc/passwd or
/// /etc/group when the hook runs, or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Owner {
    Name(String),
    Id(u32),
}

/// What a `mount` hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mount {
    pub(super) what: MountWhat,
    pub(super) target: PathBuf,
    /// `MOUNT_ATTR_*` flags to set (`ro`, `nosuid`, `nodev`, `noexec`, `noatime`).
    pub(super) attrs: u64,
    /// `rec`: the whole tree below (a recursive bind; flags or propagation set on every mount
    /// of it).
    pub(super) recursive: bool,
    pub(super) propagation: Option<Propagation>,
    /// DATA (`size=64m,mode=755`), and `sync`/`dirsync`, for a new filesystem or a remount.
    pub(super) options: Vec<(String, Option<String>)>,
}

/// The kind of mount, from FSTYPE and the flags, in the order the kernel's `mount(2)` takes
/// them: `remount`, then `bind`, then a propagation flag, then `move`, else a new filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum MountWhat {
    /// A new filesystem of type FSTYPE; SOURCE `none` is no source.
    New {
        fstype: String,
        source: Option<String>,
    },
    /// `bind`: SOURCE, a folder or file, shown again at TARGET.
    Bind { source: PathBuf },
    /// `remount`: the flags (and DATA) of the mount at TARGET changed.
    Remount,
    /// `move`: the mount at SOURCE moved to TARGET.
    Move { source: PathBuf },
    /// Only a propagation flag (`private`, `rprivate`, `shared`...): the mount at TARGET
    /// changed.
    Propagation,
}

/// What an `umount` hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Umount {
    pub(super) target: PathBuf,
    /// `detach` (`MNT_DETACH`); `rec` implies it.
    pub(super) detach: bool,
    /// `force` (`MNT_FORCE`).
    pub(super) force: bool,
}

/// uWSGI actions liege does not implement: named apart from a typing mistake.
const NOT_IMPLEMENTED: &[&str] = &[
    "alarm",
    "call",
    "callret",
    "callint",
    "callintret",
    "rpc",
    "retryrpc",
    "wait_for_fs",
    "wait_for_file",
    "wait_for_dir",
    "wait_for_socket",
    "unix_signal",
    "spinningfifo",
    "writefifo",
];

/// Reads the arguments of the action named `name`. The error says why, for the caller to
/// put after the origin, option and value.
pub(super) fn action(name: &str, args: &str) -> Result<Action, String> {
    let needs = |what: &str| {
        if args.is_empty() {
            Err(format!("`{name}` needs {what}"))
        } else {
            Ok(())
        }
    };
    Ok(match name {
        "exec" | "safeexec" => {
            needs("a command")?;
            Action::Exec {
                command: args.to_string(),
                safe: name == "safeexec",
            }
        }
        "mount" => Action::Mount(mount(args)?),
        "umount" => Action::Umount(umount(args)?),
        "mkdir" => Action::Mkdir(named_path(name, args)?),
        "unlink" => Action::Unlink(named_path(name, args)?),
        "create" | "creat" => Action::Write {
            path: named_path(name, args)?,
            data: Vec::new(),
            append: false,
        },
        "write" | "writen" | "append" | "appendn" => {
            let newline = name.ends_with('n');
            // uWSGI: the path runs to the first space, the text is everything after it;
            // `appendn:PATH` alone appends a newline.
            let (path, text) = match args.split_once(' ') {
                Some((path, text)) => (path, Some(text)),
                None if name == "appendn" => (args, None),
                None => return Err(format!("`{name}` needs `PATH STRING`")),
            };
            let mut data = text.unwrap_or_default().as_bytes().to_vec();
            if newline {
                data.push(b'\n');
            }
            Action::Write {
                path: named_path(name, path)?,
                data,
                append: name.starts_with("append"),
            }
        }
        "symlink" => {
            let Some((target, link)) = args.split_once(' ') else {
                return Err("`symlink` needs `TARGET LINKPATH`".to_string());
            };
            let link = link.trim_start();
            if target.is_empty() || link.is_empty() {
                return Err("`symlink` needs `TARGET LINKPATH`".to_string());
            }
            Action::Symlink {
                target: OsString::from(target),
                link: named_path(name, link)?,
            }
        }
        "chmod" => {
            let Some((path, mode)) = args.split_once(' ') else {
                return Err("`chmod` needs `PATH MODE`".to_string());
            };
            Action::Chmod {
                path: any_path(name, path)?,
                mode: octal_mode(mode.trim())?,
            }
        }
        "sticky" => Action::Sticky(any_path(name, args)?),
        "chown" | "chown2" => {
            let fields: Vec<&str> = args.split(' ').filter(|f| !f.is_empty()).collect();
            let [path, user, group] = fields[..] else {
                return Err(format!("`{name}` needs `PATH USER GROUP`"));
            };
            let owner = |text: &str, what: &str| -> Result<Owner, String> {
                match text.parse::<u32>() {
                    Ok(id) => Ok(Owner::Id(id)),
                    Err(_) if name == "chown" => Ok(Owner::Name(text.to_string())),
                    Err(_) => Err(format!("`chown2` takes numbers: `{text}` is no {what} id")),
                }
            };
            Action::Chown {
                path: any_path(name, path)?,
                user: owner(user, "user")?,
                group: owner(group, "group")?,
            }
        }
        "cd" | "chdir" => Action::Chdir(any_path(name, args)?),
        "hostname" => {
            needs("a name")?;
            // HOST_NAME_MAX: sethostname refuses more.
            if args.len() > 64 {
                return Err("a hostname has at most 64 bytes".to_string());
            }
            Action::Hostname(args.to_string())
        }
        "putenv" => {
            needs("`NAME=VALUE`")?;
            match args.split_once('=') {
                Some(("", _)) => return Err("`putenv` needs `NAME=VALUE`".to_string()),
                Some((n, v)) => Action::Putenv {
                    name: n.into(),
                    value: Some(v.into()),
                },
                None => Action::Putenv {
                    name: args.into(),
                    value: None,
                },
            }
        }
        "print" | "log" => Action::Print(args.to_string()),
        "exit" => Action::Exit(match args.trim() {
            "" => 0,
            code => code
                .parse::<u8>()
                .map(i32::from)
                .map_err(|_| format!("`exit` takes a status from 0 to 255, not `{code}`"))?,
        }),
        _ if NOT_IMPLEMENTED.contains(&name) => {
            return Err(format!(
                "`{name}` is a uWSGI hook action liege does not implement"
            ));
        }
        _ => return Err(format!("unknown hook action `{name}`")),
    })
}

/// A path that must end in a name, the entry an action makes or removes (not `/`, not `..`).
fn named_path(action: &str, text: &str) -> Result<PathBuf, String> {
    let path = any_path(action, text)?;
    if path.file_name().is_none() || text.ends_with("/.") || text == "." {
        return Err(format!(
            "`{action}` needs a path that ends in a name, not `{text}`"
        ));
    }
    Ok(path)
}

fn any_path(action: &str, text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err(format!("`{action}` needs a path"));
    }
    if text.contains('\0') {
        return Err("a path cannot hold a NUL byte".to_string());
    }
    Ok(PathBuf::from(text))
}

/// A mode of 3 or 4 octal digits (`755`, `1777`). uWSGI reads the last three digits only;
/// liege keeps a fourth (setuid, setgid, sticky).
fn octal_mode(text: &str) -> Result<u32, String> {
    let bad = || format!("`{text}` is no mode: expected 3 or 4 octal digits such as 755");
    if !(3..=4).contains(&text.len()) || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    u32::from_str_radix(text, 8).map_err(|_| bad())
}

/// The whitespace-separated fields of `text`, the last `n`th taking the rest of the line (the
/// DATA of a mount may hold spaces).
fn fields(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if out.len() + 1 == n {
            out.push(rest.trim_end());
            break;
        }
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        out.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    out
}

/// The flags of a `mount` hook, as uWSGI names them (`core/mount.c`), plus the propagation
/// forms of mount(8) (`rprivate`, `rshared`...).
#[derive(Debug, Default)]
struct Flags {
    bind: bool,
    remount: bool,
    moving: bool,
    recursive: bool,
    attrs: u64,
    propagation: Option<Propagation>,
    superblock: Vec<&'static str>,
}

fn mount_flags(text: &str) -> Result<Flags, String> {
    let mut f = Flags::default();
    for flag in text.split(',').filter(|s| !s.is_empty()) {
        let mut propagation = |p: Propagation, recursive: bool| {
            if f.propagation.is_some_and(|old| old != p) {
                return Err(format!("`{flag}`: a mount takes one propagation flag"));
            }
            f.propagation = Some(p);
            f.recursive |= recursive;
            Ok(())
        };
        match flag {
            "private" => propagation(Propagation::Private, false)?,
            "rprivate" => propagation(Propagation::Private, true)?,
            "shared" => propagation(Propagation::Shared, false)?,
            "rshared" => propagation(Propagation::Shared, true)?,
            "slave" => propagation(Propagation::Slave, false)?,
            "rslave" => propagation(Propagation::Slave, true)?,
            "unbindable" => propagation(Propagation::Unbindable, false)?,
            "runbindable" => propagation(Propagation::Unbindable, true)?,
            "bind" => f.bind = true,
            "rec" | "recursive" => f.recursive = true,
            "remount" => f.remount = true,
            "move" => f.moving = true,
            "ro" | "rdonly" | "readonly" => f.attrs |= ATTR_RDONLY,
            "nosuid" => f.attrs |= ATTR_NOSUID,
            "nodev" => f.attrs |= ATTR_NODEV,
            "noexec" => f.attrs |= ATTR_NOEXEC,
            "noatime" => f.attrs |= ATTR_NOATIME,
            "sync" => f.superblock.push("sync"),
            "dirsync" => f.superblock.push("dirsync"),
            _ => return Err(format!("unknown mount flag `{flag}`")),
        }
    }
    Ok(f)
}

/// `FSTYPE SOURCE TARGET [FLAGS [DATA]]`.
fn mount(args: &str) -> Result<Mount, String> {
    const SYNTAX: &str = "`mount` needs `FSTYPE SOURCE TARGET [FLAGS [DATA]]`";
    let f = fields(args, 5);
    let [fstype, source, target, rest @ ..] = &f[..] else {
        return Err(SYNTAX.to_string());
    };
    let flags = mount_flags(rest.first().copied().unwrap_or_default())?;
    let data = rest.get(1).copied().unwrap_or_default();
    let mut options: Vec<(String, Option<String>)> = data
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|o| match o.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (o.to_string(), None),
        })
        .collect();
    let path = |text: &str, what: &str| -> Result<PathBuf, String> {
        if text == "none" {
            return Err(format!("a {what} is needed here, not `none`"));
        }
        any_path("mount", text)
    };
    let what = if flags.remount {
        if flags.moving {
            return Err("`remount` and `move` do not go together".to_string());
        }
        if !flags.superblock.is_empty() {
            return Err("`sync` and `dirsync` apply to a new filesystem only".to_string());
        }
        MountWhat::Remount
    } else if flags.bind {
        if flags.moving {
            return Err("`bind` and `move` do not go together".to_string());
        }
        if !options.is_empty() || !flags.superblock.is_empty() {
            return Err("a bind takes no DATA, `sync` or `dirsync`".to_string());
        }
        MountWhat::Bind {
            source: path(source, "source")?,
        }
    } else if flags.propagation.is_some() {
        if flags.moving || !options.is_empty() || !flags.superblock.is_empty() {
            return Err("a propagation flag goes with `rec` and mount flags only".to_string());
        }
        MountWhat::Propagation
    } else if flags.moving {
        if flags.attrs != 0 || flags.recursive || !options.is_empty() {
            return Err("`move` takes no other flag and no DATA".to_string());
        }
        MountWhat::Move {
            source: path(source, "source")?,
        }
    } else {
        if *fstype == "none" {
            return Err(
                "`none` is no filesystem type: name one, or give `bind`, `remount`, `move` or a \
                 propagation flag"
                    .to_string(),
            );
        }
        options.extend(flags.superblock.iter().map(|s| (s.to_string(), None)));
        MountWhat::New {
            fstype: fstype.to_string(),
            source: (*source != "none").then(|| source.to_string()),
        }
    };
    if matches!(what, MountWhat::New { .. } | MountWhat::Remount) {
        // fsconfig takes a key and a value; an empty key is no option.
        if let Some((k, _)) = options.iter().find(|(k, _)| k.is_empty()) {
            return Err(format!("`{k}=`: an option of DATA needs a name"));
        }
    }
    Ok(Mount {
        what,
        target: path(target, "target")?,
        attrs: flags.attrs,
        recursive: flags.recursive,
        propagation: flags.propagation,
        options,
    })
}

/// `TARGET [rec,detach,force]`.
fn umount(args: &str) -> Result<Umount, String> {
    let f = fields(args, 2);
    let [target, rest @ ..] = &f[..] else {
        return Err("`umount` needs `TARGET [FLAGS]`".to_string());
    };
    let mut u = Umount {
        target: named_path("umount", target)?,
        detach: false,
        force: false,
    };
    for flag in rest
        .first()
        .copied()
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
    {
        match flag {
            // The whole tree goes at once (lazily): see docs/jail.md.
            "rec" | "recursive" | "detach" => u.detach = true,
            "force" => u.force = true,
            _ => return Err(format!("unknown umount flag `{flag}`")),
        }
    }
    Ok(u)
}
