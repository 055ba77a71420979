//! The emperor's HTTP router (with `http` / `https` in its options): the gateway process of
//! `liege_master::gateway`, run beside the vassals.
//!
//! 1. At start, as root: the router's options are checked, its listeners bound (they stay in
//!    the emperor, so a respawned router loses no port), its certificates read, `domain-owners`
//!    read, and its cgroup `ROOT/_router` made (a name no vassal can have: vassal names start
//!    with a letter or a digit), out of every vassal's cgroup.
//! 2. Once the vassal files have been read, the router is spawned from the liege binary the
//!    emperor holds, into that cgroup; its output goes to `LOGDIR/_router.log` (rotated like a
//!    vassal's). It gets its settings, then the route table.
//! 3. Each turn of the emperor's loop, the table is rebuilt when a vassal's routing facts or
//!    state changed (`crate::routes`), and sent whole when it differs; so are the settings
//!    (the emperor's certificates and those of vassals, for their own domains).
//! 4. The router's counters are kept per vassal, across respawns; a router that dies is
//!    respawned with a back-off. SIGHUP reads the router's options, certificates and
//!    `domain-owners` again, and the new settings reach the running router.
//! 5. When the emperor stops, once its vassals are gone, the router is told to stop and
//!    waited for.

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use liege_cgroups::{Cgroup, Tree};
use liege_config::Options;
use liege_master::gateway::{Config, ConfigError, Gateway};
use liege_proto::router::{Cert, Counters, FromRouter, NodeState};

use crate::emperor::Reload;
use crate::log;
use crate::logs::Log;
use crate::routes::{self, Claimant, Owners};
use crate::stats::RouterStat;
use crate::vassal::{StopFor, Vassal};

/// The router's cgroup under the emperor's root, and the name of its log.
pub(crate) const NAME: &str = "_router";

/// The router could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    DomainOwners(String),
    #[error("cannot set up the router's {step}: {source}")]
    Setup {
        step: &'static str,
        source: std::io::Error,
    },
}

impl RouterError {
    /// 2 for options that cannot work, 1 for a failure of the system.
    pub fn exit_code(&self) -> u8 {
        match self {
            RouterError::Config(ConfigError::Bind { .. }) | RouterError::Setup { .. } => 1,
            _ => 2,
        }
    }
}

/// What the emperor's options say about its router, checked before anything starts.
pub(crate) struct Setup {
    pub(crate) config: Config,
    /// `http-uid`'s uid and gid.
    pub(crate) identity: (u32, u32),
    /// `domain-owners`, as given.
    pub(crate) owners_path: Option<PathBuf>,
    pub(crate) owners: Owners,
    /// Reads the emperor's options again (SIGHUP), for the router's.
    pub(crate) reload: Option<Reload>,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("config", &self.config)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Setup {
    /// Reads the router's part of the emperor's options; `None` without `http` / `https`.
    pub(crate) fn from_options(
        options: &Options,
        passwd: &Path,
        reload: Option<Reload>,
    ) -> Result<Option<Setup>, RouterError> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let Some(config) = Config::from_options(options, &cwd)? else {
            return Ok(None);
        };
        let identity = config.identity(passwd)?;
        let owners_path = options
            .iter()
            .rev()
            .find(|o| o.key == "domain-owners")
            .map(|o| cwd.join(o.value.trim()));
        let owners = match &owners_path {
            Some(p) => Owners::load(p, passwd).map_err(RouterError::DomainOwners)?,
            None => Owners::default(),
        };
        Ok(Some(Setup {
            config,
            identity,
            owners_path,
            owners,
            reload,
        }))
    }
}

/// What a route table is built from: the generation of the vassals' routing facts, and each
/// claimant's id and state, in order.
type TableKey = (u64, Vec<(u32, Option<NodeState>)>);

