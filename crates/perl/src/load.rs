//! Loading the app the options name: environment, working folder, the interpreter, `@INC`
//! (`perl-local-lib`), `@ARGV` (`perl-args`, `perl-arg`), then the `.psgi` file, as
//! Plack::Util::load_psgi does (`do FILE` in a package of its own; its value is the app).

use std::path::PathBuf;

use crate::interpreter;
use crate::psgi::PsgiApp;

/// Why the app could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error("no app to load: set `psgi`")]
    NoApp,
    #[error(
        "option `threads` = {0}: liege-perl runs one Perl interpreter, which is not thread-safe: \
         use `processes` for more concurrency"
    )]
    Threads(usize),
    #[error("option `env`: `{0}` is not NAME=VALUE")]
    BadEnv(String),
    #[error("option `chdir`: cannot change to `{path}`: {source}")]
    Chdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("starting the Perl interpreter failed: {0}")]
    Start(String),
    #[error("option `perl-local-lib`: adding `{dir}` to @INC failed: {error}")]
    LocalLib { dir: String, error: String },
    #[error("option `psgi`: loading `{file}` failed: {error}")]
    Load { file: String, error: String },
}

/// The options this crate reads (the runtime reads its own from the same list).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Options {
    psgi: Option<String>,
    local_lib: Vec<String>,
    args: Vec<String>,
    env: Vec<String>,
    chdir: Option<PathBuf>,
    threads: usize,
}

impl Options {
    fn read(options: &[(String, String)]) -> Options {
        let mut o = Options {
            threads: 1,
            ..Options::default()
        };
        for (key, value) in options {
            match key.as_str() {
                "psgi" => o.psgi = Some(value.clone()),
                "perl-local-lib" => o.local_lib.push(value.clone()),
                "perl-args" => o.args.extend(value.split_whitespace().map(str::to_string)),
                "perl-arg" => o.args.push(value.clone()),
                "env" => o.env.push(value.clone()),
                "chdir" => o.chdir = Some(PathBuf::from(value)),
                // The runtime checks this option; a bad value is its error to report.
                "threads" => o.threads = value.trim().parse().unwrap_or(1),
                _ => {}
            }
        }
        o
    }
}

/// `NAME=VALUE`, as `std::env::set_var` accepts it.
fn assignment(value: &str) -> Result<(&str, &str), LoadFailure> {
    match value.split_once('=') {
        Some((name, v)) if !name.is_empty() && !name.contains('\0') && !v.contains('\0') => {
            Ok((name, v))
        }
        _ => Err(LoadFailure::BadEnv(value.to_string())),
    }
}

/// A Perl expression for a byte string, whatever it holds (no quoting to get wrong).
fn perl_bytes(s: &str) -> String {
    let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
    format!("pack('H*', '{hex}')")
}

/// Loads the app the options name. Starts the interpreter on first use.
pub(crate) fn load(options: &[(String, String)]) -> Result<PsgiApp, LoadFailure> {
    let o = Options::read(options);
    if o.threads > 1 {
        return Err(LoadFailure::Threads(o.threads));
    }
    let file = o.psgi.clone().ok_or(LoadFailure::NoApp)?;
    let env = o
        .env
        .iter()
        .map(|e| assignment(e))
        .collect::<Result<Vec<_>, _>>()?;
    for (name, v) in &env {
        // SAFETY: `Language::load` runs while the process is single-threaded (a lazy-apps worker
        // before its threads start, or the zygote), so no other thread reads the environment.
        unsafe { std::env::set_var(name, v) };
    }
    if let Some(dir) = &o.chdir {
        std::env::set_current_dir(dir).map_err(|source| LoadFailure::Chdir {
            path: dir.clone(),
            source,
        })?;
    }
    let mut guard = interpreter::lock().map_err(LoadFailure::Start)?;
    let Some(interp) = guard.as_mut() else {
        return Err(LoadFailure::Start("the interpreter did not start".into()));
    };
    // When the interpreter was already running, %ENV is a copy made at its start.
    for (name, v) in &env {
        let code = format!("$ENV{{{}}} = {};", perl_bytes(name), perl_bytes(v));
        interpreter::eval(interp, &code)
            .map_err(|e| LoadFailure::BadEnv(format!("{name}={v}: {e}")))?;
    }
    for dir in &o.local_lib {
        let lib = format!("{}/lib/perl5", dir.trim_end_matches('/'));
        let code = format!("require lib; lib->import({});", perl_bytes(&lib));
        interpreter::eval(interp, &code).map_err(|error| LoadFailure::LocalLib {
            dir: dir.clone(),
            error: error.trim_end().to_string(),
        })?;
    }
    let app = interpreter::load_file(interp, file.as_bytes(), &o.args).map_err(|error| {
        LoadFailure::Load {
            file: file.clone(),
            error: error.trim_end().to_string(),
        }
    })?;
    Ok(PsgiApp::new(app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_keep_the_last_scalar_and_every_repeat() {
        let o = Options::read(&[
            ("psgi".into(), "a.psgi".into()),
            ("psgi".into(), "b.psgi".into()),
            ("perl-args".into(), "-x  --y".into()),
            ("perl-arg".into(), "one arg".into()),
            ("threads".into(), "4".into()),
        ]);
        assert_eq!(o.psgi.as_deref(), Some("b.psgi"));
        assert_eq!(o.args, ["-x", "--y", "one arg"]);
        assert_eq!(o.threads, 4);
    }

    #[test]
    fn env_values_must_be_assignments() {
        assert_eq!(assignment("A=b=c").unwrap(), ("A", "b=c"));
        assert_eq!(
            assignment("=x").unwrap_err().to_string(),
            "option `env`: `=x` is not NAME=VALUE"
        );
    }

    #[test]
    fn perl_bytes_hex_encodes() {
        assert_eq!(perl_bytes("a'"), "pack('H*', '6127')");
    }
}
