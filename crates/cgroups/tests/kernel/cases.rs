//! The tests. Each starts its processes so that they wait on stdin until placed in the cgroup,
//! because memory, CPU and forks are charged to the cgroup a process is in when they happen.

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use liege_cgroups::{Error, Hierarchies, Limits, Tree, place_in_dir, write_in_dir};

use crate::support::{Outcome, Scratch, file, live_comm, read, wait_until};

type Test = fn() -> Outcome;

/// Every test, by name.
pub(crate) const ALL: &[(&str, Test)] = &[
    (
        "limits_are_written_and_changed_live",
        limits_are_written_and_changed_live,
    ),
    ("stats_show_a_placed_process", stats_show_a_placed_process),
    (
        "kill_all_kills_forked_children",
        kill_all_kills_forked_children,
    ),
    (
        "kill_all_with_the_v1_freezer_stops_a_fork_loop",
        kill_all_with_the_v1_freezer_stops_a_fork_loop,
    ),
    (
        "v2_unified_place_populated_kill_remove",
        v2_unified_place_populated_kill_remove,
    ),
    (
        "oom_kill_in_a_memory_limited_cgroup",
        oom_kill_in_a_memory_limited_cgroup,
    ),
    ("adoption_after_a_restart", adoption_after_a_restart),
    (
        "remove_waits_then_fails_while_a_process_lives",
        remove_waits_then_fails_while_a_process_lives,
    ),
    (
        "remove_root_leaves_a_busy_root",
        remove_root_leaves_a_busy_root,
    ),
    (
        "place_in_dir_and_write_in_dir",
        place_in_dir_and_write_in_dir,
    ),
];

const MIB: u64 = 1 << 20;
/// What v1 reads back for "unlimited" (4 KiB pages).
const V1_UNLIMITED: &str = "9223372036854771712";

fn limits(memory: Option<u64>, cpu_percent: Option<u32>, pids: Option<u64>) -> Limits {
    Limits {
        memory,
        cpu_percent,
        pids,
        raw: Vec::new(),
    }
}

/// Memory, CPU and pids limits read back from the real files after each live change; every
/// order of raising, lowering, setting and removing the memory limit is accepted by the kernel
/// (v1's memsw must never be below the limit).
fn limits_are_written_and_changed_live() -> Outcome {
    let mut s = Scratch::host();
    let cg = s.tree.create("app", 0o700).unwrap();
    let pid = s.spawn("sh", &["-c", "read x; exec sleep 60"]);
    cg.place(pid).unwrap();
    s.release(pid);
    let v1 = cg.dirs().any(|d| d.join("memory.limit_in_bytes").exists());

    let check = |memory: Option<u64>, cpu: Option<u32>, pids: Option<u64>| {
        cg.apply(&limits(memory, cpu, pids)).unwrap();
        let stats = cg.stats().unwrap();
        assert_eq!(stats.memory_limit, memory);
        assert_eq!(stats.pids_max, pids);
        if v1 {
            let want = memory.map_or(V1_UNLIMITED.to_string(), |m| m.to_string());
            assert_eq!(read(&file(&cg, "memory.limit_in_bytes")), want);
            assert_eq!(read(&file(&cg, "memory.memsw.limit_in_bytes")), want);
            assert_eq!(read(&file(&cg, "cpu.cfs_period_us")), "100000");
            let quota = cpu.map_or("-1".to_string(), |p| (u64::from(p) * 1000).to_string());
            assert_eq!(read(&file(&cg, "cpu.cfs_quota_us")), quota);
        } else {
            let want = memory.map_or("max".to_string(), |m| m.to_string());
            assert_eq!(read(&file(&cg, "memory.max")), want);
            let quota = cpu.map_or("max".to_string(), |p| (u64::from(p) * 1000).to_string());
            assert_eq!(read(&file(&cg, "cpu.max")), format!("{quota} 100000"));
        }
        let want = pids.map_or("max".to_string(), |p| p.to_string());
        assert_eq!(read(&file(&cg, "pids.max")), want);
    };
    check(Some(64 * MIB), Some(50), Some(20)); // set from unlimited
    check(Some(128 * MIB), Some(150), Some(20)); // raised
    check(Some(32 * MIB), Some(10), None); // lowered, pids removed
    check(None, Some(10), Some(5)); // memory removed
    check(Some(16 * MIB), None, None); // set again, cpu removed
    check(None, None, None);

    // Raw files land in the hierarchy that has them; an unknown one is an error naming it.
    let raw = |file: &str, value: &str| Limits {
        raw: vec![(file.to_string(), value.to_string())],
        ..Limits::default()
    };
    if v1 {
        cg.apply(&raw("memory.swappiness", "10")).unwrap();
        assert_eq!(read(&file(&cg, "memory.swappiness")), "10");
        cg.apply(&raw("cpu.shares", "512")).unwrap();
        assert_eq!(read(&file(&cg, "cpu.shares")), "512");
    }
    let err = cg.apply(&raw("memory.nosuch", "1")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no hierarchy of cgroup `app` has the file `memory.nosuch`"
    );
    // A value the kernel refuses names the file and the value.
    let err = cg.apply(&raw("pids.max", "lots")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot write `lots` to /sys/fs/cgroup/") && msg.contains("pids.max: "),
        "{msg}"
    );
    Outcome::Ran
}