/// The emperor's router.
pub(crate) struct Router {
    config: Config,
    gateway: Gateway,
    own_certs: Vec<Cert>,
    owners: Owners,
    owners_path: Option<PathBuf>,
    passwd: PathBuf,
    cgroup: Option<Cgroup>,
    pub(crate) log: Log,
    run_dir: PathBuf,
    /// The current router's counters, per vassal.
    counters: BTreeMap<String, Counters>,
    /// The totals of the routers before it.
    base: BTreeMap<String, Counters>,
    /// Bumped whenever a vassal's routing facts change: the table is rebuilt.
    pub(crate) generation: u64,
    /// What the table was last built from.
    last_key: Option<TableKey>,
    started: bool,
    reload: Option<Reload>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("config", &self.config)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

fn setup_err(step: &'static str) -> impl FnOnce(std::io::Error) -> RouterError {
    move |source| RouterError::Setup { step, source }
}

impl Router {
    /// Step 1 of the module: binds, reads the certificates, makes the cgroup and the log pipe.
    pub(crate) fn new(
        setup: Setup,
        exe: BorrowedFd<'_>,
        tree: &Tree,
        log_dir: &Path,
        log_max: u64,
        run_dir: &Path,
        passwd: &Path,
    ) -> Result<Router, RouterError> {
        let bound = setup.config.bind()?;
        let own_certs = setup.config.read_certs()?;
        // A router left by an emperor that was killed exits once its control socket closes;
        // whatever is still in its cgroup goes now.
        let cgroup = match tree.get(NAME) {
            Ok(Some(cg)) => {
                let _ = cg.kill_all();
                Some(cg)
            }
            _ => None,
        };
        let cgroup = cgroup.or_else(|| tree.create(NAME, 0o700).ok());
        let (read, write) = rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )
        .map_err(|e| setup_err("log pipe")(e.into()))?;
        // Room for bursts of access log lines while the emperor is busy.
        let _ = rustix::pipe::fcntl_setpipe_size(&write, 1 << 20);
        // Blocking for the router's writes.
        rustix::io::ioctl_fionbio(&write, false).map_err(|e| setup_err("log pipe")(e.into()))?;
        let mut log = Log::new(log_dir, NAME, log_max);
        log.attach(read);
        let exe = rustix::io::fcntl_dupfd_cloexec(exe, 3)
            .map_err(|e| setup_err("liege binary")(e.into()))?;
        let gateway = Gateway::new(exe, bound, Some(setup.identity), Some(write));
        Ok(Router {
            config: setup.config,
            gateway,
            own_certs,
            owners: setup.owners,
            owners_path: setup.owners_path,
            passwd: passwd.to_path_buf(),
            cgroup,
            log,
            run_dir: run_dir.to_path_buf(),
            counters: BTreeMap::new(),
            base: BTreeMap::new(),
            generation: 0,
            last_key: None,
            started: false,
            reload: setup.reload,
        })
    }

