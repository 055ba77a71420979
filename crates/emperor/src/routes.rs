//! What the router is told about the vassals (ARCHITECTURE.md decision 5: routes come from the
//! trusted side): each vassal's domains, the socket the router reaches it by, its uid, its
//! `limit-post`; which customer a domain belongs to; the certificates vassals name by `sni`.
//!
//! - [`spec_of`] reads a vassal's resolved options (once per load of its file): its claims
//!   (`domain`, the domains of `subscribe-to` and `subscribe2`), its socket (the first
//!   `socket` or `http-socket` in its run dir: `/run/NAME` in a jail, `RUN/vassals/VASSAL/NAME`
//!   on the host), its `sni` certificates (read as the vassal's user).
//! - [`table`] decides ownership and builds the route table. A domain belongs to the uid that
//!   `domain-owners` names for it or for a parent domain; else to its first claimant, the
//!   vassal that claimed it first in the emperor's order (the order vassals were first loaded),
//!   as long as that vassal exists. Vassals of the same uid share a domain; another uid's claim
//!   is refused, naming the claim's file and line, and the rest of that vassal still routes.
//!   A vassal's `sni` certificate is taken only for a domain the vassal owns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use liege_config::registry::{self, Known, Part};
use liege_config::{Options, Origin, parse_size};
use liege_master::gateway::config::{self as gw, normalize_domain};
use liege_proto::router::{Cert, NodeProto, NodeState, Route};

/// A domain a vassal claims, and the entry that claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub(crate) domain: String,
    pub(crate) origin: Origin,
}

/// What a vassal's options say about routing to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RouteSpec {
    pub(crate) claims: Vec<Claim>,
    /// The socket's name in its run dir, and how it speaks.
    pub(crate) socket: Option<(String, NodeProto)>,
    /// The uid its socket must be listened on by.
    pub(crate) uid: u32,
    pub(crate) limit_post: Option<u64>,
    /// `sni` certificates, read, with their entries.
    pub(crate) sni: Vec<(Cert, Origin)>,
    /// What is wrong but does not stop the vassal (a claim without a socket, a certificate
    /// that cannot be read, a router option that means nothing in a vassal).
    pub(crate) warnings: Vec<String>,
}

fn canonical(key: &str) -> &str {
    match registry::lookup(key) {
        Known::Liege(spec) => spec.name,
        _ => key,
    }
}

/// The options of the router's part that a vassal file may hold: what it tells the router.
const VASSAL_KEYS: &[&str] = &["domain", "sni", "subscribe-to", "subscribe2"];

/// The key of a `subscribe-to` value, as uWSGI reads it (`uwsgi_subscribe`): an optional
/// `NAME=` prefix, then the server (a unix path, or `HOST:PORT`), `:`, the key up to a `,`.
fn subscribe_to_key(value: &str) -> Option<&str> {
    let v = value.trim();
    let addr = v.split_once('=').map_or(v, |(_, rest)| rest);
    let key = if let Some(path) = addr.strip_prefix('/') {
        path.split_once(':')?.1
    } else {
        addr.split_once(':')?.1.split_once(':')?.1
    };
    let key = key.split(',').next().unwrap_or_default().trim();
    (!key.is_empty()).then_some(key)
}

/// The `key` of a `subscribe2` value (`server=...,key=...`).
fn subscribe2_key(value: &str) -> Option<&str> {
    value.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == "key" && !v.trim().is_empty()).then(|| v.trim())
    })
}

/// A subscription key as a domain: uWSGI's keys are Host values, so a `:PORT` goes.
fn key_domain(key: &str) -> Option<String> {
    let bare = match key.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => key,
    };
    normalize_domain(bare)
}

/// The socket the router reaches a vassal by: its first `socket` or `http-socket` that lies in
/// its run dir (`/run/NAME` or `/var/run/NAME` when it is jailed, `RUN/vassals/VASSAL/NAME`).
fn route_socket(options: &Options, vassal: &str, run_dir: &Path) -> Option<(String, NodeProto)> {
    let jailed = options.iter().any(|o| canonical(&o.key) == "jail-root");
    let host = run_dir.join("vassals").join(vassal);
    let plain = |name: &str| {
        (!name.is_empty() && !name.contains('/') && name != "." && name != "..")
            .then(|| name.to_owned())
    };
    options.iter().find_map(|o| {
        let proto = match canonical(&o.key) {
            "socket" => NodeProto::Uwsgi,
            "http-socket" => NodeProto::Http,
            _ => return None,
        };
        let path = Path::new(o.value.trim());
        let name = if jailed {
            ["/run", "/var/run"]
                .iter()
                .find_map(|d| path.strip_prefix(d).ok())
                .and_then(|rest| rest.to_str())
                .and_then(plain)
        } else {
            None
        };
        let name = name.or_else(|| {
            path.strip_prefix(&host)
                .ok()
                .and_then(|rest| rest.to_str())
                .and_then(plain)
        })?;
        Some((name, proto))
    })
}

