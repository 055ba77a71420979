//! Starting the one embedded CPython of a process, and the thread states around it.
//!
//! The interpreter is started here, with the PyConfig API, rather than by pyo3: a virtualenv only
//! works when CPython's own path computation sees `<home>/bin/python3` as the executable, so it
//! reads `<home>/pyvenv.cfg` and `site` makes the venv `sys.prefix`. Once started, the GIL is
//! released for good: the worker's event loop runs between requests, and each request takes the
//! GIL for the duration of its call.

use std::cell::Cell;
use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pyo3::ffi;
use pyo3::prelude::*;

/// The interpreter used when no `home` is given: the one this crate was built against
/// (`PYO3_PYTHON`, Debian's `/usr/bin/python3`), so `sys.executable` and the prefixes are its own,
/// never whatever `python3` comes first in `PATH`.
const SYSTEM_PYTHON: &str = match option_env!("PYO3_PYTHON") {
    Some(p) => p,
    None => "/usr/bin/python3",
};

/// Why the interpreter could not start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartError {
    #[error("option `home`: `{0}` is not a directory")]
    HomeNotDir(PathBuf),
    #[error("option `home`: `{0}` contains a NUL byte")]
    HomeNul(PathBuf),
    #[error(
        "option `home`: the interpreter already runs with home `{running}`, cannot switch to `{wanted}`"
    )]
    HomeChanged { running: String, wanted: String },
    #[error("starting the interpreter failed in {func}: {message}")]
    Init { func: String, message: String },
}

/// The `home` the running interpreter was started with (`None` inside: the system one); `None`
/// outside while no interpreter runs.
static STARTED: Mutex<Option<Option<PathBuf>>> = Mutex::new(None);

fn show(home: Option<&Path>) -> String {
    home.map_or_else(|| "(none)".to_string(), |h| h.display().to_string())
}

/// Starts the interpreter (once per process) and releases the GIL. A second call with the same
/// `home` does nothing; with another one it fails, as a process has one interpreter.
pub(crate) fn start(home: Option<&Path>) -> Result<(), StartError> {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(running) = &*started {
        let wanted = home.map(|h| std::path::absolute(h).unwrap_or_else(|_| h.to_path_buf()));
        if running.as_deref() != wanted.as_deref() {
            return Err(StartError::HomeChanged {
                running: show(running.as_deref()),
                wanted: show(home),
            });
        }
        return Ok(());
    }
    // CPython is told `<home>/bin/python3` is its executable: make that independent of the
    // working folder, which the app may change.
    let home = match home {
        Some(h) if !h.is_dir() => return Err(StartError::HomeNotDir(h.to_path_buf())),
        Some(h) => Some(std::path::absolute(h).unwrap_or_else(|_| h.to_path_buf())),
        None => None,
    };
    initialize(home.as_deref())?;
    *started = Some(home);
    drop(started);
    configure_stdio();
    Ok(())
}

/// The executable CPython is told it is, and the `home` (PYTHONHOME) to set, if any.
fn paths(home: Option<&Path>) -> (PathBuf, Option<PathBuf>) {
    let Some(home) = home else {
        return (PathBuf::from(SYSTEM_PYTHON), None);
    };
    let bin = home.join("bin");
    let exe = ["python3", "python"]
        .iter()
        .map(|n| bin.join(n))
        .find(|p| p.exists());
    if home.join("pyvenv.cfg").exists() {
        // A PEP 405 venv: CPython's getpath finds `pyvenv.cfg` beside the executable's folder,
        // takes the base interpreter from its `home` key, and `site` sets `sys.prefix`.
        (exe.unwrap_or_else(|| bin.join("python3")), None)
    } else {
        // Anything else (an old virtualenv, another install prefix): PYTHONHOME, as uWSGI does.
        (
            exe.unwrap_or_else(|| PathBuf::from(SYSTEM_PYTHON)),
            Some(home.to_path_buf()),
        )
    }
}

fn c_path(p: &Path) -> Result<CString, StartError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| StartError::HomeNul(p.to_path_buf()))
}

fn c_text(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        return "unknown error".to_string();
    }
    // SAFETY: PyStatus strings are NUL-terminated static C strings set by CPython.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Fails with the status's message when it is an error or an exit request.
fn check(status: ffi::PyStatus) -> Result<(), StartError> {
    let (func, msg, code) = (status.func, status.err_msg, status.exitcode);
    // SAFETY: PyStatus_Exception only reads the struct passed by value.
    if unsafe { ffi::PyStatus_Exception(status) } == 0 {
        return Ok(());
    }
    Err(StartError::Init {
        func: if func.is_null() {
            "Py_InitializeFromConfig".to_string()
        } else {
            c_text(func)
        },
        message: if msg.is_null() {
            format!("exit status {code}")
        } else {
            c_text(msg)
        },
    })
}

