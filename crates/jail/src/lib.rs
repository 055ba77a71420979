//! A vassal's jail (ARCHITECTURE.md decision 3), built and entered by the master, as root,
//! before any customer code runs. docs/jail.md lists the steps in the order [`Jail::enter`]
//! and [`Jail::drop_privileges`] take them.
//!
//! - [`hooks`]: uWSGI's `hook-<phase> = action:args` and `exec-`/`mount-`/`umount-<phase>`.
//! - [`layout`]: liege's one-block filesystem (`jail-root`, `jail-home`...): a read-only root,
//!   a new /proc (hidepid), private /tmp, minimal /dev, the vassal's /run, /opt, the home.
//! - [`mount`]: the mount primitives, every target opened without following symlinks.
//! - [`privileges`]: rlimits, groups, uid/gid, capabilities, no_new_privs.
//! - [`seccomp`]: the filters, compiled from `seccomp/*.policy` at build time.

pub mod hooks;
pub mod layout;
pub mod mount;
pub mod privileges;
pub mod seccomp;

use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use liege_config::registry::{self, Known};
use liege_config::{Options, Origin};
use liege_sys::Namespaces;
use rustix::process::Resource;

use crate::hooks::{HookError, Hooks, Phase};
use crate::layout::{Layout, Root};
use crate::mount::MountError;
use crate::privileges::{Limit, PrivilegeError, Privileges};
use crate::seccomp::{Filter, SeccompError};

/// Where the master runs, which decides what is jailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context<'a> {
    /// The vassal's name (its home is `/home/NAME`); `None` run by hand.
    pub name: Option<&'a str>,
    /// Whether an emperor started the master, in namespaces of its making.
    pub vassal: bool,
}

/// The jail could not be planned or entered. Every variant about an option names its file
/// and line.
#[derive(Debug, thiserror::Error)]
pub enum JailError {
    /// A value that cannot work.
    #[error("{origin}: `{key} = {value}`: {why}")]
    Invalid {
        /// Where the entry came from.
        origin: Origin,
        /// The option.
        key: String,
        /// Its value.
        value: String,
        /// Why it is refused.
        why: String,
    },
    /// A hook failed, or could not be read.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// A step of the filesystem failed.
    #[error("{}{source}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Mount {
        /// The option behind the step.
        origin: Option<Origin>,
        /// What failed.
        source: MountError,
    },
    /// `unshare`, `hostname` or `chroot` failed.
    #[error("{origin}: {what}: {source}")]
    Step {
        /// The option.
        origin: Origin,
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The privilege drop failed.
    #[error(transparent)]
    Privileges(#[from] PrivilegeError),
    /// A seccomp filter could not be installed.
    #[error("{}{source}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    Seccomp {
        /// The option that chose the filters, if one did.
        origin: Option<Origin>,
        /// Why.
        source: SeccompError,
    },
}

/// An option's value with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<T> {
    /// The value.
    pub value: T,
    /// The entry.
    pub origin: Origin,
}

/// The jail of an instance, read and checked from its options: what [`Jail::enter`] and
/// [`Jail::drop_privileges`] will do.
#[derive(Debug)]
pub struct Jail {
    /// `jail-root` and the options beside it.
    pub layout: Option<Set<Layout>>,
    /// The hooks of every phase.
    pub hooks: Hooks,
    /// `unshare`, run by hand (the emperor makes a vassal's namespaces itself).
    pub unshare: Option<Set<Namespaces>>,
    /// `pivot-root = NEW OLD`.
    pub pivot_root: Option<Set<(PathBuf, PathBuf)>>,
    /// `chroot`.
    pub chroot: Option<Set<PathBuf>>,
    /// `hostname`.
    pub hostname: Option<Set<String>>,
    /// `jailed`.
    pub jailed: bool,
    /// Whether an emperor made the namespaces.
    pub vassal: bool,
    /// Capabilities kept and rlimits.
    pub privileges: Privileges,
    /// The seccomp filters, in the order they are installed, and the option that chose them.
    pub seccomp: Vec<Filter>,
    /// The `jail-seccomp` or `jail-deny-wx` entry, for messages.
    pub seccomp_origin: Option<Origin>,
}

/// One entry of the options, with its canonical key.
struct Entry<'a> {
    key: &'a str,
    value: &'a str,
    origin: &'a Origin,
}