/// Reads what a vassal's resolved options tell the router. `read` reads a file (a certificate,
/// an `@FILE` of `subscribe-to`) with the vassal's rights; relative paths are taken from
/// `cwd`, the folder of its file. A value that cannot work refuses the vassal (file and line);
/// what is only wrong for the router is a warning.
pub(crate) fn spec_of(
    name: &str,
    options: &Options,
    uid: Option<u32>,
    run_dir: &Path,
    cwd: &Path,
    read: &dyn Fn(&Path) -> Result<Vec<u8>, String>,
) -> Result<RouteSpec, String> {
    let mut spec = RouteSpec {
        uid: uid.unwrap_or(0),
        ..RouteSpec::default()
    };
    let claim = |domain: &str, o: &liege_config::Opt, spec: &mut RouteSpec| {
        let d = key_domain(domain)
            .ok_or_else(|| format!("{}: `{}`: `{domain}` is not a domain", o.origin, o.key))?;
        if !spec.claims.iter().any(|c| c.domain == d) {
            spec.claims.push(Claim {
                domain: d,
                origin: o.origin.clone(),
            });
        }
        Ok::<(), String>(())
    };
    for o in options.iter() {
        let key = canonical(&o.key);
        match key {
            "domain" => {
                for d in o.value.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
                    claim(d, o, &mut spec)?;
                }
            }
            "subscribe-to" => {
                let k = subscribe_to_key(&o.value).ok_or_else(|| {
                    format!(
                        "{}: `{}`: expected `ADDR:DOMAIN` (uWSGI's subscription syntax), got `{}`",
                        o.origin, o.key, o.value
                    )
                })?;
                if let Some(file) = k.strip_prefix('@') {
                    let path = cwd.join(file);
                    let text = read(&path).map_err(|e| {
                        format!("{}: `{}`: `{}`: {e}", o.origin, o.key, path.display())
                    })?;
                    for line in String::from_utf8_lossy(&text).lines() {
                        let line = line.trim();
                        if !line.is_empty() && !line.starts_with('#') {
                            claim(line, o, &mut spec)?;
                        }
                    }
                } else {
                    claim(k, o, &mut spec)?;
                }
            }
            "subscribe2" => {
                let k = subscribe2_key(&o.value).ok_or_else(|| {
                    format!(
                        "{}: `{}`: expected `key=DOMAIN,...` (uWSGI's subscription syntax), got `{}`",
                        o.origin, o.key, o.value
                    )
                })?;
                claim(k, o, &mut spec)?;
            }
            "limit-post" => {
                spec.limit_post = parse_size(&o.value).filter(|n| *n > 0);
            }
            _ => {
                if let Known::Liege(s) = registry::lookup(key)
                    && s.part == Part::Router
                    && !VASSAL_KEYS.contains(&s.name)
                {
                    if s.privileged {
                        return Err(format!(
                            "{}: `{}` is an option of the instance that runs the HTTP router (the emperor), not of a vassal\nhint: the emperor's router reaches a vassal by its `domain` lines",
                            o.origin, o.key
                        ));
                    }
                    spec.warnings.push(format!(
                        "{}: `{}` is not used: only the instance that runs the HTTP router (the emperor) reads it",
                        o.origin, o.key
                    ));
                }
            }
        }
    }
    for files in gw::sni_entries(options, cwd).map_err(|e| e.to_string())? {
        match gw::read_cert(&files, read, Some(name)) {
            Ok(cert) => spec.sni.push((cert, files.origin.clone())),
            Err(e) => spec.warnings.push(format!("{e} (as uid {})", spec.uid)),
        }
    }
    spec.socket = route_socket(options, name, run_dir);
    if spec.socket.is_none()
        && let Some(first) = spec.claims.first()
    {
        spec.warnings.push(format!(
            "{}: vassal `{name}` claims domains but has no `socket` or `http-socket` the router can reach: one in its run dir (`/run/NAME` in a jail, `{}/NAME` on the host)",
            first.origin,
            run_dir.join("vassals").join(name).display()
        ));
    }
    Ok(spec)
}

/// `domain-owners`: which uid each domain (and its subdomains) belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Owners {
    /// (domain, uid, the line that says so).
    entries: Vec<(String, u32, Origin)>,
}

impl Owners {
    /// Reads a `domain-owners` file: `DOMAIN USER` lines (USER a name in `passwd` or a uid),
    /// `#` comments, blank lines.
    pub(crate) fn load(path: &Path, passwd: &Path) -> Result<Owners, String> {
        let text = fs_err::read_to_string(path).map_err(|e| format!("`domain-owners`: {e}"))?;
        Self::parse(&text, &path.display().to_string(), passwd)
    }

