//! Building the options list, as uWSGI does: entries are appended in order; immediate options
//! (includes, `set`, logic) act as they are appended; then the `$()`, `@()` and `%()` passes;
//! then `inherit`ed templates. The uWSGI functions each step follows are named in comments.

use std::sync::Arc;

use crate::access::{AccessError, FileAccess};
use crate::error::{ConfigError, Warning};
use crate::expand::{placeholder_math, scan};
use crate::magic::{HostFacts, MagicTable};
use crate::notation::{self, Notation};
use crate::options::{Options, is_true};
use crate::origin::Origin;
use crate::registry::{self, Known};

/// The default of `max-config-size`: 4 MiB.
pub const DEFAULT_MAX_CONFIG_SIZE: u64 = 4 << 20;
/// Includes nested deeper than this are refused.
const MAX_INCLUDE_DEPTH: usize = 32;
/// `inherit` templates loaded at most this many times in all (uWSGI loops forever on a cycle).
const MAX_INHERITS: usize = 64;
/// Unknown keys checked for a near miss of an option name, at most.
const MAX_SUGGESTED: usize = 64;
/// `for-times` counts at most this far.
const MAX_FOR_TIMES: i64 = 10_000;
/// A list longer than this is refused: a hostile file (a `for` of a `for-times`...) must not
/// cost the emperor more than a moment.
const MAX_OPTIONS: usize = 100_000;

/// What the loader needs from outside: the filesystem policy, the environment and host facts.
pub struct Context<'a> {
    pub access: &'a dyn FileAccess,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub host: HostFacts,
    /// Whether the instance is reloading (`if-reload`).
    pub is_reload: bool,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("host", &self.host)
            .field("is_reload", &self.is_reload)
            .finish_non_exhaustive()
    }
}

/// The resolved list and what was noticed on the way.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub options: Options,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogicKind {
    For,
    ForGlob,
    ForTimes,
    ForReadline,
    IfEnv(bool),
    IfExists(bool),
    IfFile(bool),
    IfDir(bool),
    IfOpt(bool),
    IfReload(bool),
    IfHostname(bool),
}

impl LogicKind {
    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "for" => LogicKind::For,
            "for-glob" => LogicKind::ForGlob,
            "for-times" => LogicKind::ForTimes,
            "for-readline" => LogicKind::ForReadline,
            "if-env" | "ifenv" => LogicKind::IfEnv(true),
            "if-not-env" => LogicKind::IfEnv(false),
            "if-exists" | "ifexists" => LogicKind::IfExists(true),
            "if-not-exists" => LogicKind::IfExists(false),
            "if-file" => LogicKind::IfFile(true),
            "if-not-file" => LogicKind::IfFile(false),
            "if-dir" | "ifdir" | "if-directory" => LogicKind::IfDir(true),
            "if-not-dir" => LogicKind::IfDir(false),
            "if-opt" => LogicKind::IfOpt(true),
            "if-not-opt" => LogicKind::IfOpt(false),
            "if-reload" => LogicKind::IfReload(true),
            "if-not-reload" => LogicKind::IfReload(false),
            "if-hostname" => LogicKind::IfHostname(true),
            "if-not-hostname" => LogicKind::IfHostname(false),
            _ => return None,
        })
    }

    fn end(self) -> &'static str {
        match self {
            LogicKind::For | LogicKind::ForGlob | LogicKind::ForTimes | LogicKind::ForReadline => {
                "endfor"
            }
            _ => "endif",
        }
    }
}

/// An open `for` or `if-*` block.
#[derive(Debug, Clone)]
struct Logic {
    kind: LogicKind,
    key: String,
    arg: String,
    origin: Origin,
    /// The file (load serial) it was opened in; it must be closed there.
    file: u64,
}

