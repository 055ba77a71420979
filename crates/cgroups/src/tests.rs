//! Unit tests: mountinfo parsing, and the v1 and v2 paths against imitation directories
//! (`fake.rs`). The real kernel is exercised by `tests/kernel`.

use std::path::Path;

use crate::fake::{Fake, V1_UNLIMITED, files, read};
use crate::{Error, Hierarchies, Limits, MountinfoError, Stats, Tree, Version, place_in_dir};

/// This machine (Debian 12, Linux 6.18): every v1 controller on its own mount, `name=systemd`,
/// and an empty cgroup2 at `unified`.
const HYBRID: &str = "\
22 1 254:1 / / rw,relatime - ext4 /dev/vda rw
28 22 0:5 / /dev rw,nosuid,relatime - devtmpfs devtmpfs rw,size=4096k,nr_inodes=1024,mode=755
29 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
30 22 0:23 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

/// A pure v2 host (systemd, Debian 12 default).
const PURE_V2: &str = "\
21 26 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
22 26 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro
29 21 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
30 21 0:27 / /sys/fs/pstore rw,nosuid,nodev,noexec,relatime shared:5 - pstore pstore rw
";

/// A systemd hybrid host of the Ubuntu 18.04 era: cpu and cpuacct (and net_cls, net_prio)
/// co-mounted, the memory hierarchy mounted a second time elsewhere.
const COMOUNTED: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,net_cls,net_prio
32 25 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
33 25 0:30 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
34 25 0:31 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,freezer
35 25 0:32 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,cpuset,clone_children
90 88 0:29 /lxc/box /mnt/mem\\040cg rw,relatime shared:16 - cgroup cgroup rw,memory
";

fn summary(h: &Hierarchies) -> Vec<(Version, String, String, Vec<String>)> {
    h.list()
        .iter()
        .map(|h| {
            (
                h.version(),
                h.mount_point().display().to_string(),
                h.root().to_string(),
                h.controllers().to_vec(),
            )
        })
        .collect()
}

fn v1(mount: &str, controllers: &[&str]) -> (Version, String, String, Vec<String>) {
    let c = controllers.iter().map(|c| (*c).to_string()).collect();
    (Version::V1, mount.to_string(), "/".to_string(), c)
}

#[test]
fn mountinfo_of_this_machine_lists_each_v1_mount_and_the_empty_cgroup2() {
    let h = Hierarchies::from_mountinfo(HYBRID).unwrap();
    assert_eq!(
        summary(&h),
        vec![
            v1("/sys/fs/cgroup/cpu", &["cpu"]),
            v1("/sys/fs/cgroup/cpuacct", &["cpuacct"]),
            v1("/sys/fs/cgroup/cpuset", &["cpuset"]),
            v1("/sys/fs/cgroup/memory", &["memory"]),
            v1("/sys/fs/cgroup/devices", &["devices"]),
            v1("/sys/fs/cgroup/freezer", &["freezer"]),
            v1("/sys/fs/cgroup/blkio", &["blkio"]),
            v1("/sys/fs/cgroup/pids", &["pids"]),
            (
                Version::V2,
                "/sys/fs/cgroup/unified".to_string(),
                "/".to_string(),
                vec![]
            ),
        ]
    );
    assert_eq!(
        h.v1("memory").unwrap().mount_point(),
        Path::new("/sys/fs/cgroup/memory")
    );
    assert!(h.v1("name=systemd").is_none());
    assert_eq!(
        h.v2().unwrap().mount_point(),
        Path::new("/sys/fs/cgroup/unified")
    );
    assert_eq!(h.proc_root(), Path::new("/proc"));
}

#[test]
fn mountinfo_of_a_pure_v2_host_has_one_hierarchy() {
    let h = Hierarchies::from_mountinfo(PURE_V2).unwrap();
    assert_eq!(
        summary(&h),
        vec![(
            Version::V2,
            "/sys/fs/cgroup".to_string(),
            "/".to_string(),
            vec![]
        )]
    );
    assert!(h.v1("memory").is_none());
}

