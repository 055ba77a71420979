//! From a vassal file to what the emperor runs: the options the master gets, the identity it
//! runs as, its namespaces and limits, or an error with the file and line to fix.
//!
//! The rules (issue 4; ARCHITECTURE.md decision 3):
//! - The file is read once, and the owner and mode are those of what was read (fstat); a
//!   symbolic link that is not root's makes the file its maker's.
//! - A file owned by root that no group or other can write is *trusted*. Options that act as
//!   root ([`is_privileged`]) are taken only from trusted files: from the vassal file when it
//!   is trusted (and from what it includes, when that is trusted too), and from the
//!   `vassals-inherit` templates, which must be trusted themselves.
//! - A root-owned file that group or others can write is refused: it would be read and run
//!   with root's rights.
//! - A file owned by anyone else runs as its owner (uid and gid; group root is refused), with
//!   no option that acts as root; so does every file under `emperor-tyrant`, which refuses
//!   root-owned files and takes root options only from `vassals-inherit` (whose `uid`/`gid` do
//!   not override the owner).
//! - What a vassal file pulls in is read with its owner's rights ([`OwnerAccess`]); `exec://`
//!   and URL forms are refused. The templates are read as root.
//! - uWSGI options liege does not implement are refused, as `liege` does for an instance.

use std::path::{Path, PathBuf};

use liege_config::access::FileFacts;
use liege_config::registry::{self, Known, Part};
use liege_config::{
    AccessError, ConfigError, Context, DEFAULT_MAX_CONFIG_SIZE, FileAccess, HostAccess, HostFacts,
    Loader, Options, Origin, Resolved, Warning, parse_size,
};

use crate::access::{OwnerAccess, read_regular};
use crate::name::VassalName;
use crate::source::{Entry, Stamp};

/// The default of `log-maxsize` for vassals: 16 MiB.
pub const DEFAULT_LOG_MAXSIZE: u64 = 16 << 20;

/// The default of `emperor-use-clone`.
pub const DEFAULT_USE_CLONE: &str = "fs,ipc,uts,net,pid";

pub use liege_sys::Namespaces;

/// Why a vassal (or the emperor's own options) cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{0}")]
    Read(liege_config::AccessError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{origin}: option `{key}` acts as root and is only taken from root-owned files that no group or other can write ({why})"
    )]
    Privileged {
        origin: Origin,
        key: String,
        why: String,
    },
    #[error("{origin}: `{key}` is a uWSGI option that liege does not implement yet")]
    Unimplemented { origin: Origin, key: String },
    #[error(
        "`{location}`: emperor-tyrant runs a vassal as the owner of its file, and this file is owned by {what}\nhint: give it to the customer it runs as (chown USER:GROUP)"
    )]
    TyrantRoot { location: String, what: String },
    #[error(
        "`{location}`: owned by uid {uid} and group root: a vassal runs with the group of its file, and never with group root\nhint: chown {uid}:GROUP it"
    )]
    GroupRoot { location: String, uid: u32 },
    #[error(
        "`{location}`: a root-owned vassal file is read and run with root's rights, but {why}\nhint: chmod go-w it, or give it to the user the vassal runs as"
    )]
    WritableRoot { location: String, why: String },
    #[error(
        "vassals-inherit `{path}` must be owned by root and not writable by group or other, but {why}: every vassal is refused until it is fixed"
    )]
    Template { path: String, why: String },
    #[error("vassals-inherit `{path}`: {source}; every vassal is refused until it is fixed")]
    TemplateRead {
        path: String,
        source: liege_config::AccessError,
    },
    #[error("{origin}: invalid value `{value}` for `{key}`: {why}")]
    Invalid {
        origin: Origin,
        key: String,
        value: String,
        why: String,
    },
    #[error("{origin}: the `user` namespace needs a uid/gid map, not supported yet")]
    UserNamespace { origin: Origin },
    #[error("{origin}: no user `{name}` in {file}")]
    NoUser {
        origin: Origin,
        name: String,
        file: String,
    },
    #[error("{origin}: no group `{name}` in {file}")]
    NoGroup {
        origin: Origin,
        name: String,
        file: String,
    },
    #[error(
        "{origin}: uid {uid} has no entry in {file} to take its group from\nhint: set `gid` too"
    )]
    NoPrimaryGroup {
        origin: Origin,
        uid: u32,
        file: String,
    },
    #[error(
        "`{location}`: the path of an xml vassal file may not hold `:` (it would be read as `file:id`)"
    )]
    XmlColon { location: String },
}

/// What the emperor's own options say about every vassal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `emperor-tyrant`
    pub tyrant: bool,
    /// `vassals-inherit`, absolute.
    pub inherit: Vec<PathBuf>,
    /// `emperor-use-clone`
    pub default_namespaces: Namespaces,
    /// `log-maxsize` in the emperor's options.
    pub default_log_maxsize: u64,
    /// Where user and group names are looked up (tests use their own).
    pub passwd: PathBuf,
    pub group: PathBuf,
    /// The group of the router's user, when the emperor runs a router: a vassal's sockets are
    /// given to it (`chown-socket = UID:GID`, `chmod-socket = 660`) unless its file says.
    pub router_gid: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tyrant: false,
            inherit: Vec::new(),
            default_namespaces: Namespaces::NEWNS
                .union(Namespaces::NEWIPC)
                .union(Namespaces::NEWUTS)
                .union(Namespaces::NEWNET)
                .union(Namespaces::NEWPID),
            default_log_maxsize: DEFAULT_LOG_MAXSIZE,
            passwd: PathBuf::from("/etc/passwd"),
            group: PathBuf::from("/etc/group"),
            router_gid: None,
        }
    }
}

fn invalid(o: &liege_config::Opt, why: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        origin: o.origin.clone(),
        key: o.key.clone(),
        value: o.value.clone(),
        why: why.into(),
    }
}

fn parse_namespaces(o: &liege_config::Opt) -> Result<Namespaces, PolicyError> {
    let ns = Namespaces::parse(&o.value).map_err(|e| invalid(o, e.to_string()))?;
    if ns.contains(Namespaces::NEWUSER) {
        return Err(PolicyError::UserNamespace {
            origin: o.origin.clone(),
        });
    }
    Ok(ns)
}

fn parse_positive_size(o: &liege_config::Opt) -> Result<u64, PolicyError> {
    match parse_size(&o.value) {
        Some(0) => Err(invalid(o, "it must be more than 0")),
        Some(n) => Ok(n),
        None => Err(invalid(
            o,
            "a size is a number of bytes, with an optional k, m or g",
        )),
    }
}

fn parse_number(o: &liege_config::Opt, min: u64, max: u64) -> Result<u64, PolicyError> {
    let v = o.value.trim();
    match v.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) if max == u64::MAX => Err(invalid(o, format!("at least {min}"))),
        Ok(_) => Err(invalid(o, format!("from {min} to {max}"))),
        Err(_) => Err(invalid(o, "a whole number")),
    }
}

