//! liege's whole-process tests: each module runs the real `liege` binary.
//!
//! - `config_cli`: `liege config`, `--help`, `--version`, instance command lines, bad input.
//! - `config_compat`: `liege config` against uWSGI 2.0.31 itself on tests/config-corpus/.
//! - `docs`: docs/options.md is what the registry generates.
//! - `emperor`: the emperor and its vassals: lifecycle, namespaces, limits, trust (issue 4).
//! - `frameworks`: Flask and Django from PyPI in a virtualenv; nginx `uwsgi_pass` in front.
//! - `jail`: the jail, proved from inside jailed vassals; the host side of their run dirs;
//!   a vassal jailed the uWSGI way (issue 5).
//! - `router`: the HTTP router run by the emperor: domains, ownership, an unprivileged router
//!   process (issue 6).
//! - `languages`: one parameterised set of tests run for WSGI, PSGI and Rack (issue 7): the
//!   request matrix inside each language's validator, crash respawn, harakiri, max-requests,
//!   reloads under load, stats, prefork and lazy-apps, static files.
//! - `lifecycle`: the master's supervision, with Python: fairness, pid 1, touch-reload,
//!   need-app, reload-on-rss, sockets.
//! - `server`: helpers to run instances and talk HTTP to them (no tests).
//! - `static_files`: static maps: types, ranges, conditional GET, confinement.
//! - `wsgi`: WSGI apps served by the master and `liege-python` (issue 3).

mod common;
mod config_cli;
mod config_compat;
mod docs;
mod emperor;
mod frameworks;
mod jail;
mod languages;
mod lifecycle;
mod router;
mod server;
mod static_files;
mod wsgi;
