//! Real-kernel tests of `liege-cgroups` on this machine's hierarchies (as root).
//!
//! Each test works under its own root `liege-test-PID-N` in every hierarchy; a [`Scratch`] guard
//! kills every process it started and everything in its cgroups, then removes them, even when the
//! test panics. After the tests, `main` checks that no `liege-test-PID-*` directory is left under
//! /sys/fs/cgroup and fails if one is.
//!
//! This binary has its own `main` (no libtest harness): without root every test is reported as
//! ignored (needs root), and the v2 test as ignored when no cgroup2 is mounted, instead of
//! returning early and passing. A filter argument runs the tests whose name contains it.

mod cases;
mod support;

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let root = rustix::process::geteuid().is_root();
    let mut out = std::io::stdout();
    let selected: Vec<_> = cases::ALL
        .iter()
        .filter(|(name, _)| filter.as_deref().is_none_or(|f| name.contains(f)))
        .collect();
    let _ = writeln!(out, "\nrunning {} tests", selected.len());
    let mut ignored = 0;
    let mut handles = Vec::new();
    for (name, f) in selected {
        if !root {
            let _ = writeln!(out, "test {name} ... ignored (needs root)");
            ignored += 1;
            continue;
        }
        let f = *f;
        let handle = std::thread::Builder::new()
            .name((*name).to_string())
            .spawn(f)
            .expect("spawn a test thread");
        handles.push((*name, handle));
    }
    let mut passed = 0;
    let mut failed = Vec::new();
    for (name, handle) in handles {
        match handle.join() {
            Ok(support::Outcome::Ran) => {
                let _ = writeln!(out, "test {name} ... ok");
                passed += 1;
            }
            Ok(support::Outcome::Skipped(why)) => {
                let _ = writeln!(out, "test {name} ... ignored ({why})");
                ignored += 1;
            }
            Err(_) => {
                let _ = writeln!(out, "test {name} ... FAILED");
                failed.push(name.to_string());
            }
        }
    }
    if root {
        let left = support::leftovers();
        if !left.is_empty() {
            let _ = writeln!(out, "left behind: {left:?}");
            failed.push("nothing left under /sys/fs/cgroup".to_string());
        }
    }
    let _ = writeln!(
        out,
        "\ntest result: {}. {passed} passed; {} failed; {ignored} ignored",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        let _ = writeln!(out, "failures: {failed:?}");
        ExitCode::FAILURE
    }
}