    /// What the listeners are, for the log.
    pub(crate) fn describe(&self) -> String {
        self.config
            .listeners
            .iter()
            .map(|l| format!("{}{}", l.addr, if l.tls { " (tls)" } else { "" }))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Starts (or restarts) the router process, in its cgroup.
    pub(crate) fn spawn(&mut self) -> Result<i32, String> {
        self.started = true;
        let pid = self.gateway.spawn().map_err(|e| e.to_string())?;
        if let Some(cg) = &self.cgroup
            && let Err(e) = u32::try_from(pid)
                .map_err(|_| "bad pid".to_owned())
                .and_then(|p| cg.place(p).map_err(|e| e.to_string()))
        {
            log!("router: cannot place pid {pid} in its cgroup: {e}");
        }
        Ok(pid)
    }

    pub(crate) fn started(&self) -> bool {
        self.started
    }

    pub(crate) fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub(crate) fn gateway_mut(&mut self) -> &mut Gateway {
        &mut self.gateway
    }

    /// Reads the control socket: logs refused settings, keeps the counters. `Some(why)` when
    /// the socket closed.
    pub(crate) fn control_ready(&mut self) -> Option<String> {
        let read = self.gateway.read();
        for m in read.messages {
            match m {
                FromRouter::Applied { error: Some(e) } => {
                    log!("router: the new settings were refused (the old ones stay): {e}");
                }
                FromRouter::Applied { error: None } => {}
                FromRouter::Counters(list) => {
                    for c in list {
                        self.counters.insert(c.vassal.clone(), c);
                    }
                }
            }
        }
        read.closed
    }

    /// The router process is gone: its counters become the base of the next one's.
    pub(crate) fn exited(&mut self, how: &str, now: Instant) -> Option<std::time::Duration> {
        for (name, c) in std::mem::take(&mut self.counters) {
            let b = self.base.entry(name.clone()).or_insert_with(|| Counters {
                vassal: name,
                ..Counters::default()
            });
            b.requests += c.requests;
            b.status_4xx += c.status_4xx;
            b.status_5xx += c.status_5xx;
            b.bytes_in += c.bytes_in;
            b.bytes_out += c.bytes_out;
        }
        self.gateway.exited(how, now)
    }

    /// A vassal's traffic through the router, every router since the emperor started.
    pub(crate) fn counters_of(&self, vassal: &str) -> Counters {
        let mut t = self.base.get(vassal).cloned().unwrap_or_default();
        if let Some(c) = self.counters.get(vassal) {
            t.requests += c.requests;
            t.status_4xx += c.status_4xx;
            t.status_5xx += c.status_5xx;
            t.bytes_in += c.bytes_in;
            t.bytes_out += c.bytes_out;
        }
        t.vassal = vassal.to_owned();
        t
    }

    /// Forgets a vassal that is gone (its counters too).
    pub(crate) fn forget(&mut self, vassal: &str) {
        self.base.remove(vassal);
        self.counters.remove(vassal);
        self.generation += 1;
    }

    /// Reads a vassal's routing facts, its certificates as its user.
    pub(crate) fn spec_of(
        &self,
        name: &str,
        cfg: &crate::policy::VassalConfig,
        cwd: &Path,
    ) -> Result<routes::RouteSpec, String> {
        let access = crate::access::OwnerAccess::new(
            cfg.uid.unwrap_or(0),
            cfg.gid.unwrap_or(0),
            cwd.to_path_buf(),
        );
        let read = |p: &Path| {
            liege_config::FileAccess::read(
                &access,
                &p.display().to_string(),
                liege_master::gateway::config::MAX_PEM,
            )
            .map_err(|e| e.to_string())
        };
        routes::spec_of(name, &cfg.options, cfg.uid, &self.run_dir, cwd, &read)
    }

    /// SIGHUP: reads the router's options (`reloaded`, when the emperor's command line could
    /// be read again), its certificates and `domain-owners` again. What fails is logged, and
    /// what ran stays.
    pub(crate) fn reload(&mut self) {
        let reloaded = match self.reload.as_mut().map(|f| f()) {
            Some(Ok(o)) => Some(o),
            Some(Err(e)) => {
                log!(
                    "router: cannot read the emperor's options again (the router keeps its own): {e}"
                );
                None
            }
            None => None,
        };
        if let Some(options) = &reloaded {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            match Config::from_options(options, &cwd) {
                Ok(Some(c)) => {
                    if c.listeners != self.config.listeners
                        || c.subscription != self.config.subscription
                    {
                        log!(
                            "router: its listening addresses changed: they are bound once, restart the emperor to change them"
                        );
                    }
                    if c.user != self.config.user {
                        log!("router: `http-uid` changed: it takes a restart of the emperor");
                    }
                    self.config = c;
                }
                Ok(None) => log!(
                    "router: `http` and `https` are gone from the options: restart the emperor to stop the router"
                ),
                Err(e) => log!("router: its options are kept: {e}"),
            }
            if let Some(o) = options.iter().rev().find(|o| o.key == "domain-owners") {
                self.owners_path = Some(cwd.join(o.value.trim()));
            }
        }
        match self.config.read_certs() {
            Ok(certs) => self.own_certs = certs,
            Err(e) => log!("router: its certificates are kept: {e}"),
        }
        if let Some(path) = &self.owners_path {
            match Owners::load(path, &self.passwd) {
                Ok(o) => self.owners = o,
                Err(e) => log!("router: domain-owners is kept: {e}"),
            }
        }
        self.generation += 1;
    }

    /// Step 3 of the module: rebuilds the table when something changed and sends it, with the
    /// settings; returns each vassal's refused claims.
    pub(crate) fn sync<'a>(
        &mut self,
        vassals: impl Iterator<Item = &'a Vassal>,
    ) -> Option<BTreeMap<String, Vec<String>>> {
        let mut order: Vec<&Vassal> = vassals
            .filter(|v| v.route.is_some() && v.claim_seq.is_some())
            .collect();
        order.sort_by_key(|v| v.claim_seq);
        let key = (
            self.generation,
            order
                .iter()
                .map(|v| (v.id, route_state(v)))
                .collect::<Vec<_>>(),
        );
        if self.last_key.as_ref() == Some(&key) {
            return None;
        }
        let claimants: Vec<Claimant<'_>> = order
            .iter()
            .filter_map(|v| {
                Some(Claimant {
                    name: &v.name,
                    spec: v.route.as_ref()?,
                    state: route_state(v),
                })
            })
            .collect();
        let table = routes::table(&self.owners, &claimants);
        let mut certs = self.own_certs.clone();
        certs.extend(table.certs);
        let http_to = self.config.http_to.clone();
        let settings = self.config.settings(certs, &self.run_dir, http_to);
        self.gateway.set_settings(settings);
        self.gateway.set_routes(table.routes);
        self.last_key = Some(key);
        Some(table.refused)
    }

