//! The seccomp filters on the real kernel (as root): the probe (tests/probe/probe.c) makes each
//! call of the policies under each filter and without one, so every refusal is shown to be the
//! filter's, not a lack of privilege; and real programs still run under them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use liege_jail::seccomp::{self, Filter, SeccompError};

/// The probe, compiled once per test run (`cc -static -O2 -Wall -Werror`) into
/// `target/tmp/liege-probe/probe`: built under a name of its own, then renamed into place, so
/// test binaries running at the same time never see half a file.
fn probe() -> PathBuf {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/probe/probe.c");
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("liege-probe");
            fs_err::create_dir_all(&dir).unwrap();
            let building = dir.join(format!("probe.{}", std::process::id()));
            let out = Command::new("cc")
                .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
                .arg(&building)
                .arg(&source)
                .output()
                .expect("run cc");
            assert!(
                out.status.success(),
                "cc {}: {}",
                source.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let exe = dir.join("probe");
            fs_err::rename(&building, &exe).unwrap();
            exe
        })
        .clone()
}

/// Runs `cmd` with `filters` installed (and no_new_privs set) between fork and exec, none when
/// empty, and returns its standard output; it must exit 0.
fn output(mut cmd: Command, filters: &[Filter]) -> String {
    cmd.stdin(Stdio::null());
    if !filters.is_empty() {
        seccomp::install_on_exec(&mut cmd, filters);
    }
    let out = cmd.output().expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} under {filters:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The probe's report for `args` under `filters`: each check's result (`ok`, `EPERM`...).
fn run_probe(args: &[&str], filters: &[Filter]) -> BTreeMap<String, String> {
    let mut cmd = Command::new(probe());
    cmd.args(args);
    let stdout = output(cmd, filters);
    let mut results = BTreeMap::new();
    for line in stdout.lines() {
        let mut words = line.split(' ');
        let (Some(check), Some(result)) = (words.next(), words.next()) else {
            panic!("probe {args:?}: a line without a result: {line:?}");
        };
        assert!(
            results
                .insert(check.to_owned(), result.to_owned())
                .is_none(),
            "probe {args:?}: {check} reported twice"
        );
    }
    results
}

fn assert_results(
    what: &str,
    results: &BTreeMap<String, String>,
    checks: &[&str],
    want: impl Fn(&str) -> bool,
) {
    for check in checks {
        let got = results
            .get(*check)
            .unwrap_or_else(|| panic!("{what}: the probe did not report {check}: {results:?}"));
        assert!(want(got), "{what}: {check} answered {got}");
    }
}

/// The probe's `syscalls` checks that root passes without a filter: refused under it, they
/// can only have been refused by the filter.
const ROOT_PASSES: &[&str] = &[
    "mount_setattr", // attributes all zero: a no-op the kernel accepts before looking up the path
    "unshare:user",
    "unshare:ns",
    "unshare:net",
    "unshare:pid",
    "unshare:ipc",
    "unshare:uts",
    "unshare:cgroup",
    "unshare:time",
    "setns",
    "clone:user",
    "clone:ns",
    "clone:pid",
    "clone:net",
    "clone:user-high",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "userfaultfd",
    "settimeofday",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "io_uring_setup",
    "personality:no-randomize",
    "personality:high",
    "socket:packet",
    "socket:packet-high",
    "socket:inet-packet",
    "socket:inet-raw",
    "socket:inet-raw-flags",
    "socket:inet6-raw",
    "socket:netlink-audit",
    "socket:netlink-uevent",
    "ioctl:tiocsti",
    "ioctl:tiocsti-high",
];

/// The other refused checks: without the filter they fail otherwise than with EPERM (a path
/// that does not exist, an invalid argument, a call this kernel lacks), so EPERM under it is
/// still the filter's.
const ROOT_FAILS_OTHERWISE: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "keyctl",
    "add_key",
    "request_key",
    "open_by_handle_at",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "quotactl_fd",
    "clock_settime",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "io_uring_enter",
    "io_uring_register",
    "ioctl:tioclinux",
];

/// Checks that must pass under the default filter too: what apps do every day.
const STILL_ALLOWED: &[&str] = &[
    "unshare:files",
    "unshare:fs",
    "clone:plain",
    "personality:query",
    "personality:linux",
    "socket:netlink-route",
    "socket:inet-stream",
    "socket:inet-dgram",
    "socket:unix",
    "ioctl:tiocgwinsz",
    "getpid",
    "open",
    "fork",
];

/// clone3 answers ENOSYS, so that libraries fall back to clone.
const NOT_IMPLEMENTED: &[&str] = &["clone3", "clone3:user"];

