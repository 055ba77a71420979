//! What the master is told to do, read from the options list and checked whole before anything
//! starts: a bad value is an error naming the file and line it came from, and nothing is bound
//! or spawned (the two-stage config of STYLE.md rule 17).

use std::path::PathBuf;
use std::time::Duration;

use liege_config::registry::{self, Known, Part};
use liege_config::{Options, Origin, is_true};
use liege_proto::handoff::Proto;
use liege_worker::settings::{Settings, SettingsError};
use liege_worker::static_files::{StaticError, StaticFiles};

use crate::addr::Addr;
use crate::exe;
use crate::owner::{self, Owner};

/// The most worker processes an instance may ask for.
const MAX_PROCESSES: u64 = 1024;
/// The most threads (cores) a worker may ask for.
const MAX_THREADS: u64 = 512;

/// One listening socket to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub proto: Proto,
    pub addr: Addr,
    /// As the option gave it, for logs, stats and the workers.
    pub name: String,
}

/// How the master was started, which decides who applies some options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run by hand (`liege --ini app.ini`): the options the emperor applies are refused.
    Standalone,
    /// Started by an emperor, which has applied its options (limits, namespaces, logs): the
    /// master ignores them.
    Vassal,
}

/// Who the master's children run as (`uid`, `gid`): the master drops to it once its sockets
/// are bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `None` with only `gid` set.
    pub uid: Option<u32>,
    pub gid: u32,
    /// The `uid` entry (or `gid`, without one), for errors.
    pub origin: Origin,
}

/// The master's settings, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sockets: Vec<SocketSpec>,
    pub processes: usize,
    pub threads: usize,
    /// Each worker loads the app itself (`true`, liege's default), or a zygote loads it once
    /// and forks the workers.
    pub lazy_apps: bool,
    /// The worker executable's file name (`liege-python`).
    pub worker: String,
    /// The `plugin` entry that chose [`worker`](Self::worker), if one did.
    pub worker_origin: Option<Origin>,
    pub plugins_dirs: Vec<PathBuf>,
    /// Seconds a request may run; 0: no limit.
    pub harakiri: u64,
    pub worker_reload_mercy: Duration,
    pub touch_reload: Vec<PathBuf>,
    pub die_on_term: bool,
    pub need_app: bool,
    /// The stats socket and its name as given.
    pub stats: Option<(Addr, String)>,
    /// The mode of unix socket files.
    pub chmod_socket: Option<u32>,
    pub chown_socket: Option<Owner>,
    pub vacuum: bool,
    /// The listen backlog of each socket.
    pub listen: i32,
    pub logto: Option<PathBuf>,
    /// `uid` / `gid`.
    pub identity: Option<Identity>,
    /// How often to tell the emperor the master is alive.
    pub heartbeat: Option<Duration>,
    /// The options list with canonical keys (`processes`, never `workers`), as the workers
    /// receive it.
    pub options: Vec<(String, String)>,
    /// The HTTP router in front of the workers (`http`, `https`), run by hand only: under an
    /// emperor, the emperor's router serves the vassals.
    pub router: Option<crate::gateway::Config>,
    /// The socket the router sends requests to (`http-to`, else this instance's first TCP
    /// `http-socket`, else one on 127.0.0.1 made for it): its index in `sockets`.
    pub router_to: Option<usize>,
}

/// An option's value the master cannot use.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{origin}: invalid value `{value}` for `{key}`: {why}")]
    InvalidValue {
        origin: Origin,
        key: String,
        value: String,
        why: String,
    },
    #[error("{origin}: {source}")]
    Worker {
        origin: Origin,
        source: SettingsError,
    },
    #[error("{origin}: {source}")]
    Static { origin: Origin, source: StaticError },
    #[error("no socket to listen on (set `http-socket` or `socket`)")]
    NoSocket,
    #[error(
        "{origin}: `{key}` is applied by the emperor: run this file as a vassal (`liege --emperor DIR`)"
    )]
    AppliedByEmperor { origin: Origin, key: String },
    #[error("{origin}: `{key}` is a uWSGI option that liege does not implement yet")]
    Unimplemented { origin: Origin, key: String },
    #[error(
        "{origin}: `{key}` is an option of the emperor (`liege --emperor DIR`), not of an instance"
    )]
    EmperorOption { origin: Origin, key: String },
    #[error(transparent)]
    Router(#[from] crate::gateway::ConfigError),
}

