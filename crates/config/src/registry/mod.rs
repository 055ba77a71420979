//! The option registry: every option liege knows, defined once, with its type, default, the part
//! of liege that uses it and its uWSGI equivalent. `--help`, docs/options.md and the checks on
//! unknown and unimplemented options all come from here.
//!
//! Beside liege's own table sits the catalogue of every option uWSGI 2.0 has (core and all
//! plugins, `uwsgi-options.txt`), so that a migrated option liege does not implement yet is
//! recognised and reported instead of being taken for a placeholder.

mod defs;
mod docs;

use std::collections::HashMap;
use std::sync::OnceLock;

pub use defs::OPTIONS;
pub use docs::render_markdown;

/// Whether an option takes a value (for the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// `--key value`
    Required,
    /// `--flag`
    None,
    /// `--key` alone, or `--key=value`
    Optional,
}

/// What kind of value an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// On or off, uWSGI's truth rule.
    Flag,
    /// A whole number.
    Number,
    /// A size in bytes, with an optional k, m or g suffix.
    Size,
    /// A path to a file.
    Path,
    /// Free text.
    Text,
    /// `name=value`.
    Assignment,
    /// Opens or closes a block (`for`, `if-*`, `endif`...).
    Logic,
}

impl Kind {
    /// How docs/options.md names the kind.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Flag => "flag",
            Kind::Number => "number",
            Kind::Size => "size",
            Kind::Path => "path",
            Kind::Text => "text",
            Kind::Assignment => "name=value",
            Kind::Logic => "block",
        }
    }
}

/// The part of liege that uses an option (groups `--help` and the docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// Building the options list itself: files, includes, placeholders, logic.
    Config,
    /// The `liege` command.
    Command,
    /// The master: workers, reloads, limits, stats.
    Master,
    /// Sockets and the protocols spoken on them.
    Sockets,
    /// Static files, served by the workers.
    Static,
    /// The request log.
    Logging,
    /// What every language's worker reads before loading its app.
    App,
    /// The Python worker (WSGI).
    Python,
    /// The Perl worker (PSGI).
    Perl,
    /// The Ruby worker (Rack).
    Ruby,
    /// The emperor: watching vassal files, spawning, throttling, stats.
    Emperor,
    /// The HTTP router (a gateway process of the emperor, or of an instance run by hand) and
    /// what a vassal tells it: its domains and certificates.
    Router,
    /// A vassal's identity, namespaces and cgroup limits, applied by the emperor.
    Vassal,
    /// The jail the master builds and enters before any customer code runs: filesystem,
    /// hooks, privilege drop, seccomp.
    Jail,
}

impl Part {
    /// A heading for the part.
    pub fn title(self) -> &'static str {
        match self {
            Part::Config => "Config files, includes, placeholders and logic",
            Part::Command => "The liege command",
            Part::Master => "The master: workers, reloads, limits, stats",
            Part::Sockets => "Sockets and protocols",
            Part::Static => "Static files",
            Part::Logging => "Request logging",
            Part::App => "The app, in every language",
            Part::Python => "Python (WSGI)",
            Part::Perl => "Perl (PSGI)",
            Part::Ruby => "Ruby (Rack)",
            Part::Emperor => "The emperor",
            Part::Router => {
                "The HTTP router (`http`... in the emperor's options or an instance run by hand; `domain`, `sni`, `subscribe-to` in vassal files)"
            }
            Part::Vassal => "Vassal identity, namespaces and limits (root-owned files only)",
            Part::Jail => {
                "The jail: filesystem, hooks, privilege drop (root-owned files only, but for the as-user phase)"
            }
        }
    }
}

/// One option liege implements.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    /// Other names for the same option.
    pub aliases: &'static [&'static str],
    pub arg: Arg,
    pub kind: Kind,
    /// The default, as written in a config file; `None` for none.
    pub default: Option<&'static str>,
    pub part: Part,
    /// The uWSGI option it corresponds to; `None` for an option of liege's own.
    pub uwsgi: Option<&'static str>,
    /// Whether the option may be given more than once, each time adding to a list.
    pub repeatable: bool,
    /// Whether it acts while the file is being read (includes, placeholders, logic), as
    /// uWSGI's IMMEDIATE options do. Their values are not expanded by `$()`, `@()`, `%()`.
    pub immediate: bool,
    /// Whether it acts as root on the host (identity, namespaces, limits, mounts, hooks): the
    /// emperor takes it only from root-owned files that no group or other can write.
    pub privileged: bool,
    /// One line on what it does.
    pub doc: &'static str,
}

