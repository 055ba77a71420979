//! liege's one-block jail filesystem (`jail-root` and the options beside it): what uWSGI users
//! write by hand with hooks, made in one step, in this order:
//!
//! 1. every mount of the namespace becomes private (`MS_REC | MS_PRIVATE`);
//! 2. every source is opened and cloned while the host's tree is still in view: the distro
//!    root (or the host's /usr and /etc), /dev's few device nodes, `jail-opt`, `jail-home`
//!    (without following a symlink), the vassal's run directory (the descriptor the emperor
//!    passed); each clone gets its flags at once: read-only where it must be, nosuid
//!    everywhere, nodev everywhere but on the device nodes;
//! 3. the new root is attached at `/tmp` of this (private) namespace, where nothing of the host
//!    sees it: the distro's clone, or, for `jail-root = host`, a small tmpfs holding the mount
//!    points and the usual links (`bin -> usr/bin`, `lib`, `lib64`, `sbin`, `var/run -> /run`);
//! 4. inside it, each onto a descriptor opened beneath the new root without following links:
//!    /usr and /etc (host root; an empty read-only tmpfs hides `/etc/liege`), a new /proc with
//!    `hidepid=invisible` (its kernel tunables bound read-only onto themselves, its sensitive
//!    files masked by /dev/null and its sensitive folders by an empty read-only tmpfs), /tmp (a
//!    tmpfs of `jail-tmp-size`), /dev (a tmpfs: null, zero, full, random, urandom, tty bound from
//!    the host; fd, stdin, stdout, stderr links; a new devpts instance at /dev/pts with
//!    /dev/ptmx pointing to it; /dev/shm, a tmpfs of `jail-shm-size`; /dev/mqueue), then /dev
//!    made read-only; /run (the vassal's run directory, or a private tmpfs without an emperor);
//!    /opt (`jail-opt`, read-only); the home, read-write, at `jail-home-target`;
//! 5. the root's tmpfs becomes read-only (`jail-root = host`);
//! 6. `pivot_root` into the new root; the old one is detached and gone from view;
//! 7. the working folder becomes the home (or `/`).
//!
//! /sys is not there at all. Nothing of the host is visible that the list above does not name.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::mount::{self, Attr, Detached, MountError};

/// The root of the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// A root made of the host's /usr and /etc on a tmpfs (tests, demo).
    Host,
    /// A distro folder (debootstrap'd), bound read-only.
    Distro(PathBuf),
}

/// The filesystem of a jail, from the `jail-*` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `jail-root`.
    pub root: Root,
    /// `jail-tmp-size`, bytes.
    pub tmp_size: u64,
    /// `jail-shm-size`, bytes.
    pub shm_size: u64,
    /// `jail-opt`.
    pub opt: Option<PathBuf>,
    /// `jail-home`.
    pub home: Option<PathBuf>,
    /// Where the home appears (`jail-home-target`, else `/home/NAME`).
    pub home_target: PathBuf,
}

/// Where the new root is assembled before `pivot_root`, in the jail's own (private) mount
/// namespace.
const STAGING: &str = "/tmp";

/// The device nodes of the jail's /dev, bound from the host's.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Files of /proc the jail sees as empty (/dev/null bound over them), as runc's maskedPaths.
const MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "kallsyms",
    "kmsg",
    "kpagecount",
    "kpageflags",
    "kpagecgroup",
    "config.gz",
    "sysrq-trigger",
];

/// Folders of /proc the jail sees empty (an empty read-only tmpfs over them).
const MASKED_DIRS: &[&str] = &["acpi", "scsi", "asound", "driver"];

/// Folders of /proc the jail sees read-only (bound onto themselves), as runc's readonlyPaths.
const READ_ONLY: &[&str] = &["sys", "irq", "bus", "fs"];

/// The host folders a `jail-root = host` root shows, read-only.
const HOST_DIRS: &[&str] = &["usr", "etc"];

/// The links of a `jail-root = host` root, as a merged-/usr Debian has them.
const HOST_LINKS: &[(&str, &str)] = &[
    ("bin", "usr/bin"),
    ("sbin", "usr/sbin"),
    ("lib", "usr/lib"),
    ("lib64", "usr/lib64"),
    ("var/run", "/run"),
    ("var/tmp", "/tmp"),
    ("var/lock", "/run/lock"),
];

/// Read-only, nosuid, nodev: the flags of what the jail only reads.
fn read_only() -> Attr {
    Attr::RDONLY | Attr::NOSUID | Attr::NODEV
}