impl Entry<'_> {
    fn bad(&self, why: impl Into<String>) -> JailError {
        JailError::Invalid {
            origin: self.origin.clone(),
            key: self.key.to_string(),
            value: self.value.to_string(),
            why: why.into(),
        }
    }

    fn set<T>(&self, value: T) -> Set<T> {
        Set {
            value,
            origin: self.origin.clone(),
        }
    }

    fn absolute(&self) -> Result<PathBuf, JailError> {
        let v = self.value.trim();
        if !v.starts_with('/') {
            return Err(self.bad("expected an absolute path"));
        }
        Ok(PathBuf::from(v))
    }

    fn folder(&self) -> Result<PathBuf, JailError> {
        let path = self.absolute()?;
        match rustix::fs::stat(&path) {
            Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() => Ok(path),
            Ok(_) => Err(self.bad("not a folder")),
            Err(e) => Err(self.bad(format!("cannot reach the folder: {e}"))),
        }
    }

    fn size(&self) -> Result<u64, JailError> {
        liege_config::parse_size(self.value.trim())
            .filter(|&n| n > 0)
            .ok_or_else(|| self.bad("expected a size such as 64m"))
    }

    fn number(&self) -> Result<u64, JailError> {
        self.value
            .trim()
            .parse()
            .map_err(|_| self.bad("expected a whole number"))
    }
}

fn canonical(key: &str) -> &str {
    match registry::lookup(key) {
        Known::Liege(spec) => spec.name,
        _ => key,
    }
}

