//! `wsgi.input`: the request body, received whole by the runtime, read from Python as bytes.

use liege_worker::{Body, Input};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

/// The object behind `environ["wsgi.input"]`: `read`, `readline`, `readlines`, iteration over
/// lines, and `seek`/`tell` (the body is all there, so going back is free).
#[pyclass(module = "liege", name = "Input")]
#[derive(Debug)]
pub(crate) struct WsgiInput {
    input: Input,
}

/// A Python size argument as a limit: negative or None means "all".
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

impl WsgiInput {
    pub(crate) fn new(body: Body) -> Self {
        WsgiInput {
            input: Input::new(body),
        }
    }
}

#[pymethods]
impl WsgiInput {
    /// Up to `size` bytes (all that remain when negative or None); `b""` at the end.
    #[pyo3(signature = (size = -1))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.input.read(limit(size))?;
        Ok(PyBytes::new(py, &data))
    }

    /// One line with its `\n` (or up to `size` bytes of it); `b""` at the end.
    #[pyo3(signature = (size = -1))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.input.readline(limit(size))?;
        Ok(PyBytes::new(py, &data))
    }

    /// The remaining lines, or lines until their total reaches `hint` when it is positive.
    #[pyo3(signature = (hint = -1))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Bound<'py, PyList>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let lines = PyList::empty(py);
        let mut total = 0;
        loop {
            let line = self.input.readline(None)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.append(PyBytes::new(py, &line))?;
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.input.readline(None)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    /// The read position.
    fn tell(&self) -> u64 {
        self.input.position()
    }

    /// Moves the read position (`whence` 0: from the start, 1: from here, 2: from the end),
    /// clamped to the body; returns the new position.
    #[pyo3(signature = (offset, whence = 0))]
    fn seek(&mut self, offset: i64, whence: i32) -> PyResult<u64> {
        let base = match whence {
            0 => 0,
            1 => self.input.position(),
            2 => self.input.len(),
            _ => return Err(PyValueError::new_err(format!("invalid whence ({whence})"))),
        };
        let target = i128::from(base) + i128::from(offset);
        if target < 0 {
            return Err(PyValueError::new_err(format!(
                "negative seek position {target}"
            )));
        }
        self.input.seek(u64::try_from(target).unwrap_or(u64::MAX));
        Ok(self.input.position())
    }

    /// The body's length.
    fn __len__(&self) -> usize {
        usize::try_from(self.input.len()).unwrap_or(usize::MAX)
    }
}
