//! The vassal master (ARCHITECTURE.md decisions 2 and 7): it checks the options, binds the
//! sockets, execs the worker executable of the app's language (`liege-python`), and supervises
//! the workers: respawns with back-off, graceful and brutal reloads, harakiri, the stats socket,
//! and, as pid 1 of a pid namespace, the reaping of every orphan.
//!
//! The master is single-threaded, links no language runtime, and starts children only with
//! fork+exec (`std::process::Command`); prefork mode asks a zygote to fork the workers. Every
//! child is addressed through a pidfd, never through a pid read from shared memory.
//!
//! Run by hand, it reads its options from the command line and config files ([`run`]); started
//! by an emperor, it takes them from the emperor and answers to it over a control socket
//! ([`run_vassal`], [`vassal`]). Either way, with `uid` / `gid` it drops to that user and group
//! once its sockets are bound, before it starts any worker.

pub mod addr;
mod backoff;
pub mod exe;
pub mod gateway;
pub mod owner;
pub mod plan;
mod router_socket;
mod sockets;
mod spawn;
mod stats;
mod supervisor;
pub mod vassal;

use fs_err::os::unix::fs::OpenOptionsExt as _;
use std::os::fd::AsRawFd;
use std::path::Path;

use liege_config::{Options, Origin};

pub use addr::{Addr, AddrError};
pub use exe::NotFound;
pub use plan::{Mode, Plan, PlanError};
pub use sockets::BindError;
pub use vassal::{Vassal, VassalError};

/// Writes one line of the master's log to stderr (which `logto` may have redirected).
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

/// Re-reads the options for a reload (the config files may have changed): the list, or a
/// message saying why it could not be built. The master logs the message and keeps the options
/// it runs with.
pub type Reload<'a> = dyn FnMut() -> Result<Options, String> + 'a;

/// The instance could not start, or its loop failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{}{source}", origin.as_ref().map(|o| format!("{o}: ")).unwrap_or_default())]
    WorkerNotFound {
        /// The `plugin` entry that named the worker, if one did.
        origin: Option<Origin>,
        source: NotFound,
    },
    #[error("cannot open the log file `{path}`: {source}")]
    Logto {
        path: String,
        source: std::io::Error,
    },
    #[error("socket `{name}`: {source}")]
    Bind { name: String, source: BindError },
    #[error("cannot set up {step}: {source}")]
    Setup {
        step: &'static str,
        source: std::io::Error,
    },
    /// The jail's options cannot work (nothing was started).
    #[error(transparent)]
    JailPlan(liege_jail::JailError),
    /// Entering the jail, or giving up root, failed.
    #[error("the jail: {0}")]
    Jail(liege_jail::JailError),
    /// The router's listeners, certificates or user.
    #[error(transparent)]
    Router(gateway::ConfigError),
    /// The router process could not be started.
    #[error(transparent)]
    Gateway(#[from] gateway::GatewayError),
}

impl RunError {
    /// The exit status for the error: 2 for options that cannot work (nothing was started), 1
    /// for a failure of the system.
    pub fn exit_code(&self) -> u8 {
        match self {
            // `hook-<phase> = exit:N`: the instance ends there, with that status.
            RunError::Jail(liege_jail::JailError::Hook(h)) if h.exit_code().is_some() => h
                .exit_code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
            RunError::Plan(_) | RunError::WorkerNotFound { .. } | RunError::JailPlan(_) => 2,
            RunError::Router(gateway::ConfigError::Bind { .. }) => 1,
            RunError::Router(_) => 2,
            RunError::Logto { .. }
            | RunError::Bind { .. }
            | RunError::Setup { .. }
            | RunError::Jail(_)
            | RunError::Gateway(_) => 1,
        }
    }
}

/// Runs an instance with `options` until it is stopped: returns the exit status it stopped
/// with (0, or 22 when a worker could not load the app and `need-app` is set).
///
/// `reload` re-reads the options on a graceful reload (SIGHUP, `touch-reload`) or a brutal one
/// (SIGTERM without `die-on-term`). `exe_dir` is the folder of the running `liege`, where the
/// worker executables are looked up first.
///
/// Everything is checked before anything starts: a bad option is [`RunError::Plan`], naming
/// the file and line it came from. Call it from a single-threaded process: it installs
/// handlers for SIGCHLD, SIGHUP, SIGINT, SIGQUIT and SIGTERM, and reaps every child of the
/// process.
pub fn run(options: &Options, reload: &mut Reload<'_>, exe_dir: &Path) -> Result<u8, RunError> {
    start(
        options,
        supervisor::Source::Files(reload),
        exe_dir,
        None,
        None,
    )
}