#[test]
fn mountinfo_with_cpu_and_cpuacct_comounted_lists_them_once() {
    let h = Hierarchies::from_mountinfo(COMOUNTED).unwrap();
    let s = summary(&h);
    assert_eq!(
        s[0],
        (
            Version::V2,
            "/sys/fs/cgroup/unified".to_string(),
            "/".to_string(),
            vec![]
        )
    );
    assert_eq!(s[1], v1("/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"]));
    assert_eq!(
        s[2],
        v1("/sys/fs/cgroup/net_cls,net_prio", &["net_cls", "net_prio"])
    );
    assert_eq!(s[3], v1("/sys/fs/cgroup/memory", &["memory"]));
    // `clone_children` is an option, not a controller; the second memory mount is dropped.
    assert_eq!(s[6], v1("/sys/fs/cgroup/cpuset", &["cpuset"]));
    assert_eq!(s.len(), 7);
    assert_eq!(h.v1("cpu").unwrap(), h.v1("cpuacct").unwrap());
}

#[test]
fn mountinfo_escapes_and_mount_roots_are_decoded() {
    let line =
        "90 88 0:29 /lxc/box /mnt/mem\\040cg rw,relatime shared:16 - cgroup cgroup rw,memory\n";
    let h = Hierarchies::from_mountinfo(line).unwrap();
    let m = &h.list()[0];
    assert_eq!(m.mount_point(), Path::new("/mnt/mem cg"));
    assert_eq!(m.root(), "/lxc/box");
}

#[test]
fn mountinfo_that_is_not_mountinfo_is_refused_with_its_line() {
    let err = Hierarchies::from_mountinfo("22 1 254:1 / / rw - ext4 /dev/vda rw\nnonsense\n")
        .unwrap_err();
    assert_eq!(
        err,
        MountinfoError {
            line: 2,
            text: "nonsense".to_string(),
            reason: "fewer fields than mountinfo has"
        }
    );
    assert_eq!(
        err.to_string(),
        "line 2: fewer fields than mountinfo has: `nonsense`"
    );
    let err = Hierarchies::from_mountinfo("1 2 3:4 / /x rw a b c d e\n").unwrap_err();
    assert_eq!(err.reason, "no `-` separator");
}

// --- v2, against an imitation cgroup2 -------------------------------------------------------

/// A pure v2 host with memory, cpu and pids; `ROOT` = `liege`, vassals `app` and `other`.
fn fake_v2() -> (Fake, Tree) {
    let mut fake = Fake::new();
    fake.v2("", "cpu io memory pids", "liege", &["app", "other"]);
    let tree = Tree::open(&fake.hierarchies(), "liege").unwrap();
    (fake, tree)
}

#[test]
fn v2_open_enables_memory_cpu_pids_for_the_children_of_root() {
    let (fake, tree) = fake_v2();
    let mount = fake.mount("");
    assert_eq!(
        read(mount.join("cgroup.subtree_control")),
        "+memory +cpu +pids"
    );
    assert_eq!(
        read(mount.join("liege/cgroup.subtree_control")),
        "+memory +cpu +pids"
    );
    // The leaves enable nothing: processes live there.
    assert_eq!(read(mount.join("liege/app/cgroup.subtree_control")), "");
    assert_eq!(tree.dirs().collect::<Vec<_>>(), vec![mount.join("liege")]);
}

#[test]
fn v2_open_adds_only_the_controllers_not_yet_enabled() {
    let mut fake = Fake::new();
    fake.v2("", "cpu memory pids", "liege", &[]);
    let mount = fake.mount("");
    files(&mount, &[("cgroup.subtree_control", "memory pids\n")]);
    files(
        &mount.join("liege"),
        &[("cgroup.subtree_control", "memory cpu pids\n")],
    );
    Tree::open(&fake.hierarchies(), "liege").unwrap();
    assert_eq!(read(mount.join("cgroup.subtree_control")), "+cpu");
    assert_eq!(
        read(mount.join("liege/cgroup.subtree_control")),
        "memory cpu pids\n"
    );
}

