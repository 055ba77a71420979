//! Spawning a vassal master for real (as root): namespaces, placement before the child runs, the
//! fd map, and each way a spawn fails leaving no child behind. libtest runs these on threads;
//! that is fine because the spawned child allocates nothing before it execs.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use liege_emperor::spawn::{ChildStep, SpawnError, SpawnRequest, Spawned, spawn};
use liege_sys::Namespaces;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;
use rustix::process::{WaitId, WaitIdOptions};

fn open(path: &str, flags: OFlags) -> OwnedFd {
    rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty())
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn sh_args(script: &str) -> Vec<CString> {
    vec![
        c"liege [vassal test]".into(),
        c"-c".into(),
        CString::new(script).unwrap(),
    ]
}

/// Waits for the spawned child to exit and returns its exit code.
fn wait_exit(spawned: &Spawned) -> Option<i32> {
    rustix::process::waitid(WaitId::PidFd(spawned.pidfd.as_fd()), WaitIdOptions::EXITED)
        .expect("waitid")
        .expect("an exited child")
        .exit_status()
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo`.
fn pidfd_pid(pidfd: &OwnedFd) -> i32 {
    let path = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let text = fs_err::read_to_string(&path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .unwrap_or_else(|| panic!("{path}: no Pid line in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Runs `/bin/sh -c script` as a vassal named `name` in `namespaces`, with `/dev/null` at 0 and
/// a pipe at 1 and 2 plus `extra` fds; returns the spawn's result and, when it spawned, what it
/// printed and its exit code.
fn run(
    name: &str,
    namespaces: &str,
    script: &str,
    extra: &[(&OwnedFd, i32)],
    place: &mut dyn FnMut(i32) -> Result<(), String>,
) -> Result<(Spawned, String, Option<i32>), SpawnError> {
    let exe = open("/bin/sh", OFlags::PATH);
    let null = open("/dev/null", OFlags::RDWR);
    let (out_read, out_write) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).unwrap();
    let mut fds = vec![
        (null.as_fd(), 0),
        (out_write.as_fd(), 1),
        (out_write.as_fd(), 2),
    ];
    fds.extend(extra.iter().map(|&(fd, target)| (fd.as_fd(), target)));
    let req = SpawnRequest {
        name,
        namespaces: Namespaces::parse(namespaces).unwrap(),
        exe: exe.as_fd(),
        args: sh_args(script),
        env: vec![
            c"PATH=/usr/bin:/bin".into(),
            c"LIEGE_VASSAL_NAME=test".into(),
        ],
        cwd: None,
        fds,
    };
    let spawned = spawn(&req, place)?;
    drop(req);
    drop(out_write);
    let mut out = String::new();
    std::fs::File::from(out_read)
        .read_to_string(&mut out)
        .unwrap();
    let code = wait_exit(&spawned);
    Ok((spawned, out, code))
}

/// A pids cgroup made for one test, removed when dropped.
struct TestCgroup(PathBuf);

impl TestCgroup {
    fn new(tag: &str) -> TestCgroup {
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/pids/liege-spawn-test-{}-{tag}",
            std::process::id()
        ));
        fs_err::create_dir(&dir).unwrap();
        TestCgroup(dir)
    }

    fn place(&self, pid: i32) -> Result<(), String> {
        fs_err::write(self.0.join("cgroup.procs"), pid.to_string()).map_err(|e| e.to_string())
    }

    fn name(&self) -> &str {
        self.0.file_name().unwrap().to_str().unwrap()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Its processes are reaped by now, so it is empty. A failed removal fails the test,
        // unless the test is failing already.
        let removed = fs_err::remove_dir(&self.0);
        if !std::thread::panicking() {
            removed.unwrap();
        }
    }
}

/// The path of the pids line of a `/proc/PID/cgroup` text.
fn pids_cgroup(text: &str) -> &str {
    text.lines()
        .find_map(|l| l.split_once(":pids:").map(|(_, path)| path))
        .unwrap_or_else(|| panic!("no pids line in {text}"))
}

#[test]
fn a_vassal_is_pid_1_named_after_itself_and_placed_before_it_runs() {
    let cgroup = TestCgroup::new("placed");
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let mut placed = None;
    let mut place = |pid: i32| {
        placed = Some(pid);
        fs_err::write(&pid_file, pid.to_string()).map_err(|e| e.to_string())?;
        cgroup.place(pid)
    };
    let script = "echo $$ $(uname -n); cat /proc/self/cgroup; \
                  awk 'NR > 2 { print $1 }' /proc/net/dev";
    let (spawned, out, code) = run("alice", "pid,uts,net,ipc,fs", script, &[], &mut place).unwrap();
    assert_eq!(code, Some(0), "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("1 alice"), "{out}");
    // No cgroup namespace: the path is the one the emperor wrote the pid into, before the
    // child ran anything.
    assert_eq!(pids_cgroup(&out), format!("/{}", cgroup.name()), "{out}");
    assert_eq!(out.lines().last(), Some("lo:"), "only loopback: {out}");
    assert_eq!(placed, Some(spawned.pid));
    assert_eq!(pidfd_pid(&spawned.pidfd), -1, "reaped");
    assert_eq!(
        fs_err::read_to_string(&pid_file).unwrap(),
        spawned.pid.to_string()
    );
    assert_ne!(rustix::system::uname().nodename().to_bytes(), b"alice");
}

#[test]
fn place_sees_the_pid_the_pidfd_names() {
    let mut placed = None;
    let exe = open("/bin/sh", OFlags::PATH);
    let req = SpawnRequest {
        name: "bob",
        namespaces: Namespaces::parse("pid").unwrap(),
        exe: exe.as_fd(),
        args: sh_args("exit 3"),
        env: vec![],
        cwd: None,
        fds: vec![],
    };
    let spawned = spawn(&req, &mut |pid| {
        placed = Some(pid);
        Ok(())
    })
    .unwrap();
    assert_eq!(placed, Some(spawned.pid));
    assert_eq!(pidfd_pid(&spawned.pidfd), spawned.pid);
    assert_eq!(wait_exit(&spawned), Some(3));
}

#[test]
fn with_a_cgroup_namespace_the_vassal_sees_its_own_cgroup_as_the_root() {
    let cgroup = TestCgroup::new("cgroupns");
    let mut place = |pid: i32| cgroup.place(pid);
    let (_, out, code) = run(
        "carol",
        "pid,uts,net,ipc,fs,cgroup",
        "cat /proc/self/cgroup",
        &[],
        &mut place,
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(pids_cgroup(&out), "/", "{out}");
}

#[test]
fn a_failed_place_kills_and_reaps_the_child() {
    let mut pidfd = None;
    let mut place = |pid: i32| {
        pidfd = Some(
            rustix::process::pidfd_open(
                rustix::process::Pid::from_raw(pid).unwrap(),
                rustix::process::PidfdFlags::empty(),
            )
            .unwrap(),
        );
        Err("cgroup liege/dave: no space left".to_string())
    };
    let err = run("dave", "pid,uts,net,ipc,fs", "exit 0", &[], &mut place).unwrap_err();
    let SpawnError::Place { pid, ref message } = err else {
        panic!("{err}");
    };
    assert_eq!(message, "cgroup liege/dave: no space left");
    assert_eq!(
        err.to_string(),
        format!("placing pid {pid}: cgroup liege/dave: no space left")
    );
    // Reaped: the pidfd opened while it lived finds no child to wait for.
    let pidfd = pidfd.unwrap();
    assert_eq!(
        rustix::process::waitid(
            WaitId::PidFd(pidfd.as_fd()),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG
        )
        .unwrap_err(),
        Errno::CHILD
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn exec_of_a_file_that_is_not_executable_is_reported_as_the_exec_step() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("liege");
    fs_err::write(&path, "#!/bin/sh\n").unwrap();
    let exe = open(path.to_str().unwrap(), OFlags::PATH);
    let req = SpawnRequest {
        name: "erin",
        namespaces: Namespaces::parse("pid,uts,net,ipc,fs").unwrap(),
        exe: exe.as_fd(),
        args: sh_args("exit 0"),
        env: vec![],
        cwd: None,
        fds: vec![],
    };
    let err = spawn(&req, &mut |_| Ok(())).unwrap_err();
    let SpawnError::Child { pid, step, errno } = err else {
        panic!("{err}");
    };
    assert_eq!(step, ChildStep::Exec);
    assert_eq!(errno, Errno::ACCESS);
    assert_eq!(
        err.to_string(),
        format!("pid {pid} failed exec: Permission denied (os error 13)")
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[test]
fn a_failed_setup_step_is_reported_with_its_errno() {
    let long = "x".repeat(65);
    let exe = open("/bin/sh", OFlags::PATH);
    let req = SpawnRequest {
        name: &long,
        namespaces: Namespaces::parse("uts").unwrap(),
        exe: exe.as_fd(),
        args: sh_args("exit 0"),
        env: vec![],
        cwd: None,
        fds: vec![],
    };
    let err = spawn(&req, &mut |_| Ok(())).unwrap_err();
    assert!(
        matches!(
            err,
            SpawnError::Child {
                step: ChildStep::Hostname,
                errno: Errno::INVAL,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn fds_land_on_their_targets_even_when_sources_sit_on_other_targets() {
    // Two descriptors swapped: each source's number is the other's target. A third, left
    // inheritable by this process, is not in the map and must not reach the vassal.
    let zero = rustix::io::fcntl_dupfd_cloexec(open("/dev/zero", OFlags::RDONLY), 20).unwrap();
    let full = rustix::io::fcntl_dupfd_cloexec(open("/dev/full", OFlags::RDONLY), 20).unwrap();
    let stray = rustix::io::fcntl_dupfd_cloexec(open("/dev/null", OFlags::RDONLY), 20).unwrap();
    rustix::io::fcntl_setfd(&stray, rustix::io::FdFlags::empty()).unwrap();
    let (z, f, s) = (zero.as_raw_fd(), full.as_raw_fd(), stray.as_raw_fd());
    let script = format!(
        "readlink /proc/self/fd/{z} /proc/self/fd/{f}; \
         test -e /proc/self/fd/{s} && echo stray; \
         ls /proc/self/fd | sort -n | tr '\\n' ' '"
    );
    let mut place = |_| Ok(());
    let (_, out, code) = run(
        "frank",
        "none",
        &script,
        &[(&zero, f), (&full, z)],
        &mut place,
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("/dev/full"), "{out}");
    assert_eq!(lines.next(), Some("/dev/zero"), "{out}");
    // ls's own descriptors: 0-2, the two swapped, and the one ls opens for the directory.
    let (low, high) = (z.min(f), z.max(f));
    assert_eq!(
        lines.next(),
        Some(format!("0 1 2 3 {low} {high} ").as_str()),
        "{out}"
    );
    drop(stray);
}

#[test]
fn a_map_covering_the_emperors_own_descriptors_leaves_the_exec_and_its_report_intact() {
    // Every number up to 63 is a target, so whatever numbers spawn's own pipes and this test's
    // binary fd got, the map covers them.
    let null = open("/dev/null", OFlags::RDWR);
    let targets = |exe: &OwnedFd| {
        assert!(exe.as_raw_fd() < 64, "{}", exe.as_raw_fd());
        (0..64).map(|n| (null.as_fd(), n)).collect::<Vec<_>>()
    };
    let sh = open("/bin/sh", OFlags::PATH);
    let req = SpawnRequest {
        name: "hank",
        namespaces: Namespaces::empty(),
        exe: sh.as_fd(),
        args: sh_args("exit 4"),
        env: vec![],
        cwd: None,
        fds: targets(&sh),
    };
    let spawned = spawn(&req, &mut |_| Ok(())).unwrap();
    assert_eq!(wait_exit(&spawned), Some(4));

    // A failing exec is still reported on the error pipe, not written over a target.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("liege");
    fs_err::write(&path, "not a binary").unwrap();
    let bad = open(path.to_str().unwrap(), OFlags::PATH);
    let req = SpawnRequest {
        exe: bad.as_fd(),
        fds: targets(&bad),
        ..req
    };
    let err = spawn(&req, &mut |_| Ok(())).unwrap_err();
    assert!(
        matches!(
            err,
            SpawnError::Child {
                step: ChildStep::Exec,
                errno: Errno::ACCESS,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_map_giving_one_number_twice_is_refused_before_any_clone() {
    let exe = open("/bin/sh", OFlags::PATH);
    let null = open("/dev/null", OFlags::RDONLY);
    let req = SpawnRequest {
        name: "gina",
        namespaces: Namespaces::empty(),
        exe: exe.as_fd(),
        args: sh_args("exit 0"),
        env: vec![],
        cwd: None,
        fds: vec![(null.as_fd(), 1), (null.as_fd(), 3), (null.as_fd(), 1)],
    };
    let mut called = false;
    let err = spawn(&req, &mut |_| {
        called = true;
        Ok(())
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "the fd map gives descriptor 1 twice");
    assert!(!called);
}
