//! The PSGI app behind the runtime's [`App`]: one call hands the request's variables to the
//! shim, which builds the env, calls the app and sends what it returns through a [`Ctx`]: a
//! whole array body at once (so it gets a Content-Length), a real file with sendfile, a
//! filehandle line by line, or a streaming writer's pieces as they come.

use std::ffi::{OsStr, c_int, c_void};
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;

use liege_worker::{App, AppError, Input, Request, Response, Vars, log};

use crate::ffi::Var;
use crate::interpreter::{self, AppRef};

/// Arrays of several pieces up to this total are joined and sent whole (with a Content-Length);
/// longer ones go out piece by piece.
const JOIN_LIMIT: usize = 1 << 20;

/// The CGI names and request headers most requests carry: the env gets them as shared Perl keys
/// made once, so storing them hashes nothing.
pub(crate) const KNOWN: &[&str] = liege_worker::request::COMMON_VARS;

/// The index of a name in [`KNOWN`], or -1.
fn known_index(name: &[u8]) -> isize {
    KNOWN
        .iter()
        .position(|k| k.as_bytes() == name)
        .and_then(|i| isize::try_from(i).ok())
        .unwrap_or(-1)
}

/// Bytes as text, one character a byte (latin-1), as HTTP heads carry them.
fn latin1(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => s.to_string(),
        _ => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

/// What the shim's callbacks act on while one request is served.
pub(crate) struct Ctx<'r, 'a> {
    response: &'r mut Response<'a>,
    input: Input,
    /// The message of the last failed callback (for the shim's `croak`).
    pub(crate) error: String,
    /// Whether a failure was the client's connection (not the app's fault).
    send_failed: bool,
}

impl Ctx<'_, '_> {
    fn io(&mut self, what: &str, e: io::Error) -> String {
        self.send_failed = true;
        format!("{what}: {e}")
    }

    /// Starts the response (the runtime checks the status and headers).
    pub(crate) fn start<'h>(
        &mut self,
        code: i64,
        headers: impl Iterator<Item = (&'h [u8], &'h [u8])>,
    ) -> Result<(), String> {
        let code = u16::try_from(code)
            .ok()
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| format!("status {code} is not an HTTP status code"))?;
        let headers = headers.map(|(n, v)| (latin1(n), latin1(v))).collect();
        self.response
            .start_code(code, headers)
            .map_err(|e| e.to_string())
    }

    /// Sends body pieces: streamed, or `last` (the whole body: a Content-Length when it fits).
    pub(crate) fn write<'p>(
        &mut self,
        mut parts: impl ExactSizeIterator<Item = &'p [u8]>,
        last: bool,
    ) -> Result<(), String> {
        let sent = if last {
            match parts.len() {
                // Nothing to send: the runtime's finish gives the length (none for a 204).
                0 => Ok(()),
                1 => self.response.write_last(parts.next().unwrap_or_default()),
                _ => {
                    let parts: Vec<&[u8]> = parts.collect();
                    let total: usize = parts.iter().map(|p| p.len()).sum();
                    if total <= JOIN_LIMIT {
                        self.response.write_last(&parts.concat())
                    } else {
                        parts.iter().try_for_each(|p| self.response.write(p))
                    }
                }
            }
        } else {
            parts.try_for_each(|p| self.response.write(p))
        };
        sent.map_err(|e| self.io("sending the response failed", e))
    }

    /// Sends a file from `offset` with sendfile: false (nothing sent) when it is not a regular
    /// file.
    pub(crate) fn send_file(&mut self, file: File, offset: u64) -> Result<bool, String> {
        let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if !regular {
            return Ok(false);
        }
        self.response
            .send_file(file, offset, None)
            .map_err(|e| self.io("sending the response file failed", e))?;
        Ok(true)
    }

    /// Sends the file a body's `path` names.
    pub(crate) fn send_path(&mut self, path: &[u8]) -> Result<bool, String> {
        let file = fs_err::File::open(OsStr::from_bytes(path))
            .map_err(|e| format!("the body's path: {e}"))?;
        self.send_file(file.into_parts().0, 0)
    }

    /// Reads body bytes into `out`: how many (0 at the end).
    pub(crate) fn input_read(&mut self, out: &mut [u8]) -> Result<usize, String> {
        let data = self
            .input
            .read(Some(out.len()))
            .map_err(|e| format!("reading the request body failed: {e}"))?;
        out[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Moves the body's read position (`whence` 0: from the start, 1: from here, 2: from the
    /// end), clamped to the body: the new position.
    pub(crate) fn input_seek(&mut self, offset: i64, whence: c_int) -> Result<u64, String> {
        let base = match whence {
            0 => 0,
            1 => self.input.position(),
            2 => self.input.len(),
            _ => return Err(format!("whence {whence} is not 0, 1 or 2")),
        };
        let target = i128::from(base) + i128::from(offset);
        if target < 0 {
            return Err(format!("position {target} is before the start of the body"));
        }
        self.input.seek(u64::try_from(target).unwrap_or(u64::MAX));
        Ok(self.input.position())
    }

    pub(crate) fn started(&self) -> bool {
        self.response.is_started()
    }
}

/// A loaded PSGI app.
#[derive(Debug)]
pub struct PsgiApp {
    app: AppRef,
}

impl PsgiApp {
    pub(crate) fn new(app: AppRef) -> Self {
        PsgiApp { app }
    }
}

impl App for PsgiApp {
    fn call(&self, request: Request, response: &mut Response<'_>) -> Result<(), AppError> {
        let Request { vars, body, scheme } = request;
        let mut guard =
            interpreter::lock().map_err(|e| AppError(format!("the Perl interpreter: {e}")))?;
        let Some(interp) = guard.as_mut() else {
            return Err(AppError("the Perl interpreter is not running".into()));
        };
        interp.vars.extend(vars.iter().map(|(k, v)| Var {
            key: k.as_ptr().cast(),
            key_len: k.len(),
            value: v.as_ptr().cast(),
            value_len: v.len(),
            known: known_index(k),
        }));
        // Pushed after the request's own: the later key wins in the env.
        let server_name = vars.server_name_fallback();
        if let Some(name) = &server_name {
            interp.vars.push(Var {
                key: b"SERVER_NAME".as_ptr().cast(),
                key_len: b"SERVER_NAME".len(),
                value: name.as_ptr().cast(),
                value_len: name.len(),
                known: known_index(b"SERVER_NAME"),
            });
        }
        let mut ctx = Ctx {
            response,
            input: Input::new(body),
            error: String::new(),
            send_failed: false,
        };
        let ctx_ptr: *mut c_void = std::ptr::from_mut(&mut ctx).cast();
        let result = interpreter::call(interp, &self.app, ctx_ptr, scheme == "https");
        drop(guard);
        match result {
            Ok(harakiri) => {
                if harakiri {
                    harakiri_commit(&vars);
                }
                Ok(())
            }
            Err(message) => {
                let first = message.lines().next().unwrap_or_default().to_string();
                if ctx.send_failed {
                    return Err(AppError(first));
                }
                log::line(&format!(
                    "{}: the app died: {}",
                    vars.request_line(),
                    message.trim_end()
                ));
                Err(AppError(first))
            }
        }
    }
}

/// `psgix.harakiri.commit`: the worker stops gracefully after this response (the runtime stops
/// on SIGTERM: no new connections, this response goes out), and the master starts another.
fn harakiri_commit(vars: &Vars) {
    log::line(&format!(
        "liege-perl: {}: the app set psgix.harakiri.commit: worker {} exits after this response",
        vars.request_line(),
        std::process::id()
    ));
    // SAFETY: kill with our own pid and a valid signal number touches no memory.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_unique_and_found() {
        let mut names = KNOWN.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KNOWN.len(), "a known name is listed twice");
        assert_eq!(known_index(b"PATH_INFO"), 2);
        assert_eq!(known_index(b"HTTP_X_CUSTOM"), -1);
    }

    #[test]
    fn latin1_is_a_byte_a_character() {
        assert_eq!(latin1(b"Jos\xe9"), "Jos\u{e9}");
    }
}
