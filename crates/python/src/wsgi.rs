//! The WSGI app (PEP 3333) behind the runtime's [`App`]: one call builds `environ`, calls the
//! app, and sends what it returns, choosing the cheapest way the response allows: a whole body at
//! once (so it gets a Content-Length), a regular file with sendfile, or one chunk per item.

use std::io;
use std::ptr;

use liege_worker::{App, AppError, Body, Request, Response, Vars};
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::environ::Environ;
use crate::file_wrapper::FileWrapper;
use crate::input::WsgiInput;
use crate::interpreter;
use crate::start_response::{SlotError, StartResponse};

/// Lists of several bytes items up to this total are joined and sent whole (with a
/// Content-Length); longer ones go out item by item.
const JOIN_LIMIT: usize = 1 << 20;

/// A loaded WSGI callable, ready to serve requests from any thread.
#[derive(Debug)]
pub struct WsgiApp {
    callable: Py<PyAny>,
    environ: Environ,
}

/// What went wrong while serving a request.
#[derive(Debug)]
enum Failure {
    /// The app (or its iterable, or its `close`) raised.
    Python(PyErr),
    /// The client could not be written to.
    Send(io::Error),
    /// Body bytes came before `start_response` was called.
    BodyBeforeStart,
    /// The app returned (and its iterable ended) without calling `start_response`.
    NeverStarted,
    /// Another thread held the response.
    Slot(SlotError),
}

impl From<PyErr> for Failure {
    fn from(e: PyErr) -> Self {
        Failure::Python(e)
    }
}

impl From<SlotError> for Failure {
    fn from(e: SlotError) -> Self {
        Failure::Slot(e)
    }
}

/// A failed send, without Python objects (it crosses `detach`).
#[derive(Debug)]
enum Sending {
    NotStarted,
    Io(io::Error),
}

impl From<Sending> for Failure {
    fn from(e: Sending) -> Self {
        match e {
            Sending::NotStarted => Failure::BodyBeforeStart,
            Sending::Io(e) => Failure::Send(e),
        }
    }
}

/// Sends a piece of body: streamed and flushed, or `last` (the whole body: a Content-Length).
fn put(r: &mut Response<'_>, data: &[u8], last: bool) -> Result<(), Sending> {
    if !r.is_started() {
        return Err(Sending::NotStarted);
    }
    if last {
        r.write_last(data)
    } else {
        r.write(data)
    }
    .map_err(Sending::Io)
}

/// A response iterable that is all there: a list or tuple of bytes.
enum Whole<'py> {
    Empty,
    One(Bound<'py, PyBytes>),
    Joined(Vec<u8>),
}

fn whole<'py, I>(items: impl Fn() -> I) -> Option<Whole<'py>>
where
    I: ExactSizeIterator<Item = Bound<'py, PyAny>>,
{
    let mut first = items();
    match first.len() {
        0 => Some(Whole::Empty),
        1 => first
            .next()?
            .cast_into_exact::<PyBytes>()
            .ok()
            .map(Whole::One),
        _ => {
            let mut total = 0usize;
            for item in first {
                total += item.cast_exact::<PyBytes>().ok()?.as_bytes().len();
                if total > JOIN_LIMIT {
                    return None;
                }
            }
            let mut joined = Vec::with_capacity(total);
            for item in items() {
                joined.extend_from_slice(item.cast_exact::<PyBytes>().ok()?.as_bytes());
            }
            Some(Whole::Joined(joined))
        }
    }
}

fn type_name(o: &Bound<'_, PyAny>) -> String {
    o.get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string())
}

/// Sends the app's iterable.
fn send(py: Python<'_>, sr: &StartResponse, result: &Bound<'_, PyAny>) -> Result<(), Failure> {
    let all = if let Ok(list) = result.cast_exact::<PyList>() {
        whole(|| list.iter())
    } else if let Ok(tuple) = result.cast_exact::<PyTuple>() {
        whole(|| tuple.iter())
    } else if let Ok(bytes) = result.cast_exact::<PyBytes>() {
        // Not a proper iterable (it would yield ints), but what was meant is clear: as uWSGI,
        // send it whole.
        Some(Whole::One(bytes.clone()))
    } else {
        None
    };
    match all {
        Some(Whole::Empty) => return Ok(()),
        Some(Whole::One(b)) => return Ok(sr.with(|r| put(r, b.as_bytes(), true))??),
        Some(Whole::Joined(v)) => return Ok(sr.with(|r| put(r, &v, true))??),
        None => {}
    }
    if let Ok(wrapper) = result.cast_exact::<FileWrapper>()
        && let Some((file, offset)) = wrapper.get().regular_file(py)
    {
        let sent = sr.with(|r| {
            if !r.is_started() {
                return Err(Sending::NotStarted);
            }
            r.send_file(file, offset, None).map_err(Sending::Io)
        })?;
        return Ok(sent?);
    }
    for item in result.try_iter()? {
        let item = item?;
        let bytes = item.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!(
                "the response iterable yielded a {} where bytes were expected",
                type_name(&item)
            ))
        })?;
        let data = bytes.as_bytes();
        if data.is_empty() {
            continue;
        }
        // The GIL is let go while the chunk goes out: a slow client must not stop other threads.
        py.detach(|| sr.with(|r| put(r, data, false)))??;
    }
    Ok(())
}