/// uWSGI options that act while the file is read in a way liege does not reproduce: resolving
/// with them would give a different list, so they are refused.
const UNSUPPORTED_IMMEDIATE: &[(&str, &str)] = &[
    (
        "config",
        "the pluggable config loaders of uWSGI are not available; use ini, xml, yaml or json",
    ),
    ("declare-option", "custom options are not supported"),
    (
        "resolve",
        "a config file does not look names up in the DNS here",
    ),
    ("blacklist", "option blacklists are not supported"),
    ("end-blacklist", "option blacklists are not supported"),
    ("whitelist", "option whitelists are not supported"),
    ("end-whitelist", "option whitelists are not supported"),
    (
        "inject-before",
        "injecting text into config files is not supported",
    ),
    (
        "inject-after",
        "injecting text into config files is not supported",
    ),
    (
        "if-plugin",
        "liege has no plugins: its language workers are chosen by the app options",
    ),
    (
        "if-not-plugin",
        "liege has no plugins: its language workers are chosen by the app options",
    ),
    (
        "ifplugin",
        "liege has no plugins: its language workers are chosen by the app options",
    ),
    (
        "if-hostname-match",
        "regular expressions on the hostname are not supported yet; use if-hostname",
    ),
    (
        "if-not-hostname-match",
        "regular expressions on the hostname are not supported yet; use if-not-hostname",
    ),
    ("ini-paste", "PasteDeploy files are not supported"),
    ("ini-paste-logged", "PasteDeploy files are not supported"),
    ("sqlite3", "config from sqlite is not supported"),
    ("sqlite", "config from sqlite is not supported"),
    ("ldap", "config from LDAP is not supported"),
];

/// A file being read (for loop detection and `%x`).
#[derive(Debug, Clone)]
struct Frame {
    identity: String,
    shown: String,
}

/// Builds one options list.
pub struct Loader<'a> {
    ctx: &'a Context<'a>,
    options: Options,
    /// Parallel to `options`: already acted on (immediate options, placeholders), so the
    /// expansion passes leave it alone (uWSGI's `configured`).
    configured: Vec<bool>,
    warnings: Vec<Warning>,
    magic: MagicTable,
    first_file_done: bool,
    logic: Option<Logic>,
    logic_running: bool,
    strict: bool,
    max_config_size: u64,
    stack: Vec<Frame>,
    last_ini: Option<String>,
    serial: u64,
    current_file: u64,
    looked_up: std::collections::HashSet<String>,
}

impl std::fmt::Debug for Loader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn is_end(key: &str) -> bool {
    matches!(key, "end" | "endfor" | "endif" | "end-if" | "end-for")
}

/// Splits `file.ini:section` as uWSGI does: at the last colon (after the last `/` for a
/// `scheme://` name). Returns the file and the section, if one is named.
fn split_section(given: &str) -> (&str, Option<&str>) {
    let search_from = if given.contains("://") {
        given.rfind('/').map_or(0, |i| i + 1)
    } else {
        0
    };
    match given[search_from..].rfind(':') {
        Some(i) => {
            let at = search_from + i;
            let section = &given[at + 1..];
            (&given[..at], (!section.is_empty()).then_some(section))
        }
        None => (given, None),
    }
}

