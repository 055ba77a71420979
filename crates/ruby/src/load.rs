//! Loading the app the options name: environment, working folder, Ruby, `rbrequire`, then the
//! rackup file (`rack`) through `Rack::Builder.parse_file`, as rackup and uWSGI do.

use crate::env::Keys;
use crate::ffi;
use crate::rack::RackApp;

/// Why the app could not be loaded. A Ruby exception's backtrace also goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error("no app to load: set `rack` (a rackup file, config.ru)")]
    NoApp,
    #[error(
        "option `threads` is {0}: the Ruby worker runs one thread (Ruby's GVL runs one at a time); \
         use `processes` to serve more requests at once"
    )]
    Threads(usize),
    #[error("option `rb-gc-freq`: `{0}` is not a whole number")]
    GcFreq(String),
    /// `env`, `chdir`.
    #[error(transparent)]
    Common(#[from] liege_worker::CommonError),
    #[error("starting Ruby failed: {0}")]
    Start(String),
    #[error("option `rbrequire`: requiring `{name}` failed: {error}")]
    Require { name: String, error: String },
    /// fs-err's message names the file.
    #[error("option `rack`: {0}")]
    Unreadable(std::io::Error),
    #[error("option `rack`: loading `{path}` failed: {error}")]
    Rack { path: String, error: String },
}

/// The options this crate reads (the runtime reads its own from the same list).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Options {
    rack: Option<String>,
    rbrequire: Vec<String>,
    threads: usize,
    gc_freq: Option<String>,
}

impl Options {
    fn read(options: &[(String, String)]) -> Options {
        let mut o = Options {
            threads: 1,
            ..Options::default()
        };
        for (key, value) in options {
            match key.as_str() {
                "rack" => o.rack = Some(value.clone()),
                "rbrequire" => o.rbrequire.push(value.clone()),
                "rb-gc-freq" => o.gc_freq = Some(value.clone()),
                // The runtime checks this option; a bad value is its error to report.
                "threads" => o.threads = value.trim().parse().unwrap_or(1),
                _ => {}
            }
        }
        o
    }
}

/// A Ruby exception's description: the first part (class and message) for the error, the
/// backtrace to the log.
fn summed_up(what: &str, description: String) -> String {
    match description.split_once("\n\tfrom ") {
        Some((head, _)) => {
            liege_worker::log::line(&format!("{what}: {description}"));
            head.to_string()
        }
        None => description,
    }
}

/// Loads the app the options name. Starts Ruby on first use, on this thread.
pub(crate) fn load(options: &[(String, String)]) -> Result<RackApp, LoadFailure> {
    let o = Options::read(options);
    if o.threads > 1 {
        return Err(LoadFailure::Threads(o.threads));
    }
    let gc_freq = match &o.gc_freq {
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| LoadFailure::GcFreq(v.clone()))?,
        None => 0,
    };
    let rack = o.rack.clone().ok_or(LoadFailure::NoApp)?;
    let common = liege_worker::Common::read(options)?;
    for (name, v) in &common.env {
        // SAFETY: `Language::load` runs while the process is single-threaded (a lazy-apps worker
        // before its threads start, or the zygote), so no other thread reads the environment.
        // Ruby's ENV reads the process environment itself, so it sees these.
        unsafe { std::env::set_var(name, v) };
    }
    common.change_dir()?;
    fs_err::File::open(&rack).map_err(LoadFailure::Unreadable)?;
    ffi::start().map_err(LoadFailure::Start)?;
    for name in &o.rbrequire {
        ffi::require(name).map_err(|e| LoadFailure::Require {
            name: name.clone(),
            error: summed_up(&format!("rbrequire {name}"), e),
        })?;
    }
    let app = ffi::load(&rack).map_err(|e| LoadFailure::Rack {
        path: rack.clone(),
        error: summed_up(&format!("rack {rack}"), e),
    })?;
    let keys = Keys::new().map_err(LoadFailure::Start)?;
    Ok(RackApp::new(app, keys, gc_freq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_the_last_scalar_and_every_repeat() {
        let o = Options::read(&[
            ("rack".into(), "a.ru".into()),
            ("rack".into(), "b.ru".into()),
            ("rbrequire".into(), "json".into()),
            ("rbrequire".into(), "set".into()),
            ("threads".into(), "4".into()),
            ("processes".into(), "2".into()),
        ]);
        assert_eq!(o.rack.as_deref(), Some("b.ru"));
        assert_eq!(o.rbrequire, ["json", "set"]);
        assert_eq!(o.threads, 4);
    }

    #[test]
    fn threads_and_a_missing_app_are_refused_before_ruby_starts() {
        let e = load(&[
            ("threads".into(), "2".into()),
            ("rack".into(), "x.ru".into()),
        ])
        .unwrap_err();
        assert!(matches!(e, LoadFailure::Threads(2)), "{e}");
        let e = load(&[("processes".into(), "2".into())]).unwrap_err();
        assert!(matches!(e, LoadFailure::NoApp), "{e}");
        let e = load(&[("rack".into(), "/nonexistent/config.ru".into())]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "option `rack`: failed to open file `/nonexistent/config.ru`: No such file or directory (os error 2)"
        );
    }
}
