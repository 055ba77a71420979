//! Loading the app the options name: environment, working folder, the interpreter, `@INC`
//! (`perl-local-lib`), `@ARGV` (`perl-args`, `perl-arg`), then the `.psgi` file, as
//! Plack::Util::load_psgi does (`do FILE` in a package of its own; its value is the app).

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
    /// `env`, `chdir`.
    #[error(transparent)]
    Common(#[from] liege_worker::CommonError),
    #[error("option `env`: setting {0} in the interpreter failed")]
    SetEnv(String),
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
                // The runtime checks this option; a bad value is its error to report.
                "threads" => o.threads = value.trim().parse().unwrap_or(1),
                _ => {}
            }
        }
        o
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
    let common = liege_worker::Common::read(options)?;
    for (name, v) in &common.env {
        // SAFETY: `Language::load` runs while the process is single-threaded (a lazy-apps worker
        // before its threads start, or the zygote), so no other thread reads the environment.
        unsafe { std::env::set_var(name, v) };
    }
    common.change_dir()?;
    let mut guard = interpreter::lock().map_err(LoadFailure::Start)?;
    let Some(interp) = guard.as_mut() else {
        return Err(LoadFailure::Start("the interpreter did not start".into()));
    };
    // When the interpreter was already running, %ENV is a copy made at its start.
    for (name, v) in &common.env {
        let code = format!("$ENV{{{}}} = {};", perl_bytes(name), perl_bytes(v));
        interpreter::eval(interp, &code)
            .map_err(|e| LoadFailure::SetEnv(format!("{name}={v}: {e}")))?;
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
    fn perl_bytes_hex_encodes() {
        assert_eq!(perl_bytes("a'"), "pack('H*', '6127')");
    }
}