/// Runs the master of a vassal, with the options its emperor resolved, until it is stopped
/// (by the emperor's `Stop`, or a signal): returns the exit status, as [`run`] does.
///
/// The master listens on the emperor's control socket (one connection at a time, from root
/// only) and tells it what it does; it reloads with the options the emperor sends. The options
/// the emperor applies itself (limits, cgroups, namespaces) are ignored here.
pub fn run_vassal(mut vassal: Vassal, exe_dir: &Path) -> Result<u8, RunError> {
    let options = vassal.options.clone();
    let name = vassal.name.clone();
    let run_dir = vassal.run_dir.take();
    start(
        &options,
        supervisor::Source::emperor(vassal),
        exe_dir,
        name.as_deref(),
        run_dir,
    )
}

fn start(
    options: &Options,
    source: supervisor::Source<'_>,
    exe_dir: &Path,
    name: Option<&str>,
    run_dir: Option<std::os::fd::OwnedFd>,
) -> Result<u8, RunError> {
    let plan = Plan::from_options_as(options, source.mode())?;
    let jail = liege_jail::Jail::from_options(
        options,
        &liege_jail::Context {
            name,
            vassal: source.mode() == Mode::Vassal,
        },
    )
    .map_err(RunError::JailPlan)?;
    let exe = exe::find(&plan.worker, exe_dir, &plan.plugins_dirs).map_err(|source| {
        RunError::WorkerNotFound {
            origin: plan.worker_origin.clone(),
            source,
        }
    })?;
    let exe = exe::Program::open(exe).map_err(|source| RunError::Setup {
        step: "opening the worker executable",
        source,
    })?;
    // The router (`http`, `https`): its listeners bound, its certificates read and its user
    // looked up, as root and before the jail hides the host.
    let mut router = plan.router.as_ref().map(prepare_router).transpose()?;
    if let Some(path) = &plan.logto {
        redirect_stderr(path)?;
    }
    log!(
        "master pid {}, worker executable {}",
        std::process::id(),
        exe.path.display()
    );
    // Whatever this process inherited stays out of its children: they get only the
    // descriptors the master hands them.
    liege_sys::exec::cloexec_from(3).map_err(|source| RunError::Setup {
        step: "marking inherited descriptors close-on-exec",
        source,
    })?;
    // As root: hooks, namespaces, the filesystem, the new root (docs/jail.md). The worker
    // executable was opened above, so it need not be visible in the jail.
    jail.enter(run_dir.as_ref().map(std::os::fd::AsFd::as_fd))
        .map_err(RunError::Jail)?;
    drop(run_dir);
    if jail.is_jailed() {
        log!("jailed");
    }
    let mut bound = Vec::new();
    let setup = sockets::FileSetup {
        mode: plan.chmod_socket,
        owner: plan.chown_socket,
    };
    // The router's own socket: its folder is made (in the jail's /tmp, when jailed) and let
    // in the router's group only.
    let router_gid = router
        .as_ref()
        .and_then(|(g, _)| g.identity())
        .map(|(_, gid)| gid);
    let router_own = plan.router_to.filter(|&i| {
        plan.sockets.get(i).is_some_and(|s| {
            s.addr == addr::Addr::Unix(router_socket::dir().join(router_socket::FILE))
        })
    });
    let _router_dir = router_own
        .map(|_| router_socket::make_dir(router_gid))
        .transpose()
        .map_err(|source| RunError::Setup {
            step: "making the folder of the router's socket",
            source,
        })?;
    for (i, s) in plan.sockets.iter().enumerate() {
        let setup = if router_own == Some(i) {
            router_socket::file_setup(router_gid)
        } else {
            setup
        };
        match sockets::bind(&s.addr, plan.listen, setup) {
            Ok(b) => {
                log!(
                    "{} socket {i} bound to {} fd {}",
                    s.proto.as_str(),
                    s.addr,
                    b.fd.as_raw_fd()
                );
                bound.push(b);
            }
            Err(source) => {
                sockets::vacuum(&bound);
                return Err(RunError::Bind {
                    name: s.name.clone(),
                    source,
                });
            }
        }
    }
    let stats = match &plan.stats {
        None => None,
        Some((addr, name)) => match sockets::bind(addr, plan.listen, sockets::FileSetup::default())
        {
            Ok(b) => {
                log!("stats server enabled on {name} fd {}", b.fd.as_raw_fd());
                Some(b)
            }
            Err(source) => {
                sockets::vacuum(&bound);
                return Err(RunError::Bind {
                    name: name.clone(),
                    source,
                });
            }
        },
    };
    if let (Some((gateway, certs)), Some(config)) = (&mut router, &plan.router)
        && let Err(e) = start_router(gateway, std::mem::take(certs), config, &plan)
    {
        sockets::vacuum(&bound);
        sockets::vacuum(stats.as_slice());
        return Err(e);
    }
    // Bound (and given to `chown-socket`) as root: from here on the master is who `uid` / `gid`
    // say, with no capability, no_new_privs and the seccomp filters when jailed, before any
    // worker or zygote exists.
    let (uid, gid) = match &plan.identity {
        Some(id) => (id.uid, id.gid),
        None => (None, rustix::process::getgid().as_raw()),
    };
    if let Err(e) = jail.drop_privileges(uid, gid) {
        sockets::vacuum(&bound);
        sockets::vacuum(stats.as_slice());
        return Err(RunError::Jail(e));
    }
    // listen() again: the kernel records a listener's credentials at listen(), and the host
    // side (a router, `liege request`) checks a vassal socket's peer is the vassal's uid
    // (SO_PEERCRED). They were root's, who bound it.
    for b in bound.iter().chain(stats.iter()) {
        let _ = rustix::net::listen(&b.fd, plan.listen);
    }
    if plan.identity.is_some() || jail.is_jailed() {
        log!(
            "running as uid {} gid {}{}",
            rustix::process::getuid().as_raw(),
            rustix::process::getgid().as_raw(),
            if jail.seccomp.is_empty() {
                ""
            } else {
                ", no capabilities, no_new_privs, seccomp"
            }
        );
    }
    let env = supervisor::sockets_env(&plan, &bound);
    let mut master = supervisor::Supervisor::new(
        source,
        exe_dir.to_path_buf(),
        bound,
        env,
        jail.hooks.environment(),
        stats,
        router.map(|(gateway, _)| gateway),
    )?;
    let result = master.run(plan, exe);
    let (bound, stats, vacuum) = master.into_sockets();
    if vacuum {
        sockets::vacuum(&bound);
        sockets::vacuum(stats.as_slice());
    }
    result
}

