//! The emperor's cgroups: `ROOT` under every hierarchy used, and a vassal's `ROOT/NAME` in each.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::{Error, Hierarchies, Version, io};

/// The v1 controllers a vassal's cgroup uses; a v1 hierarchy with none of them is left alone
/// (cpuset, devices, blkio...).
pub const V1_CONTROLLERS: [&str; 5] = ["memory", "cpu", "cpuacct", "pids", "freezer"];

/// The v2 controllers enabled for vassals (in `cgroup.subtree_control` of the mount root and of
/// `ROOT`), those of them the v2 hierarchy has.
pub const V2_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

/// How long [`Cgroup::remove`] waits for the kernel to stop reporting a cgroup busy after its last
/// process was killed.
pub const REMOVE_WAIT: Duration = Duration::from_secs(1);

/// The mode of the `ROOT` directories [`Tree::open`] creates.
const ROOT_MODE: u32 = 0o755;

/// Names that are cgroup interface files, or prefixes of them: a cgroup named so would collide.
const INTERFACE_PREFIXES: [&str; 17] = [
    "cgroup.",
    "memory.",
    "cpu.",
    "cpuacct.",
    "cpuset.",
    "pids.",
    "freezer.",
    "io.",
    "blkio.",
    "devices.",
    "hugetlb.",
    "net_cls.",
    "net_prio.",
    "perf_event.",
    "rdma.",
    "misc.",
    "irq.",
];
const INTERFACE_FILES: [&str; 3] = ["tasks", "notify_on_release", "release_agent"];

/// `ROOT` in one hierarchy used.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) version: Version,
    /// `MOUNT/ROOT`.
    pub(crate) root_dir: PathBuf,
    /// `ROOT` as `/proc/PID/cgroup` names it (the mount's own root, then `ROOT`).
    pub(crate) proc_prefix: String,
    /// v1: the hierarchy's controllers; v2: those enabled for the children of `ROOT`.
    pub(crate) controllers: Vec<String>,
}

/// Which slot serves which purpose.
#[derive(Debug, Default)]
pub(crate) struct Roles {
    pub(crate) memory: Option<usize>,
    pub(crate) cpu: Option<usize>,
    /// Where CPU usage is read: v1 cpuacct, else v2 (whose `cpu.stat` is always there).
    pub(crate) cpuacct: Option<usize>,
    pub(crate) pids: Option<usize>,
    /// The v1 freezer.
    pub(crate) freezer: Option<usize>,
    pub(crate) v2: Option<usize>,
    /// Where the member processes are listed: v2, else pids, else the first slot.
    pub(crate) procs: usize,
}

/// What a [`Tree`] and its [`Cgroup`]s share.
#[derive(Debug)]
pub(crate) struct Layout {
    pub(crate) root_name: String,
    pub(crate) slots: Vec<Slot>,
    pub(crate) roles: Roles,
    pub(crate) proc_root: PathBuf,
}

/// The emperor's cgroup root: `ROOT` under each hierarchy a vassal uses (the v1 memory, cpu,
/// cpuacct, pids and freezer hierarchies that are mounted, and the v2 one when there is one).
#[derive(Debug, Clone)]
pub struct Tree {
    layout: Arc<Layout>,
}

