//! Loading the app the options name: environment, working folder, interpreter, `sys.path`, then
//! the module (`module`) or file (`wsgi-file`) and its callable, as uWSGI does.

use std::path::{Path, PathBuf};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::interpreter::{self, StartError};
use crate::wsgi::WsgiApp;

/// Why the app could not be loaded. Import errors also print their traceback to stderr.
#[derive(Debug, thiserror::Error)]
pub enum LoadFailure {
    #[error("no app to load: set `module` or `wsgi-file`")]
    NoApp,
    #[error("both `module` (`{module}`) and `wsgi-file` (`{file}`) name an app: set only one")]
    TwoApps { module: String, file: String },
    /// `env`, `chdir`.
    #[error(transparent)]
    Common(#[from] liege_worker::CommonError),
    #[error("option `env`: setting {0} in the interpreter failed")]
    SetEnv(String),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("setting up sys.path failed: {0}")]
    SysPath(String),
    #[error("option `{option}`: importing `{value}` failed: {error}")]
    Import {
        option: &'static str,
        value: String,
        error: String,
    },
    #[error("option `{option}`: `{value}` has no callable `{callable}`")]
    NoCallable {
        option: &'static str,
        value: String,
        callable: String,
    },
    #[error("option `{option}`: `{callable}` in `{value}` is not callable (it is a {kind})")]
    NotCallable {
        option: &'static str,
        value: String,
        callable: String,
        kind: String,
    },
    #[error(
        "option `{option}`: calling the app factory `{callable}()` in `{value}` failed: {error}"
    )]
    Factory {
        option: &'static str,
        value: String,
        callable: String,
        error: String,
    },
    #[error("preparing the WSGI environ failed: {0}")]
    Environ(String),
}

/// The options this crate reads (the runtime reads its own from the same list).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Options {
    home: Option<PathBuf>,
    pythonpath: Vec<String>,
    module: Option<String>,
    wsgi_file: Option<String>,
    callable: Option<String>,
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
                "home" => o.home = Some(PathBuf::from(value)),
                "pythonpath" => o.pythonpath.push(value.clone()),
                "module" => o.module = Some(value.clone()),
                "wsgi-file" => o.wsgi_file = Some(value.clone()),
                "callable" => o.callable = Some(value.clone()),
                // The runtime checks this option; a bad value is its error to report.
                "threads" => o.threads = value.trim().parse().unwrap_or(1),
                _ => {}
            }
        }
        o
    }
}