impl Settings {
    /// The settings the emperor's options give (relative `vassals-inherit` paths are taken
    /// from the current directory).
    pub fn from_options(options: &Options) -> Result<Settings, PolicyError> {
        let mut s = Settings {
            tyrant: options.flag("emperor-tyrant"),
            ..Settings::default()
        };
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        s.inherit = options
            .all("vassals-inherit")
            .map(|o| cwd.join(&o.value))
            .collect();
        if let Some(o) = options.last("emperor-use-clone") {
            s.default_namespaces = parse_namespaces(o)?;
        }
        if let Some(o) = options.last("log-maxsize") {
            s.default_log_maxsize = parse_positive_size(o)?;
        }
        Ok(s)
    }
}

/// The cgroup limits of a vassal, as plain data (the cgroups crate has its own type).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `memory-limit`, bytes (swap capped with it).
    pub memory: Option<u64>,
    /// `cpu-limit`, percent of one core.
    pub cpu_percent: Option<u32>,
    /// `pids-limit`
    pub pids: Option<u64>,
    /// `cgroup-opt`: (file, value), in order.
    pub cgroup_opts: Vec<(String, String)>,
}

/// What needs a restart (not a reload) of a vassal when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RestartKey {
    pub namespaces: Namespaces,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `cgroup`: moving a running vassal to other cgroups is not done live.
    pub cgroup_dirs: Vec<String>,
}

/// A vassal as the emperor runs it.
#[derive(Debug, Clone)]
pub struct VassalConfig {
    pub name: VassalName,
    pub location: String,
    /// The stamp of the file that was read (may be newer than the entry's).
    pub stamp: Stamp,
    /// The vassal file's resolved options, then those of `vassals-inherit`: what the master
    /// gets. `uid` and `gid` in it are replaced by the ones decided here (numbers, at the end).
    pub options: Options,
    /// The identity the vassal runs as (`None`: stays root).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `emperor-use-clone` with the vassal's `unshare`.
    pub namespaces: Namespaces,
    pub limits: Limits,
    /// `cgroup`: further cgroup folders to place the vassal in.
    pub cgroup_dirs: Vec<String>,
    /// `cgroup-dir-mode`
    pub cgroup_dir_mode: u32,
    /// `log-maxsize`
    pub log_maxsize: u64,
    /// `heartbeat`, seconds.
    pub heartbeat: Option<u64>,
    /// [`digest`] of `options`.
    pub digest: u64,
    /// For the emperor's log.
    pub warnings: Vec<Warning>,
}

impl VassalConfig {
    /// What needs a restart when it changes.
    pub fn restart_key(&self) -> RestartKey {
        RestartKey {
            namespaces: self.namespaces,
            uid: self.uid,
            gid: self.gid,
            cgroup_dirs: self.cgroup_dirs.clone(),
        }
    }
}

/// FNV-1a 64 over `key \0 value \0` of every option, in order: a digest of a config that the
/// master can compute again from what it was given.
pub fn digest(options: &Options) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for o in options {
        for part in [o.key.as_bytes(), b"\0", o.value.as_bytes(), b"\0"] {
            for &b in part {
                h ^= u64::from(b);
                h = h.wrapping_mul(PRIME);
            }
        }
    }
    h
}

/// uWSGI options that act as root, though liege does not implement them: refused as root
/// options from untrusted files (a clearer message than "not implemented").
const ROOT_NAMES: &[&str] = &[
    "cap",
    "chroot",
    "pivot-root",
    "pivot_root",
    "limit-as",
    "limit-nproc",
    "max-fd",
    "exec-as-root",
    "exec-pre-jail",
    "exec-post-jail",
    "exec-in-jail",
    "exec-asap",
    "exec-as-emperor",
    "call-as-root",
    "call-pre-jail",
    "call-post-jail",
    "call-in-jail",
    "call-asap",
    "master-as-root",
    "immediate-uid",
    "immediate-gid",
    "refork-as-root",
    "re-fork-as-root",
    "refork-post-jail",
    "re-fork-post-jail",
    "ns",
    "ns-net",
    "setns",
    "mount",
    "unshare",
    "emperor",
    "cgroup",
    "libjail",
];

/// Prefixes of uWSGI option names that act as root (`jail` covers `jail2`, `jailed`...).
const ROOT_PREFIXES: &[&str] = &[
    "hook-",
    "mount-",
    "mountpoint-",
    "umount-",
    "jail",
    "unshare",
    "emperor-",
    "vassal-",
    "vassals-",
    "rlimit",
    "cgroup-",
    "setns-",
    "call-as-emperor",
    "privileged-binary-patch",
];

/// Whether an option acts as root on the host: liege's options marked so in the registry,
/// every option of the emperor, and uWSGI's root options (hooks, mounts, jails, capabilities,
/// namespaces, rlimits, cgroups...).
pub fn is_privileged(key: &str) -> bool {
    // For the options liege implements, the registry says (`hook-as-user` and `exec-as-user`
    // run as the customer, after the drop, under the seccomp filter: a customer may write them).
    if let Known::Liege(spec) = registry::lookup(key) {
        return spec.privileged || spec.part == Part::Emperor;
    }
    ROOT_NAMES.contains(&key) || ROOT_PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The id of `name` in a passwd- or group-style file (`name:x:id:...`), and the fourth field.
fn lookup_name(file: &Path, name: &str) -> Option<(u32, Option<u32>)> {
    let text = fs_err::read_to_string(file).ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        let _password = f.next()?;
        let id = f.next()?.parse().ok()?;
        Some((id, f.next().and_then(|g| g.parse().ok())))
    })
}

/// The primary group of `uid` in a passwd file.
fn primary_group(passwd: &Path, uid: u32) -> Option<u32> {
    let text = fs_err::read_to_string(passwd).ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[2].parse() == Ok(uid))
            .then(|| f[3].parse().ok())
            .flatten()
    })
}

/// `uid = NAME|NUMBER`: the uid and the user's primary group, when known.
fn parse_user(o: &liege_config::Opt, passwd: &Path) -> Result<(u32, Option<u32>), PolicyError> {
    let v = o.value.trim();
    if let Ok(n) = v.parse::<u32>() {
        return Ok((n, primary_group(passwd, n)));
    }
    lookup_name(passwd, v).ok_or_else(|| PolicyError::NoUser {
        origin: o.origin.clone(),
        name: v.to_owned(),
        file: passwd.display().to_string(),
    })
}

/// `gid = NAME|NUMBER`
fn parse_group(o: &liege_config::Opt, group: &Path) -> Result<u32, PolicyError> {
    let v = o.value.trim();
    if let Ok(n) = v.parse::<u32>() {
        return Ok(n);
    }
    lookup_name(group, v)
        .map(|(id, _)| id)
        .ok_or_else(|| PolicyError::NoGroup {
            origin: o.origin.clone(),
            name: v.to_owned(),
            file: group.display().to_string(),
        })
}