#[test]
fn v2_nested_root_enables_controllers_at_every_level() {
    let mut fake = Fake::new();
    fake.v2("", "memory pids", "liege", &[]);
    fake.v2("", "memory pids", "liege/e1", &[]);
    let mount = fake.mount("");
    let tree = Tree::open(&fake.hierarchies(), "liege/e1").unwrap();
    for level in ["", "liege", "liege/e1"] {
        let path = mount.join(level).join("cgroup.subtree_control");
        assert_eq!(read(path), "+memory +pids", "at {level:?}");
    }
    let app = tree.create("app", 0o750).unwrap();
    assert_eq!(
        app.dirs().collect::<Vec<_>>(),
        vec![mount.join("liege/e1/app")]
    );
}

#[test]
fn v2_place_writes_the_pid_to_the_leaf_only() {
    let (fake, tree) = fake_v2();
    let app = tree.create("app", 0o700).unwrap();
    app.place(4242).unwrap();
    let mount = fake.mount("");
    assert_eq!(read(mount.join("liege/app/cgroup.procs")), "4242");
    // The no-internal-process rule: nothing ever goes into ROOT (or the mount root).
    assert_eq!(read(mount.join("liege/cgroup.procs")), "");
    assert_eq!(read(mount.join("cgroup.procs")), "1\n");
    assert_eq!(read(mount.join("liege/other/cgroup.procs")), "");
}