/// A `pythonpath` value as folders: its glob matches, or itself when it matches nothing (uWSGI).
fn expand(pattern: &str) -> Vec<String> {
    let found: Vec<String> = glob::glob(pattern)
        .map(|paths| {
            paths
                .filter_map(Result::ok)
                .map(|p| p.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() {
        vec![pattern.to_string()]
    } else {
        found
    }
}

/// The module name uWSGI gives a `wsgi-file`: `uwsgi_file_` and the path with `.` and `/` as `_`,
/// without its `.py`.
fn file_module_name(path: &str) -> String {
    let mut name: String = path
        .chars()
        .map(|c| if c == '.' || c == '/' { '_' } else { c })
        .collect();
    if name.len() >= 3 && name.ends_with("_py") {
        name.truncate(name.len() - 3);
    }
    format!("uwsgi_file_{name}")
}

/// One line for an exception, after printing its traceback.
fn printed(py: Python<'_>, e: &PyErr) -> String {
    let line = e.to_string();
    interpreter::print_traceback(py, e);
    line.lines().next().unwrap_or_default().to_string()
}

/// Puts `.` and the `pythonpath` folders first in `sys.path` (each once), as uWSGI does.
fn set_sys_path(py: Python<'_>, folders: &[String]) -> PyResult<()> {
    let path = py.import("sys")?.getattr("path")?.cast_into::<PyList>()?;
    let first = std::iter::once(".".to_string()).chain(folders.iter().flat_map(|p| expand(p)));
    for folder in first {
        if !path.contains(&folder)? {
            path.insert(0, folder)?;
        }
    }
    Ok(())
}

/// Imports a file as module `name`, as `importlib` documents for a source file (the module is in
/// `sys.modules` while it runs); a folder is imported as a package.
fn import_file<'py>(py: Python<'py>, name: &str, path: &str) -> PyResult<Bound<'py, PyAny>> {
    let util = py.import("importlib.util")?;
    let loader_type = py
        .import("importlib.machinery")?
        .getattr("SourceFileLoader")?;
    let kw = PyDict::new(py);
    let location = if Path::new(path).is_dir() {
        kw.set_item("submodule_search_locations", vec![path])?;
        format!("{}/__init__.py", path.trim_end_matches('/'))
    } else {
        path.to_string()
    };
    let loader = loader_type.call1((name, &location))?;
    kw.set_item("loader", &loader)?;
    let spec = util.call_method("spec_from_file_location", (name, &location), Some(&kw))?;
    let module = util.call_method1("module_from_spec", (&spec,))?;
    let modules = py.import("sys")?.getattr("modules")?;
    modules.set_item(name, &module)?;
    if let Err(e) = loader.call_method1("exec_module", (&module,)) {
        let _ = modules.del_item(name);
        return Err(e);
    }
    Ok(module)
}

/// Loads the app the options name. Starts the interpreter on first use.
pub(crate) fn load(options: &[(String, String)]) -> Result<WsgiApp, LoadFailure> {
    let o = Options::read(options);
    let (option, value, source) = match (&o.module, &o.wsgi_file) {
        (Some(module), Some(file)) => {
            return Err(LoadFailure::TwoApps {
                module: module.clone(),
                file: file.clone(),
            });
        }
        (Some(m), None) => ("module", m.clone(), Source::Module),
        (None, Some(f)) => ("wsgi-file", f.clone(), Source::File),
        (None, None) => return Err(LoadFailure::NoApp),
    };
    let common = liege_worker::Common::read(options)?;
    for (name, v) in &common.env {
        // SAFETY: `Language::load` runs while the process is single-threaded (a lazy-apps worker
        // before its threads start, or the zygote), so no other thread reads the environment.
        unsafe { std::env::set_var(name, v) };
    }
    common.change_dir()?;
    interpreter::start(o.home.as_deref())?;

    pyo3::Python::attach(|py| {
        // When the interpreter was already running, os.environ is a copy made at its start.
        let environ = py.import("os").and_then(|os| os.getattr("environ"));
        for (name, v) in &common.env {
            if let Err(e) = environ.as_ref().map(|environ| environ.set_item(name, v)) {
                return Err(LoadFailure::SetEnv(format!("{name}={v}: {e}")));
            }
        }
        set_sys_path(py, &o.pythonpath).map_err(|e| LoadFailure::SysPath(printed(py, &e)))?;

        let (module_name, callable_option, callable) = match source {
            Source::Module => match value.split_once(':') {
                Some((m, c)) => (m.to_string(), "module", c.to_string()),
                None => (value.clone(), "callable", callable_name(&o)),
            },
            Source::File => (file_module_name(&value), "callable", callable_name(&o)),
        };
        let imported = match source {
            Source::Module => py.import(module_name.as_str()).map(Bound::into_any),
            Source::File => import_file(py, &module_name, &value),
        };
        let module = imported.map_err(|e| LoadFailure::Import {
            option,
            value: value.clone(),
            error: printed(py, &e),
        })?;

        let (attr, factory) = match callable.strip_suffix("()") {
            Some(name) => (name.to_string(), true),
            None => (callable.clone(), false),
        };
        let mut app = match module.getattr(attr.as_str()) {
            Ok(app) => app,
            Err(_) => {
                return Err(LoadFailure::NoCallable {
                    option: callable_option,
                    value: value.clone(),
                    callable: attr,
                });
            }
        };
        if factory {
            app = app.call0().map_err(|e| LoadFailure::Factory {
                option: callable_option,
                value: value.clone(),
                callable: attr.clone(),
                error: printed(py, &e),
            })?;
        }
        if !app.is_callable() {
            return Err(LoadFailure::NotCallable {
                option: callable_option,
                value: value.clone(),
                callable,
                kind: app
                    .get_type()
                    .name()
                    .map_or_else(|_| "?".to_string(), |n| n.to_string()),
            });
        }
        WsgiApp::new(py, app, o.threads > 1).map_err(|e| LoadFailure::Environ(printed(py, &e)))
    })
}

/// Where the app comes from.
#[derive(Debug, Clone, Copy)]
enum Source {
    Module,
    File,
}

fn callable_name(o: &Options) -> String {
    o.callable
        .clone()
        .unwrap_or_else(|| "application".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsgi_files_get_uwsgi_module_names() {
        assert_eq!(
            file_module_name("/srv/app/wsgi.py"),
            "uwsgi_file__srv_app_wsgi"
        );
        assert_eq!(file_module_name("app.wsgi"), "uwsgi_file_app_wsgi");
        assert_eq!(file_module_name("my.app_py"), "uwsgi_file_my_app");
    }

    #[test]
    fn options_keep_the_last_scalar_and_every_repeat() {
        let o = Options::read(&[
            ("module".into(), "a".into()),
            ("module".into(), "b:app".into()),
            ("pythonpath".into(), "/x".into()),
            ("pythonpath".into(), "/y".into()),
            ("threads".into(), "4".into()),
            ("processes".into(), "2".into()),
        ]);
        assert_eq!(o.module.as_deref(), Some("b:app"));
        assert_eq!(o.pythonpath, ["/x", "/y"]);
        assert_eq!(o.threads, 4);
    }

    #[test]
    fn pythonpath_globs_expand_and_unmatched_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("a1")).unwrap();
        fs_err::create_dir(dir.path().join("a2")).unwrap();
        let pattern = format!("{}/a*", dir.path().display());
        assert_eq!(
            expand(&pattern),
            [
                format!("{}/a1", dir.path().display()),
                format!("{}/a2", dir.path().display())
            ]
        );
        let none = format!("{}/zz*", dir.path().display());
        assert_eq!(expand(&none), vec![none]);
    }
}