/// `FILE=VALUE` or `FILE:VALUE`, FILE a plain name in the cgroup folder.
fn parse_cgroup_opt(o: &liege_config::Opt) -> Result<(String, String), PolicyError> {
    let v = o.value.as_str();
    let at = v.find(['=', ':']).ok_or_else(|| {
        invalid(
            o,
            "it takes `FILE=VALUE` (`memory.swappiness=0`, `cpu.shares=512`)",
        )
    })?;
    let (file, value) = (v[..at].trim(), v[at + 1..].trim());
    if file.is_empty() || file.starts_with('.') || file.contains('/') {
        return Err(invalid(o, "FILE is a file name of the cgroup folder"));
    }
    if value.contains(['\n', '\0']) {
        return Err(invalid(o, "VALUE is one line"));
    }
    Ok((file.to_owned(), value.to_owned()))
}

/// Which list an option is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The vassal file and what it pulled in.
    Vassal,
    /// A `vassals-inherit` template.
    Template,
}

/// One options list and how it was read.
struct Read<'a> {
    resolved: Resolved,
    access: &'a OwnerAccess,
    /// The pinned top file and its stamp.
    top: String,
    top_stamp: Stamp,
    part: Side,
}

impl Read<'_> {
    /// The stamp of the file an option came from, when it was read as a file.
    fn stamp_of(&self, origin: &Origin) -> Option<Stamp> {
        let Origin::File { path, .. } = origin else {
            return None;
        };
        if **path == *self.top {
            return Some(self.top_stamp);
        }
        self.access.read_stamp(path)
    }
}

/// The loader's name for a path: `file.ini:section` is split at the last colon, so a path
/// holding one gets an empty section after it.
fn loader_name(path: &str, location: &str) -> Result<String, PolicyError> {
    if !path.contains(':') {
        return Ok(path.to_owned());
    }
    if path.ends_with(".xml") {
        return Err(PolicyError::XmlColon {
            location: location.to_owned(),
        });
    }
    Ok(format!("{path}:"))
}

/// The vassal file itself, already read, served under its name; everything else goes to
/// `rest`. So the loader parses exactly the bytes whose owner and mode were checked.
#[derive(Debug)]
struct Pinned<'a> {
    path: String,
    data: Vec<u8>,
    facts: FileFacts,
    rest: &'a OwnerAccess,
}

impl FileAccess for Pinned<'_> {
    fn read(&self, path: &str, limit: u64) -> Result<Vec<u8>, AccessError> {
        if path != self.path {
            return self.rest.read(path, limit);
        }
        if self.data.len() as u64 > limit {
            return Err(AccessError::TooLarge {
                path: path.to_owned(),
                size: self.data.len() as u64,
                limit,
            });
        }
        Ok(self.data.clone())
    }

    fn exec(&self, command: &str, limit: u64) -> Result<Vec<u8>, AccessError> {
        self.rest.exec(command, limit)
    }

    fn exists(&self, path: &str) -> bool {
        self.rest.exists(path)
    }

    fn is_file(&self, path: &str) -> bool {
        self.rest.is_file(path)
    }

    fn is_dir(&self, path: &str) -> bool {
        self.rest.is_dir(path)
    }

    fn glob(&self, pattern: &str) -> Vec<String> {
        self.rest.glob(pattern)
    }

    fn file_facts(&self, path: &str) -> Option<FileFacts> {
        if path == self.path {
            return Some(self.facts.clone());
        }
        self.rest.file_facts(path)
    }
}

/// A file already read, to resolve.
struct Top {
    path: String,
    data: Vec<u8>,
    facts: liege_config::access::FileFacts,
    location: String,
}

/// Resolves one file through `access`, the file itself served from what was read.
fn resolve(
    top: Top,
    access: &OwnerAccess,
    host: &HostFacts,
    env: &dyn Fn(&str) -> Option<String>,
    reload: bool,
) -> Result<Resolved, PolicyError> {
    let given = loader_name(&top.path, &top.location)?;
    let pinned = Pinned {
        path: top.path,
        data: top.data,
        facts: top.facts,
        rest: access,
    };
    let ctx = Context {
        access: &pinned,
        env,
        host: host.clone(),
        is_reload: reload,
    };
    let mut loader = Loader::new(&ctx);
    loader.load_file(&given, &Origin::Builtin)?;
    Ok(loader.finish()?)
}

fn host_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn no_env(_: &str) -> Option<String> {
    None
}

