//! One set of tests for the three languages: each test is a function of [`Lang`], and
//! [`each_language!`] makes a `#[test]` of it per language (`languages::matrix::request_matrix::perl`),
//! so WSGI, PSGI and Rack go through the same request matrix, supervision and static files with
//! the same assertions. The apps are tests/apps/{python,perl,ruby}/it_matrix.*: the same routes in
//! each language, wrapped in each one's validator (wsgiref.validate, Plack::Middleware::Lint,
//! Rack::Lint).
//!
//! - `matrix`: the request matrix, bodies, errors, the env each language defines.
//! - `supervision`: a crashed or killed worker comes back, harakiri, max-requests, graceful
//!   reloads under load, stats, prefork and lazy-apps.
//! - `static_files`: static maps beside each language's app.

mod matrix;
mod static_files;
mod supervision;

use std::time::Duration;

use crate::common::repo;
use crate::server::{Addr, Instance, bin_dir, free_port};

/// A language liege serves, with its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    Python,
    Perl,
    Ruby,
}

impl Lang {
    /// The option that names the app file.
    pub(crate) fn option(self) -> &'static str {
        match self {
            Lang::Python => "--wsgi-file",
            Lang::Perl => "--psgi",
            Lang::Ruby => "--rack",
        }
    }

    /// The worker executable.
    pub(crate) fn worker(self) -> &'static str {
        match self {
            Lang::Python => "liege-python",
            Lang::Perl => "liege-perl",
            Lang::Ruby => "liege-ruby",
        }
    }

    /// A test app of this language (`it_matrix` is `tests/apps/perl/it_matrix.psgi`).
    pub(crate) fn app(self, stem: &str) -> String {
        let (dir, ext) = match self {
            Lang::Python => ("python", "py"),
            Lang::Perl => ("perl", "psgi"),
            Lang::Ruby => ("ruby", "ru"),
        };
        repo()
            .join("tests/apps")
            .join(dir)
            .join(format!("{stem}.{ext}"))
            .display()
            .to_string()
    }

    /// The env key of this language's spec for `what` (`url_scheme`: `psgi.url_scheme`).
    pub(crate) fn key(self, what: &str) -> String {
        let prefix = match self {
            Lang::Python => "wsgi",
            Lang::Perl => "psgi",
            Lang::Ruby => "rack",
        };
        format!("{prefix}.{what}")
    }

    /// Fails clearly when the worker was not built (scripts/test builds every binary first).
    fn require_worker(self) {
        let p = bin_dir().join(self.worker());
        assert!(
            p.exists(),
            "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
            p.display()
        );
    }
}

/// An instance of `lang`'s matrix app on a TCP http-socket, with extra options, answering.
pub(crate) fn matrix(lang: Lang, extra: &[&str]) -> (Instance, Addr) {
    serve(lang, "it_matrix", extra)
}

/// An instance of `lang`'s app `stem` on a TCP http-socket, with extra options, answering.
pub(crate) fn serve(lang: Lang, stem: &str, extra: &[&str]) -> (Instance, Addr) {
    lang.require_worker();
    let port = free_port();
    let sock = format!("127.0.0.1:{port}");
    let file = lang.app(stem);
    let mut args = vec!["--master", "--http-socket", &sock, lang.option(), &file];
    args.extend_from_slice(extra);
    let mut inst = Instance::start(&args);
    let addr = Addr::Tcp(sock.parse().expect("addr"));
    inst.wait_ready(&addr, "/", Duration::from_secs(30));
    (inst, addr)
}

/// Makes a `#[test]` per language of each named `fn(Lang)`: a module of the function's name
/// holding `python`, `perl` and `ruby`.
macro_rules! each_language {
    ($($test:ident),* $(,)?) => {
        $(
            mod $test {
                #[test]
                fn python() {
                    super::$test(crate::languages::Lang::Python);
                }
                #[test]
                fn perl() {
                    super::$test(crate::languages::Lang::Perl);
                }
                #[test]
                fn ruby() {
                    super::$test(crate::languages::Lang::Ruby);
                }
            }
        )*
    };
}
pub(crate) use each_language;