    pub(crate) fn parse(text: &str, shown: &str, passwd: &Path) -> Result<Owners, String> {
        let shown: std::sync::Arc<str> = std::sync::Arc::from(shown);
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let origin = Origin::file(&shown, u32::try_from(i + 1).unwrap_or(u32::MAX));
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(domain), Some(user), None) = (words.next(), words.next(), words.next())
            else {
                return Err(format!("{origin}: expected `DOMAIN USER`, got `{line}`"));
            };
            let d = normalize_domain(domain)
                .ok_or_else(|| format!("{origin}: `{domain}` is not a domain"))?;
            let uid = liege_master::owner::user_in(user, passwd)
                .map_err(|e| format!("{origin}: {e}"))?
                .uid;
            entries.push((d, uid, origin));
        }
        Ok(Owners { entries })
    }

    /// The owner of `domain`: the most specific entry that covers it (an entry covers its
    /// domain and every subdomain; `*.example.com` the subdomains only).
    fn owner_of(&self, domain: &str) -> Option<(u32, &Origin)> {
        let bare = domain.strip_prefix("*.").unwrap_or(domain);
        self.entries
            .iter()
            .filter(|(e, _, _)| {
                let below = |zone: &str| {
                    bare.len() > zone.len()
                        && bare.ends_with(zone)
                        && bare.as_bytes()[bare.len() - zone.len() - 1] == b'.'
                };
                match e.strip_prefix("*.") {
                    Some(zone) => domain == e || below(zone),
                    None => bare == e || below(e),
                }
            })
            .max_by_key(|(e, _, _)| e.len())
            .map(|(_, uid, o)| (*uid, o))
    }
}

/// One vassal that claims domains, in the emperor's order.
#[derive(Debug)]
pub(crate) struct Claimant<'a> {
    pub(crate) name: &'a str,
    pub(crate) spec: &'a RouteSpec,
    /// Whether it is routed now (`None`: its routes are withdrawn: stopped, broken, going).
    pub(crate) state: Option<NodeState>,
}

/// The route table and what was refused.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) routes: Vec<Route>,
    /// The `sni` certificates of vassals, for domains they own.
    pub(crate) certs: Vec<Cert>,
    /// Per vassal, its refused claims and certificates, each naming its file and line.
    pub(crate) refused: BTreeMap<String, Vec<String>>,
}

/// Decides who owns each claimed domain and builds the table (see the module).
pub(crate) fn table(owners: &Owners, claimants: &[Claimant<'_>]) -> Table {
    let mut t = Table::default();
    let mut first: HashMap<&str, (u32, &str)> = HashMap::new();
    for c in claimants {
        let uid = c.spec.uid;
        let mut owned: BTreeSet<&str> = BTreeSet::new();
        let mut refused = Vec::new();
        for claim in &c.spec.claims {
            let d = claim.domain.as_str();
            let refusal = match owners.owner_of(d) {
                Some((owner, _)) if owner == uid => None,
                Some((owner, line)) => Some(format!(
                    "{}: domain `{d}` is refused: it belongs to uid {owner} (domain-owners {line}), and vassal `{}` runs as uid {uid}",
                    claim.origin, c.name
                )),
                None => match first.get(d) {
                    Some((owner, _)) if *owner == uid => None,
                    Some((owner, by)) => Some(format!(
                        "{}: domain `{d}` is refused: vassal `{by}` (uid {owner}) claimed it first, and vassal `{}` runs as uid {uid}",
                        claim.origin, c.name
                    )),
                    None => {
                        first.insert(d, (uid, c.name));
                        None
                    }
                },
            };
            match refusal {
                None => {
                    owned.insert(d);
                }
                Some(m) => refused.push(m),
            }
        }
        for (cert, origin) in &c.spec.sni {
            match &cert.sni {
                Some(d) if owned.contains(d.as_str()) => t.certs.push(cert.clone()),
                d => refused.push(format!(
                    "{origin}: `sni` for `{}` is not used: vassal `{}` does not serve that domain",
                    d.as_deref().unwrap_or_default(),
                    c.name
                )),
            }
        }
        if let (Some(state), Some((socket, proto))) = (c.state, &c.spec.socket) {
            for d in &owned {
                t.routes.push(Route {
                    domain: (*d).to_owned(),
                    vassal: c.name.to_owned(),
                    uid,
                    socket: socket.clone(),
                    proto: *proto,
                    limit_post: c.spec.limit_post,
                    state,
                });
            }
        }
        if !refused.is_empty() {
            t.refused.insert(c.name.to_owned(), refused);
        }
    }
    t
}

/// The `chown-socket` and `chmod-socket` a vassal's master gets when the emperor runs a
/// router, unless its file sets them: its sockets belong to its uid and the router's group,
/// mode 660, so the router (running as `http-uid`) may connect and no one else.
pub(crate) fn socket_access(
    options: &Options,
    uid: Option<u32>,
    router_gid: u32,
) -> Vec<(&'static str, String)> {
    let set = |k: &str| options.iter().any(|o| canonical(&o.key) == k);
    let mut out = Vec::new();
    if !set("chown-socket") {
        out.push(("chown-socket", format!("{}:{router_gid}", uid.unwrap_or(0))));
    }
    if !set("chmod-socket") {
        out.push(("chmod-socket", "660".to_owned()));
    }
    out
}

#[cfg(test)]
mod tests;