/// Sources cloned while the host is still in view (step 2).
struct Sources {
    root: Option<Detached>,
    host_dirs: Vec<(&'static str, Detached)>,
    devices: Vec<(&'static str, OwnedFd)>,
    null: OwnedFd,
    opt: Option<Detached>,
    home: Option<Detached>,
    run: Option<Detached>,
}

impl Layout {
    /// Builds the jail's filesystem and enters it (the steps of the module doc). `run_dir` is
    /// the vassal's run directory (from the emperor), bound at /run. Runs as root, in a mount
    /// namespace of the jail's own: nothing here reaches the host's mounts.
    pub fn enter(&self, run_dir: Option<BorrowedFd<'_>>) -> Result<(), MountError> {
        // 1.
        mount::make_rprivate()?;
        // 2.
        let sources = self.open_sources(run_dir)?;
        // 3.
        let staging_path = Path::new(STAGING);
        let staging_target = mount::open_nofollow(staging_path)?;
        let new_root = match (&self.root, sources.root) {
            (Root::Distro(_), Some(root)) => root,
            _ => mount::new_fs(
                "tmpfs",
                Some("liege-root"),
                &[("size", Some("1m")), ("mode", Some("0755"))],
                Attr::NOSUID | Attr::NODEV,
            )?,
        };
        new_root.attach(staging_target.as_fd(), Path::new("the staging folder"))?;
        drop(staging_target);
        let root = mount::open_nofollow(staging_path)?;
        let root = root.as_fd();
        // 4.
        if self.root == Root::Host {
            for dir in ["proc", "tmp", "dev", "run", "opt", "home", "var"] {
                mount::mkdir_beneath(root, Path::new(dir), 0o755)?;
            }
            for (link, target) in HOST_LINKS {
                mount::symlink_beneath(root, target, Path::new(link))?;
            }
            for (dir, clone) in sources.host_dirs {
                let target = mount::mkdir_beneath(root, Path::new(dir), 0o755)?;
                clone.attach(target.as_fd(), &Path::new("/").join(dir))?;
            }
            if let Ok(own) = mount::open_beneath(root, Path::new("etc/liege")) {
                let empty = mount::new_fs(
                    "tmpfs",
                    Some("liege-hidden"),
                    &[("size", Some("4k")), ("mode", Some("0755"))],
                    read_only() | Attr::NOEXEC,
                )?;
                empty.attach(own.as_fd(), Path::new("/etc/liege"))?;
            }
        }
        self.mount_proc(root, &sources.null)?;
        let tmp = mount::new_fs(
            "tmpfs",
            Some("tmp"),
            &[
                ("size", Some(&self.tmp_size.to_string())),
                ("mode", Some("1777")),
            ],
            Attr::NOSUID | Attr::NODEV,
        )?;
        tmp.attach(existing(root, "tmp")?.as_fd(), Path::new("/tmp"))?;
        self.mount_dev(root, &sources.devices)?;
        let run = match sources.run {
            Some(run) => run,
            None => mount::new_fs(
                "tmpfs",
                Some("run"),
                &[("size", Some("16m")), ("mode", Some("0755"))],
                Attr::NOSUID | Attr::NODEV,
            )?,
        };
        run.attach(existing(root, "run")?.as_fd(), Path::new("/run"))?;
        if let Some(opt) = sources.opt {
            opt.attach(existing(root, "opt")?.as_fd(), Path::new("/opt"))?;
        }
        if let Some(home) = sources.home {
            let target = self.home_mount_point(root)?;
            home.attach(target.as_fd(), &self.home_target)?;
        }
        // 5.
        if self.root == Root::Host {
            mount::set_attrs_at(root, Path::new("/"), Attr::RDONLY, Attr::NONE, None, false)?;
        }
        // 6.
        mount::pivot_to(root)?;
        // 7.
        let cwd = if self.home.is_some() {
            self.home_target.as_path()
        } else {
            Path::new("/")
        };
        rustix::process::chdir(cwd)
            .map_err(|e| MountError::new(format!("changing to {}", cwd.display()), e))
    }

    /// Step 2: every source, cloned and flagged, before the new root hides anything.
    fn open_sources(&self, run_dir: Option<BorrowedFd<'_>>) -> Result<Sources, MountError> {
        let root = match &self.root {
            Root::Distro(path) => {
                let clone = mount::bind_path(path, false)?;
                clone.set_attrs(read_only(), Attr::NONE, false)?;
                Some(clone)
            }
            Root::Host => None,
        };
        let mut host_dirs = Vec::new();
        if self.root == Root::Host {
            for dir in HOST_DIRS {
                let clone = mount::bind_path(&Path::new("/").join(dir), false)?;
                clone.set_attrs(read_only(), Attr::NONE, false)?;
                host_dirs.push((*dir, clone));
            }
        }
        let mut devices = Vec::new();
        for dev in DEVICES {
            devices.push((*dev, mount::open_nofollow(&Path::new("/dev").join(dev))?));
        }
        let null = mount::open_nofollow(Path::new("/dev/null"))?;
        let opt = match &self.opt {
            Some(path) => {
                let clone = mount::bind_path(path, false)?;
                clone.set_attrs(read_only(), Attr::NONE, false)?;
                Some(clone)
            }
            None => None,
        };
        // The customer's folder: no symlink anywhere on the way.
        let home = match &self.home {
            Some(path) => {
                let clone = mount::bind_nofollow(path, false)?;
                clone.set_attrs(Attr::NOSUID | Attr::NODEV, Attr::RDONLY, false)?;
                Some(clone)
            }
            None => None,
        };
        let run = match run_dir {
            Some(fd) => {
                let fd = same_folder_here(fd)?;
                let clone = mount::bind_fd(fd.as_fd(), false, "the vassal's run directory")?;
                clone.set_attrs(
                    Attr::NOSUID | Attr::NODEV | Attr::NOEXEC,
                    Attr::RDONLY,
                    false,
                )?;
                Some(clone)
            }
            None => None,
        };
        Ok(Sources {
            root,
            host_dirs,
            devices,
            null,
            opt,
            home,
            run,
        })
    }

    /// A new /proc, hidepid=invisible, with its tunables read-only and its sensitive entries
    /// masked.
    fn mount_proc(&self, root: BorrowedFd<'_>, null: &OwnedFd) -> Result<(), MountError> {
        let proc = mount::new_fs(
            "proc",
            Some("proc"),
            &[("hidepid", Some("invisible"))],
            Attr::NOSUID | Attr::NODEV | Attr::NOEXEC,
        )?;
        proc.attach(existing(root, "proc")?.as_fd(), Path::new("/proc"))?;
        let proc = existing(root, "proc")?;
        for dir in READ_ONLY {
            let Ok(target) = mount::open_beneath(proc.as_fd(), Path::new(dir)) else {
                continue;
            };
            let shown = Path::new("/proc").join(dir);
            let clone = mount::bind_fd(target.as_fd(), true, &shown.display().to_string())?;
            clone.set_attrs(read_only() | Attr::NOEXEC, Attr::NONE, true)?;
            clone.attach(target.as_fd(), &shown)?;
        }
        for file in MASKED_FILES {
            let Ok(target) = mount::open_beneath(proc.as_fd(), Path::new(file)) else {
                continue;
            };
            let shown = Path::new("/proc").join(file);
            // Without nodev: the mask reads as empty, as /dev/null does, rather than failing.
            let clone = mount::bind_fd(null.as_fd(), false, "/dev/null")?;
            clone.set_attrs(
                Attr::RDONLY | Attr::NOSUID | Attr::NOEXEC,
                Attr::NONE,
                false,
            )?;
            clone.attach(target.as_fd(), &shown)?;
        }
        for dir in MASKED_DIRS {
            let Ok(target) = mount::open_beneath(proc.as_fd(), Path::new(dir)) else {
                continue;
            };
            let empty = mount::new_fs(
                "tmpfs",
                Some("masked"),
                &[("size", Some("4k")), ("mode", Some("0555"))],
                read_only() | Attr::NOEXEC,
            )?;
            empty.attach(target.as_fd(), &Path::new("/proc").join(dir))?;
        }
        Ok(())
    }

    /// A minimal /dev, read-only once made.
    fn mount_dev(
        &self,
        root: BorrowedFd<'_>,
        devices: &[(&'static str, OwnedFd)],
    ) -> Result<(), MountError> {
        let dev = mount::new_fs(
            "tmpfs",
            Some("dev"),
            &[("size", Some("64k")), ("mode", Some("0755"))],
            Attr::NOSUID | Attr::NOEXEC,
        )?;
        dev.attach(existing(root, "dev")?.as_fd(), Path::new("/dev"))?;
        let dev = existing(root, "dev")?;
        let dev = dev.as_fd();
        for (name, source) in devices {
            let shown = Path::new("/dev").join(name);
            let target = mount::file_beneath(dev, Path::new(name), 0o666)?;
            let clone = mount::bind_fd(source.as_fd(), false, &shown.display().to_string())?;
            clone.set_attrs(Attr::NOSUID | Attr::NOEXEC, Attr::NONE, false)?;
            clone.attach(target.as_fd(), &shown)?;
        }
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ] {
            mount::symlink_beneath(dev, target, Path::new(link))?;
        }
        let pts = mount::mkdir_beneath(dev, Path::new("pts"), 0o755)?;
        mount::new_fs(
            "devpts",
            Some("devpts"),
            &[
                ("newinstance", None),
                ("ptmxmode", Some("0666")),
                ("mode", Some("0620")),
                ("gid", Some("5")),
            ],
            Attr::NOSUID | Attr::NOEXEC,
        )?
        .attach(pts.as_fd(), Path::new("/dev/pts"))?;
        let shm = mount::mkdir_beneath(dev, Path::new("shm"), 0o755)?;
        mount::new_fs(
            "tmpfs",
            Some("shm"),
            &[
                ("size", Some(&self.shm_size.to_string())),
                ("mode", Some("1777")),
            ],
            Attr::NOSUID | Attr::NODEV,
        )?
        .attach(shm.as_fd(), Path::new("/dev/shm"))?;
        let mqueue = mount::mkdir_beneath(dev, Path::new("mqueue"), 0o755)?;
        mount::new_fs(
            "mqueue",
            Some("mqueue"),
            &[],
            Attr::NOSUID | Attr::NODEV | Attr::NOEXEC,
        )?
        .attach(mqueue.as_fd(), Path::new("/dev/mqueue"))?;
        mount::set_attrs_at(
            dev,
            Path::new("/dev"),
            Attr::RDONLY,
            Attr::NONE,
            None,
            false,
        )
    }

    /// The folder the home is mounted on: made in a host root; in a distro root it must be
    /// there, or /home gets a small read-only tmpfs holding it.
    fn home_mount_point(&self, root: BorrowedFd<'_>) -> Result<OwnedFd, MountError> {
        if self.root == Root::Host {
            return mount::mkdir_beneath(root, &self.home_target, 0o755);
        }
        if let Ok(fd) = mount::open_beneath(root, &self.home_target) {
            return Ok(fd);
        }
        let parent = self.home_target.parent().unwrap_or(Path::new("/"));
        let parent_fd = mount::open_beneath(root, parent).map_err(|e| {
            MountError::new(
                format!(
                    "the jail's root has no {} for the home: {}",
                    parent.display(),
                    e.what
                ),
                e.source,
            )
        })?;
        let holder = mount::new_fs(
            "tmpfs",
            Some("home"),
            &[("size", Some("4k")), ("mode", Some("0755"))],
            Attr::NOSUID | Attr::NODEV | Attr::NOEXEC,
        )?;
        let name = self.home_target.file_name().unwrap_or_default();
        mount::mkdir_beneath(holder.as_fd(), Path::new(name), 0o755)?;
        holder.set_attrs(Attr::RDONLY, Attr::NONE, false)?;
        holder.attach(parent_fd.as_fd(), parent)?;
        mount::open_beneath(root, &self.home_target)
    }
}

/// The folder `fd` refers to, opened again in this mount namespace. A descriptor the emperor
/// opened belongs to the host's namespace, whose mounts cannot be cloned from here (`EINVAL`):
/// its path is opened again (no symlink anywhere on it: the folders above it are root's), and
/// must lead to the very same folder (device and inode), or nothing is bound.
fn same_folder_here(fd: BorrowedFd<'_>) -> Result<OwnedFd, MountError> {
    let what = "opening the vassal's run directory";
    let path = rustix::fs::readlinkat(
        rustix::fs::CWD,
        format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)),
        Vec::new(),
    )
    .map_err(|e| MountError::new(what, e))?;
    let path = PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(path.into_bytes()),
    );
    let here = mount::open_nofollow(&path)?;
    let (a, b) = (
        rustix::fs::fstat(fd).map_err(|e| MountError::new(what, e))?,
        rustix::fs::fstat(&here).map_err(|e| MountError::new(what, e))?,
    );
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        return Err(MountError::new(
            format!(
                "{what}: {} is not the folder the emperor made",
                path.display()
            ),
            rustix::io::Errno::XDEV,
        ));
    }
    Ok(here)
}

/// A folder the new root must have (`proc`, `tmp`, `dev`, `run`, `opt`), opened beneath it.
fn existing(root: BorrowedFd<'_>, name: &str) -> Result<OwnedFd, MountError> {
    mount::open_beneath(root, Path::new(name)).map_err(|e| {
        MountError::new(
            format!("the jail's root has no /{name} folder to mount on"),
            e.source,
        )
    })
}