/// Reads, checks and resolves a vassal; see the module for the rules. `reload` is what
/// `if-reload` sees.
pub fn load(
    entry: &Entry,
    settings: &Settings,
    host: &HostFacts,
    reload: bool,
) -> Result<VassalConfig, PolicyError> {
    let location = entry.location.as_str();
    let fetched = entry
        .reader
        .fetch(DEFAULT_MAX_CONFIG_SIZE)
        .map_err(PolicyError::Read)?;
    let stamp = fetched.stamp;

    // 1. Who the file is read and run as.
    if settings.tyrant && (stamp.uid == 0 || stamp.gid == 0) {
        let what = if stamp.uid == 0 { "root" } else { "group root" };
        return Err(PolicyError::TyrantRoot {
            location: location.to_owned(),
            what: what.to_owned(),
        });
    }
    if stamp.uid == 0 {
        if let Some(why) = stamp.distrust() {
            return Err(PolicyError::WritableRoot {
                location: location.to_owned(),
                why,
            });
        }
    } else if stamp.gid == 0 {
        return Err(PolicyError::GroupRoot {
            location: location.to_owned(),
            uid: stamp.uid,
        });
    }
    let as_owner = settings.tyrant || stamp.uid != 0;
    let (read_uid, read_gid) = if stamp.uid == 0 {
        (0, 0)
    } else {
        (stamp.uid, stamp.gid)
    };

    // 2. The vassal file, read as its owner; the environment only for root's own files.
    let owner_access = OwnerAccess::new(read_uid, read_gid, entry.reader.folder());
    let env: &dyn Fn(&str) -> Option<String> = if as_owner { &no_env } else { &host_env };
    let top = Top {
        path: entry.reader.path().to_owned(),
        data: fetched.data,
        facts: fetched.facts,
        location: location.to_owned(),
    };
    let vassal = resolve(top, &owner_access, host, env, reload)?;
    let mut reads = vec![Read {
        resolved: vassal,
        access: &owner_access,
        top: entry.reader.path().to_owned(),
        top_stamp: stamp,
        part: Side::Vassal,
    }];

    // 3. The templates, read as root; each must be trusted.
    let template_access: Vec<(String, OwnerAccess)> = settings
        .inherit
        .iter()
        .map(|p| {
            let folder = p.parent().unwrap_or(Path::new("/")).to_path_buf();
            (p.display().to_string(), OwnerAccess::new(0, 0, folder))
        })
        .collect();
    for (shown, access) in &template_access {
        let path = Path::new(shown);
        let (data, tstamp) =
            read_regular(path, shown, DEFAULT_MAX_CONFIG_SIZE, false).map_err(|source| {
                PolicyError::TemplateRead {
                    path: shown.clone(),
                    source,
                }
            })?;
        if let Some(why) = tstamp.distrust() {
            return Err(PolicyError::Template {
                path: shown.clone(),
                why,
            });
        }
        let folder = path.parent().unwrap_or(Path::new("/"));
        let facts = HostAccess::without_exec(folder.to_path_buf())
            .file_facts(shown)
            .unwrap_or_else(|| liege_config::access::FileFacts {
                path: shown.clone(),
                inode: tstamp.inode,
            });
        let top = Top {
            path: shown.clone(),
            data,
            facts,
            location: shown.clone(),
        };
        let resolved = resolve(top, access, host, &host_env, reload)?;
        reads.push(Read {
            resolved,
            access,
            top: shown.clone(),
            top_stamp: tstamp,
            part: Side::Template,
        });
    }

    // 4. Root options only from trusted files; then nothing liege does not implement.
    for read in &reads {
        for o in read.resolved.options.iter() {
            if !is_privileged(&o.key) {
                continue;
            }
            let why = if settings.tyrant && read.part == Side::Vassal {
                Some("emperor-tyrant takes them only from vassals-inherit".to_owned())
            } else {
                match read.stamp_of(&o.origin) {
                    Some(s) => s
                        .distrust()
                        .map(|why| format!("{}: {why}", origin_path(&o.origin))),
                    None => Some(format!("{} was not read from a file", o.origin)),
                }
            };
            if let Some(why) = why {
                return Err(PolicyError::Privileged {
                    origin: o.origin.clone(),
                    key: o.key.clone(),
                    why,
                });
            }
        }
    }
    for read in &reads {
        if let Some(o) = read
            .resolved
            .options
            .iter()
            .find(|o| matches!(registry::lookup(&o.key), Known::Uwsgi { .. }))
        {
            return Err(PolicyError::Unimplemented {
                origin: o.origin.clone(),
                key: o.key.clone(),
            });
        }
    }

    let mut all = Options::new();
    let mut warnings = Vec::new();
    for read in &reads {
        for o in read.resolved.options.iter() {
            all.push(o.key.clone(), o.value.clone(), o.origin.clone());
        }
        warnings.extend(read.resolved.warnings.iter().cloned());
    }

    // 5. The identity.
    let (uid, gid) = if as_owner {
        if !settings.tyrant
            && let Some(o) = all.last("uid").or_else(|| all.last("gid"))
        {
            warnings.push(Warning {
                origin: o.origin.clone(),
                message: format!(
                    "`{}` is not used: `{location}` is owned by uid {}, and a vassal file that is not root's runs as its owner",
                    o.key, stamp.uid
                ),
            });
        }
        (Some(stamp.uid), Some(stamp.gid))
    } else {
        let user = all
            .last("uid")
            .map(|o| parse_user(o, &settings.passwd).map(|u| (o, u)))
            .transpose()?;
        let gid = all
            .last("gid")
            .map(|o| parse_group(o, &settings.group))
            .transpose()?;
        match (user, gid) {
            (None, gid) => (None, gid),
            (Some((_, (uid, _))), Some(gid)) => (Some(uid), Some(gid)),
            (Some((o, (uid, primary))), None) => {
                let gid = primary.ok_or_else(|| PolicyError::NoPrimaryGroup {
                    origin: o.origin.clone(),
                    uid,
                    file: settings.passwd.display().to_string(),
                })?;
                (Some(uid), Some(gid))
            }
        }
    };

    // 6. Namespaces, limits and the rest.
    let mut namespaces = settings.default_namespaces;
    for o in all.all("unshare") {
        namespaces = namespaces.union(parse_namespaces(o)?);
    }
    if namespaces.is_empty() {
        warnings.push(Warning {
            origin: Origin::Builtin,
            message: format!(
                "vassal `{}` runs in the host's namespaces (emperor-use-clone = none, and no `unshare`)",
                entry.name
            ),
        });
    }
    let max_cpu = 100 * u64::try_from(host.cpus.max(1)).unwrap_or(u64::MAX / 100);
    let limits = Limits {
        memory: all
            .last("memory-limit")
            .map(parse_positive_size)
            .transpose()?,
        cpu_percent: all
            .last("cpu-limit")
            .map(|o| parse_number(o, 1, max_cpu))
            .transpose()?
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        pids: all
            .last("pids-limit")
            .map(|o| parse_number(o, 1, u64::MAX))
            .transpose()?,
        cgroup_opts: all
            .all("cgroup-opt")
            .map(parse_cgroup_opt)
            .collect::<Result<_, _>>()?,
    };
    let cgroup_dirs = all.all("cgroup").map(|o| o.value.clone()).collect();
    let cgroup_dir_mode = match all.last("cgroup-dir-mode") {
        Some(o) => u32::from_str_radix(o.value.trim(), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| invalid(o, "an octal mode, like 0700"))?,
        None => 0o700,
    };
    let log_maxsize = match all.last("log-maxsize") {
        Some(o) => parse_positive_size(o)?,
        None => settings.default_log_maxsize,
    };
    let heartbeat = all
        .last("heartbeat")
        .map(|o| parse_number(o, 1, u64::MAX))
        .transpose()?;

    // 7. What the master gets: `uid`/`gid` as decided here.
    let mut options = Options::new();
    for o in all.iter().filter(|o| o.key != "uid" && o.key != "gid") {
        options.push(o.key.clone(), o.value.clone(), o.origin.clone());
    }
    if let Some(uid) = uid {
        options.push("uid", uid.to_string(), Origin::Builtin);
    }
    if let Some(gid) = gid {
        options.push("gid", gid.to_string(), Origin::Builtin);
    }
    if let Some(router_gid) = settings.router_gid {
        for (key, value) in crate::routes::socket_access(&all, uid, router_gid) {
            options.push(key, value, Origin::Builtin);
        }
    }
    Ok(VassalConfig {
        name: entry.name.clone(),
        location: location.to_owned(),
        stamp,
        digest: digest(&options),
        options,
        uid,
        gid,
        namespaces,
        limits,
        cgroup_dirs,
        cgroup_dir_mode,
        log_maxsize,
        heartbeat,
        warnings,
    })
}