impl Jail {
    /// Reads the jail options of `options` and checks them (folders exist, values parse),
    /// without changing anything.
    pub fn from_options(options: &Options, ctx: &Context<'_>) -> Result<Jail, JailError> {
        let mut jail = Jail {
            layout: None,
            hooks: Hooks::from_options(options)?,
            unshare: None,
            pivot_root: None,
            chroot: None,
            hostname: None,
            jailed: false,
            vassal: ctx.vassal,
            privileges: Privileges::default(),
            seccomp: Vec::new(),
            seccomp_origin: None,
        };
        let mut root: Option<(Root, &Origin)> = None;
        let mut tmp_size = 64 << 20;
        let mut shm_size = 64 << 20;
        let mut opt = None;
        let mut home = None;
        let mut home_target: Option<PathBuf> = None;
        let mut seccomp = true;
        let mut deny_wx = false;
        for o in options.iter() {
            let e = Entry {
                key: canonical(&o.key),
                value: &o.value,
                origin: &o.origin,
            };
            match e.key {
                "jail-root" => {
                    let r = if e.value.trim() == "host" {
                        Root::Host
                    } else {
                        Root::Distro(e.folder()?)
                    };
                    root = Some((r, e.origin));
                }
                "jail-tmp-size" => tmp_size = e.size()?,
                "jail-shm-size" => shm_size = e.size()?,
                "jail-opt" => opt = Some(e.folder()?),
                "jail-home" => home = Some(e.folder()?),
                "jail-home-target" => {
                    let target = e.absolute()?;
                    if target == Path::new("/")
                        || target.components().any(|c| c.as_os_str() == "..")
                    {
                        return Err(e.bad("expected a folder below /, without `..`"));
                    }
                    home_target = Some(target);
                }
                "jail-seccomp" => {
                    seccomp = match e.value.trim() {
                        "default" => true,
                        "none" => false,
                        _ => return Err(e.bad("expected `default` or `none`")),
                    };
                    jail.seccomp_origin = Some(e.origin.clone());
                }
                "jail-deny-wx" => {
                    deny_wx = liege_config::is_true(e.value);
                    jail.seccomp_origin = Some(e.origin.clone());
                }
                "jailed" => jail.jailed = liege_config::is_true(e.value),
                "unshare" if !ctx.vassal => {
                    let ns = Namespaces::parse(e.value).map_err(|err| e.bad(err.to_string()))?;
                    if ns.contains(Namespaces::NEWPID) {
                        return Err(e.bad(
                            "a pid namespace made here would make the first worker its pid 1: \
                             run the instance as a vassal (`liege --emperor DIR`), whose master \
                             is pid 1 of its own",
                        ));
                    }
                    jail.unshare = Some(e.set(ns));
                }
                "pivot-root" => {
                    let v = e.value.trim();
                    let Some((new, old)) = v.split_once(char::is_whitespace) else {
                        return Err(e.bad("expected `NEW_ROOT PUT_OLD`, separated by a space"));
                    };
                    let new = PathBuf::from(new.trim());
                    let old = PathBuf::from(old.trim());
                    // uWSGI writes PUT_OLD in full (`/ns/001 /ns/001/.old_root`).
                    let old = old.strip_prefix(&new).map(Path::to_path_buf).unwrap_or(old);
                    let old = old.strip_prefix("/").map(Path::to_path_buf).unwrap_or(old);
                    if !new.is_absolute() || old.as_os_str().is_empty() {
                        return Err(e.bad("expected an absolute NEW_ROOT and a PUT_OLD inside it"));
                    }
                    jail.pivot_root = Some(e.set((new, old)));
                }
                "chroot" => jail.chroot = Some(e.set(e.absolute()?)),
                "hostname" => {
                    let h = e.value.trim();
                    if h.is_empty() || h.len() > 64 {
                        return Err(e.bad("expected a hostname of 1 to 64 bytes"));
                    }
                    jail.hostname = Some(e.set(h.to_string()));
                }
                "cap" => {
                    for name in e.value.split(',').filter(|s| !s.trim().is_empty()) {
                        let n = privileges::capability(name)
                            .ok_or_else(|| e.bad(format!("`{}` is no capability", name.trim())))?;
                        jail.privileges.keep |= 1 << n;
                    }
                    jail.privileges.keep_origin = Some(e.origin.clone());
                }
                "max-fd" | "limit-nproc" | "limit-as" => {
                    let n = e.number()?;
                    let (resource, value) = match e.key {
                        "max-fd" => (Resource::Nofile, n),
                        "limit-nproc" => (Resource::Nproc, n),
                        _ => (
                            Resource::As,
                            n.checked_mul(1 << 20).ok_or_else(|| e.bad("too large"))?,
                        ),
                    };
                    if n == 0 {
                        return Err(e.bad("expected a number above 0"));
                    }
                    jail.privileges.limits.retain(|l| l.resource != resource);
                    jail.privileges.limits.push(Limit {
                        resource,
                        value,
                        origin: Some(e.origin.clone()),
                    });
                }
                _ => {}
            }
        }
        let layout_opts = [
            ("jail-home", home.is_some()),
            ("jail-opt", opt.is_some()),
            ("jail-home-target", home_target.is_some()),
        ];
        match root {
            Some((root, origin)) => {
                let home_target = match (home_target, ctx.name) {
                    (Some(t), _) => t,
                    (None, Some(name)) => Path::new("/home").join(name),
                    (None, None) if home.is_none() => PathBuf::from("/home/app"),
                    (None, None) => {
                        return Err(JailError::Invalid {
                            origin: origin.clone(),
                            key: "jail-home".into(),
                            value: String::new(),
                            why: "run by hand, the home needs `jail-home-target` (a vassal's \
                                  goes to /home/NAME)"
                                .into(),
                        });
                    }
                };
                if jail.pivot_root.is_some() || jail.chroot.is_some() {
                    return Err(JailError::Invalid {
                        origin: origin.clone(),
                        key: "jail-root".into(),
                        value: String::new(),
                        why: "`jail-root` builds the whole root: use it without `pivot-root` \
                              or `chroot`"
                            .into(),
                    });
                }
                jail.layout = Some(Set {
                    value: Layout {
                        root,
                        tmp_size,
                        shm_size,
                        opt,
                        home,
                        home_target,
                    },
                    origin: origin.clone(),
                });
            }
            None => {
                if let Some((key, _)) = layout_opts.iter().find(|(_, set)| *set) {
                    let o = options.iter().find(|o| canonical(&o.key) == *key);
                    return Err(JailError::Invalid {
                        origin: o.map_or(Origin::Builtin, |o| o.origin.clone()),
                        key: (*key).into(),
                        value: o.map(|o| o.value.clone()).unwrap_or_default(),
                        why: "it belongs to the jail's filesystem: set `jail-root` too".into(),
                    });
                }
            }
        }
        if jail.is_jailed() {
            // No core files out of a jail: they would land in a folder of the customer's, with
            // whatever the process held.
            jail.privileges.limits.push(Limit {
                resource: Resource::Core,
                value: 0,
                origin: None,
            });
            if seccomp {
                jail.seccomp.push(Filter::Default);
            }
            if deny_wx {
                jail.seccomp.push(Filter::DenyWx);
            }
        }
        Ok(jail)
    }

    /// Whether the instance is jailed: a filesystem, a new root, namespaces (the emperor's or
    /// `unshare`), or `jailed`. A jailed instance drops every capability, sets no_new_privs
    /// and installs the seccomp filters, even when it keeps running as root.
    pub fn is_jailed(&self) -> bool {
        self.layout.is_some()
            || self.pivot_root.is_some()
            || self.chroot.is_some()
            || self.unshare.is_some()
            || self.jailed
            || self.vassal
    }