/// A process placed before it execs: its memory, CPU time and task count show in the stats,
/// and the cgroup lists it, contains it and is populated; then kill_all and remove.
fn stats_show_a_placed_process() -> Outcome {
    let mut s = Scratch::host();
    let cg = s.tree.create("app", 0o700).unwrap();
    let pid = s.spawn("sh", &["-c", "read x; exec sleep 60"]);
    assert!(!cg.contains(pid).unwrap());
    cg.place(pid).unwrap();
    s.release(pid);
    assert!(wait_until(Duration::from_secs(5), || live_comm(pid)
        .as_deref()
        == Some("sleep")));
    // The kernel may publish CPU time a little later than the exec that used it (it read 0
    // once in CI, under load): poll for it.
    assert!(
        wait_until(Duration::from_secs(5), || cg
            .stats()
            .is_ok_and(|s| s.cpu_usage_ns.is_some_and(|n| n > 0))),
        "no CPU time: {:?}",
        cg.stats()
    );
    let stats = cg.stats().unwrap();
    assert_eq!(stats.pids_current, Some(1), "{stats:?}");
    assert!(stats.memory_bytes.unwrap() > 0, "{stats:?}");
    assert_eq!(stats.memory_limit, None);
    assert_eq!(stats.oom_kills, Some(0));
    assert_eq!(cg.procs().unwrap(), vec![pid]);
    assert!(cg.is_populated().unwrap());
    assert!(cg.contains(pid).unwrap());
    assert!(!cg.contains(std::process::id()).unwrap());

    cg.kill_all().unwrap();
    assert_eq!(s.wait(pid, Duration::from_secs(5)).signal(), Some(9));
    cg.remove().unwrap();
    for dir in cg.dirs() {
        assert!(!dir.exists(), "{} left", dir.display());
    }
    assert!(s.tree.names().unwrap().is_empty());
    Outcome::Ran
}

/// kill_all on this machine's layout (v2's cgroup.kill when the unified mount has it) kills the
/// process and the children it forked after being placed.
fn kill_all_kills_forked_children() -> Outcome {
    let mut s = Scratch::host();
    let cg = s.tree.create("app", 0o700).unwrap();
    let pid = s.spawn("sh", &["-c", "read x; sleep 60 & sleep 60"]);
    cg.place(pid).unwrap();
    s.release(pid);
    let sleeps = || {
        cg.procs()
            .unwrap()
            .into_iter()
            .filter(|p| live_comm(*p).as_deref() == Some("sleep"))
            .collect::<Vec<_>>()
    };
    assert!(wait_until(Duration::from_secs(5), || sleeps().len() == 2));
    let children = sleeps();
    cg.kill_all().unwrap();
    assert_eq!(s.wait(pid, Duration::from_secs(5)).signal(), Some(9));
    assert!(wait_until(Duration::from_secs(2), || cg
        .procs()
        .unwrap()
        .is_empty()));
    for child in children {
        assert!(
            wait_until(Duration::from_secs(2), || live_comm(child).is_none()),
            "forked child {child} survived"
        );
    }
    assert!(!cg.is_populated().unwrap());
    cg.remove().unwrap();
    Outcome::Ran
}