/// Who applies an option that the master does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Elsewhere {
    /// The emperor's own options (`emperor-*`, `vassals-*`).
    Emperor,
    /// What the emperor applies to a vassal: limits, cgroups, namespaces, the log's rotation.
    Vassal,
}

/// Whether `key` (canonical) is applied by the emperor rather than the master: every option of
/// the registry's emperor and vassal parts except `uid` and `gid`, which the master applies.
fn elsewhere(key: &str) -> Option<Elsewhere> {
    match registry::lookup(key) {
        Known::Liege(spec) if spec.part == Part::Emperor => Some(Elsewhere::Emperor),
        Known::Liege(spec) if spec.part == Part::Vassal && !matches!(spec.name, "uid" | "gid") => {
            Some(Elsewhere::Vassal)
        }
        _ => None,
    }
}

/// The option's canonical name (`workers` is `processes`); keys liege does not know stay as
/// they are.
pub fn canonical(key: &str) -> &str {
    match registry::lookup(key) {
        Known::Liege(spec) => spec.name,
        _ => key,
    }
}

fn invalid(origin: &Origin, key: &str, value: &str, why: impl Into<String>) -> PlanError {
    PlanError::InvalidValue {
        origin: origin.clone(),
        key: key.to_string(),
        value: value.to_string(),
        why: why.into(),
    }
}

/// One option entry, with its canonical key.
struct Entry<'a> {
    key: &'a str,
    value: &'a str,
    origin: &'a Origin,
}

impl Entry<'_> {
    fn bad(&self, why: impl Into<String>) -> PlanError {
        invalid(self.origin, self.key, self.value, why)
    }

    fn number(&self, min: u64, max: u64) -> Result<u64, PlanError> {
        let n: u64 = self
            .value
            .trim()
            .parse()
            .map_err(|_| self.bad("expected a whole number"))?;
        if n < min || n > max {
            return Err(self.bad(format!("expected a number from {min} to {max}")));
        }
        Ok(n)
    }

    fn path(&self) -> Result<PathBuf, PlanError> {
        if self.value.trim().is_empty() {
            return Err(self.bad("expected a path"));
        }
        Ok(PathBuf::from(self.value.trim()))
    }

    fn addr(&self) -> Result<Addr, PlanError> {
        // The handoff separates sockets with `;` (`liege_proto::handoff::encode_listeners`).
        if self.value.contains(';') {
            return Err(self.bad("a socket address cannot hold `;`"));
        }
        Addr::parse(self.value).map_err(|e| self.bad(e.to_string()))
    }
}

/// `chmod-socket`: octal digits; no value is uWSGI's 666.
fn octal_mode(e: &Entry<'_>) -> Result<u32, PlanError> {
    let v = e.value.trim();
    if v.is_empty() {
        return Ok(0o666);
    }
    if v.len() > 4 || !v.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(e.bad("expected an octal mode such as 660"));
    }
    u32::from_str_radix(v, 8).map_err(|_| e.bad("expected an octal mode such as 660"))
}

impl Plan {
    /// Reads and checks the options of an instance run by hand.
    pub fn from_options(options: &Options) -> Result<Plan, PlanError> {
        Self::from_options_as(options, Mode::Standalone)
    }

