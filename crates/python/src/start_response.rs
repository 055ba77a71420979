//! `start_response` and the `write` callable it returns (PEP 3333), over the request's
//! [`Response`].
//!
//! The Python object outlives nothing it should not: it reaches the `Response` through a slot
//! that holds a pointer only while [`WsgiApp::call`](crate::WsgiApp) runs, and every use takes the
//! pointer out of the slot and puts it back after, so two threads can never hold it at once (an
//! app that hands `start_response` to another thread gets an error, not a data race) and an app
//! that keeps `start_response` after the request gets an error, not a dangling pointer.

use std::io;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

use liege_worker::Response;
use pyo3::exceptions::{PyAssertionError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

/// The `start_response` callable of one request.
#[pyclass(frozen, module = "liege", name = "StartResponse")]
#[derive(Debug)]
pub(crate) struct StartResponse {
    /// The request's response while its call runs; [`busy`] while one caller uses it; null once
    /// the call is over. The `'static` is a lie kept inside this module: the pointer is only
    /// dereferenced in [`Self::with`], for the length of one closure.
    slot: AtomicPtr<Response<'static>>,
}

/// The slot's value while a caller holds the pointer: an address no `Response` can have.
fn busy() -> *mut Response<'static> {
    ptr::NonNull::dangling().as_ptr()
}

/// Why a response operation could not run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SlotError {
    #[error("the response is finished, or in use by another thread")]
    Unavailable,
}

impl StartResponse {
    /// A `start_response` over `response`, which must stay valid until [`Self::clear`] returns.
    pub(crate) fn new(response: *mut Response<'static>) -> Self {
        StartResponse {
            slot: AtomicPtr::new(response),
        }
    }

    /// Runs `f` on the response, with exclusive use of it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Response<'_>) -> R) -> Result<R, SlotError> {
        let p = self.slot.load(Ordering::Acquire);
        if p.is_null() || p == busy() {
            return Err(SlotError::Unavailable);
        }
        if self
            .slot
            .compare_exchange(p, busy(), Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(SlotError::Unavailable);
        }
        // SAFETY: a real pointer in the slot comes from the `&mut Response` of the running
        // `WsgiApp::call`, which uses the response only through this slot, and does not return
        // before `clear` saw the pointer back; swapping `busy` in made this caller the only holder
        // until it stores the pointer back, so this is the one live reference; `f` cannot keep it
        // (it is higher-ranked over the lifetimes).
        let r = f(unsafe { &mut *p });
        self.slot.store(p, Ordering::Release);
        Ok(r)
    }

    /// Forgets the response, so later uses fail. When another thread holds it right now (an app
    /// that handed `start_response` or `write` to a thread of its own), waits until it is back:
    /// that holder needs no GIL to finish.
    pub(crate) fn clear(&self) {
        loop {
            let p = self.slot.load(Ordering::Acquire);
            if p.is_null() {
                return;
            }
            if p != busy()
                && self
                    .slot
                    .compare_exchange(p, ptr::null_mut(), Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            std::thread::yield_now();
        }
    }
}

fn type_name(o: &Bound<'_, PyAny>) -> String {
    o.get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string())
}

/// A `str` argument, or a TypeError naming what it is.
fn text<'a>(o: &'a Bound<'_, PyAny>, what: &str) -> PyResult<&'a str> {
    let s = o
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("{what} must be a str, not {}", type_name(o))))?;
    s.to_str()
}

/// Latin-1 is what a header can carry (PEP 3333).
fn latin1(s: &str, what: &str) -> PyResult<()> {
    if s.is_ascii() || s.chars().all(|c| u32::from(c) <= 0xff) {
        return Ok(());
    }
    Err(PyValueError::new_err(format!(
        "{what} {s:?} is not latin-1 encodable"
    )))
}

/// The `response_headers` list as (name, value) pairs, or the TypeError/ValueError wsgiref
/// would give.
fn headers(list: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let list = list.cast::<PyList>().map_err(|_| {
        PyTypeError::new_err(format!(
            "response_headers must be a list, not {}",
            type_name(list)
        ))
    })?;
    let mut out = Vec::with_capacity(list.len());
    for item in list.iter() {
        let pair = item
            .cast::<PyTuple>()
            .ok()
            .filter(|t| t.len() == 2)
            .ok_or_else(|| {
                PyTypeError::new_err(format!(
                    "each response header must be a (name, value) tuple, not {}",
                    item.repr()
                        .map_or_else(|_| type_name(&item), |r| r.to_string())
                ))
            })?;
        let name = pair.get_item(0)?;
        let value = pair.get_item(1)?;
        let name = text(&name, "a header name")?;
        let value = text(&value, "a header value")?;
        latin1(name, "header name")?;
        latin1(value, "header value")?;
        out.push((name.to_owned(), value.to_owned()));
    }
    Ok(out)
}

fn unavailable(e: SlotError) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

#[pymethods]
impl StartResponse {
    /// `start_response(status, response_headers, exc_info=None)`: returns `write`.
    #[pyo3(signature = (status, response_headers, exc_info = None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        response_headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let exc_info = exc_info.filter(|e| !e.is_none());
        let (started, head_sent) = this
            .with(|r| (r.is_started(), r.is_head_sent()))
            .map_err(unavailable)?;
        match exc_info {
            Some(exc) if head_sent => {
                // Too late to change the status: the error goes back to the app, with the
                // traceback it came with.
                let value = exc.get_item(1)?;
                let tb = exc.get_item(2)?;
                let value = if tb.is_none() {
                    value
                } else {
                    value.call_method1(intern!(slf.py(), "with_traceback"), (tb,))?
                };
                return Err(PyErr::from_value(value));
            }
            Some(_) => {}
            None if started => {
                return Err(PyAssertionError::new_err(
                    "start_response was already called (without exc_info)",
                ));
            }
            None => {}
        }
        let status = text(status, "status")?;
        latin1(status, "status")?;
        let headers = headers(response_headers)?;
        this.with(|r| r.start(status, headers))
            .map_err(unavailable)?
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        slf.getattr(intern!(slf.py(), "write"))
    }

    /// PEP 3333's legacy `write(data)`: sends `data` (bytes) now, before the iterable's items.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data.cast::<PyBytes>().map_err(|_| {
            PyTypeError::new_err(format!("write() takes bytes, not {}", type_name(data)))
        })?;
        let data = bytes.as_bytes();
        // The GIL is let go while the bytes go out: a slow client must not stop other threads.
        let sent: Result<io::Result<()>, SlotError> = py.detach(|| self.with(|r| r.write(data)));
        sent.map_err(unavailable)?.map_err(PyErr::from)
    }
}