#[test]
fn v2_create_sets_the_directory_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let (fake, tree) = fake_v2();
    tree.create("fresh", 0o750).unwrap();
    let mode = fs_err::metadata(fake.mount("liege/fresh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o750);
}

#[test]
fn v2_limits_are_written_in_the_kernel_syntax_and_removed_again() {
    let (fake, tree) = fake_v2();
    let app = tree.create("app", 0o700).unwrap();
    let dir = fake.mount("liege/app");
    app.apply(&Limits {
        memory: Some(256 << 20),
        cpu_percent: Some(50),
        pids: Some(200),
        raw: vec![],
    })
    .unwrap();
    assert_eq!(read(dir.join("memory.max")), "268435456");
    assert_eq!(read(dir.join("memory.swap.max")), "0");
    assert_eq!(read(dir.join("cpu.max")), "50000 100000");
    assert_eq!(read(dir.join("pids.max")), "200");

    // Live change: more than one core, then every limit removed.
    app.apply(&Limits {
        cpu_percent: Some(150),
        ..Limits::default()
    })
    .unwrap();
    assert_eq!(read(dir.join("cpu.max")), "150000 100000");
    assert_eq!(read(dir.join("memory.max")), "max");
    assert_eq!(read(dir.join("memory.swap.max")), "max");
    assert_eq!(read(dir.join("pids.max")), "max");
    app.apply(&Limits::default()).unwrap();
    assert_eq!(read(dir.join("cpu.max")), "max 100000");
}

#[test]
fn v2_raw_files_go_where_the_file_is_and_unknown_ones_are_refused() {
    let (fake, tree) = fake_v2();
    let app = tree.create("app", 0o700).unwrap();
    let dir = fake.mount("liege/app");
    app.apply(&Limits {
        memory: Some(64 << 20),
        raw: vec![
            ("memory.high".into(), "50331648".into()),
            ("cgroup.max.descendants".into(), "10".into()),
            ("memory.max".into(), "100M".into()),
        ],
        ..Limits::default()
    })
    .unwrap();
    assert_eq!(read(dir.join("memory.high")), "50331648");
    assert_eq!(read(dir.join("cgroup.max.descendants")), "10");
    // Raw values come after the typed limits.
    assert_eq!(read(dir.join("memory.max")), "100M");

    let unknown = Limits {
        raw: vec![("memory.swappiness".into(), "10".into())],
        ..Limits::default()
    };
    let err = app.apply(&unknown).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no hierarchy of cgroup `app` has the file `memory.swappiness`"
    );
    for bad in ["../liege/cgroup.procs", "cgroup.procs", ".hidden", ""] {
        let l = Limits {
            raw: vec![(bad.into(), "1".into())],
            ..Limits::default()
        };
        assert!(
            matches!(app.apply(&l), Err(Error::InvalidFile { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn v2_limits_are_checked_before_anything_is_written() {
    let (fake, tree) = fake_v2();
    let app = tree.create("app", 0o700).unwrap();
    let limits = Limits {
        memory: Some(1 << 30),
        raw: vec![("nosuch.file".into(), "1".into())],
        ..Limits::default()
    };
    assert!(matches!(app.apply(&limits), Err(Error::UnknownFile { .. })));
    assert_eq!(read(fake.mount("liege/app/memory.max")), "max\n");
    let err = app
        .apply(&Limits {
            cpu_percent: Some(0),
            ..Limits::default()
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cpu limit of 0% is below the minimum of 1% (a quota of 1000 microseconds)"
    );
}

#[test]
fn v2_without_the_memory_controller_refuses_a_memory_limit() {
    let mut fake = Fake::new();
    fake.v2("", "pids", "liege", &["app"]);
    let tree = Tree::open(&fake.hierarchies(), "liege").unwrap();
    assert_eq!(read(fake.mount("cgroup.subtree_control")), "+pids");
    let app = tree.get("app").unwrap().unwrap();
    let err = app
        .apply(&Limits {
            memory: Some(1 << 20),
            ..Limits::default()
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot limit memory of cgroup `app`: no mounted hierarchy has the memory controller"
    );
    // Asking for no memory limit is fine where there is none.
    app.apply(&Limits {
        pids: Some(5),
        ..Limits::default()
    })
    .unwrap();
    let stats = app.stats().unwrap();
    assert_eq!(stats.memory_bytes, None);
    assert_eq!(stats.pids_current, Some(3));
}

#[test]
fn v2_stats_are_parsed() {
    let (fake, tree) = fake_v2();
    let app = tree.get("app").unwrap().unwrap();
    assert_eq!(
        app.stats().unwrap(),
        Stats {
            memory_bytes: Some(4_096_000),
            memory_limit: None,
            cpu_usage_ns: Some(2_500_000),
            pids_current: Some(3),
            pids_max: None,
            oom_kills: Some(1),
        }
    );
    app.apply(&Limits {
        memory: Some(8 << 20),
        pids: Some(9),
        ..Limits::default()
    })
    .unwrap();
    let stats = app.stats().unwrap();
    assert_eq!(stats.memory_limit, Some(8 << 20));
    assert_eq!(stats.pids_max, Some(9));

    files(&fake.mount("liege/app"), &[("memory.current", "lots\n")]);
    let err = app.stats().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "unexpected content in {}: `lots`",
            fake.mount("liege/app/memory.current").display()
        )
    );
}

#[test]
fn v2_members_populated_and_kill() {
    let (fake, tree) = fake_v2();
    let app = tree.get("app").unwrap().unwrap();
    files(&fake.mount("liege/app"), &[("cgroup.procs", "12\n34\n")]);
    assert_eq!(app.procs().unwrap(), vec![12, 34]);
    assert!(app.is_populated().unwrap());
    let other = tree.get("other").unwrap().unwrap();
    files(
        &fake.mount("liege/other"),
        &[("cgroup.events", "populated 0\nfrozen 0\n")],
    );
    assert!(!other.is_populated().unwrap());
    app.kill_all().unwrap();
    assert_eq!(read(fake.mount("liege/app/cgroup.kill")), "1");
}

#[test]
fn v2_contains_checks_proc_pid_cgroup() {
    let (fake, tree) = fake_v2();
    let app = tree.get("app").unwrap().unwrap();
    fake.proc_cgroup(10, "0::/liege/app\n");
    fake.proc_cgroup(11, "0::/liege/app/worker\n");
    fake.proc_cgroup(12, "0::/liege/apple\n");
    fake.proc_cgroup(13, "0::/liege\n");
    fake.proc_cgroup(14, "0::/liege/other\n");
    assert!(app.contains(10).unwrap());
    assert!(app.contains(11).unwrap());
    for pid in [12, 13, 14, 99] {
        assert!(!app.contains(pid).unwrap(), "pid {pid}");
    }
}

#[test]
fn v2_names_get_and_invalid_names() {
    let (_fake, tree) = fake_v2();
    assert_eq!(tree.names().unwrap(), vec!["app", "other"]);
    assert!(tree.get("nosuch").unwrap().is_none());
    assert_eq!(tree.get("app").unwrap().unwrap().name(), "app");
    for bad in [
        "",
        "a/b",
        "..",
        ".",
        "tasks",
        "cgroup.procs",
        "memory.max",
        "x\ny",
    ] {
        assert!(
            matches!(tree.create(bad, 0o700), Err(Error::InvalidName { .. })),
            "{bad:?}"
        );
    }
    let err = tree.create("a/b", 0o700).unwrap_err();
    assert_eq!(err.to_string(), "invalid cgroup name `a/b`: contains `/`");
    assert!(matches!(
        Tree::open(&Hierarchies::from_mountinfo("").unwrap(), "liege"),
        Err(Error::NoHierarchy)
    ));
}

// --- v1, against an imitation of this machine ------------------------------------------------

/// v1 memory, cpu, cpuacct, pids, freezer and cpuset on separate mounts plus `name=systemd`,
/// no cgroup2; `ROOT` = `liege`, vassal `app`.
fn fake_v1() -> (Fake, Tree) {
    let mut fake = Fake::new();
    for c in ["memory", "cpu", "cpuacct", "pids", "freezer", "cpuset"] {
        fake.v1(c, c, "liege", &["app"]);
    }
    fake.named("systemd", "systemd");
    let tree = Tree::open(&fake.hierarchies(), "liege").unwrap();
    (fake, tree)
}

#[test]
fn v1_uses_memory_cpu_cpuacct_pids_freezer_and_places_in_each() {
    let (fake, tree) = fake_v1();
    let used: Vec<_> = tree.dirs().map(Path::to_path_buf).collect();
    let want: Vec<_> = ["memory", "cpu", "cpuacct", "pids", "freezer"]
        .iter()
        .map(|c| fake.mount(c).join("liege"))
        .collect();
    assert_eq!(used, want);
    let app = tree.create("app", 0o700).unwrap();
    app.place(777).unwrap();
    for c in ["memory", "cpu", "cpuacct", "pids", "freezer"] {
        assert_eq!(
            read(fake.mount(c).join("liege/app/cgroup.procs")),
            "777",
            "{c}"
        );
    }
    assert_eq!(read(fake.mount("cpuset/liege/app/cgroup.procs")), "");
    assert_eq!(read(fake.mount("systemd/cgroup.procs")), "1\n");
}

#[test]
fn v1_limits_are_written_in_the_kernel_syntax_and_removed_again() {
    let (fake, tree) = fake_v1();
    let app = tree.get("app").unwrap().unwrap();
    app.apply(&Limits {
        memory: Some(256 << 20),
        cpu_percent: Some(50),
        pids: Some(200),
        raw: vec![
            ("memory.swappiness".into(), "10".into()),
            ("cpu.shares".into(), "512".into()),
            ("notify_on_release".into(), "1".into()),
        ],
    })
    .unwrap();
    let m = fake.mount("memory/liege/app");
    assert_eq!(read(m.join("memory.limit_in_bytes")), "268435456");
    assert_eq!(read(m.join("memory.memsw.limit_in_bytes")), "268435456");
    assert_eq!(read(m.join("memory.swappiness")), "10");
    let c = fake.mount("cpu/liege/app");
    assert_eq!(read(c.join("cpu.cfs_period_us")), "100000");
    assert_eq!(read(c.join("cpu.cfs_quota_us")), "50000");
    assert_eq!(read(c.join("cpu.shares")), "512");
    assert_eq!(read(fake.mount("pids/liege/app/pids.max")), "200");
    // A core file goes to the first hierarchy that has it.
    assert_eq!(read(fake.mount("memory/liege/app/notify_on_release")), "1");

    app.apply(&Limits::default()).unwrap();
    assert_eq!(read(m.join("memory.limit_in_bytes")), "-1");
    assert_eq!(read(m.join("memory.memsw.limit_in_bytes")), "-1");
    assert_eq!(read(c.join("cpu.cfs_quota_us")), "-1");
    assert_eq!(read(fake.mount("pids/liege/app/pids.max")), "max");
}

#[test]
fn v1_without_memsw_writes_the_limit_alone() {
    let (fake, tree) = fake_v1();
    let m = fake.mount("memory/liege/app");
    fs_err::remove_file(m.join("memory.memsw.limit_in_bytes")).unwrap();
    let app = tree.get("app").unwrap().unwrap();
    app.apply(&Limits {
        memory: Some(1 << 20),
        ..Limits::default()
    })
    .unwrap();
    assert_eq!(read(m.join("memory.limit_in_bytes")), "1048576");
    assert!(!m.join("memory.memsw.limit_in_bytes").exists());
}

#[test]
fn v1_stats_are_parsed() {
    let (fake, tree) = fake_v1();
    let app = tree.get("app").unwrap().unwrap();
    assert_eq!(
        app.stats().unwrap(),
        Stats {
            memory_bytes: Some(1_048_576),
            memory_limit: None,
            cpu_usage_ns: Some(123_456_789),
            pids_current: Some(2),
            pids_max: None,
            oom_kills: Some(2),
        }
    );
    // Before Linux 4.13 memory.oom_control had no oom_kill line.
    files(
        &fake.mount("memory/liege/app"),
        &[
            ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n"),
            ("memory.limit_in_bytes", "33554432\n"),
        ],
    );
    let stats = app.stats().unwrap();
    assert_eq!(stats.oom_kills, None);
    assert_eq!(stats.memory_limit, Some(32 << 20));
    assert_eq!(
        V1_UNLIMITED.trim().parse::<u64>().unwrap(),
        0x7FFF_FFFF_FFFF_F000
    );
}

#[test]
fn v1_members_come_from_the_pids_hierarchy_and_contains_checks_each() {
    let (fake, tree) = fake_v1();
    let app = tree.get("app").unwrap().unwrap();
    files(&fake.mount("pids/liege/app"), &[("cgroup.procs", "555\n")]);
    assert_eq!(app.procs().unwrap(), vec![555]);
    assert!(app.is_populated().unwrap());
    let all = "9:name=systemd:/\n8:pids:/liege/app\n7:blkio:/\n6:freezer:/liege/app\n\
               5:devices:/\n4:memory:/liege/app\n3:cpuset:/\n2:cpuacct:/liege/app\n\
               1:cpu:/liege/app\n0::/\n";
    fake.proc_cgroup(555, all);
    assert!(app.contains(555).unwrap());
    // Out of it in one hierarchy (moved out of memory): not contained.
    fake.proc_cgroup(556, &all.replace("4:memory:/liege/app", "4:memory:/"));
    assert!(!app.contains(556).unwrap());
}

#[test]
fn v1_comounted_cpu_cpuacct_is_one_directory() {
    let mut fake = Fake::new();
    fake.v1("cpu,cpuacct", "cpu,cpuacct", "liege", &["app"]);
    fake.v1("pids", "pids", "liege", &["app"]);
    let tree = Tree::open(&fake.hierarchies(), "liege").unwrap();
    assert_eq!(tree.dirs().count(), 2);
    let app = tree.get("app").unwrap().unwrap();
    app.apply(&Limits {
        cpu_percent: Some(25),
        ..Limits::default()
    })
    .unwrap();
    let dir = fake.mount("cpu,cpuacct/liege/app");
    assert_eq!(read(dir.join("cpu.cfs_quota_us")), "25000");
    assert_eq!(app.stats().unwrap().cpu_usage_ns, Some(123_456_789));
    // The kernel may list the co-mounted controllers in another order than mountinfo.
    fake.proc_cgroup(7, "3:pids:/liege/app\n2:cpuacct,cpu:/liege/app\n");
    assert!(app.contains(7).unwrap());
    fake.proc_cgroup(8, "3:pids:/liege/app\n2:cpu:/liege/app\n");
    assert!(!app.contains(8).unwrap());
}

#[test]
fn hybrid_uses_v1_controllers_and_the_v2_mount_for_kill() {
    let mut fake = Fake::new();
    for c in ["memory", "cpu", "cpuacct", "pids", "freezer"] {
        fake.v1(c, c, "liege", &["app"]);
    }
    fake.v2("unified", "hugetlb", "liege", &["app"]);
    let tree = Tree::open(&fake.hierarchies(), "liege").unwrap();
    // No v2 controller to enable here.
    assert_eq!(read(fake.mount("unified/cgroup.subtree_control")), "");
    let app = tree.get("app").unwrap().unwrap();
    app.place(31).unwrap();
    assert_eq!(read(fake.mount("unified/liege/app/cgroup.procs")), "31");
    assert_eq!(read(fake.mount("memory/liege/app/cgroup.procs")), "31");
    // Usage comes from v1 cpuacct, members and `populated` from v2.
    assert_eq!(app.stats().unwrap().cpu_usage_ns, Some(123_456_789));
    assert!(app.is_populated().unwrap());
    app.kill_all().unwrap();
    assert_eq!(read(fake.mount("unified/liege/app/cgroup.kill")), "1");
}

#[test]
fn place_in_dir_creates_parents_and_sets_the_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let fake = Fake::new();
    let existing = fake.tmp.path().join("cg");
    files(&existing, &[]);
    fs_err::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = existing.join("a/b");
    // A tempdir has no cgroup.procs: the write fails naming it, after the directories are made.
    let err = place_in_dir(&dir, 99, 0o700).unwrap_err();
    assert!(
        matches!(err, Error::Write { ref value, .. } if value == "99"),
        "{err}"
    );
    let mode = |p: &Path| fs_err::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&existing), 0o755, "an existing parent keeps its mode");
    files(&dir, &[("cgroup.procs", "")]);
    fs_err::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    place_in_dir(&dir, 99, 0o710).unwrap();
    assert_eq!(read(dir.join("cgroup.procs")), "99");
    assert_eq!(mode(&dir), 0o710, "chmod on EEXIST, as uWSGI");
}

#[test]
fn write_errors_name_the_file_and_the_value() {
    let err = Error::Write {
        path: "/sys/fs/cgroup/cpu/liege/app/cpu.cfs_quota_us".into(),
        value: "500".into(),
        errno: rustix::io::Errno::INVAL,
    };
    assert_eq!(
        err.to_string(),
        "cannot write `500` to /sys/fs/cgroup/cpu/liege/app/cpu.cfs_quota_us: \
         Invalid argument (os error 22)"
    );
    let (fake, tree) = fake_v2();
    let app = tree.get("app").unwrap().unwrap();
    fs_err::remove_file(fake.mount("liege/app/pids.max")).unwrap();
    let err = app
        .apply(&Limits {
            pids: Some(3),
            ..Limits::default()
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot write `3` to {}: No such file or directory (os error 2)",
            fake.mount("liege/app/pids.max").display()
        )
    );
}