/// Parses a size: bytes, or with a `k`, `m` or `g` suffix.
pub fn parse_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let (num, mult) = match v.char_indices().last() {
        Some((i, 'k' | 'K')) => (&v[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&v[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&v[..i], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

impl<'a> Loader<'a> {
    /// A loader with an empty list.
    pub fn new(ctx: &'a Context<'a>) -> Self {
        Loader {
            ctx,
            options: Options::new(),
            configured: Vec::new(),
            warnings: Vec::new(),
            magic: MagicTable::new(&ctx.host),
            first_file_done: false,
            logic: None,
            logic_running: false,
            strict: false,
            max_config_size: DEFAULT_MAX_CONFIG_SIZE,
            stack: Vec::new(),
            last_ini: None,
            serial: 0,
            current_file: 0,
            looked_up: std::collections::HashSet::new(),
        }
    }

    fn warn(&mut self, origin: Origin, message: impl Into<String>) {
        self.warnings.push(Warning {
            origin,
            message: message.into(),
        });
    }

    /// Appends an entry, acting on it if it is immediate (`add_exported_option_do`).
    pub fn add(&mut self, key: &str, value: &str, origin: Origin) -> Result<(), ConfigError> {
        self.add_do(key, value, origin, false)
    }

    fn add_do(
        &mut self,
        key: &str,
        value: &str,
        origin: Origin,
        placeholder_only: bool,
    ) -> Result<(), ConfigError> {
        if !self.logic_running {
            if is_end(key) {
                if self.logic.is_none() && key != "end" {
                    self.warn(origin.clone(), format!("`{key}` without an open block"));
                }
                self.logic = None;
            }
            if let Some(logic) = self.logic.clone() {
                self.logic_running = true;
                let r = self.apply_logic(&logic, key, value, &origin);
                self.logic_running = false;
                return r;
            }
        }
        if self.options.len() >= MAX_OPTIONS {
            return Err(ConfigError::TooManyOptions {
                origin,
                limit: MAX_OPTIONS,
            });
        }
        self.options.push(key, value, origin.clone());
        self.configured.push(false);
        let index = self.configured.len() - 1;
        if placeholder_only {
            if registry::is_option(key) {
                return Err(ConfigError::PlaceholderIsOption {
                    origin,
                    key: key.to_owned(),
                });
            }
            self.configured[index] = true;
            return Ok(());
        }
        match registry::lookup(key) {
            Known::Liege(spec) if spec.immediate => {
                self.configured[index] = true;
                self.immediate(spec.name, key, value, origin)
            }
            Known::Liege(_) => Ok(()),
            Known::Uwsgi { .. } => {
                if let Some((_, why)) = UNSUPPORTED_IMMEDIATE.iter().find(|(k, _)| *k == key) {
                    return Err(ConfigError::NotSupported {
                        origin,
                        key: key.to_owned(),
                        why,
                    });
                }
                Ok(())
            }
            Known::Unknown => {
                if self.strict {
                    let hint = registry::suggest(key)
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    return Err(ConfigError::Strict {
                        origin,
                        key: key.to_owned(),
                        hint,
                    });
                }
                Ok(())
            }
        }
    }

    fn immediate(
        &mut self,
        name: &str,
        key: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        match name {
            "ini" | "xml" | "yaml" | "json" => {
                let notation = Notation::from_option(name).unwrap_or(Notation::Ini);
                self.load(value, Some(notation), &origin, false)
            }
            "include" => self.load(value, None, &origin, true),
            "set" | "set-placeholder" => {
                let Some((k, v)) = value.split_once('=') else {
                    return Err(ConfigError::BadAssignment {
                        origin,
                        key: key.to_owned(),
                        value: value.to_owned(),
                    });
                };
                self.add_do(k, v, origin, name == "set-placeholder")
            }
            "strict" => {
                self.strict = is_true(value);
                Ok(())
            }
            "max-config-size" => {
                self.max_config_size =
                    parse_size(value).ok_or_else(|| ConfigError::InvalidValue {
                        origin,
                        key: key.to_owned(),
                        value: value.to_owned(),
                        why: "a size is a number of bytes, with an optional k, m or g".into(),
                    })?;
                Ok(())
            }
            "endfor" | "endif" => Ok(()),
            _ => {
                let Some(kind) = LogicKind::from_key(key) else {
                    return Ok(());
                };
                if let Some(open) = &self.logic {
                    return Err(ConfigError::NestedLogic {
                        origin,
                        key: key.to_owned(),
                        open_key: open.key.clone(),
                        open: open.origin.clone(),
                    });
                }
                self.logic = Some(Logic {
                    kind,
                    key: key.to_owned(),
                    arg: value.to_owned(),
                    origin,
                    file: self.current_file,
                });
                Ok(())
            }
        }
    }

    /// One body line of an open block (`uwsgi_logic_opt_*`).
    fn apply_logic(
        &mut self,
        logic: &Logic,
        key: &str,
        value: &str,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        let arg = logic.arg.as_str();
        let with = |item: &str| value.replace("%(_)", item);
        match logic.kind {
            LogicKind::For => {
                for item in arg.split(' ').filter(|s| !s.is_empty()) {
                    self.add(key, &with(item), origin.clone())?;
                }
            }
            LogicKind::ForGlob => {
                for item in self.ctx.access.glob(arg) {
                    self.add(key, &with(&item), origin.clone())?;
                }
            }
            LogicKind::ForTimes => {
                let n = atoi(arg);
                if n > MAX_FOR_TIMES {
                    return Err(ConfigError::InvalidValue {
                        origin: logic.origin.clone(),
                        key: logic.key.clone(),
                        value: arg.to_owned(),
                        why: format!("at most {MAX_FOR_TIMES}"),
                    });
                }
                for i in 1..=n {
                    self.add(key, &with(&i.to_string()), origin.clone())?;
                }
            }
            LogicKind::ForReadline => {
                // uWSGI logs an unreadable file and repeats nothing; so does liege, with a warning.
                let data = match self.ctx.access.read(arg, self.max_config_size) {
                    Ok(data) => data,
                    Err(e) => {
                        self.warn(
                            logic.origin.clone(),
                            format!("{e}: `{}` repeats nothing", logic.key),
                        );
                        return Ok(());
                    }
                };
                let text = String::from_utf8_lossy(&data).into_owned();
                for line in text.split_inclusive('\n') {
                    self.add(
                        key,
                        &with(line.trim_end_matches(['\r', '\n'])),
                        origin.clone(),
                    )?;
                }
            }
            LogicKind::IfEnv(want) | LogicKind::IfOpt(want) => {
                // `NAME` tests that it is set, `NAME=VALUE` that it has that value.
                let (name, expected) = match arg.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (arg, None),
                };
                let found = match logic.kind {
                    LogicKind::IfEnv(_) => (self.ctx.env)(name),
                    _ => self.options.first(name).map(|o| o.value.clone()),
                };
                let holds = match (&found, expected) {
                    (None, _) => false,
                    (Some(f), Some(e)) => f == e,
                    (Some(_), None) => true,
                };
                if holds == want {
                    // The `not` forms with nothing found keep `%(_)` as written (uWSGI).
                    let v = found.map_or_else(|| value.to_owned(), |f| with(&f));
                    self.add(key, &v, origin.clone())?;
                }
            }
            LogicKind::IfExists(want) | LogicKind::IfFile(want) | LogicKind::IfDir(want) => {
                let holds = match logic.kind {
                    LogicKind::IfExists(_) => self.ctx.access.exists(arg),
                    LogicKind::IfFile(_) => self.ctx.access.is_file(arg),
                    _ => self.ctx.access.is_dir(arg),
                };
                if holds == want {
                    self.add(key, &with(arg), origin.clone())?;
                }
            }
            LogicKind::IfReload(want) => {
                if self.ctx.is_reload == want {
                    self.add(key, value, origin.clone())?;
                }
            }
            LogicKind::IfHostname(want) => {
                if (self.ctx.host.hostname == arg) == want {
                    self.add(key, &with(arg), origin.clone())?;
                }
            }
        }
        Ok(())
    }

    /// Reads the file a person named (`liege config FILE`, `liege FILE`) at this point, in the
    /// notation its extension names, as the first file (the uppercase magic variables are its).
    pub fn load_file(&mut self, given: &str, origin: &Origin) -> Result<(), ConfigError> {
        let (file, _) = split_section(given);
        let Some(notation) = Notation::from_path(file) else {
            return Err(ConfigError::UnknownNotation {
                origin: origin.clone(),
                path: file.to_owned(),
            });
        };
        self.load(given, Some(notation), origin, false)
    }

    /// Reads a config file into the list at this point (`uwsgi_opt_load*`). `notation` is
    /// `None` for `include`, which goes by the extension; `via_include` keeps the uppercase
    /// magic variables on the first file.
    fn load(
        &mut self,
        given: &str,
        notation: Option<Notation>,
        origin: &Origin,
        via_include: bool,
    ) -> Result<(), ConfigError> {
        let (file, section) = split_section(given);
        let notation = match notation.or_else(|| Notation::from_path(file)) {
            Some(n) => n,
            None => {
                return Err(ConfigError::UnknownNotation {
                    origin: origin.clone(),
                    path: file.to_owned(),
                });
            }
        };
        // `ini = :section` re-reads the last ini file.
        let file = if file.is_empty() && notation == Notation::Ini {
            match &self.last_ini {
                Some(last) => last.clone(),
                None => {
                    return Err(ConfigError::Syntax {
                        origin: origin.clone(),
                        message: format!("`{given}` names no file and no ini file was read before"),
                    });
                }
            }
        } else {
            file.to_owned()
        };
        if notation == Notation::Xml && given.ends_with(':') {
            return Err(ConfigError::Syntax {
                origin: origin.clone(),
                message: format!("`{given}`: empty xml id"),
            });
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(ConfigError::IncludeDepth {
                origin: origin.clone(),
                limit: MAX_INCLUDE_DEPTH,
            });
        }
        let scheme = file
            .split_once("://")
            .map(|(s, rest)| (s.to_owned(), rest.to_owned()));
        let facts = if scheme.is_none() {
            self.ctx.access.file_facts(&file)
        } else {
            None
        };
        let identity = match &facts {
            Some(f) => format!("{}:{}", f.path, section.unwrap_or("")),
            None => given.to_owned(),
        };
        if self.stack.iter().any(|f| f.identity == identity) {
            let chain: Vec<&str> = self
                .stack
                .iter()
                .map(|f| f.shown.as_str())
                .chain([given])
                .collect();
            return Err(ConfigError::IncludeLoop {
                origin: origin.clone(),
                path: given.to_owned(),
                chain: chain.join(" -> "),
            });
        }
        let data = match &scheme {
            Some((s, rest)) if s == "exec" => self.ctx.access.exec(rest, self.max_config_size),
            Some((s, _)) => Err(AccessError::Scheme { scheme: s.clone() }),
            None => self.ctx.access.read(&file, self.max_config_size),
        }
        .map_err(|source| ConfigError::Access {
            origin: origin.clone(),
            source,
        })?;
        let path: Arc<str> = Arc::from(file.as_str());
        let text = decode(&data, &path)?;

        // Magic variables, on the whole raw text (`config_magic_table_fill`, `magic_sub`).
        let first = !via_include && !self.first_file_done;
        let (named, _) = split_section(given);
        if named.is_empty() {
            self.magic.set_section(section.unwrap_or(""));
        } else {
            self.magic.fill(named, section, facts.as_ref(), first);
        }
        if first && facts.is_some() {
            self.first_file_done = true;
        }
        let mut substituted = String::with_capacity(text.len());
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let (s, unknown) = self.magic.substitute(line);
            for c in unknown {
                let at = Origin::file(&path, u32::try_from(i + 1).unwrap_or(u32::MAX));
                self.warn(at, format!("`%{c}` is no magic variable: it becomes empty, as in uWSGI (write `%%` for a percent sign)"));
            }
            substituted.push_str(&s);
        }

        let wanted = section.unwrap_or(notation.default_section());
        let parsed =
            notation::parse(notation, &substituted, wanted).map_err(|e| ConfigError::Syntax {
                origin: Origin::file(&path, e.line),
                message: e.message,
            })?;
        for (line, message) in parsed.warnings {
            self.warn(Origin::file(&path, line), message);
        }
        if !parsed.found_section {
            self.warn(
                Origin::file(&path, 1),
                format!("no section `{wanted}` in `{file}`: nothing read from it"),
            );
        }

        self.serial += 1;
        let outer_file = std::mem::replace(&mut self.current_file, self.serial);
        self.stack.push(Frame {
            identity,
            shown: given.to_owned(),
        });
        let result = parsed
            .entries
            .into_iter()
            .try_for_each(|e| self.add(&e.key, &e.value, Origin::file(&path, e.line)));
        self.stack.pop();
        let this_file = std::mem::replace(&mut self.current_file, outer_file);
        result?;
        if let Some(open) = self.logic.as_ref().filter(|open| open.file == this_file) {
            return Err(ConfigError::UnclosedLogic {
                origin: open.origin.clone(),
                key: open.key.clone(),
                end: open.kind.end(),
            });
        }
        if notation == Notation::Ini {
            self.last_ini = Some(file);
        }
        Ok(())
    }

    /// Runs the expansion passes and the late `inherit`s, and returns the list.
    pub fn finish(mut self) -> Result<Resolved, ConfigError> {
        if let Some(open) = &self.logic {
            return Err(ConfigError::UnclosedLogic {
                origin: open.origin.clone(),
                key: open.key.clone(),
                end: open.kind.end(),
            });
        }
        self.pass(b'$')?;
        self.pass(b'@')?;
        self.pass(b'%')?;
        self.inherit()?;
        self.check_keys();
        Ok(Resolved {
            options: self.options,
            warnings: self.warnings,
        })
    }

    /// One expansion pass over every entry not yet acted on (`uwsgi_apply_config_pass`).
    fn pass(&mut self, symbol: u8) -> Result<(), ConfigError> {
        for i in 0..self.options.len() {
            if self.configured[i] {
                continue;
            }
            let (value, origin, key) = {
                let o = &self.options.entries_mut()[i];
                (o.value.clone(), o.origin.clone(), o.key.clone())
            };
            if !value.as_bytes().contains(&symbol) {
                continue;
            }
            let mut misses: Vec<String> = Vec::new();
            let mut failure: Option<ConfigError> = None;
            let result = {
                let options = &self.options;
                let ctx = self.ctx;
                let max = self.max_config_size;
                let looked_up = &mut self.looked_up;
                scan(&value, symbol, |name| {
                    let found = match symbol {
                        b'$' => (ctx.env)(name),
                        b'@' => match read_at_file(ctx.access, name, max) {
                            Ok(v) => Some(v),
                            Err(source) => {
                                failure.get_or_insert(ConfigError::Access {
                                    origin: origin.clone(),
                                    source,
                                });
                                None
                            }
                        },
                        _ => {
                            if name.contains(' ') {
                                placeholder_math(name, |n| {
                                    looked_up.insert(n.to_owned());
                                    options.first(n).map(|o| o.value.clone())
                                })
                            } else {
                                looked_up.insert(name.to_owned());
                                options.first(name).map(|o| o.value.clone())
                            }
                        }
                    };
                    if found.is_none() {
                        misses.push(name.to_owned());
                    }
                    found
                })
            };
            if let Some(err) = failure {
                return Err(err);
            }
            let expanded = result.map_err(|_| ConfigError::Runaway {
                origin: origin.clone(),
                key: key.clone(),
            })?;
            for miss in misses {
                let what = match symbol {
                    b'$' => format!(
                        "environment variable `{miss}` is not set: `$({miss})` is kept as written"
                    ),
                    _ => {
                        format!("no option or placeholder `{miss}`: `%({miss})` is kept as written")
                    }
                };
                self.warn(origin.clone(), what);
            }
            self.options.entries_mut()[i].value = expanded;
        }
        Ok(())
    }

    /// Loads `inherit` templates after the passes, appending their options unexpanded
    /// (`uwsgi_configure`).
    fn inherit(&mut self) -> Result<(), ConfigError> {
        let mut loaded = 0;
        let mut i = 0;
        while i < self.options.len() {
            if self.options.entries_mut()[i].key == "inherit" && !self.configured[i] {
                self.configured[i] = true;
                loaded += 1;
                let (value, origin) = {
                    let o = &self.options.entries_mut()[i];
                    (o.value.clone(), o.origin.clone())
                };
                if loaded > MAX_INHERITS {
                    return Err(ConfigError::IncludeLoop {
                        origin,
                        path: value,
                        chain: format!("more than {MAX_INHERITS} inherits"),
                    });
                }
                self.load(&value, None, &origin, true)?;
                if let Some(open) = &self.logic {
                    return Err(ConfigError::UnclosedLogic {
                        origin: open.origin.clone(),
                        key: open.key.clone(),
                        end: open.kind.end(),
                    });
                }
            }
            i += 1;
        }
        Ok(())
    }

    /// Warnings about keys: near misses of an option, and uWSGI options liege lacks. The
    /// near-miss search costs a comparison with every known name, so it runs for the first
    /// [`MAX_SUGGESTED`] unknown keys only: a hostile file full of junk keys stays cheap.
    fn check_keys(&mut self) {
        let mut notes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut unknown = 0usize;
        for o in self.options.iter() {
            if !seen.insert(o.key.as_str()) {
                continue;
            }
            match registry::lookup(&o.key) {
                Known::Unknown => {
                    // `end` closes a block, as in uWSGI, without being an option.
                    if o.key == "end" || self.looked_up.contains(&o.key) {
                        continue;
                    }
                    unknown += 1;
                    if unknown > MAX_SUGGESTED {
                        continue;
                    }
                    if let Some(s) = registry::suggest(&o.key) {
                        notes.push(Warning {
                            origin: o.origin.clone(),
                            message: format!("`{}` is no option (taken as a placeholder); did you mean `{s}`?", o.key),
                        });
                    }
                }
                Known::Uwsgi { .. } => notes.push(Warning {
                    origin: o.origin.clone(),
                    message: format!("`{}` is a uWSGI option that liege does not implement yet: an instance with it will not start", o.key),
                }),
                Known::Liege(_) => {}
            }
        }
        self.warnings.extend(notes);
    }
}

/// `atoi`: leading blanks, a sign, digits; 0 when there are none.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let n = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |n, b| {
            n.saturating_mul(10).saturating_add(i64::from(b - b'0'))
        });
    if neg { -n } else { n }
}