    /// Reads and checks the options of an instance started as `mode`.
    pub fn from_options_as(options: &Options, mode: Mode) -> Result<Plan, PlanError> {
        let entries: Vec<Entry<'_>> = options
            .iter()
            .map(|o| Entry {
                key: canonical(&o.key),
                value: &o.value,
                origin: &o.origin,
            })
            .collect();
        let mut plan = Plan {
            sockets: Vec::new(),
            processes: 1,
            threads: 1,
            lazy_apps: true,
            worker: exe::DEFAULT_WORKER.to_string(),
            worker_origin: None,
            plugins_dirs: Vec::new(),
            harakiri: 0,
            worker_reload_mercy: Duration::from_secs(60),
            touch_reload: Vec::new(),
            die_on_term: false,
            need_app: false,
            stats: None,
            chmod_socket: None,
            chown_socket: None,
            vacuum: false,
            listen: 1024,
            logto: None,
            identity: None,
            heartbeat: None,
            options: entries
                .iter()
                .map(|e| (e.key.to_string(), e.value.to_string()))
                .collect(),
            router: None,
            router_to: None,
        };
        let mut uid: Option<(owner::User, &Entry<'_>)> = None;
        let mut gid: Option<(u32, &Entry<'_>)> = None;
        for e in &entries {
            match (elsewhere(e.key), mode) {
                (Some(_), Mode::Vassal) => continue,
                // Run by hand, the master unshares itself, as uWSGI's does (the jail).
                (Some(Elsewhere::Vassal), Mode::Standalone) if e.key == "unshare" => continue,
                (Some(Elsewhere::Vassal), Mode::Standalone) => {
                    return Err(PlanError::AppliedByEmperor {
                        origin: e.origin.clone(),
                        key: e.key.to_string(),
                    });
                }
                (Some(Elsewhere::Emperor), Mode::Standalone) => {
                    return Err(PlanError::EmperorOption {
                        origin: e.origin.clone(),
                        key: e.key.to_string(),
                    });
                }
                (None, Mode::Vassal) if matches!(registry::lookup(e.key), Known::Uwsgi { .. }) => {
                    // Run by hand, `liege` refuses these before the master starts.
                    return Err(PlanError::Unimplemented {
                        origin: e.origin.clone(),
                        key: e.key.to_string(),
                    });
                }
                (None, _) => {}
            }
            match e.key {
                "socket" | "http-socket" => plan.sockets.push(SocketSpec {
                    proto: if e.key == "socket" {
                        Proto::Uwsgi
                    } else {
                        Proto::Http
                    },
                    addr: e.addr()?,
                    name: e.value.trim().to_string(),
                }),
                "processes" => {
                    plan.processes = usize::try_from(e.number(1, MAX_PROCESSES)?)
                        .map_err(|_| e.bad("too large"))?;
                }
                "threads" => {
                    plan.threads = usize::try_from(e.number(1, MAX_THREADS)?)
                        .map_err(|_| e.bad("too large"))?;
                }
                "lazy-apps" => plan.lazy_apps = is_true(e.value),
                // `plugins = python3,http`: the first language named wins.
                "plugin" if plan.worker_origin.is_none() => {
                    let named = e
                        .value
                        .split([',', ' ', '\t'])
                        .filter(|p| !p.is_empty())
                        .find_map(exe::worker_for_plugin);
                    if let Some(worker) = named {
                        plan.worker = worker;
                        plan.worker_origin = Some(e.origin.clone());
                    }
                }
                // `psgi = app.psgi` needs the Perl worker, `rack = config.ru` the Ruby one.
                "psgi" | "rack" => {
                    let worker = exe::worker_for_option(e.key).unwrap_or(exe::DEFAULT_WORKER);
                    match &plan.worker_origin {
                        Some(chosen) if plan.worker != worker => {
                            return Err(e.bad(format!(
                                "it needs the {worker} worker, but {chosen} chose {}",
                                plan.worker
                            )));
                        }
                        Some(_) => {}
                        None => {
                            plan.worker = worker.to_string();
                            plan.worker_origin = Some(e.origin.clone());
                        }
                    }
                }
                "plugins-dir" => plan.plugins_dirs.push(e.path()?),
                "harakiri" => plan.harakiri = e.number(0, 365 * 86_400)?,
                "max-requests" | "reload-on-rss" => {
                    e.number(0, u64::MAX)?;
                }
                "worker-reload-mercy" => {
                    plan.worker_reload_mercy = Duration::from_secs(e.number(0, 86_400)?);
                }
                "touch-reload" => plan.touch_reload.push(e.path()?),
                "die-on-term" => plan.die_on_term = is_true(e.value),
                "need-app" => plan.need_app = is_true(e.value),
                "stats" => plan.stats = Some((e.addr()?, e.value.trim().to_string())),
                "chmod-socket" => plan.chmod_socket = Some(octal_mode(e)?),
                "chown-socket" => {
                    plan.chown_socket =
                        Some(Owner::parse(e.value).map_err(|err| e.bad(err.to_string()))?);
                }
                "vacuum" => plan.vacuum = is_true(e.value),
                "listen" => {
                    plan.listen =
                        i32::try_from(e.number(1, 65_535)?).map_err(|_| e.bad("too large"))?;
                }
                "logto" => plan.logto = Some(e.path()?),
                "heartbeat" => {
                    let secs = e.number(0, 86_400)?;
                    plan.heartbeat = (secs > 0).then(|| Duration::from_secs(secs));
                }
                "uid" => {
                    uid = Some((
                        owner::user(e.value).map_err(|err| e.bad(err.to_string()))?,
                        e,
                    ));
                }
                "gid" => {
                    gid = Some((
                        owner::group(e.value).map_err(|err| e.bad(err.to_string()))?,
                        e,
                    ));
                }
                _ => {}
            }
        }
        plan.identity = match (uid, gid) {
            (None, None) => None,
            (None, Some((gid, e))) => Some(Identity {
                uid: None,
                gid,
                origin: e.origin.clone(),
            }),
            (Some((user, e)), explicit) => {
                let gid = match (explicit, user.gid) {
                    (Some((gid, _)), _) | (None, Some(gid)) => gid,
                    (None, None) => {
                        return Err(e.bad(format!(
                            "user {} has no line in {} to take its group from: set `gid` too",
                            user.uid,
                            owner::PASSWD
                        )));
                    }
                };
                Some(Identity {
                    uid: Some(user.uid),
                    gid,
                    origin: e.origin.clone(),
                })
            }
        };
        // The worker runtime's own options, checked here so that a bad one stops the instance
        // before it starts rather than every worker at once.
        let last_origin = |key: &str, value: &dyn Fn(&str) -> bool| {
            entries
                .iter()
                .rev()
                .find(|e| e.key == key && value(e.value))
                .or_else(|| entries.iter().rev().find(|e| e.key == key))
                .map_or(Origin::Builtin, |e| e.origin.clone())
        };
        let settings = Settings::from_options(&plan.options).map_err(|source| {
            let origin = last_origin(&source.key, &|v| v == source.value);
            PlanError::Worker { origin, source }
        })?;
        // The static maps too: a `static-expires` regex that does not compile would otherwise
        // stop every worker as it starts, again and again.
        StaticFiles::new(&settings).map_err(|source| {
            let origin = match &source {
                StaticError::ExpiresRegex { regex, .. } => {
                    last_origin("static-expires", &|v| v.trim().starts_with(regex.as_str()))
                }
                StaticError::IndexName(name) => last_origin("static-index", &|v| v == name),
            };
            PlanError::Static { origin, source }
        })?;
        if mode == Mode::Standalone {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            plan.router = crate::gateway::Config::from_options(options, &cwd)?;
        }
        if let Some(router) = &plan.router
            && router.http_to.is_empty()
        {
            // uWSGI's `--http` forwards to a socket of the instance's own. liege makes one for
            // the router alone: an HTTP socket file in a folder only the router's group may
            // search (crate::router_socket). No other local user reaches the workers through
            // it, as they would a port on loopback, and a connect costs far less than TCP's.
            let path = crate::router_socket::dir().join(crate::router_socket::FILE);
            plan.sockets.push(SocketSpec {
                proto: Proto::Http,
                name: path.display().to_string(),
                addr: Addr::Unix(path),
            });
            plan.router_to = Some(plan.sockets.len() - 1);
        }
        if plan.sockets.is_empty() {
            return Err(PlanError::NoSocket);
        }
        Ok(plan)
    }

    /// What a reload cannot change: the sockets (bound once), the stats socket and the log
    /// file. Names each that differs from `other`.
    pub fn needs_restart(&self, other: &Plan) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if self.sockets != other.sockets
            || self.listen != other.listen
            || self.chmod_socket != other.chmod_socket
            || self.chown_socket != other.chown_socket
        {
            changed.push("sockets");
        }
        if self.stats != other.stats {
            changed.push("stats");
        }
        if self.logto != other.logto {
            changed.push("logto");
        }
        if self.router != other.router {
            changed.push("the router (http, https...)");
        }
        let ids = |p: &Plan| p.identity.as_ref().map(|i| (i.uid, i.gid));
        if ids(self) != ids(other) {
            changed.push("uid/gid");
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn opts(file: &str, lines: &[(&str, &str)]) -> Options {
        let path: Arc<str> = Arc::from(file);
        let mut o = Options::new();
        for (i, (k, v)) in lines.iter().enumerate() {
            o.push(*k, *v, Origin::file(&path, u32::try_from(i).unwrap() + 2));
        }
        o
    }

    #[test]
    fn reads_sockets_aliases_and_defaults() {
        let p = Plan::from_options(&opts(
            "a.ini",
            &[
                ("http-socket", "127.0.0.1:8000"),
                ("uwsgi-socket", "/run/a.sock"),
                ("workers", "3"),
                ("plugins", "http,python311"),
                ("chmod-socket", ""),
            ],
        ))
        .unwrap();
        assert_eq!(p.sockets.len(), 2);
        assert_eq!(p.sockets[0].proto, Proto::Http);
        assert_eq!(p.sockets[1].proto, Proto::Uwsgi);
        assert_eq!(p.sockets[1].addr, Addr::Unix("/run/a.sock".into()));
        assert_eq!(p.processes, 3);
        assert!(p.lazy_apps);
        assert_eq!(p.worker, "liege-python3.11");
        assert_eq!(p.chmod_socket, Some(0o666));
        assert_eq!(p.listen, 1024);
        assert_eq!(p.worker_reload_mercy, Duration::from_secs(60));
        // Keys reach the workers canonical.
        assert!(p.options.contains(&("processes".into(), "3".into())));
        assert!(p.options.contains(&("socket".into(), "/run/a.sock".into())));
        assert!(!p.options.iter().any(|(k, _)| k == "workers"));
    }

    #[test]
    fn bad_values_name_file_line_and_option() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("socket", ":80"), ("processes", "two")],
                "a.ini:3: invalid value `two` for `processes`: expected a whole number",
            ),
            (
                &[("socket", ":80"), ("workers", "0")],
                "a.ini:3: invalid value `0` for `processes`: expected a number from 1 to 1024",
            ),
            (
                &[("http-socket", "127.0.0.1:80000")],
                "a.ini:2: invalid value `127.0.0.1:80000` for `http-socket`: `80000` is not a port (0 to 65535)",
            ),
            (
                &[("socket", ":80"), ("chmod-socket", "rw")],
                "a.ini:3: invalid value `rw` for `chmod-socket`: expected an octal mode such as 660",
            ),
            (
                &[("socket", ":80"), ("chown-socket", "no-such-user-here")],
                "a.ini:3: invalid value `no-such-user-here` for `chown-socket`: no user `no-such-user-here` in /etc/passwd",
            ),
            (
                &[("socket", ":80"), ("harakiri", "-1")],
                "a.ini:3: invalid value `-1` for `harakiri`: expected a whole number",
            ),
            (
                &[("socket", "/run/a;b.sock")],
                "a.ini:2: invalid value `/run/a;b.sock` for `socket`: a socket address cannot hold `;`",
            ),
            (
                &[("processes", "2")],
                "no socket to listen on (set `http-socket` or `socket`)",
            ),
        ];
        for (lines, want) in cases {
            let e = Plan::from_options(&opts("a.ini", lines)).unwrap_err();
            assert_eq!(e.to_string(), *want);
        }
    }

    #[test]
    fn worker_errors_point_at_the_entry_that_failed() {
        let e = Plan::from_options(&opts(
            "a.ini",
            &[
                ("socket", ":80"),
                ("limit-post", "lots"),
                ("limit-post", "1m"),
            ],
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.ini:3: option `limit-post`: expected a size (bytes, or with k, m, g) (got `lots`)"
        );
    }

    #[test]
    fn a_static_expires_regex_that_does_not_compile_is_refused_with_its_line() {
        let e = Plan::from_options(&opts(
            "a.ini",
            &[
                ("socket", ":80"),
                ("static-expires", "/.*\\.css 60"),
                ("static-expires", "( 30"),
            ],
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("a.ini:4: static-expires: regex `(` does not compile"),
            "{e}"
        );
    }

    #[test]
    fn what_the_emperor_applies_is_refused_by_hand_and_ignored_in_a_vassal() {
        let lines: &[(&str, &str)] = &[
            ("socket", ":80"),
            ("memory-limit", "256M"),
            ("emperor-stats", ":9"),
        ];
        let e = Plan::from_options(&opts("a.ini", lines)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.ini:3: `memory-limit` is applied by the emperor: run this file as a vassal (`liege --emperor DIR`)"
        );
        let e = Plan::from_options(&opts(
            "a.ini",
            &[("socket", ":80"), ("vassals-inherit", "x")],
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.ini:3: `vassals-inherit` is an option of the emperor (`liege --emperor DIR`), not of an instance"
        );
        for key in [
            "cpu-limit",
            "pids-limit",
            "cgroup",
            "cgroup-opt",
            "cgroup-dir-mode",
            "log-maxsize",
        ] {
            let e =
                Plan::from_options(&opts("a.ini", &[("socket", ":80"), (key, "1")])).unwrap_err();
            assert!(
                matches!(e, PlanError::AppliedByEmperor { .. }),
                "{key}: {e}"
            );
        }
        let p = Plan::from_options_as(&opts("a.ini", lines), Mode::Vassal).unwrap();
        assert_eq!(p.sockets.len(), 1);
        // A uWSGI option liege lacks: `liege` refuses it by hand; a vassal's master does.
        let e = Plan::from_options_as(
            &opts("a.ini", &[("socket", ":80"), ("evil-reload-on-rss", "512")]),
            Mode::Vassal,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "a.ini:3: `evil-reload-on-rss` is a uWSGI option that liege does not implement yet"
        );
    }

    #[test]
    fn uid_and_gid_by_name_or_number() {
        let id = |lines: &[(&str, &str)]| {
            let mut all = vec![("socket", ":80")];
            all.extend_from_slice(lines);
            Plan::from_options(&opts("a.ini", &all))
                .map(|p| p.identity.map(|i| (i.uid, i.gid, i.origin.to_string())))
        };
        // Debian's nobody:nogroup is 65534:65534.
        assert_eq!(
            id(&[("uid", "nobody")]).unwrap(),
            Some((Some(65534), 65534, "a.ini:3".into()))
        );
        assert_eq!(
            id(&[("uid", "65534")]).unwrap(),
            Some((Some(65534), 65534, "a.ini:3".into()))
        );
        assert_eq!(
            id(&[("uid", "nobody"), ("gid", "0")]).unwrap(),
            Some((Some(65534), 0, "a.ini:3".into()))
        );
        assert_eq!(
            id(&[("gid", "nogroup")]).unwrap(),
            Some((None, 65534, "a.ini:3".into()))
        );
        assert_eq!(
            id(&[("uid", "4242"), ("gid", "4242")]).unwrap(),
            Some((Some(4242), 4242, "a.ini:3".into()))
        );
        assert_eq!(id(&[]).unwrap(), None);
        for (lines, want) in [
            (
                &[("uid", "no-such-user-here")][..],
                "a.ini:3: invalid value `no-such-user-here` for `uid`: no user `no-such-user-here` in /etc/passwd",
            ),
            (
                &[("uid", "nobody"), ("gid", "no-such-group")][..],
                "a.ini:4: invalid value `no-such-group` for `gid`: no group `no-such-group` in /etc/group",
            ),
            (
                &[("uid", "4242")][..],
                "a.ini:3: invalid value `4242` for `uid`: user 4242 has no line in /etc/passwd to take its group from: set `gid` too",
            ),
        ] {
            assert_eq!(id(lines).unwrap_err().to_string(), want);
        }
    }

    #[test]
    fn what_a_reload_cannot_change() {
        let a = Plan::from_options(&opts("a.ini", &[("socket", ":80")])).unwrap();
        let b =
            Plan::from_options(&opts("a.ini", &[("socket", ":80"), ("processes", "4")])).unwrap();
        let c = Plan::from_options(&opts("a.ini", &[("socket", ":81"), ("stats", ":9")])).unwrap();
        assert!(a.needs_restart(&b).is_empty());
        assert_eq!(a.needs_restart(&c), ["sockets", "stats"]);
        let d =
            Plan::from_options(&opts("a.ini", &[("socket", ":80"), ("uid", "nobody")])).unwrap();
        assert_eq!(a.needs_restart(&d), ["uid/gid"]);
    }

    #[test]
    fn the_language_options_choose_the_worker() {
        let plan = |lines: &[(&str, &str)]| Plan::from_options(&opts("a.ini", lines));
        let worker = |lines: &[(&str, &str)]| plan(lines).unwrap().worker;
        assert_eq!(
            worker(&[("socket", ":9"), ("wsgi-file", "a.py")]),
            "liege-python"
        );
        assert_eq!(
            worker(&[("socket", ":9"), ("psgi", "app.psgi")]),
            "liege-perl"
        );
        assert_eq!(
            worker(&[("socket", ":9"), ("rack", "config.ru")]),
            "liege-ruby"
        );
        assert_eq!(
            worker(&[("plugin", "psgi"), ("socket", ":9"), ("psgi", "app.psgi")]),
            "liege-perl"
        );
        assert_eq!(
            worker(&[("plugins", "http,rack"), ("socket", ":9")]),
            "liege-ruby"
        );
        let e = plan(&[
            ("plugin", "python3"),
            ("socket", ":9"),
            ("psgi", "app.psgi"),
        ])
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "a.ini:4: invalid value `app.psgi` for `psgi`: it needs the liege-perl worker, but a.ini:2 chose liege-python"
        );
    }

    #[test]
    fn a_router_run_by_hand_goes_to_a_socket_made_for_it() {
        let plan = |lines: &[(&str, &str)]| Plan::from_options(&opts("a.ini", lines)).unwrap();
        let own = crate::router_socket::dir().join("http.sock");
        // uWSGI's `--http :8080 --wsgi-file app.py`: an HTTP socket file is made for it, in
        // the master's own folder.
        let p = plan(&[("http", ":8080"), ("wsgi-file", "app.py")]);
        assert_eq!(p.router.as_ref().unwrap().listeners.len(), 1);
        assert_eq!(p.router_to, Some(0));
        assert_eq!(p.sockets[0].addr, Addr::Unix(own.clone()));
        assert_eq!(p.sockets[0].proto, Proto::Http);
        assert!(
            own.to_str()
                .unwrap()
                .contains(&std::process::id().to_string())
        );
        // Also next to sockets of the instance's own, which stay as they are.
        let p = plan(&[
            ("http", ":8080"),
            ("socket", "127.0.0.1:9000"),
            ("http-socket", ":8001"),
        ]);
        assert_eq!(p.router_to, Some(2));
        assert_eq!(p.sockets.len(), 3);
        assert_eq!(p.sockets[2].addr, Addr::Unix(own));
        // The same options make the same plan: a reload keeps the socket.
        assert!(
            p.needs_restart(&plan(&[
                ("http", ":8080"),
                ("socket", "127.0.0.1:9000"),
                ("http-socket", ":8001"),
            ]))
            .is_empty()
        );
        // `http-to` names the backend: nothing is made.
        let p = plan(&[
            ("http", ":8080"),
            ("http-to", "127.0.0.1:9"),
            ("socket", ":9000"),
        ]);
        assert_eq!((p.router_to, p.sockets.len()), (None, 1));
        // No router without `http` / `https`; none in a vassal (the emperor's serves it).
        assert!(
            plan(&[("socket", ":9000"), ("http-to", "127.0.0.1:9")])
                .router
                .is_none()
        );
        let v = Plan::from_options_as(
            &opts("a.ini", &[("http", ":8080"), ("socket", ":9000")]),
            Mode::Vassal,
        )
        .unwrap();
        assert!(v.router.is_none());
        // Its options are checked with the rest, and a change takes a restart.
        let e = Plan::from_options(&opts("a.ini", &[("socket", ":9"), ("http", "/x.sock")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a.ini:3: invalid value `/x.sock` for `http`"),
            "{e}"
        );
        let a = plan(&[
            ("socket", ":80"),
            ("http", ":8080"),
            ("http-to", "127.0.0.1:9"),
        ]);
        let b = plan(&[
            ("socket", ":80"),
            ("http", ":8081"),
            ("http-to", "127.0.0.1:9"),
        ]);
        assert_eq!(a.needs_restart(&b), ["the router (http, https...)"]);
    }
}