/// v1 alone (the cgroup2 mount left out): kill_all freezes, kills and thaws until a shell that
/// forks in a loop, against a pids limit, is gone.
fn kill_all_with_the_v1_freezer_stops_a_fork_loop() -> Outcome {
    let h = Hierarchies::discover().unwrap().without_v2();
    if h.v1("freezer").is_none() || h.v1("pids").is_none() {
        return Outcome::Skipped("no v1 freezer and pids hierarchies");
    }
    let mut s = Scratch::new(h);
    let cg = s.tree.create("bomb", 0o700).unwrap();
    cg.apply(&limits(None, None, Some(64))).unwrap();
    let pid = s.spawn(
        "bash",
        &["-c", "read x; while :; do sleep 60 & done 2>/dev/null"],
    );
    cg.place(pid).unwrap();
    s.release(pid);
    assert!(wait_until(Duration::from_secs(10), || cg
        .stats()
        .unwrap()
        .pids_current
        .unwrap()
        >= 60));
    cg.kill_all().unwrap();
    // Without cgroup.kill, kill_all returns once the cgroup is empty.
    assert!(cg.procs().unwrap().is_empty());
    assert_eq!(read(&file(&cg, "freezer.state")), "THAWED");
    assert_eq!(s.wait(pid, Duration::from_secs(5)).signal(), Some(9));
    cg.remove().unwrap();
    Outcome::Ran
}

/// The cgroup2 mount alone (on this machine /sys/fs/cgroup/unified, with no controllers):
/// placement, `populated`, cgroup.kill, removal.
fn v2_unified_place_populated_kill_remove() -> Outcome {
    let h = Hierarchies::discover().unwrap().only_v2();
    if h.v2().is_none() {
        return Outcome::Skipped("no cgroup2 mount");
    }
    let mut s = Scratch::new(h);
    let cg = s.tree.create("app", 0o700).unwrap();
    assert!(!cg.is_populated().unwrap());
    let pid = s.spawn("sh", &["-c", "read x; sleep 60 & sleep 60"]);
    cg.place(pid).unwrap();
    assert!(cg.is_populated().unwrap());
    assert!(cg.contains(pid).unwrap());
    let v2_dir = cg.dirs().next().unwrap().to_path_buf();
    assert!(v2_dir.join("cgroup.kill").exists());
    s.release(pid);
    assert!(wait_until(Duration::from_secs(5), || cg
        .procs()
        .unwrap()
        .len()
        >= 2));
    // cpu.stat is core in v2: usage is there without the cpu controller.
    assert!(cg.stats().unwrap().cpu_usage_ns.is_some());
    cg.kill_all().unwrap();
    assert_eq!(s.wait(pid, Duration::from_secs(5)).signal(), Some(9));
    assert!(wait_until(Duration::from_secs(2), || !cg
        .is_populated()
        .unwrap()));
    cg.remove().unwrap();
    assert!(!v2_dir.exists());
    Outcome::Ran
}

/// A process that allocates 200 MiB in a cgroup limited to 32 MiB (swap capped with it) is
/// OOM-killed, and the cgroup counts the kill.
fn oom_kill_in_a_memory_limited_cgroup() -> Outcome {
    let mut s = Scratch::host();
    let cg = s.tree.create("hog", 0o700).unwrap();
    cg.apply(&limits(Some(32 * MIB), None, None)).unwrap();
    let pid = s.spawn(
        "/usr/bin/python3",
        &[
            "-c",
            "import sys; sys.stdin.readline(); b = b'x' * (200 << 20); print(len(b))",
        ],
    );
    cg.place(pid).unwrap();
    s.release(pid);
    let status = s.wait(pid, Duration::from_secs(30));
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let stats = cg.stats().unwrap();
    assert!(stats.oom_kills.unwrap() >= 1, "{stats:?}");
    assert!(stats.memory_bytes.unwrap() <= 32 * MIB, "{stats:?}");
    cg.remove().unwrap();
    Outcome::Ran
}

