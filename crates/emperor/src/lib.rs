//! The emperor (ARCHITECTURE.md decisions 2, 3, 7, 10): it watches a source of vassal files,
//! spawns one vassal per file in its own namespaces and cgroup, reloads it when the file
//! changes, stops it when the file goes away, throttles crash loops, and reports stats.
//!
//! - [`name`]: a vassal's name, from its file name.
//! - [`source`]: where vassal files come from (a trait; a folder or glob watched with inotify).
//! - [`policy`]: trust (which options a file may hold), identity, namespaces and limits: what
//!   the emperor runs for a vassal file.
//! - [`access`]: reading what a vassal file pulls in as the file's owner.
//! - [`spawn`]: clone3 into new namespaces, placed in the cgroup before anything runs, exec.
//! - `emperor`: the loop; `control`: the masters' control sockets; `rundir`: the run dir and
//!   the vassals' folders in it, touched only through descriptors; `logs`, `stats`, `serve`.
//! - [`router`]: the HTTP router the emperor runs with `http` / `https`; `routes`: what it is
//!   told (each vassal's domains and socket, who owns a domain).

pub mod access;
mod control;
mod emperor;
mod logs;
pub mod name;
pub mod policy;
pub mod router;
mod routes;
mod rundir;
mod serve;
pub mod settings;
pub mod source;
pub mod spawn;
mod stats;
mod throttle;
mod vassal;

use std::path::{Path, PathBuf};

use liege_config::{HostFacts, Options};

pub use emperor::Reload;
pub use router::RouterError;
pub use rundir::RunDirError;
pub use serve::ListenError;
pub use settings::{Settings, SettingsError};

/// Writes one line of the emperor's log to stderr.
macro_rules! log {
    ($($arg:tt)*) => {{
        let mut err = std::io::stderr().lock();
        let _ = std::io::Write::write_fmt(
            &mut err,
            format_args!("liege: {}\n", format_args!($($arg)*)),
        );
    }};
}
pub(crate) use log;

/// The emperor could not start, or its loop failed.
#[derive(Debug, thiserror::Error)]
pub enum EmperorError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("another emperor runs with the run dir {}", run_dir.display())]
    Locked { run_dir: PathBuf },
    #[error("{origin}: `emperor`: {reason}")]
    Source { origin: String, reason: String },
    #[error("cgroups: {0}")]
    Cgroups(String),
    #[error("the run dir: {0}")]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Router(#[from] RouterError),
    #[error("cannot set up {step}: {source}")]
    Setup {
        step: &'static str,
        source: std::io::Error,
    },
}

impl EmperorError {
    /// 2 for options that cannot work, 1 for a failure of the system.
    pub fn exit_code(&self) -> u8 {
        match self {
            EmperorError::Settings(_) | EmperorError::Policy(_) | EmperorError::Source { .. } => 2,
            EmperorError::Router(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// Runs an emperor with `options` (its own: `emperor`, `emperor-*`, `vassals-inherit`, the
/// router's `http`...) until SIGINT, SIGTERM or SIGQUIT has stopped every vassal. `exe` is the
/// liege binary the vassals' masters (and the router) run; `host` the facts magic variables of
/// vassal files use; `reload` reads the options again on SIGHUP (the router's are applied).
///
/// Call it from a single-threaded process: every vassal is cloned from it.
pub fn run(
    options: &Options,
    exe: &Path,
    host: HostFacts,
    reload: Option<Reload>,
) -> Result<u8, EmperorError> {
    let settings = Settings::from_options(options)?;
    let mut policy = policy::Settings::from_options(options)?;
    let router = router::Setup::from_options(options, &policy.passwd, reload)?;
    // The router (`http-uid`) connects to the vassals' sockets: they are given to its group.
    policy.router_gid = router.as_ref().map(|r| r.identity.1);
    let mut sources: Vec<Box<dyn source::VassalSource>> = Vec::new();
    for entry in options.all("emperor") {
        let pattern = entry.value.trim();
        if pattern.is_empty() {
            continue;
        }
        let dir = source::dir::DirSource::new(pattern).map_err(|e| EmperorError::Source {
            origin: entry.origin.to_string(),
            reason: e.to_string(),
        })?;
        sources.push(Box::new(dir));
    }
    let hierarchies =
        liege_cgroups::Hierarchies::discover().map_err(|e| EmperorError::Cgroups(e.to_string()))?;
    let tree = liege_cgroups::Tree::open(&hierarchies, &settings.cgroup_root)
        .map_err(|e| EmperorError::Cgroups(e.to_string()))?;
    let mut emperor = emperor::Emperor::new(settings, policy, host, sources, tree, exe, router)?;
    emperor.run()
}