#[test]
fn the_default_filter_refuses_each_call_of_its_policy_and_nothing_else() {
    let bare = run_probe(&["syscalls"], &[]);
    let filtered = run_probe(&["syscalls"], &[Filter::Default]);
    // Every check the probe makes has an expectation here.
    let known: Vec<&str> = [
        ROOT_PASSES,
        ROOT_FAILS_OTHERWISE,
        STILL_ALLOWED,
        NOT_IMPLEMENTED,
    ]
    .concat();
    for check in filtered.keys() {
        assert!(
            known.contains(&check.as_str()),
            "no expectation for the probe's {check}"
        );
    }
    assert_eq!(bare.len(), filtered.len());

    assert_results("no filter", &bare, ROOT_PASSES, |r| r == "ok");
    assert_results("no filter", &bare, ROOT_FAILS_OTHERWISE, |r| {
        r != "ok" && r != "EPERM"
    });
    assert_results("no filter", &bare, STILL_ALLOWED, |r| r == "ok");
    assert_results("no filter", &bare, NOT_IMPLEMENTED, |r| r == "ok");

    assert_results("default", &filtered, ROOT_PASSES, |r| r == "EPERM");
    assert_results("default", &filtered, ROOT_FAILS_OTHERWISE, |r| r == "EPERM");
    assert_results("default", &filtered, STILL_ALLOWED, |r| r == "ok");
    assert_results("default", &filtered, NOT_IMPLEMENTED, |r| r == "ENOSYS");

    // deny-wx alone leaves all of these alone.
    let wx_only = run_probe(&["syscalls"], &[Filter::DenyWx]);
    assert_eq!(wx_only, bare);
}

#[test]
fn the_i386_and_x32_entries_are_refused_outright() {
    let bare = run_probe(&["i386"], &[]);
    assert_eq!(bare["i386:getpid"], "ok");
    assert_eq!(bare["i386:mount"], "ENOENT");
    // x32 may be compiled out of the kernel (ENOSYS) or not; either way not EPERM.
    let bare_x32 = run_probe(&["x32"], &[]);
    assert_results("no filter", &bare_x32, &["x32:getpid", "x32:mount"], |r| {
        r != "EPERM"
    });
    for filter in Filter::ALL {
        let i386 = run_probe(&["i386"], &[filter]);
        assert_results(filter.name(), &i386, &["i386:getpid", "i386:mount"], |r| {
            r == "EPERM"
        });
        let x32 = run_probe(&["x32"], &[filter]);
        assert_results(filter.name(), &x32, &["x32:getpid", "x32:mount"], |r| {
            r == "EPERM"
        });
    }
}

#[test]
fn deny_wx_refuses_writable_code_only_when_installed() {
    let refused = ["mmap-rwx", "mprotect-rx", "pkey_mprotect-rx", "shmat-exec"];
    let allowed = ["mmap-rw", "mmap-rx"];
    for filters in [&[][..], &[Filter::Default][..]] {
        let wx = run_probe(&["wx"], filters);
        assert_results(&format!("{filters:?}"), &wx, &refused, |r| r == "ok");
        assert_results(&format!("{filters:?}"), &wx, &allowed, |r| r == "ok");
    }
    for filters in [
        &[Filter::DenyWx][..],
        &[Filter::Default, Filter::DenyWx][..],
    ] {
        let wx = run_probe(&["wx"], filters);
        assert_results(&format!("{filters:?}"), &wx, &refused, |r| r == "EPERM");
        assert_results(&format!("{filters:?}"), &wx, &allowed, |r| r == "ok");
    }
}

#[test]
fn the_single_commands_report_the_filter_s_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().to_str().unwrap();
    let both = [Filter::Default, Filter::DenyWx];
    let unshare = run_probe(&["unshare", "user"], &both);
    assert_eq!(unshare["unshare:user"], "EPERM");
    let mount = run_probe(&["mount-tmpfs", target], &both);
    assert_eq!(mount["mount-tmpfs"], "EPERM");
    let setns = run_probe(&["setns", "/proc/self/ns/net"], &[]);
    assert_eq!(setns["setns"], "ok");
    let setns = run_probe(&["setns", "/proc/self/ns/net"], &both);
    assert_eq!(setns["setns"], "EPERM");
    let tty = run_probe(&["tiocsti"], &both);
    assert_eq!(tty["tiocsti"], "EPERM");
    assert_eq!(tty["tioclinux"], "EPERM");
    assert_eq!(tty["tiocsti-high"], "EPERM");
    // Root attaching to its own parent (this test) is what the filter alone stops.
    let me = std::process::id().to_string();
    let ptrace = run_probe(&["ptrace", &me], &both);
    assert_eq!(ptrace["ptrace-attach"], "EPERM");
    // Not the filter's: root may still mknod, write, and read its capabilities.
    let node = dir.path().join("null");
    let mknod = run_probe(&["mknod", node.to_str().unwrap()], &both);
    assert_eq!(mknod["mknod"], "ok");
    let caps = run_probe(&["caps"], &both);
    assert_eq!(caps["cap:eff"], "ok");
}