/// The router's sockets, certificates and process handle, before anything of the instance
/// starts.
fn prepare_router(
    config: &gateway::Config,
) -> Result<(gateway::Gateway, Vec<liege_proto::router::Cert>), RunError> {
    let identity = if rustix::process::geteuid().is_root() {
        Some(
            config
                .identity(Path::new(owner::PASSWD))
                .map_err(RunError::Router)?,
        )
    } else {
        None
    };
    let certs = config.read_certs().map_err(RunError::Router)?;
    let exe = std::env::current_exe()
        .and_then(|p| {
            rustix::fs::open(
                p,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(Into::into)
        })
        .map_err(|source| RunError::Setup {
            step: "opening the liege binary for the router",
            source,
        })?;
    let bound = config.bind().map_err(RunError::Router)?;
    Ok((gateway::Gateway::new(exe, bound, identity, None), certs))
}

/// Starts the router once the instance's sockets are bound: to `http-to`, else to the socket
/// the plan chose (`Plan::router_to`).
fn start_router(
    gateway: &mut gateway::Gateway,
    certs: Vec<liege_proto::router::Cert>,
    config: &gateway::Config,
    plan: &Plan,
) -> Result<(), RunError> {
    let mut http_to = config.http_to.clone();
    if http_to.is_empty()
        && let Some(s) = plan.router_to.and_then(|i| plan.sockets.get(i))
    {
        http_to.push(s.name.clone());
    }
    gateway.set_settings(config.settings(certs, Path::new("/run/liege"), http_to.clone()));
    gateway.set_routes(Vec::new());
    let pid = gateway.spawn()?;
    let listeners: Vec<String> = gateway
        .bound()
        .local_addrs()
        .iter()
        .zip(&config.listeners)
        .map(|(a, l)| {
            format!(
                "{}{}",
                a.unwrap_or(l.addr),
                if l.tls { " (tls)" } else { "" }
            )
        })
        .collect();
    log!(
        "router pid {pid} on {} in front of {}",
        listeners.join(", "),
        http_to.join(", ")
    );
    Ok(())
}

/// `logto`: the master's stderr (and so every worker's) goes to `path`, appended.
fn redirect_stderr(path: &Path) -> Result<(), RunError> {
    let err = |source| RunError::Logto {
        path: path.display().to_string(),
        source,
    };
    let file = fs_err::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
        .map_err(err)?;
    rustix::stdio::dup2_stderr(file.file()).map_err(|e| err(e.into()))
}
