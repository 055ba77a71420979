//! Imitation cgroup file systems in a temporary directory, for unit tests.
//!
//! A directory is not cgroupfs: mkdir creates no interface files there and writes are not
//! checked. So the layout (mount root, `ROOT`, `ROOT/NAME` with the files the kernel would show)
//! is laid out beforehand, the code under test finds its directories already there (EEXIST is
//! fine for it, as on a real host after an emperor restart), and the tests read back what it
//! wrote. Files are truncated on write, so each holds the last value written.

use std::path::{Path, PathBuf};

use crate::Hierarchies;

/// The v1 unlimited value as the kernel reads it back with 4 KiB pages.
pub(crate) const V1_UNLIMITED: &str = "9223372036854771712\n";

/// A temporary directory holding imitation cgroup mounts and an imitation `/proc`.
pub(crate) struct Fake {
    pub(crate) tmp: tempfile::TempDir,
    mountinfo: String,
}

impl Fake {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs_err::create_dir_all(tmp.path().join("proc")).expect("mkdir proc");
        Self {
            tmp,
            mountinfo: "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n".to_string(),
        }
    }

    /// `TMP/cgroup/SUB`.
    pub(crate) fn mount(&self, sub: &str) -> PathBuf {
        self.tmp.path().join("cgroup").join(sub)
    }

    /// Adds a cgroup2 mount at `TMP/cgroup/SUB` whose root offers `controllers` (space separated),
    /// with `ROOT` and `ROOT/NAME` for each name laid out.
    pub(crate) fn v2(&mut self, sub: &str, controllers: &str, root: &str, names: &[&str]) {
        let mount = self.mount(sub);
        self.line(&mount, "cgroup2", "rw,nsdelegate");
        files(
            &mount,
            &[
                ("cgroup.controllers", &format!("{controllers}\n")),
                ("cgroup.subtree_control", ""),
                ("cgroup.procs", "1\n"),
                ("cpu.stat", "usage_usec 1\nuser_usec 1\nsystem_usec 0\n"),
            ],
        );
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        let mut dirs = vec![(mount.join(root), false)];
        dirs.extend(names.iter().map(|n| (mount.join(root).join(n), true)));
        for (dir, leaf) in dirs {
            let mut f: Vec<(&str, &str)> = vec![
                ("cgroup.controllers", ""),
                ("cgroup.subtree_control", ""),
                ("cgroup.procs", ""),
                ("cgroup.kill", ""),
                ("cgroup.freeze", "0\n"),
                ("cgroup.max.descendants", "max\n"),
                (
                    "cgroup.events",
                    if leaf {
                        "populated 1\nfrozen 0\n"
                    } else {
                        "populated 0\nfrozen 0\n"
                    },
                ),
                (
                    "cpu.stat",
                    "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n\
                     nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
                ),
            ];
            if has("memory") {
                f.extend([
                    ("memory.max", "max\n"),
                    ("memory.high", "max\n"),
                    ("memory.swap.max", "max\n"),
                    ("memory.current", "4096000\n"),
                    (
                        "memory.events",
                        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
                    ),
                ]);
            }
            if has("cpu") {
                f.extend([("cpu.max", "max 100000\n"), ("cpu.weight", "100\n")]);
            }
            if has("pids") {
                f.extend([("pids.max", "max\n"), ("pids.current", "3\n")]);
            }
            files(&dir, &f);
        }
    }

    /// Adds a v1 mount at `TMP/cgroup/SUB` with `controllers` (comma separated, as in the super
    /// options), with `ROOT` and `ROOT/NAME` for each name laid out.
    pub(crate) fn v1(&mut self, sub: &str, controllers: &str, root: &str, names: &[&str]) {
        let mount = self.mount(sub);
        self.line(&mount, "cgroup", &format!("rw,{controllers}"));
        files(&mount, &[("cgroup.procs", "1\n"), ("tasks", "1\n")]);
        let mut dirs = vec![mount.join(root)];
        dirs.extend(names.iter().map(|n| mount.join(root).join(n)));
        for dir in dirs {
            let mut f: Vec<(&str, &str)> = vec![
                ("cgroup.procs", ""),
                ("tasks", ""),
                ("notify_on_release", "0\n"),
            ];
            for c in controllers.split(',') {
                f.extend_from_slice(match c {
                    "memory" => &[
                        ("memory.limit_in_bytes", V1_UNLIMITED),
                        ("memory.memsw.limit_in_bytes", V1_UNLIMITED),
                        ("memory.usage_in_bytes", "1048576\n"),
                        (
                            "memory.oom_control",
                            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                        ),
                        ("memory.swappiness", "60\n"),
                    ],
                    "cpu" => &[
                        ("cpu.cfs_period_us", "100000\n"),
                        ("cpu.cfs_quota_us", "-1\n"),
                        ("cpu.shares", "1024\n"),
                    ],
                    "cpuacct" => &[("cpuacct.usage", "123456789\n")],
                    "pids" => &[("pids.max", "max\n"), ("pids.current", "2\n")],
                    "freezer" => &[("freezer.state", "THAWED\n")],
                    "cpuset" => &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
                    _ => &[],
                });
            }
            files(&dir, &f);
        }
    }

    /// Adds a named v1 hierarchy (`name=systemd`), which liege must leave alone.
    pub(crate) fn named(&mut self, sub: &str, name: &str) {
        let mount = self.mount(sub);
        self.line(&mount, "cgroup", &format!("rw,xattr,name={name}"));
        files(&mount, &[("cgroup.procs", "1\n")]);
    }

    /// Writes `/proc/PID/cgroup` of the imitation `/proc`.
    pub(crate) fn proc_cgroup(&self, pid: u32, text: &str) {
        files(
            &self.tmp.path().join("proc").join(pid.to_string()),
            &[("cgroup", text)],
        );
    }

    /// The hierarchies of the imitation, as `Hierarchies::discover` would find them.
    pub(crate) fn hierarchies(&self) -> Hierarchies {
        let mut h = Hierarchies::from_mountinfo(&self.mountinfo)
            .expect("parse mountinfo")
            .with_proc_root(self.tmp.path().join("proc"));
        h.read_v2_controllers().expect("read cgroup.controllers");
        h
    }

    fn line(&mut self, mount: &Path, fstype: &str, super_options: &str) {
        let n = self.mountinfo.lines().count() + 30;
        self.mountinfo.push_str(&format!(
            "{n} 31 0:{n} / {} rw,nosuid,nodev,noexec,relatime shared:{n} - {fstype} {fstype} \
             {super_options}\n",
            mount.display()
        ));
    }
}

/// Creates `dir` and writes each `(name, content)` file in it.
pub(crate) fn files(dir: &Path, files: &[(&str, &str)]) {
    fs_err::create_dir_all(dir).expect("mkdir");
    for (name, content) in files {
        fs_err::write(dir.join(name), content).expect("write fake file");
    }
}

/// The content of `path`.
pub(crate) fn read(path: impl AsRef<Path>) -> String {
    fs_err::read_to_string(path.as_ref()).expect("read fake file")
}