/// A real program: Python with threads (glibc's pthread_create tries clone3 first), a
/// subprocess (posix_spawn, the same), a fork and a name lookup, under the default filter, and
/// seeing the filter at work from inside.
#[test]
fn python_runs_under_the_default_filter() {
    let script = r#"
import ctypes, os, socket, subprocess, threading
results = []
threads = [threading.Thread(target=lambda i=i: results.append(i * i)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print("threads", sorted(results))
print("subprocess", subprocess.run(["/bin/echo", "hello"], capture_output=True, text=True).stdout.strip())
pid = os.fork()
if pid == 0:
    os._exit(7)
print("fork", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
print("lookup", socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)[0][4])
status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
print("seccomp", status["Seccomp"].strip(), "nnp", status["NoNewPrivs"].strip())
libc = ctypes.CDLL(None, use_errno=True)
print("unshare", libc.unshare(0x10000000), os.strerror(ctypes.get_errno()))
"#;
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", script]);
    let stdout = output(cmd, &[Filter::Default]);
    assert_eq!(
        stdout,
        "threads [0, 1, 4, 9]\n\
         subprocess hello\n\
         fork 7\n\
         lookup ('127.0.0.1', 80)\n\
         seccomp 2 nnp 1\n\
         unshare -1 Operation not permitted\n"
    );
}

/// deny-wx does not stop an ordinary interpreter (no JIT) either.
#[test]
fn python_runs_under_both_filters() {
    let script = "import subprocess, threading, hashlib, json\n\
                  t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n\
                  print(subprocess.run(['/bin/true']).returncode, hashlib.sha256(b'').hexdigest()[:8])";
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", script]);
    let stdout = output(cmd, &[Filter::Default, Filter::DenyWx]);
    assert_eq!(stdout, "thread\n0 e3b0c442\n");
}

/// `install` on the calling thread, in a copy of this test binary (the filter cannot be taken
/// off again): refused without no_new_privs nor CAP_SYS_ADMIN, then installed, then refusing.
#[test]
fn install_filters_the_calling_thread() {
    const CHILD: &str = "LIEGE_TEST_SECCOMP_INSTALL_CHILD";
    if std::env::var_os(CHILD).is_some() {
        install_in_this_process();
        return;
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "install_filters_the_calling_thread",
        "--test-threads=1",
        "--nocapture",
    ])
    .env(CHILD, "1");
    let stdout = output(cmd, &[]);
    assert!(stdout.contains("installed and refusing"), "{stdout}");
    assert!(stdout.contains("test result: ok. 1 passed"), "{stdout}");
}

// The marker line tells the parent that this side, not another copy of it, ran.
#[allow(clippy::print_stdout)]
fn install_in_this_process() {
    use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
    // Without CAP_SYS_ADMIN and without no_new_privs the kernel refuses.
    let mut caps = capabilities(None).unwrap();
    caps.effective.remove(CapabilitySet::SYS_ADMIN);
    set_capabilities(None, caps).unwrap();
    let err = seccomp::install(&[Filter::Default]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot install the seccomp filter `default`: Permission denied (os error 13)"
    );
    let SeccompError::Install { filter, source } = err;
    assert_eq!(
        (filter, source.raw_os_error()),
        (Filter::Default, Some(libc::EACCES))
    );

    rustix::thread::set_no_new_privs(true).unwrap();
    seccomp::install(&[Filter::Default, Filter::DenyWx]).unwrap();
    let packet = rustix::net::socket(
        rustix::net::AddressFamily::PACKET,
        rustix::net::SocketType::RAW,
        None,
    );
    assert_eq!(packet.unwrap_err(), rustix::io::Errno::PERM);
    let mount = rustix::mount::mount(
        "none",
        "/",
        "tmpfs",
        rustix::mount::MountFlags::empty(),
        None,
    );
    assert_eq!(mount.unwrap_err(), rustix::io::Errno::PERM);
    assert!(rustix::process::getpid().as_raw_nonzero().get() > 0);
    let status = fs_err::read_to_string("/proc/thread-self/status").unwrap();
    assert!(status.contains("Seccomp:\t2\n"), "{status}");
    assert!(status.contains("Seccomp_filters:\t2\n"), "{status}");
    println!("installed and refusing");
}
