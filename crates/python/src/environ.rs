//! The WSGI `environ` dict, built once per request, fast: the names every request carries are
//! interned strings made once (so the dict does not hash them again), the constant values
//! (`wsgi.version`, `wsgi.errors`...) are made once and shared, and each variable's bytes become a
//! `str` by one latin-1 decode (PEP 3333's "native strings").

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use liege_worker::Vars;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};

use crate::file_wrapper::FileWrapper;

/// The CGI names and request headers most requests carry; their keys are interned once.
const KNOWN: &[&str] = liege_worker::request::COMMON_VARS;

/// Indexes into [`KNOWN`] of the names PEP 3333 wants present even when empty.
const SCRIPT_NAME: usize = 5;
const PATH_INFO: usize = 2;
const QUERY_STRING: usize = 3;

/// A word-at-a-time multiplicative hash (rustc-hash's): the known-name table is looked up once
/// per variable, with short keys, where SipHash (or a byte-at-a-time hash) would cost more than
/// the rest of the insert. The table's keys are ours (a fixed list), so flooding is moot.
#[derive(Debug, Default)]
struct WordHash(u64);

const SEED: u64 = 0xf135_7aea_2e62_a9c5;

impl WordHash {
    fn add(&mut self, word: u64) {
        self.0 = self.0.wrapping_add(word).wrapping_mul(SEED);
    }
}

impl Hasher for WordHash {
    fn finish(&self) -> u64 {
        // The multiply mixes upwards; the table indexes with the low bits.
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0; 8];
            b.copy_from_slice(w);
            self.add(u64::from_le_bytes(b));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// Everything about `environ` that is the same for every request.
#[derive(Debug)]
pub(crate) struct Environ {
    index: HashMap<&'static [u8], usize, BuildHasherDefault<WordHash>>,
    known: Vec<Py<PyString>>,
    k_version: Py<PyString>,
    k_url_scheme: Py<PyString>,
    k_input: Py<PyString>,
    k_errors: Py<PyString>,
    k_multithread: Py<PyString>,
    k_multiprocess: Py<PyString>,
    k_run_once: Py<PyString>,
    k_file_wrapper: Py<PyString>,
    k_input_terminated: Py<PyString>,
    version: Py<PyTuple>,
    http: Py<PyString>,
    https: Py<PyString>,
    empty: Py<PyString>,
    errors: Py<PyAny>,
    file_wrapper: Py<PyAny>,
    multithread: bool,
}

/// A `str` from bytes, one byte per character (latin-1), as PEP 3333 wants CGI values.
fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let len = ffi::Py_ssize_t::try_from(bytes.len())?;
    // SAFETY: the pointer and length describe a live slice, which CPython copies; the GIL is held
    // (`py`); the result is a new reference (or NULL with an exception set, turned into Err).
    unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null()),
        )
    }
}

/// `dict[key] = value` without the conversions of `set_item`.
fn set(dict: &Bound<'_, PyDict>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: all three are live objects owned by the caller, and the GIL is held (they are
    // `Bound`); PyDict_SetItem takes its own references.
    if unsafe { ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr()) } < 0 {
        return Err(PyErr::fetch(dict.py()));
    }
    Ok(())
}

