//! Whole-process tests of the master: real processes, a fake worker executable
//! (`fake_worker.py`, stdlib Python), loopback sockets only; and the master as an emperor's
//! vassal and under `uid`, with the real `liege` and `liege-python` (`vassal`).
//!
//! This binary has its own `main` (no libtest harness) because it plays two parts:
//! - run by `cargo test`, it runs the tests below (a filter argument picks those whose name
//!   contains it);
//! - run with `--as-master ARGS...` by a test, it is the master: it resolves ARGS as `liege`
//!   does and calls `liege_master::run`, single-threaded, as the real binary does.
//!
//! The suite runs as root in CI; without root the tests that need a new pid namespace are
//! reported as ignored.
//!
//! Modules:
//! - `support`: starting a master, HTTP and stats clients, cleanup guards;
//! - `cases`: the tests;
//! - `vassal`: the tests of a vassal's master (this binary plays the emperor) and of `uid`,
//!   through the real binaries (`cargo build --workspace --bins` first).

mod cases;
mod support;
mod vassal;

use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(support::AS_MASTER) {
        return support::as_master(&args[1..]);
    }
    let filter: Option<&str> = args
        .iter()
        .map(String::as_str)
        .find(|a| !a.starts_with('-'));
    let root = rustix::process::geteuid().is_root();
    let mut out = std::io::stdout();
    let (tests, ignored): (Vec<_>, Vec<_>) = cases::ALL
        .iter()
        .filter(|(name, _)| filter.is_none_or(|f| name.contains(f)))
        .partition(|(name, _)| root || !cases::NEEDS_ROOT.contains(name));
    let _ = writeln!(out, "\nrunning {} tests", tests.len() + ignored.len());
    for (name, _) in &ignored {
        let _ = writeln!(out, "test {name} ... ignored (needs root)");
    }
    // In parallel: each test runs its own master on its own ports and temp dir.
    let handles: Vec<_> = tests
        .iter()
        .map(|(name, f)| {
            let f = *f;
            (
                *name,
                std::thread::Builder::new()
                    .name((*name).to_string())
                    .spawn(f)
                    .expect("spawn a test thread"),
            )
        })
        .collect();
    let mut failed = Vec::new();
    for (name, h) in handles {
        let ok = h.join().is_ok();
        let _ = writeln!(out, "test {name} ... {}", if ok { "ok" } else { "FAILED" });
        if !ok {
            failed.push(name);
        }
    }
    let _ = writeln!(
        out,
        "\ntest result: {}. {} passed; {} failed; {} ignored",
        if failed.is_empty() { "ok" } else { "FAILED" },
        tests.len() - failed.len(),
        failed.len(),
        ignored.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