    /// The steps as root, before the sockets are bound (docs/jail.md, steps 1 to 9): the
    /// `asap`, `pre-jail` and `in-jail` hooks, `unshare`, the `post-jail` hooks (when jailed),
    /// `hostname`, the filesystem (`jail-root`) or `chroot` or `pivot-root`, the `as-root`
    /// hooks. `run_dir` is the vassal's run directory, which becomes its /run.
    pub fn enter(&self, run_dir: Option<BorrowedFd<'_>>) -> Result<(), JailError> {
        self.hooks.run(Phase::Asap)?;
        // Nothing may read this process's memory or ptrace it from now on: a customer's
        // process of the same uid, later, least of all.
        let _ =
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
        self.hooks.run(Phase::PreJail)?;
        self.hooks.run(Phase::InJail)?;
        if let Some(ns) = &self.unshare {
            liege_sys::clone::unshare(ns.value).map_err(|source| JailError::Step {
                origin: ns.origin.clone(),
                what: format!("unshare({})", ns.value),
                source,
            })?;
            if ns.value.contains(Namespaces::NEWNET) {
                liege_sys::netif::loopback_up().map_err(|source| JailError::Step {
                    origin: ns.origin.clone(),
                    what: "bringing up lo".into(),
                    source,
                })?;
            }
        }
        if self.is_jailed() {
            self.hooks.run(Phase::PostJail)?;
        }
        if let Some(h) = &self.hostname {
            rustix::system::sethostname(h.value.as_bytes()).map_err(|e| JailError::Step {
                origin: h.origin.clone(),
                what: format!("sethostname({})", h.value),
                source: e.into(),
            })?;
        }
        if let Some(layout) = &self.layout {
            layout
                .value
                .enter(run_dir)
                .map_err(|source| JailError::Mount {
                    origin: Some(layout.origin.clone()),
                    source,
                })?;
        }
        if let Some(dir) = &self.chroot {
            let step = |what: &str, e: rustix::io::Errno| JailError::Step {
                origin: dir.origin.clone(),
                what: format!("{what} {}", dir.value.display()),
                source: e.into(),
            };
            rustix::process::chroot(&dir.value).map_err(|e| step("chroot", e))?;
            rustix::process::chdir("/").map_err(|e| step("chdir / after chroot", e))?;
        }
        if let Some(p) = &self.pivot_root {
            let (new, old) = &p.value;
            let step = |what: String, e: rustix::io::Errno| JailError::Step {
                origin: p.origin.clone(),
                what,
                source: e.into(),
            };
            mount::make_rprivate().map_err(|source| JailError::Mount {
                origin: Some(p.origin.clone()),
                source,
            })?;
            rustix::process::chdir(new).map_err(|e| step(format!("chdir {}", new.display()), e))?;
            rustix::process::pivot_root(".", old).map_err(|e| {
                step(
                    format!("pivot_root({}, {})", new.display(), old.display()),
                    e,
                )
            })?;
            rustix::process::chdir("/").map_err(|e| step("chdir /".into(), e))?;
        }
        self.hooks.run(Phase::AsRoot)?;
        Ok(())
    }