/// A second `Tree` on the same root (an emperor that restarted) finds the running cgroup, its
/// process, and verifies the process is in it.
fn adoption_after_a_restart() -> Outcome {
    let mut s = Scratch::host();
    let pid = s.spawn("sh", &["-c", "read x; exec sleep 60"]);
    {
        let first = s.tree.create("kept", 0o700).unwrap();
        first.place(pid).unwrap();
        s.tree.create("empty", 0o700).unwrap();
    }
    let again = Tree::open(&s.hierarchies, s.tree.root_name()).unwrap();
    assert_eq!(again.names().unwrap(), vec!["empty", "kept"]);
    let kept = again.get("kept").unwrap().unwrap();
    assert!(kept.is_populated().unwrap());
    assert_eq!(kept.procs().unwrap(), vec![pid]);
    assert!(kept.contains(pid).unwrap());
    let empty = again.get("empty").unwrap().unwrap();
    assert!(!empty.is_populated().unwrap());
    assert!(!empty.contains(pid).unwrap());
    assert!(again.get("never").unwrap().is_none());
    Outcome::Ran
}

/// remove() retries for about a second while the cgroup is busy, then fails naming the
/// directory; once the process is killed it succeeds.
fn remove_waits_then_fails_while_a_process_lives() -> Outcome {
    let mut s = Scratch::host();
    let cg = s.tree.create("busy", 0o700).unwrap();
    let pid = s.spawn("sh", &["-c", "read x; exec sleep 60"]);
    cg.place(pid).unwrap();
    let started = Instant::now();
    let err = cg.remove().unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(900));
    let Error::RemoveDir { path, errno } = &err else {
        panic!("{err}");
    };
    assert_eq!(*errno, rustix::io::Errno::BUSY);
    assert!(path.starts_with("/sys/fs/cgroup"), "{err}");
    cg.kill_all().unwrap();
    cg.remove().unwrap();
    assert!(cg.dirs().all(|d| !d.exists()));
    Outcome::Ran
}

/// remove_root() leaves ROOT where a cgroup remains and removes it once it is the last.
fn remove_root_leaves_a_busy_root() -> Outcome {
    let s = Scratch::host();
    let cg = s.tree.create("app", 0o700).unwrap();
    s.tree.remove_root().unwrap();
    assert!(s.tree.dirs().all(Path::exists));
    cg.remove().unwrap();
    s.tree.remove_root().unwrap();
    assert!(s.tree.dirs().all(|d| !d.exists()));
    Outcome::Ran
}

/// uWSGI's raw `cgroup = DIR` and `cgroup-opt`: nested directories made with the mode, the pid
/// placed, an option written, an unknown option refused.
fn place_in_dir_and_write_in_dir() -> Outcome {
    use std::os::unix::fs::PermissionsExt as _;
    let mut s = Scratch::host();
    let Some(pids) = s
        .tree
        .dirs()
        .find(|d| d.join("pids.max").exists())
        .map(Path::to_path_buf)
    else {
        return Outcome::Skipped("no pids hierarchy");
    };
    let dir = pids.join("raw/a");
    let pid = s.spawn("sh", &["-c", "read x; exec sleep 60"]);
    place_in_dir(&dir, pid, 0o750).unwrap();
    let mode = fs_err::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o750);
    let proc_cgroup = fs_err::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/{}/raw/a", s.tree.root_name());
    assert!(
        proc_cgroup.lines().any(|l| l.ends_with(&want)),
        "{proc_cgroup}"
    );
    write_in_dir(&dir, "pids.max", "5").unwrap();
    assert_eq!(read(&dir.join("pids.max")), "5");
    let err = write_in_dir(&dir, "pids.nosuch", "5").unwrap_err();
    assert!(matches!(err, Error::UnknownFile { .. }), "{err}");
    Outcome::Ran
}
