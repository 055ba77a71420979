//! Real-kernel tests of the hooks (as root).
//!
//! Each test runs in a process of its own, in new mount and uts namespaces: this binary starts
//! itself again through `unshare --mount --uts` with `--child NAME DIR`. The child checks that
//! its mount namespace is not the host's before anything else, makes every mount private
//! (`mount::make_rprivate`, the jail's first step), mounts a tmpfs on DIR (an empty temporary
//! folder of the parent) and runs the test there; it reports through its exit status and
//! output. When it is gone its namespace is gone with every mount in it; the parent then checks
//! that DIR is still empty and that the host's mount table never showed it.
//!
//! This binary has its own `main` (no libtest harness): without root every test is reported as
//! ignored (needs root) instead of passing. A filter argument runs the tests whose name
//! contains it.

mod cases;

use std::io::Write as _;
use std::os::fd::AsFd as _;
use std::path::Path;
use std::process::{Command, ExitCode};

use liege_jail::mount::{self, Attr};

/// The parent's mount namespace, for the child to check it left it.
const HOST_MNTNS: &str = "LIEGE_T_HOOKS_HOST_MNTNS";

fn mnt_ns() -> String {
    fs_err::read_link("/proc/self/ns/mnt")
        .expect("read /proc/self/ns/mnt")
        .display()
        .to_string()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2], Path::new(&args[3]));
    }
    let filter: Option<&String> = args.iter().skip(1).find(|a| !a.starts_with('-'));
    let root = rustix::process::geteuid().is_root();
    let mut out = std::io::stdout();
    let selected: Vec<_> = cases::ALL
        .iter()
        .filter(|(name, _)| filter.is_none_or(|f| name.contains(f.as_str())))
        .collect();
    let _ = writeln!(out, "\nrunning {} tests", selected.len());
    let (mut passed, mut ignored, mut failed) = (0, 0, Vec::new());
    for (name, _) in selected {
        if !root {
            let _ = writeln!(out, "test {name} ... ignored (needs root)");
            ignored += 1;
            continue;
        }
        match parent(name) {
            Ok(()) => {
                let _ = writeln!(out, "test {name} ... ok");
                passed += 1;
            }
            Err(why) => {
                let _ = writeln!(out, "test {name} ... FAILED\n{why}");
                failed.push(*name);
            }
        }
    }
    let _ = writeln!(
        out,
        "\ntest result: {}. {passed} passed; {} failed; {ignored} ignored",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        let _ = writeln!(out, "failures: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}

/// Runs the test `name` in a child in new namespaces, then checks that nothing of it is
/// visible on the host.
fn parent(name: &str) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("liege-t-hooks-")
        .tempdir()
        .map_err(|e| format!("a temporary folder: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let output = Command::new("unshare")
        .args(["--mount", "--uts", "--propagation", "unchanged"])
        .arg(&exe)
        .args(["--child", name])
        .arg(dir.path())
        .env(HOST_MNTNS, mnt_ns())
        .output()
        .map_err(|e| format!("running unshare: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!("the child {}:\n{text}", output.status));
    }
    if !text.contains(&format!("child {name} done")) {
        return Err(format!("the child did not run the test:\n{text}"));
    }
    // Nothing leaked: the host never saw the child's mounts, and its folder is still empty.
    let shown = dir.path().display().to_string();
    let mountinfo = fs_err::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    if let Some(line) = mountinfo.lines().find(|l| l.contains(&shown)) {
        return Err(format!("a mount leaked to the host: {line}"));
    }
    let left: Vec<_> = fs_err::read_dir(dir.path())
        .map_err(|e| e.to_string())?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if !left.is_empty() {
        return Err(format!("files leaked to the host's {shown}: {left:?}"));
    }
    Ok(())
}

/// In the child: leave the host's mounts alone, then run the test on a tmpfs at `dir`.
fn child(name: &str, dir: &Path) -> ExitCode {
    let host = std::env::var(HOST_MNTNS).expect("the parent's mount namespace");
    assert_ne!(
        mnt_ns(),
        host,
        "the child is in the host's mount namespace: refusing to mount"
    );
    mount::make_rprivate().expect("make / private");
    let target = mount::open_nofollow(dir).expect("open the test folder");
    mount::new_fs("tmpfs", None, &[("mode", Some("755"))], Attr::NONE)
        .expect("a tmpfs")
        .attach(target.as_fd(), dir)
        .expect("mount the tmpfs");
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let Some((_, test)) = cases::ALL.iter().find(|(n, _)| *n == name) else {
        panic!("no test {name}");
    };
    test(dir);
    let _ = writeln!(std::io::stdout(), "child {name} done");
    ExitCode::SUCCESS
}