impl Tree {
    /// Opens `root_name` (`liege`, or a path such as `liege/emperor1`) under each hierarchy used,
    /// creating it (mode 0755) when missing. On v2 the controllers among
    /// [`V2_CONTROLLERS`] that the hierarchy has are enabled in `cgroup.subtree_control` of the
    /// mount root and of every level down to `ROOT`, so the vassals' cgroups `ROOT/NAME` get them;
    /// processes then belong in those leaves only, never in `ROOT` (v2's no-internal-process rule).
    pub fn open(hierarchies: &Hierarchies, root_name: &str) -> Result<Self, Error> {
        check_name(root_name, true)?;
        let mut slots = Vec::new();
        for h in hierarchies.list() {
            let controllers: Vec<String> = match h.version() {
                Version::V1 => {
                    if !h
                        .controllers()
                        .iter()
                        .any(|c| V1_CONTROLLERS.contains(&c.as_str()))
                    {
                        continue;
                    }
                    h.controllers().to_vec()
                }
                Version::V2 => V2_CONTROLLERS
                    .iter()
                    .filter(|c| h.has(c))
                    .map(|c| (*c).to_string())
                    .collect(),
            };
            let mut dir = h.mount_point().to_path_buf();
            let enable = h.version() == Version::V2 && !controllers.is_empty();
            if enable {
                enable_controllers(&dir, &controllers)?;
            }
            for part in root_name.split('/') {
                dir.push(part);
                io::mkdir_if_missing(&dir, ROOT_MODE)?;
                if enable {
                    enable_controllers(&dir, &controllers)?;
                }
            }
            slots.push(Slot {
                version: h.version(),
                root_dir: dir,
                proc_prefix: cgroup_path(h.root(), root_name),
                controllers,
            });
        }
        if slots.is_empty() {
            return Err(Error::NoHierarchy);
        }
        let roles = roles(&slots);
        Ok(Self {
            layout: Arc::new(Layout {
                root_name: root_name.to_string(),
                slots,
                roles,
                proc_root: hierarchies.proc_root().to_path_buf(),
            }),
        })
    }

    /// The root's name, as given to [`Tree::open`].
    pub fn root_name(&self) -> &str {
        &self.layout.root_name
    }

    /// `MOUNT/ROOT` in each hierarchy used.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.layout.slots.iter().map(|s| s.root_dir.as_path())
    }

    /// Creates the cgroup `ROOT/NAME` in each hierarchy used, with directory mode `dir_mode`
    /// (set exactly, whatever the umask); one that exists already is fine. On failure the
    /// directories this call created are removed again.
    pub fn create(&self, name: &str, dir_mode: u32) -> Result<Cgroup, Error> {
        let cgroup = self.cgroup(name)?;
        let mut created = Vec::new();
        for dir in cgroup.dirs.iter() {
            let made = match rustix::fs::mkdir(dir, rustix::fs::Mode::from_raw_mode(dir_mode)) {
                Ok(()) => Ok(true),
                Err(Errno::EXIST) if is_dir(dir) => Ok(false),
                Err(Errno::EXIST) => Err(Error::InvalidName {
                    name: name.to_string(),
                    reason: "a file of that name is in the way",
                }),
                Err(errno) => Err(Error::CreateDir {
                    path: dir.clone(),
                    errno,
                }),
            }
            .and_then(|made| {
                rustix::fs::chmod(dir, rustix::fs::Mode::from_raw_mode(dir_mode))
                    .map(|()| made)
                    .map_err(|errno| Error::Chmod {
                        path: dir.clone(),
                        mode: dir_mode,
                        errno,
                    })
            });
            match made {
                Ok(true) => created.push(dir),
                Ok(false) => {}
                Err(e) => {
                    for dir in created {
                        let _ = rustix::fs::rmdir(dir);
                    }
                    return Err(e);
                }
            }
        }
        Ok(cgroup)
    }

    /// The cgroup `ROOT/NAME` when it exists (in at least one hierarchy: [`Tree::create`]
    /// completes one that an interrupted emperor left half made).
    pub fn get(&self, name: &str) -> Result<Option<Cgroup>, Error> {
        let cgroup = self.cgroup(name)?;
        Ok(cgroup.dirs.iter().any(|d| is_dir(d)).then_some(cgroup))
    }

    /// The names of the cgroups under `ROOT` in any hierarchy used, sorted (an emperor that
    /// restarts adopts the vassals found there).
    pub fn names(&self) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        for slot in &self.layout.slots {
            match io::subdirs(&slot.root_dir) {
                Ok(found) => names.extend(found),
                Err(Error::ListDir {
                    errno: Errno::NOENT,
                    ..
                }) => {}
                Err(e) => return Err(e),
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Removes `ROOT` from every hierarchy where it has no child cgroups left; where it still
    /// has some (busy) or is already gone it is left as it is.
    pub fn remove_root(&self) -> Result<(), Error> {
        for slot in &self.layout.slots {
            match rustix::fs::rmdir(&slot.root_dir) {
                Ok(()) | Err(Errno::BUSY | Errno::NOTEMPTY | Errno::NOENT) => {}
                Err(errno) => {
                    return Err(Error::RemoveDir {
                        path: slot.root_dir.clone(),
                        errno,
                    });
                }
            }
        }
        Ok(())
    }

    fn cgroup(&self, name: &str) -> Result<Cgroup, Error> {
        check_name(name, false)?;
        Ok(Cgroup {
            dirs: self
                .layout
                .slots
                .iter()
                .map(|s| s.root_dir.join(name))
                .collect(),
            name: name.to_string(),
            layout: Arc::clone(&self.layout),
        })
    }
}

/// A vassal's cgroup `ROOT/NAME`, in every hierarchy its [`Tree`] uses.
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub(crate) layout: Arc<Layout>,
    pub(crate) name: String,
    /// `MOUNT/ROOT/NAME`, one per slot of the layout, in the same order.
    pub(crate) dirs: Box<[PathBuf]>,
}

