//! `wsgi.file_wrapper`: an app returns `FileWrapper(open(path, "rb"))`, and when the file is a
//! regular file the worker sends it with sendfile instead of reading it through Python.

use std::fs::File;
use std::io::Seek;
use std::os::fd::{FromRawFd, OwnedFd};

use pyo3::exceptions::PyAttributeError;
use pyo3::intern;
use pyo3::prelude::*;

/// `environ["wsgi.file_wrapper"]`: `FileWrapper(filelike, blksize=8192)`. Also a plain iterable
/// reading `blksize` chunks (for middleware that iterates the response), with `close()` closing
/// the file.
#[pyclass(frozen, module = "liege", name = "FileWrapper")]
#[derive(Debug)]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: isize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize = 8192))]
    fn new(filelike: Py<PyAny>, blksize: isize) -> Self {
        FileWrapper { filelike, blksize }
    }

    /// The wrapped file.
    #[getter]
    fn filelike(&self, py: Python<'_>) -> Py<PyAny> {
        self.filelike.clone_ref(py)
    }

    /// The chunk size used when iterating.
    #[getter]
    fn blksize(&self) -> isize {
        self.blksize
    }

    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1(intern!(py, "read"), (self.blksize,))?;
        Ok(data.is_truthy()?.then_some(data))
    }

    /// Closes the wrapped file, when it has a `close`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        match self.filelike.bind(py).getattr(intern!(py, "close")) {
            Ok(close) => close.call0().map(drop),
            Err(e) if e.is_instance_of::<PyAttributeError>(py) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl FileWrapper {
    /// A duplicate of the wrapped file's descriptor and the position to send from (its `tell()`,
    /// which accounts for Python's read buffer, else the descriptor's offset), when the file
    /// has a descriptor and it is a regular file. Errors mean "not sendable": iterate instead.
    pub(crate) fn regular_file(&self, py: Python<'_>) -> Option<(File, u64)> {
        let filelike = self.filelike.bind(py);
        let fileno: i32 = filelike
            .call_method0(intern!(py, "fileno"))
            .ok()?
            .extract()
            .ok()?;
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) accepts any integer and fails with EBADF on one that is
        // not an open descriptor; it does not touch memory.
        let fd = unsafe { libc::fcntl(fileno, libc::F_DUPFD_CLOEXEC, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just created by fcntl and is owned by nothing else.
        let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let tell = filelike
            .call_method0(intern!(py, "tell"))
            .and_then(|p| p.extract::<u64>());
        let offset = match tell {
            Ok(p) => p,
            Err(_) => file.stream_position().ok()?,
        };
        Some((file, offset))
    }
}