fn initialize(home: Option<&Path>) -> Result<(), StartError> {
    let (exe, pythonhome) = paths(home);
    let exe = c_path(&exe)?;
    let pythonhome = pythonhome.as_deref().map(c_path).transpose()?;
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsStr::new("liege-python").to_os_string());
    let argv0 = CString::new(argv0.as_bytes()).unwrap_or_else(|_| c"liege-python".to_owned());

    // SAFETY: PyConfig is a plain C struct of ints and pointers; all-zero is a valid value for
    // PyConfig_InitPythonConfig to overwrite.
    let mut config: ffi::PyConfig = unsafe { std::mem::zeroed() };
    let cfg: *mut ffi::PyConfig = &raw mut config;
    // SAFETY: `cfg` points to our PyConfig for the whole block; no interpreter runs yet (checked
    // under the STARTED lock), so initialising one is allowed; the strings given are
    // NUL-terminated and CPython copies them; PyConfig_Clear frees what the config allocated, on
    // every path.
    let result = unsafe {
        ffi::PyConfig_InitPythonConfig(cfg);
        (*cfg).install_signal_handlers = 0;
        (*cfg).parse_argv = 0;
        let mut argv = [argv0.as_ptr()];
        let set = check(ffi::PyConfig_SetBytesString(
            cfg,
            &raw mut (*cfg).executable,
            exe.as_ptr(),
        ))
        .and_then(|()| check(ffi::PyConfig_SetBytesArgv(cfg, 1, argv.as_mut_ptr())))
        .and_then(|()| match &pythonhome {
            Some(h) => check(ffi::PyConfig_SetBytesString(
                cfg,
                &raw mut (*cfg).home,
                h.as_ptr(),
            )),
            None => Ok(()),
        });
        let result = set.and_then(|()| check(ffi::Py_InitializeFromConfig(cfg)));
        ffi::PyConfig_Clear(cfg);
        result
    };
    result?;
    // SAFETY: Py_InitializeFromConfig succeeded on this thread, which now holds the GIL; saving
    // the thread state releases it (the main thread state stays registered for this thread).
    unsafe {
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// `print()` output goes out line by line, as uWSGI arranges: a non-interactive stdout would
/// otherwise be block-buffered and an app's log lines would show up late.
fn configure_stdio() {
    pyo3::Python::attach(|py| {
        let done = py
            .import("sys")
            .and_then(|sys| sys.getattr("stdout"))
            .and_then(|out| {
                if out.hasattr("reconfigure")? {
                    let kw = pyo3::types::PyDict::new(py);
                    kw.set_item("line_buffering", true)?;
                    out.call_method("reconfigure", (), Some(&kw))?;
                }
                Ok(())
            });
        if let Err(e) = done {
            print_traceback(py, &e);
        }
    });
}

/// Prints an exception's traceback to `sys.stderr`, with the `traceback` module: `PyErr_Print`
/// would end the process on a `SystemExit`, and an app's `sys.exit()` must not take the worker's
/// other requests down with it.
pub(crate) fn print_traceback(py: pyo3::Python<'_>, e: &PyErr) {
    let printed = py.import("traceback").and_then(|tb| {
        tb.call_method1(
            "print_exception",
            (e.get_type(py), e.value(py), e.traceback(py)),
        )
    });
    if printed.is_err() && !e.is_instance_of::<pyo3::exceptions::PySystemExit>(py) {
        e.clone_ref(py).print(py);
    }
}

thread_local! {
    static KEPT: Cell<bool> = const { Cell::new(false) };
}

/// Gives the calling thread a Python thread state that lives as long as the thread, so each
/// request's `attach` only swaps it in (a cheap GIL take) instead of creating and destroying one,
/// and `threading.local` data survives between requests.
pub(crate) fn keep_thread_state() {
    if KEPT.with(Cell::get) {
        return;
    }
    // SAFETY: the interpreter runs (an app exists only after `start`), and this thread holds no
    // GIL (App::call runs outside any attach). PyGILState_Ensure creates this thread's state and
    // takes the GIL with its counter at 1; PyEval_SaveThread releases the GIL and keeps the state
    // registered: the counter never drops to 0, so later Ensure/Release pairs never delete it.
    unsafe {
        let _ = ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
    KEPT.with(|k| k.set(true));
}

/// Repairs the interpreter's state in a process the zygote just forked: threads, locks and the GIL
/// of the parent, and the `os.register_at_fork` child hooks.
pub(crate) fn after_fork_child() {
    // SAFETY: only reads a flag.
    if unsafe { ffi::Py_IsInitialized() } == 0 {
        return;
    }
    // SAFETY: the zygote forks while single-threaded with the GIL released, so in the child the
    // GIL is free and this thread's state (the one that loaded the app) is registered: Ensure
    // makes it current with the GIL held, as PyOS_AfterFork_Child requires, and Release gives the
    // GIL back.
    unsafe {
        let g = ffi::PyGILState_Ensure();
        ffi::PyOS_AfterFork_Child();
        ffi::PyGILState_Release(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_venv_is_entered_through_its_executable_and_a_prefix_through_pythonhome() {
        let venv = tempfile::tempdir().unwrap();
        fs_err::write(venv.path().join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        let (exe, home) = paths(Some(venv.path()));
        assert_eq!(exe, venv.path().join("bin/python3"));
        assert_eq!(home, None);

        let prefix = tempfile::tempdir().unwrap();
        let (exe, home) = paths(Some(prefix.path()));
        assert_eq!(exe, PathBuf::from(SYSTEM_PYTHON));
        assert_eq!(home.as_deref(), Some(prefix.path()));

        assert_eq!(paths(None), (PathBuf::from(SYSTEM_PYTHON), None));
    }
}
