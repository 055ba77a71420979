//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `liege` binary under test.
pub(crate) fn liege() -> Command {
    Command::new(env!("CARGO_BIN_EXE_liege"))
}

/// The repository's top folder.
pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// What a finished command printed, as text.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `liege ARGS` in `dir` with the environment cleared of LIEGE_T_* variables.
pub(crate) fn run_in(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = liege();
    cmd.current_dir(dir).args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("LIEGE_T_") {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run liege").into()
}