/// The path of an origin, for messages.
fn origin_path(origin: &Origin) -> String {
    match origin {
        Origin::File { path, .. } => format!("`{path}`"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use crate::access::tests::{NOBODY, assert_root, open_tempdir, write};
    use crate::source::dir::DirReader;

    struct Fixture {
        dir: tempfile::TempDir,
        settings: Settings,
    }

    impl Fixture {
        fn new() -> Fixture {
            assert_root();
            let dir = open_tempdir();
            let passwd = dir.path().join("passwd");
            let group = dir.path().join("group");
            fs_err::write(
                &passwd,
                "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/srv:/bin/false\nnobody:x:65534:65534::/:/bin/false\n",
            )
            .unwrap();
            fs_err::write(
                &group,
                "root:x:0:\nweb:x:1001:\nstaff:x:50:\nnogroup:x:65534:\n",
            )
            .unwrap();
            let settings = Settings {
                passwd,
                group,
                ..Settings::default()
            };
            Fixture { dir, settings }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }

        /// A vassal file with that owner and mode.
        fn vassal(&self, name: &str, text: &str, mode: u32, uid: u32, gid: u32) -> Entry {
            let path = self.path(name);
            write(&path, text, mode, uid, gid);
            entry(&path)
        }

        fn load(&self, e: &Entry) -> Result<VassalConfig, String> {
            load(e, &self.settings, &HostFacts::for_tests("/"), false).map_err(|e| e.to_string())
        }
    }

    fn entry(path: &Path) -> Entry {
        let file_name = path.file_name().unwrap().to_str().unwrap();
        Entry {
            name: VassalName::from_file_name(file_name).unwrap(),
            location: path.display().to_string(),
            stamp: Stamp::of(&fs_err::metadata(path).unwrap()),
            reader: Arc::new(DirReader::new(path.to_path_buf())),
        }
    }

    fn value<'a>(c: &'a VassalConfig, key: &str) -> Option<&'a str> {
        c.options.last(key).map(|o| o.value.as_str())
    }

    #[test]
    fn a_trusted_root_file_takes_root_options() {
        let f = Fixture::new();
        let text = "[uwsgi]\n\
            uid = web\n\
            memory-limit = 256m\n\
            cpu-limit = 50\n\
            pids-limit = 200\n\
            cgroup-opt = memory.swappiness=0\n\
            cgroup-opt = cpu.shares:512\n\
            cgroup = /sys/fs/cgroup/memory/extra\n\
            cgroup-dir-mode = 0750\n\
            unshare = cgroup\n\
            log-maxsize = 1m\n\
            heartbeat = 10\n\
            processes = 2\n";
        let e = f.vassal("app.ini", text, 0o644, 0, 50);
        let c = f.load(&e).unwrap();
        assert_eq!(c.name.as_str(), "app");
        assert_eq!(c.location, e.location);
        assert_eq!((c.uid, c.gid), (Some(1000), Some(1001)));
        assert_eq!(
            c.limits,
            Limits {
                memory: Some(256 << 20),
                cpu_percent: Some(50),
                pids: Some(200),
                cgroup_opts: vec![
                    ("memory.swappiness".into(), "0".into()),
                    ("cpu.shares".into(), "512".into())
                ],
            }
        );
        assert_eq!(c.cgroup_dirs, ["/sys/fs/cgroup/memory/extra"]);
        assert_eq!(c.cgroup_dir_mode, 0o750);
        assert_eq!(c.namespaces.to_string(), "fs,ipc,uts,net,pid,cgroup");
        assert_eq!(c.log_maxsize, 1 << 20);
        assert_eq!(c.heartbeat, Some(10));
        assert_eq!(value(&c, "processes"), Some("2"));
        // The master gets the identity decided here, as numbers, once.
        assert_eq!(c.options.all("uid").count(), 1);
        assert_eq!(value(&c, "uid"), Some("1000"));
        assert_eq!(value(&c, "gid"), Some("1001"));
        assert_eq!(c.options.last("uid").unwrap().origin, Origin::Builtin);
        assert_eq!(c.digest, digest(&c.options));
        assert_eq!(
            c.restart_key(),
            RestartKey {
                namespaces: c.namespaces,
                uid: Some(1000),
                gid: Some(1001),
                cgroup_dirs: c.cgroup_dirs.clone(),
            }
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);

        // Without `uid` it stays root; `gid` by name and number.
        let e = f.vassal("b.ini", "[uwsgi]\ngid = staff\n", 0o600, 0, 0);
        let c = f.load(&e).unwrap();
        assert_eq!((c.uid, c.gid), (None, Some(50)));
        let e = f.vassal("b.ini", "[uwsgi]\nuid = 2000\ngid = 2001\n", 0o600, 0, 0);
        assert_eq!(
            f.load(&e).map(|c| (c.uid, c.gid)).unwrap(),
            (Some(2000), Some(2001))
        );
    }

    #[test]
    fn a_writable_root_file_is_refused() {
        let f = Fixture::new();
        let e = f.vassal("app.ini", "[uwsgi]\nprocesses = 1\n", 0o664, 0, 0);
        assert_eq!(
            f.load(&e).unwrap_err(),
            format!(
                "`{}`: a root-owned vassal file is read and run with root's rights, but it is writable by its group (mode 0664)\nhint: chmod go-w it, or give it to the user the vassal runs as",
                e.location
            )
        );
        let e = f.vassal("app.ini", "[uwsgi]\n", 0o646, 0, 0);
        assert!(
            f.load(&e)
                .unwrap_err()
                .contains("writable by others (mode 0646)")
        );
    }

    #[test]
    fn a_customers_file_runs_as_its_owner_without_root_options() {
        let f = Fixture::new();
        let e = f.vassal("c.ini", "[uwsgi]\nprocesses = 3\n", 0o644, NOBODY, NOBODY);
        let c = f.load(&e).unwrap();
        assert_eq!((c.uid, c.gid), (Some(NOBODY), Some(NOBODY)));
        assert_eq!(value(&c, "uid"), Some("65534"));
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.log_maxsize, DEFAULT_LOG_MAXSIZE);

        for (line, key) in [
            ("memory-limit = 1g", "memory-limit"),
            ("uid = 0", "uid"),
            ("set = gid=0", "gid"),
            ("unshare = net", "unshare"),
            ("emperor-tyrant = false", "emperor-tyrant"),
            ("hook-as-root = exec:id", "hook-as-root"),
            ("mount = proc none /proc", "mount"),
            ("cgroup-opt = pids.max=max", "cgroup-opt"),
            ("vassals-inherit = /x.ini", "vassals-inherit"),
            ("rlimit-nofile = 1", "rlimit-nofile"),
        ] {
            let e = f.vassal(
                "c.ini",
                &format!("[uwsgi]\n{line}\n"),
                0o644,
                NOBODY,
                NOBODY,
            );
            assert_eq!(
                f.load(&e).unwrap_err(),
                format!(
                    "{0}:2: option `{key}` acts as root and is only taken from root-owned files that no group or other can write (`{0}`: it is owned by uid 65534)",
                    e.location
                ),
                "{line}"
            );
        }

        // What it pulls in is read as its owner.
        write(&f.path("secret.ini"), "[uwsgi]\nx = 1\n", 0o600, 0, 0);
        let e = f.vassal(
            "c.ini",
            "[uwsgi]\ninclude = secret.ini\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        let err = f.load(&e).unwrap_err();
        assert_eq!(
            err,
            format!(
                "{}:2: cannot read `secret.ini`: Permission denied (os error 13)",
                e.location
            )
        );
        write(&f.path("secret"), "s3cret", 0o600, 0, 0);
        let e = f.vassal("c.ini", "[uwsgi]\nx = @(secret)\n", 0o644, NOBODY, NOBODY);
        assert!(
            f.load(&e)
                .unwrap_err()
                .contains("cannot read `secret`: Permission denied")
        );
        let e = f.vassal(
            "c.ini",
            "[uwsgi]\nx = @(exec://id)\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        assert!(
            f.load(&e)
                .unwrap_err()
                .ends_with("`exec://` is not allowed here (`id`)")
        );
        // Nor does it see the emperor's environment.
        let e = f.vassal("c.ini", "[uwsgi]\np = $(PATH)\n", 0o644, NOBODY, NOBODY);
        assert_eq!(value(&f.load(&e).unwrap(), "p"), Some("$(PATH)"));
        let e = f.vassal("r.ini", "[uwsgi]\np = $(PATH)\n", 0o644, 0, 0);
        assert_eq!(
            value(&f.load(&e).unwrap(), "p"),
            std::env::var("PATH").ok().as_deref()
        );

        // Group root is never given to a customer.
        let e = f.vassal("c.ini", "[uwsgi]\n", 0o644, 1000, 0);
        assert_eq!(
            f.load(&e).unwrap_err(),
            format!(
                "`{}`: owned by uid 1000 and group root: a vassal runs with the group of its file, and never with group root\nhint: chown 1000:GROUP it",
                e.location
            )
        );
    }

    #[test]
    fn the_owner_and_mode_are_those_of_what_is_read() {
        let f = Fixture::new();
        let e = f.vassal("app.ini", "[uwsgi]\nmemory-limit = 1g\n", 0o644, 0, 0);
        // Given away between the event and the read.
        std::os::unix::fs::chown(f.path("app.ini"), Some(NOBODY), Some(NOBODY)).unwrap();
        let err = f.load(&e).unwrap_err();
        assert!(err.contains("it is owned by uid 65534"), "{err}");
        std::os::unix::fs::chown(f.path("app.ini"), Some(0), Some(0)).unwrap();
        let c = f.load(&e).unwrap();
        assert_ne!(c.stamp, e.stamp);
        assert_eq!(c.stamp.uid, 0);
    }

    #[test]
    fn root_options_of_a_trusted_file_count_only_from_trusted_files() {
        let f = Fixture::new();
        write(
            &f.path("cust.ini"),
            "[uwsgi]\nmemory-limit = 8g\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        write(
            &f.path("open.ini"),
            "[uwsgi]\npids-limit = 10\n",
            0o666,
            0,
            0,
        );
        write(
            &f.path("admin.ini"),
            "[uwsgi]\ncpu-limit = 20\n",
            0o644,
            0,
            0,
        );
        let e = f.vassal("app.ini", "[uwsgi]\ninclude = admin.ini\n", 0o644, 0, 0);
        assert_eq!(f.load(&e).unwrap().limits.cpu_percent, Some(20));
        let e = f.vassal("app.ini", "[uwsgi]\ninclude = cust.ini\n", 0o644, 0, 0);
        assert_eq!(
            f.load(&e).unwrap_err(),
            "cust.ini:2: option `memory-limit` acts as root and is only taken from root-owned files that no group or other can write (`cust.ini`: it is owned by uid 65534)"
        );
        let e = f.vassal("app.ini", "[uwsgi]\ninclude = open.ini\n", 0o644, 0, 0);
        assert!(
            f.load(&e)
                .unwrap_err()
                .ends_with("(`open.ini`: it is writable by its group and others (mode 0666))")
        );
        // Options that do not act as root may come from anywhere.
        write(
            &f.path("cust.ini"),
            "[uwsgi]\nprocesses = 4\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        let e = f.vassal("app.ini", "[uwsgi]\ninclude = cust.ini\n", 0o644, 0, 0);
        assert_eq!(value(&f.load(&e).unwrap(), "processes"), Some("4"));
    }

    #[test]
    fn the_tyrant_runs_the_owner_and_takes_root_options_from_the_templates_only() {
        let mut f = Fixture::new();
        let etc = f.path("etc");
        fs_err::create_dir(&etc).unwrap();
        fs_err::set_permissions(&etc, std::fs::Permissions::from_mode(0o700)).unwrap();
        let template = etc.join("base.ini");
        write(
            &template,
            "[uwsgi]\nmemory-limit = 128m\nuid = web\ngid = staff\nharakiri = 30\n",
            0o644,
            0,
            0,
        );
        f.settings.tyrant = true;
        f.settings.inherit = vec![template.clone()];
        let e = f.vassal("c.ini", "[uwsgi]\nprocesses = 2\n", 0o644, NOBODY, NOBODY);
        let c = f.load(&e).unwrap();
        assert_eq!((c.uid, c.gid), (Some(NOBODY), Some(NOBODY)));
        assert_eq!(c.limits.memory, Some(128 << 20));
        assert_eq!(value(&c, "harakiri"), Some("30"));
        assert_eq!(value(&c, "processes"), Some("2"));
        assert_eq!(value(&c, "uid"), Some("65534"));
        assert_eq!(value(&c, "gid"), Some("65534"));
        assert_eq!(c.options.all("uid").count(), 1);
        // The template's options come after the vassal's, with their own origins.
        let keys: Vec<&str> = c.options.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            ["processes", "memory-limit", "harakiri", "uid", "gid"]
        );
        assert_eq!(
            c.options.last("memory-limit").unwrap().origin.to_string(),
            format!("{}:2", template.display())
        );

        let e = f.vassal("c.ini", "[uwsgi]\ncpu-limit = 100\n", 0o644, NOBODY, NOBODY);
        assert_eq!(
            f.load(&e).unwrap_err(),
            format!(
                "{}:2: option `cpu-limit` acts as root and is only taken from root-owned files that no group or other can write (emperor-tyrant takes them only from vassals-inherit)",
                e.location
            )
        );
        let e = f.vassal("r.ini", "[uwsgi]\n", 0o644, 0, 0);
        assert_eq!(
            f.load(&e).unwrap_err(),
            format!(
                "`{}`: emperor-tyrant runs a vassal as the owner of its file, and this file is owned by root\nhint: give it to the customer it runs as (chown USER:GROUP)",
                e.location
            )
        );
        let e = f.vassal("g.ini", "[uwsgi]\n", 0o644, NOBODY, 0);
        assert!(f.load(&e).unwrap_err().contains("is owned by group root"));

        // A template others can write spoils every vassal.
        write(&template, "[uwsgi]\n", 0o664, 0, 0);
        let e = f.vassal("c.ini", "[uwsgi]\n", 0o644, NOBODY, NOBODY);
        assert_eq!(
            f.load(&e).unwrap_err(),
            format!(
                "vassals-inherit `{}` must be owned by root and not writable by group or other, but it is writable by its group (mode 0664): every vassal is refused until it is fixed",
                template.display()
            )
        );
        write(&template, "[uwsgi]\n", 0o644, 1000, 1001);
        assert!(
            f.load(&e)
                .unwrap_err()
                .contains("but it is owned by uid 1000")
        );
        fs_err::remove_file(&template).unwrap();
        assert_eq!(
            f.load(&e).unwrap_err(),
            format!(
                "vassals-inherit `{}`: cannot read `{0}`: No such file or directory (os error 2); every vassal is refused until it is fixed",
                template.display()
            )
        );
    }

    #[test]
    fn without_the_tyrant_a_template_identity_applies_to_root_files_only() {
        let mut f = Fixture::new();
        let template = f.path("base.ini");
        write(
            &template,
            "[uwsgi]\nuid = web\npids-limit = 50\n",
            0o600,
            0,
            0,
        );
        f.settings.inherit = vec![template];
        let e = f.vassal("r.ini", "[uwsgi]\n", 0o644, 0, 0);
        let c = f.load(&e).unwrap();
        assert_eq!((c.uid, c.gid), (Some(1000), Some(1001)));
        assert_eq!(c.limits.pids, Some(50));
        let e = f.vassal("c.ini", "[uwsgi]\n", 0o644, NOBODY, NOBODY);
        let c = f.load(&e).unwrap();
        assert_eq!((c.uid, c.gid), (Some(NOBODY), Some(NOBODY)));
        assert_eq!(c.limits.pids, Some(50));
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0].message.starts_with("`uid` is not used: "),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn unimplemented_options_are_refused_with_file_and_line() {
        let f = Fixture::new();
        let e = f.vassal(
            "r.ini",
            "[uwsgi]\nprocesses = 1\ncron = 0 -1 -1 -1 -1 true\n",
            0o644,
            0,
            0,
        );
        assert_eq!(
            f.load(&e).unwrap_err(),
            format!(
                "{}:3: `cron` is a uWSGI option that liege does not implement yet",
                e.location
            )
        );
        // A root option liege lacks: from a trusted file, not implemented.
        let e = f.vassal("r.ini", "[uwsgi]\ncall-as-root = init\n", 0o644, 0, 0);
        assert!(
            f.load(&e).unwrap_err().ends_with(
                ":2: `call-as-root` is a uWSGI option that liege does not implement yet"
            )
        );
        // Placeholders stay placeholders.
        let e = f.vassal(
            "r.ini",
            "[uwsgi]\nbase = /srv\nchdir = %(base)\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        assert_eq!(value(&f.load(&e).unwrap(), "chdir"), Some("/srv"));
    }

    #[test]
    fn limits_and_identities_are_checked_with_file_and_line() {
        let f = Fixture::new();
        let cases = [
            (
                "memory-limit = lots",
                "invalid value `lots` for `memory-limit`: a size is a number of bytes, with an optional k, m or g",
            ),
            (
                "memory-limit = 0",
                "invalid value `0` for `memory-limit`: it must be more than 0",
            ),
            (
                "cpu-limit = 0",
                "invalid value `0` for `cpu-limit`: from 1 to 200",
            ),
            (
                "cpu-limit = 201",
                "invalid value `201` for `cpu-limit`: from 1 to 200",
            ),
            (
                "cpu-limit = half",
                "invalid value `half` for `cpu-limit`: a whole number",
            ),
            (
                "pids-limit = 0",
                "invalid value `0` for `pids-limit`: at least 1",
            ),
            (
                "pids-limit = -1",
                "invalid value `-1` for `pids-limit`: a whole number",
            ),
            (
                "cgroup-opt = swappiness",
                "invalid value `swappiness` for `cgroup-opt`: it takes `FILE=VALUE` (`memory.swappiness=0`, `cpu.shares=512`)",
            ),
            (
                "cgroup-opt = ../x=1",
                "invalid value `../x=1` for `cgroup-opt`: FILE is a file name of the cgroup folder",
            ),
            (
                "cgroup-dir-mode = 999",
                "invalid value `999` for `cgroup-dir-mode`: an octal mode, like 0700",
            ),
            (
                "log-maxsize = big",
                "invalid value `big` for `log-maxsize`: a size is a number of bytes, with an optional k, m or g",
            ),
            (
                "heartbeat = 0",
                "invalid value `0` for `heartbeat`: at least 1",
            ),
            (
                "unshare = net,time",
                "invalid value `net,time` for `unshare`: unknown namespace `time`\nhint: the names are fs (or ns, mount, mnt), ipc, uts, net, pid, cgroup, user, or none alone",
            ),
            (
                "unshare = user",
                "the `user` namespace needs a uid/gid map, not supported yet",
            ),
            ("uid = nosuch", "no user `nosuch` in PASSWD"),
            ("gid = nosuch", "no group `nosuch` in GROUP"),
            (
                "uid = 4242",
                "uid 4242 has no entry in PASSWD to take its group from\nhint: set `gid` too",
            ),
        ];
        for (line, want) in cases {
            let e = f.vassal("r.ini", &format!("[uwsgi]\n\n{line}\n"), 0o644, 0, 0);
            let want = want
                .replace("PASSWD", &f.settings.passwd.display().to_string())
                .replace("GROUP", &f.settings.group.display().to_string());
            assert_eq!(f.load(&e).unwrap_err(), format!("{}:3: {want}", e.location));
        }
        let e = f.vassal("r.ini", "[uwsgi]\nuid = 4242\ngid = 4242\n", 0o644, 0, 0);
        assert_eq!(f.load(&e).unwrap().uid, Some(4242));
    }

    #[test]
    fn the_emperors_settings_and_the_namespace_warning() {
        let mut o = Options::new();
        let at = |line| Origin::file(&Arc::from("/etc/liege/emperor.ini"), line);
        o.push("emperor-tyrant", "", at(1));
        o.push("vassals-inherit", "/etc/liege/base.ini", at(2));
        o.push("emperor-use-clone", "none", at(3));
        o.push("log-maxsize", "2m", at(4));
        let s = Settings::from_options(&o).unwrap();
        assert!(s.tyrant);
        assert_eq!(s.inherit, [PathBuf::from("/etc/liege/base.ini")]);
        assert!(s.default_namespaces.is_empty());
        assert_eq!(s.default_log_maxsize, 2 << 20);
        let d = Settings::from_options(&Options::new()).unwrap();
        assert_eq!(d, Settings::default());
        assert_eq!(d.default_namespaces.to_string(), DEFAULT_USE_CLONE);
        assert_eq!(
            Namespaces::parse(DEFAULT_USE_CLONE).unwrap(),
            d.default_namespaces
        );
        o.push("emperor-use-clone", "fs,user", at(5));
        assert_eq!(
            Settings::from_options(&o).unwrap_err().to_string(),
            "/etc/liege/emperor.ini:5: the `user` namespace needs a uid/gid map, not supported yet"
        );

        let mut f = Fixture::new();
        f.settings.default_namespaces = Namespaces::empty();
        let e = f.vassal("r.ini", "[uwsgi]\n", 0o644, 0, 0);
        let c = f.load(&e).unwrap();
        assert!(c.namespaces.is_empty());
        assert_eq!(
            c.warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "liege: warning: vassal `r` runs in the host's namespaces (emperor-use-clone = none, and no `unshare`)"
            ]
        );
        let e = f.vassal("r.ini", "[uwsgi]\nunshare = mnt pid\n", 0o644, 0, 0);
        let c = f.load(&e).unwrap();
        assert_eq!(c.namespaces.to_string(), "fs,pid");
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn percent_n_is_the_vassal_name() {
        let f = Fixture::new();
        let e = f.vassal(
            "my.app.ini",
            "[uwsgi]\nn = %n\nsock = /run/%n.sock\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        let c = f.load(&e).unwrap();
        assert_eq!(e.name.as_str(), "my.app");
        assert_eq!(value(&c, "n"), Some("my.app"));
        assert_eq!(value(&c, "sock"), Some("/run/my.app.sock"));
        // Through a symbolic link: the link's name.
        write(&f.path("real.yaml"), "uwsgi:\n  n: '%n'\n", 0o644, 0, 0);
        std::os::unix::fs::symlink(f.path("real.yaml"), f.path("linked.yaml")).unwrap();
        let e = entry(&f.path("linked.yaml"));
        assert_eq!(value(&f.load(&e).unwrap(), "n"), Some("linked"));
    }

    #[test]
    fn a_colon_in_the_path_is_no_section() {
        let f = Fixture::new();
        fs_err::create_dir(f.path("x:y")).unwrap();
        let e = f.vassal("x:y/app.ini", "[uwsgi]\nn = %n\n", 0o644, 0, 0);
        assert_eq!(value(&f.load(&e).unwrap(), "n"), Some("app"));
        let e = f.vassal("x:y/app.xml", "<uwsgi><n>1</n></uwsgi>", 0o644, 0, 0);
        assert_eq!(
            f.load(&e).unwrap_err(),
            format!(
                "`{}`: the path of an xml vassal file may not hold `:` (it would be read as `file:id`)",
                e.location
            )
        );
    }

    #[test]
    fn a_watched_file_loads_end_to_end() {
        use crate::source::{Change, VassalSource, dir::DirSource};
        let f = Fixture::new();
        let folder = f.path("vassals");
        fs_err::create_dir(&folder).unwrap();
        write(
            &folder.join("shop.yaml"),
            "uwsgi:\n  processes: 2\n",
            0o644,
            NOBODY,
            NOBODY,
        );
        let mut src = DirSource::new(folder.to_str().unwrap()).unwrap();
        let changes = src.rescan();
        let [Change::Upserted(e)] = &changes[..] else {
            panic!("{changes:?}")
        };
        let c = f.load(e).unwrap();
        assert_eq!(c.name.as_str(), "shop");
        assert_eq!(c.stamp, e.stamp);
        assert_eq!(value(&c, "processes"), Some("2"));
        assert_eq!(c.uid, Some(NOBODY));
    }

    #[test]
    fn a_link_counts_as_its_makers() {
        let f = Fixture::new();
        write(
            &f.path("other.ini"),
            "[uwsgi]\nenv = DB_PASSWORD=hunter2\n",
            0o600,
            1000,
            1001,
        );
        write(
            &f.path("admin.ini"),
            "[uwsgi]\nmemory-limit = 64g\n",
            0o644,
            0,
            0,
        );
        // A customer's link to another customer's file: read as the customer, so refused.
        let link = f.path("evil.ini");
        std::os::unix::fs::symlink(f.path("other.ini"), &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
        assert_eq!(
            f.load(&entry(&link)).unwrap_err(),
            format!(
                "cannot read `{}`: Permission denied (os error 13)",
                link.display()
            )
        );
        // A customer's link to root's file: the customer's, without root options.
        fs_err::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("admin.ini", &link).unwrap();
        std::os::unix::fs::lchown(&link, Some(NOBODY), Some(NOBODY)).unwrap();
        let err = f.load(&entry(&link)).unwrap_err();
        assert!(err.ends_with("it is owned by uid 65534)"), "{err}");
        write(
            &f.path("admin.ini"),
            "[uwsgi]\nprocesses = 1\n",
            0o644,
            0,
            0,
        );
        let c = f.load(&entry(&link)).unwrap();
        assert_eq!((c.uid, c.gid), (Some(NOBODY), Some(NOBODY)));
        assert_eq!(c.stamp.uid, NOBODY);
        // Root's link to a customer's file: the customer's file, run as the customer.
        std::os::unix::fs::lchown(&link, Some(0), Some(0)).unwrap();
        write(
            &f.path("admin.ini"),
            "[uwsgi]\nprocesses = 1\n",
            0o644,
            1000,
            1001,
        );
        let c = f.load(&entry(&link)).unwrap();
        assert_eq!((c.uid, c.gid), (Some(1000), Some(1001)));
    }

    #[test]
    fn the_digest_is_fnv1a_over_keys_and_values() {
        let mut o = Options::new();
        assert_eq!(digest(&o), 0xcbf2_9ce4_8422_2325);
        o.push("a", "b", Origin::Builtin);
        assert_eq!(digest(&o), 0xab40_d782_0d40_8076);
        let mut p = Options::new();
        p.push("ab", "", Origin::Builtin);
        assert_ne!(digest(&o), digest(&p));
    }

    #[test]
    fn root_options_are_known() {
        for key in [
            "uid",
            "gid",
            "unshare",
            "memory-limit",
            "cpu-limit",
            "pids-limit",
            "cgroup",
            "cgroup-opt",
            "cgroup-dir-mode",
            "log-maxsize",
            "emperor",
            "emperor-tyrant",
            "vassals-inherit",
            "hook-as-root",
            "hook-pre-app",
            "exec-as-root",
            "exec-pre-jail",
            "exec-post-jail",
            "exec-in-jail",
            "mount",
            "mount-as-root",
            "umount-in-jail",
            "jail",
            "jail2",
            "cap",
            "unshare2",
            "pivot-root",
            "chroot",
            "emperor-stats",
            "vassal-set",
            "limit-as",
            "limit-nproc",
            "rlimit-nofile",
            "max-fd",
            "jail-root",
            "jail-home",
            "jail-home-target",
            "jail-opt",
            "jail-seccomp",
            "jail-deny-wx",
            "jailed",
            "hostname",
            "binsh",
            "mount-post-jail",
            "hook-post-jail",
        ] {
            assert!(is_privileged(key), "{key}");
        }
        for key in [
            "processes",
            "socket",
            "harakiri",
            "heartbeat",
            "chdir",
            "module",
            "limit-post",
            "mountdir",
            "vassal_name",
            "base",
            "hook-as-user",
            "exec-as-user",
        ] {
            assert!(!is_privileged(key), "{key}");
        }
    }
}
