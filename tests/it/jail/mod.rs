//! The jail, proved from inside real vassals (issue 5; ../shared/security-checklist.md section
//! 3): two customers (uids) each in a jailed vassal (`jail-root = host`) running `shell.py`, a
//! test-only app that runs the command it is sent, and `probe` (tests/probe/probe.c), a small
//! static program that makes the system calls a shell cannot.
//!
//! - `inside`: processes, files, sockets, mounts, devices, /proc, capabilities, seccomp,
//!   rlimits, descriptors, as seen and tried from inside vassal `a`.
//! - `host_side`: what the host refuses to trust in a vassal's run directory, and a symlink
//!   planted in a home that must not redirect a root mount.
//! - `uwsgi_style`: a vassal jailed the uWSGI way, with `pivot-root` and `hook-*` lines.

mod host_side;
mod inside;
mod uwsgi_style;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::common::repo;
use crate::emperor::guard::Emperor;
use crate::emperor::isolation::sh;
use crate::server::Addr;

/// The probe, built once per test run (`cc -static`), so it runs in any jail root.
fn probe_binary() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("liege-it-probe");
        let status = std::process::Command::new("cc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(repo().join("tests/probe/probe.c"))
            .status()
            .expect("run cc");
        assert!(status.success(), "building tests/probe/probe.c failed");
        out
    })
}

/// Puts the probe in customer `name`'s home, owned by it: `/home/NAME/probe` in its jail.
fn install_probe(e: &Emperor, name: &str, uid: u32) {
    let to = e.home(name, uid).join("probe");
    fs_err::copy(probe_binary(), &to).unwrap();
    std::os::unix::fs::chown(&to, Some(uid), Some(uid)).unwrap();
    fs_err::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What the probe printed, by check: `CHECK RESULT [DETAIL]` lines as (RESULT, DETAIL).
#[derive(Debug)]
struct Probed {
    checks: BTreeMap<String, (String, String)>,
    text: String,
}

impl Probed {
    /// The result of `check` (`ok`, `EPERM`...), failing with the whole output if absent.
    fn result(&self, check: &str) -> &str {
        match self.checks.get(check) {
            Some((r, _)) => r,
            None => panic!("the probe printed no `{check}`:\n{}", self.text),
        }
    }

    fn detail(&self, check: &str) -> &str {
        match self.checks.get(check) {
            Some((_, d)) => d,
            None => panic!("the probe printed no `{check}`:\n{}", self.text),
        }
    }
}

/// Runs `/home/NAME/probe ARGS` inside the vassal behind `addr`.
fn probe(addr: &Addr, name: &str, args: &str) -> Probed {
    let (code, text) = sh(addr, &format!("/home/{name}/probe {args}"));
    assert_eq!(code, "0", "probe {args}: {text}");
    let mut checks = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        if let (Some(check), Some(result)) = (parts.next(), parts.next()) {
            checks.insert(
                check.to_owned(),
                (
                    result.to_owned(),
                    parts.next().unwrap_or_default().to_owned(),
                ),
            );
        }
    }
    Probed { checks, text }
}
