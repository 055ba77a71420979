//! Test scaffolding: a scratch cgroup root that cleans up after itself, processes that wait to
//! be released, polling.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use liege_cgroups::{Cgroup, Hierarchies, Tree};

/// How a test ended when it did not panic.
#[derive(Debug)]
pub(crate) enum Outcome {
    Ran,
    Skipped(&'static str),
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The prefix of every root this run makes.
pub(crate) fn prefix() -> String {
    format!("liege-test-{}-", std::process::id())
}

/// A cgroup root of its own, `liege-test-PID-N`, and the processes a test started. Dropping it
/// (also while a test panics) kills those processes and everything in its cgroups, then removes
/// the cgroups and the root.
pub(crate) struct Scratch {
    pub(crate) tree: Tree,
    pub(crate) hierarchies: Hierarchies,
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Scratch {
    pub(crate) fn new(hierarchies: Hierarchies) -> Self {
        let root = format!("{}{}", prefix(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let tree = Tree::open(&hierarchies, &root).expect("open the scratch root");
        Self {
            tree,
            hierarchies,
            children: Vec::new(),
        }
    }

    /// Every hierarchy of this machine.
    pub(crate) fn host() -> Self {
        Self::new(Hierarchies::discover().expect("discover hierarchies"))
    }

    /// Starts `program args` with a piped stdin and returns its pid; the program is expected to
    /// wait for a line on stdin ([`Scratch::release`]) before it does what is tested, so that it
    /// can be placed in a cgroup first.
    pub(crate) fn spawn(&mut self, program: &str, args: &[&str]) -> u32 {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let stdin = child.stdin.take();
        let pid = child.id();
        self.children.push((child, stdin));
        pid
    }

    /// Sends the line the process `pid` waits for.
    pub(crate) fn release(&mut self, pid: u32) {
        let (_, stdin) = self
            .children
            .iter_mut()
            .find(|(c, _)| c.id() == pid)
            .expect("a child of this test");
        let stdin = stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("release the child");
        stdin.flush().expect("flush");
    }

    /// Waits up to `timeout` for the process `pid` to end and returns its status.
    pub(crate) fn wait(&mut self, pid: u32, timeout: Duration) -> ExitStatus {
        let (child, _) = self
            .children
            .iter_mut()
            .find(|(c, _)| c.id() == pid)
            .expect("a child of this test");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "process {pid} still running");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for (child, _) in &mut self.children {
            let _ = child.kill();
        }
        let names = self.tree.names().unwrap_or_default();
        let cgroups: Vec<Cgroup> = names
            .iter()
            .filter_map(|n| self.tree.get(n).ok().flatten())
            .collect();
        for cg in &cgroups {
            let _ = cg.kill_all();
        }
        for (child, _) in &mut self.children {
            let _ = child.wait();
        }
        for cg in &cgroups {
            let _ = cg.remove();
        }
        let _ = self.tree.remove_root();
    }
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes; whether it held.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The file `name` in whichever directory of `cg` has it.
pub(crate) fn file(cg: &Cgroup, name: &str) -> PathBuf {
    cg.dirs()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no directory of {} has {name}", cg.name()))
}

/// The trimmed content of `path`.
pub(crate) fn read(path: &Path) -> String {
    fs_err::read_to_string(path)
        .expect("read a cgroup file")
        .trim()
        .to_string()
}

/// The command name of the process `pid`, or `None` once it is gone or a zombie.
pub(crate) fn live_comm(pid: u32) -> Option<String> {
    let stat = fs_err::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(") ")?;
    if rest.starts_with('Z') {
        return None;
    }
    Some(head.split_once(" (")?.1.to_string())
}

/// Directories named `liege-test-PID-*` (this run's) in /sys/fs/cgroup (a pure v2 host) and
/// under /sys/fs/cgroup/* (v1 and hybrid hosts).
pub(crate) fn leftovers() -> Vec<PathBuf> {
    let prefix = prefix();
    let mut left = Vec::new();
    let top = Path::new("/sys/fs/cgroup");
    let Ok(mounts) = fs_err::read_dir(top) else {
        return left;
    };
    let dirs = std::iter::once(top.to_path_buf()).chain(mounts.flatten().map(|m| m.path()));
    for dir in dirs {
        let Ok(entries) = fs_err::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                left.push(e.path());
            }
        }
    }
    left
}