    /// The steps that give up root, once the sockets are bound (docs/jail.md, steps 10 to 13):
    /// rlimits, groups, `uid` and `gid`, capabilities, no_new_privs (when jailed or switching
    /// to a user), the seccomp filters, then the `as-user` hooks. `uid` `None` stays root.
    pub fn drop_privileges(&self, uid: Option<u32>, gid: u32) -> Result<(), JailError> {
        let to_user = uid.is_some_and(|u| u != 0);
        if self.is_jailed() || to_user {
            self.privileges.drop_to(uid, gid)?;
            if !self.seccomp.is_empty() {
                seccomp::install(&self.seccomp).map_err(|source| JailError::Seccomp {
                    origin: self.seccomp_origin.clone(),
                    source,
                })?;
            }
        } else {
            // Not jailed, staying root: only the rlimits apply.
            for limit in &self.privileges.limits {
                let r = rustix::process::Rlimit {
                    current: Some(limit.value),
                    maximum: Some(limit.value),
                };
                rustix::process::setrlimit(limit.resource, r).map_err(|e| {
                    JailError::Privileges(PrivilegeError::Step {
                        step: format!("setrlimit {:?} {}", limit.resource, limit.value),
                        origin: limit.origin.clone(),
                        source: e,
                    })
                })?;
            }
        }
        self.hooks.run(Phase::AsUser)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Options as a file `v.ini` would give them, the first on line 2.
    fn opts(lines: &[(&str, &str)]) -> Options {
        let path: Arc<str> = Arc::from("v.ini");
        let mut o = Options::new();
        for (i, (k, v)) in lines.iter().enumerate() {
            o.push(*k, *v, Origin::file(&path, u32::try_from(i).unwrap() + 2));
        }
        o
    }

    fn plan(lines: &[(&str, &str)], vassal: bool) -> Result<Jail, JailError> {
        Jail::from_options(
            &opts(lines),
            &Context {
                name: Some("shop"),
                vassal,
            },
        )
    }

    fn err(lines: &[(&str, &str)], vassal: bool) -> String {
        plan(lines, vassal).unwrap_err().to_string()
    }

    #[test]
    fn a_jail_is_planned_from_its_options() {
        let home = tempfile::tempdir().unwrap();
        let home_path = home.path().to_str().unwrap();
        let j = plan(
            &[
                ("jail-root", "host"),
                ("jail-home", home_path),
                ("jail-tmp-size", "8m"),
                ("cap", "net_bind_service,CAP_SYS_NICE"),
                ("max-fd", "200"),
                ("limit-as", "512"),
                ("jail-deny-wx", "true"),
            ],
            true,
        )
        .unwrap();
        let layout = &j.layout.as_ref().unwrap().value;
        assert_eq!(layout.root, Root::Host);
        assert_eq!(layout.tmp_size, 8 << 20);
        assert_eq!(layout.home_target, Path::new("/home/shop"));
        assert_eq!(j.privileges.keep, (1 << 10) | (1 << 23));
        let limits: Vec<(Resource, u64)> = j
            .privileges
            .limits
            .iter()
            .map(|l| (l.resource, l.value))
            .collect();
        assert_eq!(
            limits,
            [
                (Resource::Nofile, 200),
                (Resource::As, 512 << 20),
                (Resource::Core, 0)
            ]
        );
        assert_eq!(j.seccomp, [Filter::Default, Filter::DenyWx]);
        assert!(j.is_jailed());
        // Run by hand with nothing that jails: no filter, no core limit, nothing dropped.
        let j = plan(&[("max-fd", "64")], false).unwrap();
        assert!(!j.is_jailed());
        assert!(j.seccomp.is_empty());
        assert_eq!(j.privileges.limits.len(), 1);
    }

    #[test]
    fn bad_jail_options_name_their_file_line_and_option() {
        assert_eq!(
            err(
                &[("processes", "1"), ("jail-root", "/nonexistent/distro")],
                true
            ),
            "v.ini:3: `jail-root = /nonexistent/distro`: cannot reach the folder: No such file or directory (os error 2)"
        );
        assert_eq!(
            err(&[("jail-root", "host"), ("jail-tmp-size", "lots")], true),
            "v.ini:3: `jail-tmp-size = lots`: expected a size such as 64m"
        );
        assert_eq!(
            err(&[("cap", "net_bind_service,fly")], true),
            "v.ini:2: `cap = net_bind_service,fly`: `fly` is no capability"
        );
        assert_eq!(
            err(&[("pivot-root", "/ns/root")], true),
            "v.ini:2: `pivot-root = /ns/root`: expected `NEW_ROOT PUT_OLD`, separated by a space"
        );
        assert_eq!(
            err(&[("jail-seccomp", "off")], true),
            "v.ini:2: `jail-seccomp = off`: expected `default` or `none`"
        );
        assert_eq!(
            err(&[("jail-home-target", "relative/home")], true),
            "v.ini:2: `jail-home-target = relative/home`: expected an absolute path"
        );
        assert_eq!(
            err(&[("jail-opt", "/tmp")], true),
            "v.ini:2: `jail-opt = /tmp`: it belongs to the jail's filesystem: set `jail-root` too"
        );
        assert!(
            err(&[("unshare", "fs,pid")], false)
                .starts_with("v.ini:2: `unshare = fs,pid`: a pid namespace made here"),
        );
        assert!(err(&[("jail-root", "host"), ("chroot", "/srv")], true).contains("v.ini:2"));
        // A hook that cannot run is refused while the options are read.
        assert!(
            err(&[("hook-as-root", "frob:x")], true).starts_with("v.ini:2:"),
            "{}",
            err(&[("hook-as-root", "frob:x")], true)
        );
    }
}