impl Cgroup {
    /// The cgroup's name (`NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `MOUNT/ROOT/NAME` in each hierarchy used.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(PathBuf::as_path)
    }

    /// Moves the process `pid` (all its threads) into this cgroup in every hierarchy, by writing
    /// it to each `cgroup.procs`.
    pub fn place(&self, pid: u32) -> Result<(), Error> {
        let value = pid.to_string();
        for dir in self.dirs.iter() {
            io::write(&dir.join("cgroup.procs"), &value)?;
        }
        Ok(())
    }

    /// The processes in this cgroup (not in cgroups below it), from `cgroup.procs` of the v2
    /// hierarchy, else of the pids one, else of the first one.
    pub fn procs(&self) -> Result<Vec<u32>, Error> {
        let text = io::read_all(&self.procs_dir().join("cgroup.procs"))?;
        Ok(io::pids(&text).collect())
    }

    /// Whether any process is in this cgroup or below it: v2's `cgroup.events` `populated`, or on
    /// v1 alone whether `cgroup.procs` lists one here or in a cgroup below.
    pub fn is_populated(&self) -> Result<bool, Error> {
        if let Some(i) = self.layout.roles.v2 {
            let n = io::read_keyed(&self.dirs[i].join("cgroup.events"), "populated")?;
            return Ok(n != 0);
        }
        Ok(!all_pids(self.procs_dir())?.is_empty())
    }

    /// Whether the process `pid` is in this cgroup (or one below it) in every hierarchy used,
    /// according to `/proc/PID/cgroup`. A process that does not exist is in none.
    pub fn contains(&self, pid: u32) -> Result<bool, Error> {
        let path = self.layout.proc_root.join(pid.to_string()).join("cgroup");
        let text = match io::read_all(&path) {
            Ok(text) => text,
            Err(Error::Read {
                errno: Errno::NOENT | Errno::SRCH,
                ..
            }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&text);
        for slot in &self.layout.slots {
            let want = format!("{}/{}", slot.proc_prefix, self.name);
            let Some(have) = proc_cgroup_of(&text, slot) else {
                return Ok(false);
            };
            let inside = have == want
                || have
                    .strip_prefix(want.as_str())
                    .is_some_and(|rest| rest.starts_with('/'));
            if !inside {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Removes the cgroup's directory (and any cgroup below it) from every hierarchy. While the
    /// kernel still reports a directory busy (its last processes are exiting) this retries for up
    /// to [`REMOVE_WAIT`]; after that the directory is left and the error names it. A directory
    /// already gone is fine.
    pub fn remove(&self) -> Result<(), Error> {
        let deadline = Instant::now() + REMOVE_WAIT;
        let mut first = None;
        for dir in self.dirs.iter() {
            if let Err(e) = remove_tree(dir, deadline) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The directory whose `cgroup.procs` lists the members.
    pub(crate) fn procs_dir(&self) -> &Path {
        &self.dirs[self.layout.roles.procs]
    }

    /// The directory of the slot `index`, when there is such a slot.
    pub(crate) fn dir(&self, index: Option<usize>) -> Option<(&Path, Version)> {
        index.map(|i| (self.dirs[i].as_path(), self.layout.slots[i].version))
    }
}

/// Every pid in `dir`'s `cgroup.procs` and in those of the cgroups below it.
pub(crate) fn all_pids(dir: &Path) -> Result<Vec<u32>, Error> {
    let mut out = Vec::new();
    collect_pids(dir, &mut out)?;
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<u32>) -> Result<(), Error> {
    let text = io::read_all(&dir.join("cgroup.procs"))?;
    out.extend(io::pids(&text));
    for child in io::subdirs(dir)? {
        collect_pids(&dir.join(child), out)?;
    }
    Ok(())
}

/// Removes the cgroup `dir` and those below it, retrying while busy until `deadline`.
fn remove_tree(dir: &Path, deadline: Instant) -> Result<(), Error> {
    match io::subdirs(dir) {
        Ok(children) => {
            for child in children {
                remove_tree(&dir.join(child), deadline)?;
            }
        }
        Err(Error::ListDir {
            errno: Errno::NOENT,
            ..
        }) => return Ok(()),
        Err(e) => return Err(e),
    }
    loop {
        match rustix::fs::rmdir(dir) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::BUSY) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(errno) => {
                return Err(Error::RemoveDir {
                    path: dir.to_path_buf(),
                    errno,
                });
            }
        }
    }
}

/// The cgroup path `/proc/PID/cgroup` gives for the hierarchy of `slot`.
fn proc_cgroup_of<'t>(text: &'t str, slot: &Slot) -> Option<&'t str> {
    text.lines().find_map(|line| {
        let mut it = line.splitn(3, ':');
        let (id, controllers, path) = (it.next()?, it.next()?, it.next()?);
        let matches = match slot.version {
            Version::V2 => id == "0" && controllers.is_empty(),
            Version::V1 => {
                let mut listed = controllers.split(',').filter(|c| !c.contains('='));
                let n = listed.clone().count();
                n == slot.controllers.len()
                    && listed.all(|c| slot.controllers.iter().any(|s| s == c))
            }
        };
        matches.then_some(path)
    })
}

/// Adds the `controllers` missing from `dir/cgroup.subtree_control`, in one write.
fn enable_controllers(dir: &Path, controllers: &[String]) -> Result<(), Error> {
    let path = dir.join("cgroup.subtree_control");
    let text = io::read_all(&path)?;
    let text = String::from_utf8_lossy(&text);
    let enabled: Vec<&str> = text.split_ascii_whitespace().collect();
    let missing: Vec<String> = controllers
        .iter()
        .filter(|c| !enabled.contains(&c.as_str()))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    io::write(&path, &missing.join(" "))
}

/// Which slot serves which purpose.
fn roles(slots: &[Slot]) -> Roles {
    let mut r = Roles::default();
    for (i, s) in slots.iter().enumerate() {
        if s.version == Version::V2 {
            r.v2.get_or_insert(i);
        }
        for c in &s.controllers {
            let role = match c.as_str() {
                "memory" => &mut r.memory,
                "cpu" => &mut r.cpu,
                "cpuacct" => &mut r.cpuacct,
                "pids" => &mut r.pids,
                "freezer" if s.version == Version::V1 => &mut r.freezer,
                _ => continue,
            };
            role.get_or_insert(i);
        }
    }
    if r.cpuacct.is_none() {
        r.cpuacct = r.v2;
    }
    r.procs = r.v2.or(r.pids).unwrap_or(0);
    r
}

/// `ROOT` as `/proc/PID/cgroup` names it, below the mount's own root `mount_root`.
fn cgroup_path(mount_root: &str, root_name: &str) -> String {
    format!("{}/{root_name}", mount_root.trim_end_matches('/'))
}

fn is_dir(path: &Path) -> bool {
    rustix::fs::stat(path).is_ok_and(|st| {
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
    })
}

/// Refuses a name that is not a plain directory name (or, with `nested`, a relative path of such
/// names), or that collides with a cgroup interface file.
pub(crate) fn check_name(name: &str, nested: bool) -> Result<(), Error> {
    let refuse = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("empty");
    }
    if name.len() > 255 {
        return refuse("longer than 255 bytes");
    }
    if name.contains(['\0', '\n']) {
        return refuse("contains a NUL or a newline");
    }
    if !nested && name.contains('/') {
        return refuse("contains `/`");
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return refuse("has an empty, `.` or `..` path component");
        }
        if INTERFACE_FILES.contains(&part) || INTERFACE_PREFIXES.iter().any(|p| part.starts_with(p))
        {
            return refuse("collides with the cgroup interface files");
        }
    }
    Ok(())
}