/// Calls the iterable's `close()`, when it has one (PEP 3333: always, whatever happened).
fn close(py: Python<'_>, result: &Bound<'_, PyAny>) -> PyResult<()> {
    if result.is_exact_instance_of::<PyList>()
        || result.is_exact_instance_of::<PyTuple>()
        || result.is_exact_instance_of::<PyBytes>()
    {
        return Ok(());
    }
    match result.getattr(intern!(py, "close")) {
        Ok(close) => close.call0().map(drop),
        Err(e) if e.is_instance_of::<PyAttributeError>(py) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes a line to `sys.stderr` (where the traceback that follows goes too).
fn log(py: Python<'_>, line: &str) {
    let written = py
        .import("sys")
        .and_then(|sys| sys.getattr("stderr"))
        .and_then(|err| err.call_method1("write", (format!("{line}\n"),)));
    if written.is_err() {
        use std::io::Write;
        let _ = writeln!(io::stderr(), "{line}");
    }
}

/// Clears the `start_response` slot when the call ends, however it ends.
struct Clear<'a>(&'a StartResponse);

impl Drop for Clear<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

impl WsgiApp {
    /// Wraps a loaded callable; `multithread` is `wsgi.multithread` (`threads` > 1).
    pub(crate) fn new(
        py: Python<'_>,
        callable: Bound<'_, PyAny>,
        multithread: bool,
    ) -> PyResult<WsgiApp> {
        Ok(WsgiApp {
            callable: callable.unbind(),
            environ: Environ::new(py, multithread)?,
        })
    }

    fn serve(
        &self,
        py: Python<'_>,
        vars: &Vars,
        body: Body,
        scheme: &str,
        sr: &Bound<'_, StartResponse>,
    ) -> Result<(), Failure> {
        let input = Bound::new(py, WsgiInput::new(body))?;
        let environ = self.environ.build(py, vars, scheme, input.as_any())?;
        let result = self.callable.bind(py).call1((environ, sr))?;
        let sent = send(py, sr.get(), &result);
        let closed = close(py, &result);
        match (sent, closed) {
            (Err(f), Err(c)) => {
                // Both failed: the first is the answer, the second is logged too.
                self.report(py, vars, Failure::Python(c));
                Err(f)
            }
            (Err(f), Ok(())) => Err(f),
            (Ok(()), Err(c)) => Err(Failure::Python(c)),
            (Ok(()), Ok(())) if sr.get().with(|r| r.is_started())? => Ok(()),
            (Ok(()), Ok(())) => Err(Failure::NeverStarted),
        }
    }

    /// Logs what the runtime's log line cannot show (the traceback), and sums it up in one line.
    fn report(&self, py: Python<'_>, vars: &Vars, failure: Failure) -> AppError {
        match failure {
            Failure::Python(e) => {
                let summary = e.to_string();
                log(
                    py,
                    &format!("{}: the app raised an exception", vars.request_line()),
                );
                interpreter::print_traceback(py, &e);
                AppError(summary.lines().next().unwrap_or_default().to_string())
            }
            Failure::Send(e) => AppError(format!("sending the response failed: {e}")),
            Failure::BodyBeforeStart => {
                let m = "the app sent body bytes before calling start_response";
                log(py, &format!("{}: {m}", vars.request_line()));
                AppError(m.to_string())
            }
            Failure::NeverStarted => {
                let m = "the app returned without calling start_response";
                log(py, &format!("{}: {m}", vars.request_line()));
                AppError(m.to_string())
            }
            Failure::Slot(e) => AppError(e.to_string()),
        }
    }
}

impl App for WsgiApp {
    fn call(&self, request: Request, response: &mut Response<'_>) -> Result<(), AppError> {
        interpreter::keep_thread_state();
        let response: *mut Response<'static> = ptr::from_mut(response).cast();
        let Request { vars, body, scheme } = request;
        pyo3::Python::attach(|py| {
            let served = Bound::new(py, StartResponse::new(response))
                .map_err(Failure::Python)
                .and_then(|sr| {
                    let _clear = Clear(sr.get());
                    self.serve(py, &vars, body, scheme, &sr)
                });
            served.map_err(|f| self.report(py, &vars, f))
        })
    }
}