/// What a key is.
#[derive(Debug, Clone, Copy)]
pub enum Known {
    /// An option liege implements.
    Liege(&'static Spec),
    /// An option of uWSGI that liege does not implement (yet).
    Uwsgi { arg: Arg },
    /// Neither: a placeholder, or a typing mistake.
    Unknown,
}

struct Tables {
    liege: HashMap<&'static str, &'static Spec>,
    uwsgi: HashMap<&'static str, Arg>,
    uwsgi_short: Vec<(char, &'static str)>,
}

const CATALOGUE: &str = include_str!("uwsgi-options.txt");

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut liege = HashMap::new();
        for spec in OPTIONS {
            liege.insert(spec.name, spec);
            for alias in spec.aliases {
                liege.insert(*alias, spec);
            }
        }
        let mut uwsgi = HashMap::new();
        let mut uwsgi_short = Vec::new();
        for line in CATALOGUE.lines().filter(|l| !l.starts_with('#')) {
            let mut fields = line.split('\t');
            let (Some(name), Some(arg)) = (fields.next(), fields.next()) else {
                continue;
            };
            let arg = match arg {
                "no" => Arg::None,
                "optional" => Arg::Optional,
                _ => Arg::Required,
            };
            uwsgi.insert(name, arg);
            if let Some(short) = fields.next().and_then(|s| s.chars().next()) {
                uwsgi_short.push((short, name));
            }
        }
        Tables {
            liege,
            uwsgi,
            uwsgi_short,
        }
    })
}

/// What `key` is.
pub fn lookup(key: &str) -> Known {
    let t = tables();
    if let Some(spec) = t.liege.get(key) {
        Known::Liege(spec)
    } else if let Some(arg) = t.uwsgi.get(key) {
        Known::Uwsgi { arg: *arg }
    } else {
        Known::Unknown
    }
}

/// Whether `key` is an option of liege or of uWSGI (not a placeholder).
pub fn is_option(key: &str) -> bool {
    !matches!(lookup(key), Known::Unknown)
}

/// The long name of a one-letter command-line form (`-s` is `socket`). liege's own forms come
/// first; the rest are uWSGI's.
pub fn short_form(c: char) -> Option<&'static str> {
    const OWN: &[(char, &str)] = &[
        ('s', "socket"),
        ('p', "processes"),
        ('M', "master"),
        ('w', "module"),
        ('H', "home"),
        ('x', "xml"),
        ('y', "yaml"),
        ('j', "json"),
        ('S', "set"),
        ('h', "help"),
    ];
    OWN.iter()
        .chain(tables().uwsgi_short.iter())
        .find(|(s, _)| *s == c)
        .map(|(_, n)| *n)
}

/// How many options of uWSGI liege does not implement.
pub fn uwsgi_only_count() -> usize {
    let t = tables();
    t.uwsgi.keys().filter(|k| !t.liege.contains_key(*k)).count()
}

/// The names of the uWSGI options liege does not implement, sorted.
pub fn uwsgi_only_names() -> Vec<&'static str> {
    let t = tables();
    let mut names: Vec<_> = t
        .uwsgi
        .keys()
        .copied()
        .filter(|k| !t.liege.contains_key(k))
        .collect();
    names.sort_unstable();
    names
}

/// The known option nearest to `key`, when it is one or two edits away (one for short keys):
/// for "did you mean" hints on what is probably a typing mistake.
pub fn suggest(key: &str) -> Option<&'static str> {
    let t = tables();
    let limit = if key.chars().count() <= 5 { 1 } else { 2 };
    let mut best: Option<(usize, &'static str)> = None;
    for name in t.liege.keys().chain(t.uwsgi.keys()) {
        if name.len().abs_diff(key.len()) > limit {
            continue;
        }
        let d = edit_distance(key, name);
        if d <= limit && best.is_none_or(|(bd, bn)| d < bd || (d == bd && *name < bn)) {
            best = Some((d, name));
        }
    }
    best.map(|(_, n)| n)
}

/// Levenshtein distance, with `_` and `-` counted as the same character.
fn edit_distance(a: &str, b: &str) -> usize {
    let norm = |c: char| if c == '_' { '-' } else { c };
    let a: Vec<char> = a.chars().map(norm).collect();
    let b: Vec<char> = b.chars().map(norm).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liege_options_and_uwsgi_options_are_told_apart() {
        assert!(matches!(lookup("include"), Known::Liege(s) if s.immediate));
        assert!(matches!(lookup("harakiri"), Known::Liege(s) if s.name == "harakiri"));
        assert!(matches!(
            lookup("cron"),
            Known::Uwsgi { arg: Arg::Required }
        ));
        assert!(matches!(lookup("cheap"), Known::Uwsgi { arg: Arg::None }));
        assert!(matches!(lookup("base"), Known::Unknown));
    }

    #[test]
    fn near_misses_get_a_suggestion_and_placeholders_do_not() {
        assert_eq!(suggest("processe"), Some("processes"));
        assert_eq!(suggest("proceses"), Some("processes"));
        assert_eq!(suggest("post_buffering"), Some("post-buffering"));
        assert_eq!(suggest("base"), None);
        assert_eq!(suggest("my_app_root"), None);
    }

    #[test]
    fn short_forms_name_the_common_options() {
        assert_eq!(short_form('s'), Some("socket"));
        assert_eq!(short_form('p'), Some("processes"));
        assert_eq!(short_form('M'), Some("master"));
        assert_eq!(short_form('w'), Some("module"));
        assert_eq!(short_form('H'), Some("home"));
    }

    #[test]
    fn every_liege_option_with_a_uwsgi_name_exists_in_uwsgi() {
        for spec in OPTIONS {
            if let Some(u) = spec.uwsgi {
                assert!(
                    tables().uwsgi.contains_key(u),
                    "{} claims uWSGI option {u}",
                    spec.name
                );
            }
        }
    }
}