    /// Step 5: tells the router to stop (once); whether it is gone.
    pub(crate) fn stop(&mut self, now: Instant) -> bool {
        if !self.started {
            return true;
        }
        if !self.gateway.is_stopped() {
            self.gateway.stop(now);
        }
        self.gateway.is_stopped()
    }

    /// Kills the router now.
    pub(crate) fn kill(&mut self) {
        self.gateway.kill();
    }

    /// Removes the router's cgroup (once it is gone).
    pub(crate) fn cleanup(&mut self) {
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.kill_all();
            let _ = cg.remove();
        }
    }

    /// The log pipe's read end.
    pub(crate) fn log_pipe(&self) -> Option<BorrowedFd<'_>> {
        self.log.pipe()
    }

    /// What the stats say about the router process.
    pub(crate) fn stat(&self) -> RouterStat {
        let s = self.gateway.status();
        RouterStat {
            pid: s.pid,
            restarts: s.restarts,
            running: s.running,
            last_exit: s.last_exit,
            listeners: self
                .gateway
                .bound()
                .local_addrs()
                .iter()
                .zip(&self.config.listeners)
                .map(|(a, l)| format!("{}{}", a.unwrap_or(l.addr), if l.tls { " tls" } else { "" }))
                .collect(),
            uid: self.config.user.0.clone(),
        }
    }
}

/// Whether a vassal is routed now: `Up` once it accepts, `Starting` while it is spawned,
/// restarted or respawned (requests wait for it), `None` (withdrawn) when it stops for good,
/// is broken or is not wanted.
pub(crate) fn route_state(v: &Vassal) -> Option<NodeState> {
    if !v.wanted {
        return None;
    }
    match &v.run {
        Some(r) => match r.stopping {
            None if r.accepting => Some(NodeState::Up),
            None => Some(NodeState::Starting),
            Some((StopFor::Restart | StopFor::Respawn, _)) => Some(NodeState::Starting),
            Some((StopFor::Removal, _)) => None,
        },
        None if v.queued || v.respawn_at.is_some() => Some(NodeState::Starting),
        None => None,
    }
}