impl Environ {
    /// Makes the shared parts; `multithread` is `wsgi.multithread` (`threads` > 1).
    pub(crate) fn new(py: Python<'_>, multithread: bool) -> PyResult<Environ> {
        let intern = |s: &str| PyString::intern(py, s).unbind();
        let io = py.import("io")?;
        // A line-buffered text stream on the process's stderr, of its own, so an app closing
        // `wsgi.errors` cannot close `sys.stderr` nor fd 2.
        let raw = io.getattr("FileIO")?.call1((2, "w", false))?;
        let kw = PyDict::new(py);
        kw.set_item("encoding", "utf-8")?;
        kw.set_item("errors", "backslashreplace")?;
        kw.set_item("line_buffering", true)?;
        let errors = io.getattr("TextIOWrapper")?.call((raw,), Some(&kw))?;
        Ok(Environ {
            index: KNOWN
                .iter()
                .enumerate()
                .map(|(i, k)| (k.as_bytes(), i))
                .collect(),
            known: KNOWN.iter().map(|k| intern(k)).collect(),
            k_version: intern("wsgi.version"),
            k_url_scheme: intern("wsgi.url_scheme"),
            k_input: intern("wsgi.input"),
            k_errors: intern("wsgi.errors"),
            k_multithread: intern("wsgi.multithread"),
            k_multiprocess: intern("wsgi.multiprocess"),
            k_run_once: intern("wsgi.run_once"),
            k_file_wrapper: intern("wsgi.file_wrapper"),
            k_input_terminated: intern("wsgi.input_terminated"),
            version: PyTuple::new(py, [1, 0])?.unbind(),
            http: intern("http"),
            https: intern("https"),
            empty: intern(""),
            errors: errors.unbind(),
            file_wrapper: py.get_type::<FileWrapper>().into_any().unbind(),
            multithread,
        })
    }

    /// A new `environ` for one request.
    pub(crate) fn build<'py>(
        &self,
        py: Python<'py>,
        vars: &Vars,
        scheme: &str,
        input: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let size = ffi::Py_ssize_t::try_from(vars.len() + 12)?;
        // SAFETY: the GIL is held; _PyDict_NewPresized returns a new reference to an empty dict
        // (or NULL with an exception set, turned into Err).
        let dict = unsafe { Bound::from_owned_ptr_or_err(py, ffi::_PyDict_NewPresized(size))? };
        // SAFETY: _PyDict_NewPresized makes a dict.
        let dict = unsafe { dict.cast_into_unchecked::<PyDict>() };
        let mut seen = [false; 3];
        for (name, value) in vars.iter() {
            let value = latin1(py, value)?;
            match self.index.get(name) {
                Some(&i) => {
                    set(&dict, self.known[i].bind(py).as_any(), &value)?;
                    match i {
                        SCRIPT_NAME => seen[0] = true,
                        PATH_INFO => seen[1] = true,
                        QUERY_STRING => seen[2] = true,
                        _ => {}
                    }
                }
                None => set(&dict, &latin1(py, name)?, &value)?,
            }
        }
        for (i, k) in [SCRIPT_NAME, PATH_INFO, QUERY_STRING]
            .into_iter()
            .enumerate()
        {
            if !seen[i] {
                set(
                    &dict,
                    self.known[k].bind(py).as_any(),
                    self.empty.bind(py).as_any(),
                )?;
            }
        }
        let scheme = if scheme == "https" {
            &self.https
        } else {
            &self.http
        };
        let yes = PyBool::new(py, true);
        let no = PyBool::new(py, false);
        let multithread = PyBool::new(py, self.multithread);
        let consts: [(&Py<PyString>, &Bound<'py, PyAny>); 8] = [
            (&self.k_version, self.version.bind(py).as_any()),
            (&self.k_url_scheme, scheme.bind(py).as_any()),
            (&self.k_input, input),
            (&self.k_errors, self.errors.bind(py)),
            (&self.k_multithread, multithread.as_any()),
            (&self.k_multiprocess, yes.as_any()),
            (&self.k_run_once, no.as_any()),
            (&self.k_file_wrapper, self.file_wrapper.bind(py)),
        ];
        for (k, v) in consts {
            set(&dict, k.bind(py).as_any(), v)?;
        }
        set(
            &dict,
            self.k_input_terminated.bind(py).as_any(),
            yes.as_any(),
        )?;
        Ok(dict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pep_3333_names_have_the_indexes_used() {
        assert_eq!(KNOWN[SCRIPT_NAME], "SCRIPT_NAME");
        assert_eq!(KNOWN[PATH_INFO], "PATH_INFO");
        assert_eq!(KNOWN[QUERY_STRING], "QUERY_STRING");
        let mut names = KNOWN.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN.len(), "a known name is listed twice");
    }
}
