//! Discovery: which cgroup hierarchies are mounted, found in mountinfo.
//!
//! A mountinfo line (proc(5)) is
//! `ID PARENT MAJ:MIN ROOT MOUNT_POINT MOUNT_OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`:
//! ```text
//! 32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
//! 41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
//! ```
//! A v1 hierarchy's controllers are its super options (`rw,cpu,cpuacct` where cpu and cpuacct are
//! mounted together); the v2 hierarchy's are in its `cgroup.controllers` file.

use std::path::{Path, PathBuf};

use crate::{Error, MountinfoError, io};

/// The cgroup version of a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// A v1 hierarchy (fstype `cgroup`): one or a few controllers, each its own tree.
    V1,
    /// The v2 unified hierarchy (fstype `cgroup2`).
    V2,
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    version: Version,
    mount_point: PathBuf,
    root: String,
    controllers: Vec<String>,
}

impl Hierarchy {
    /// The cgroup version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Where the hierarchy is mounted (`/sys/fs/cgroup/memory`).
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The cgroup the mount shows at its mount point, as `/proc/PID/cgroup` names cgroups
    /// (`/` for a whole hierarchy).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The controllers: for v1 those bound to this hierarchy; for v2 those listed in the mount's
    /// `cgroup.controllers` (empty until [`Hierarchies::read_v2_controllers`] has read it).
    pub fn controllers(&self) -> &[String] {
        &self.controllers
    }

    /// Whether `controller` is one of [`Hierarchy::controllers`].
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The cgroup hierarchies of a host, and where its `/proc` is (to read `/proc/PID/cgroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchies {
    list: Vec<Hierarchy>,
    proc_root: PathBuf,
}

/// Super options of a v1 cgroup mount that are not controllers.
const NOT_CONTROLLERS: &[&str] = &[
    "rw",
    "ro",
    "none",
    "all",
    "noprefix",
    "xattr",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
];

impl Hierarchies {
    /// The hierarchies mounted in this process's mount namespace: parses `/proc/self/mountinfo`,
    /// then reads the v2 mount's `cgroup.controllers`.
    pub fn discover() -> Result<Self, Error> {
        Self::discover_in(Path::new("/proc"))
    }

    /// As [`Hierarchies::discover`], with `proc_root` in place of `/proc` (for
    /// `PROC/self/mountinfo` and, later, `PROC/PID/cgroup`).
    pub fn discover_in(proc_root: &Path) -> Result<Self, Error> {
        let path = proc_root.join("self/mountinfo");
        let text = io::read_all(&path)?;
        let text = String::from_utf8_lossy(&text);
        let mut found = Self::from_mountinfo(&text)
            .map_err(|error| Error::Mountinfo { path, error })?
            .with_proc_root(proc_root);
        found.read_v2_controllers()?;
        Ok(found)
    }

    /// The cgroup hierarchies named in a mountinfo text, without touching the file system: v1
    /// mounts with their controllers (named hierarchies such as `name=systemd`, which have none,
    /// are left out) and the first cgroup2 mount (its controllers still empty). A hierarchy
    /// mounted twice is listed once, at its first mount point. `/proc` is the proc root.
    pub fn from_mountinfo(text: &str) -> Result<Self, MountinfoError> {
        let mut list: Vec<Hierarchy> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason| MountinfoError {
                line: i + 1,
                text: line.to_string(),
                reason,
            };
            let fields: Vec<&str> = line.split_ascii_whitespace().collect();
            if fields.len() < 10 {
                return Err(bad("fewer fields than mountinfo has"));
            }
            let sep = fields[6..]
                .iter()
                .position(|f| *f == "-")
                .map(|p| p + 6)
                .ok_or_else(|| bad("no `-` separator"))?;
            let [fstype, _source, super_options] = fields[sep + 1..] else {
                return Err(bad("not three fields after the `-` separator"));
            };
            let version = match fstype {
                "cgroup" => Version::V1,
                "cgroup2" => Version::V2,
                _ => continue,
            };
            let controllers: Vec<String> = match version {
                Version::V1 => super_options
                    .split(',')
                    .filter(|o| !o.contains('=') && !NOT_CONTROLLERS.contains(o))
                    .map(str::to_string)
                    .collect(),
                Version::V2 => Vec::new(),
            };
            if version == Version::V1 && controllers.is_empty() {
                continue; // a named hierarchy (`name=systemd`): no controller to use
            }
            let duplicate = list.iter().any(|h| {
                h.version == version && (version == Version::V2 || h.controllers == controllers)
            });
            if duplicate {
                continue;
            }
            list.push(Hierarchy {
                version,
                mount_point: PathBuf::from(unescape(fields[4])),
                root: unescape(fields[3]),
                controllers,
            });
        }
        Ok(Self {
            list,
            proc_root: PathBuf::from("/proc"),
        })
    }

    /// Reads the v2 mount's `cgroup.controllers` (the controllers bound to v2) into its entry.
    pub fn read_v2_controllers(&mut self) -> Result<(), Error> {
        for h in &mut self.list {
            if h.version == Version::V2 {
                let path = h.mount_point.join("cgroup.controllers");
                let text = io::read_all(&path)?;
                h.controllers = String::from_utf8_lossy(&text)
                    .split_ascii_whitespace()
                    .map(str::to_string)
                    .collect();
            }
        }
        Ok(())
    }

    /// The same hierarchies with `proc_root` in place of `/proc` (tests use an imitation).
    #[must_use]
    pub fn with_proc_root(mut self, proc_root: impl Into<PathBuf>) -> Self {
        self.proc_root = proc_root.into();
        self
    }

    /// The hierarchies without the v2 mount (to use v1 alone on a hybrid host).
    #[must_use]
    pub fn without_v2(mut self) -> Self {
        self.list.retain(|h| h.version == Version::V1);
        self
    }

    /// Only the v2 mount, when there is one (to use v2 alone on a hybrid host).
    #[must_use]
    pub fn only_v2(mut self) -> Self {
        self.list.retain(|h| h.version == Version::V2);
        self
    }

    /// Where `/proc` is.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// Every hierarchy found, in mountinfo order.
    pub fn list(&self) -> &[Hierarchy] {
        &self.list
    }

    /// The v2 hierarchy, when cgroup2 is mounted.
    pub fn v2(&self) -> Option<&Hierarchy> {
        self.list.iter().find(|h| h.version == Version::V2)
    }

    /// The v1 hierarchy `controller` is bound to, when it is mounted on v1.
    pub fn v1(&self, controller: &str) -> Option<&Hierarchy> {
        self.list
            .iter()
            .find(|h| h.version == Version::V1 && h.has(controller))
    }
}

/// A mountinfo field with the kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`)
/// decoded.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'\\' && i + 4 <= b.len())
            .then(|| &b[i + 1..i + 4])
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .and_then(|d| {
                let v = d.iter().fold(0u16, |n, c| n * 8 + u16::from(c - b'0'));
                u8::try_from(v).ok()
            });
        if let Some(v) = escaped {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