/// `@(file)`: the file's content less one trailing newline (`uwsgi_at_file_read`).
fn read_at_file(access: &dyn FileAccess, name: &str, max: u64) -> Result<String, AccessError> {
    let data = match name.split_once("://") {
        Some(("exec", cmd)) => access.exec(cmd, max)?,
        Some((scheme, _)) => {
            return Err(AccessError::Scheme {
                scheme: scheme.to_owned(),
            });
        }
        None => access.read(name, max)?,
    };
    let mut text = String::from_utf8_lossy(&data).into_owned();
    if text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    Ok(text)
}

/// A config file's bytes as text: no NUL byte, valid UTF-8.
fn decode(data: &[u8], path: &Arc<str>) -> Result<String, ConfigError> {
    let line_at = |pos: usize| {
        let n = data[..pos].iter().filter(|&&b| b == b'\n').count();
        u32::try_from(n + 1).unwrap_or(u32::MAX)
    };
    if let Some(pos) = data.iter().position(|&b| b == 0) {
        let origin = Origin::file(path, line_at(pos));
        return Err(ConfigError::Binary {
            origin,
            path: path.to_string(),
        });
    }
    match std::str::from_utf8(data) {
        Ok(s) => Ok(s.strip_prefix('\u{feff}').unwrap_or(s).to_owned()),
        Err(e) => {
            let origin = Origin::file(path, line_at(e.valid_up_to()));
            Err(ConfigError::InvalidUtf8 {
                origin,
                path: path.to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_split_at_the_last_colon() {
        assert_eq!(split_section("a.ini"), ("a.ini", None));
        assert_eq!(split_section("a.ini:web"), ("a.ini", Some("web")));
        assert_eq!(split_section(":web"), ("", Some("web")));
        assert_eq!(
            split_section("exec://cat a:b/c.ini:x"),
            ("exec://cat a:b/c.ini", Some("x"))
        );
        assert_eq!(split_section("a.ini:"), ("a.ini", None));
    }

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(parse_size("4m"), Some(4 << 20));
        assert_eq!(parse_size("10"), Some(10));
        assert_eq!(parse_size("2k"), Some(2048));
        assert_eq!(parse_size("x"), None);
    }
}
