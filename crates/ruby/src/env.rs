//! The CGI half of the Rack `env`: the request's variables as (key, value) pairs for the C side,
//! with Rack's rules applied (SPEC, Rack 2.2): `SCRIPT_NAME` is never `/`, `PATH_INFO` is `/`
//! when both are empty, `QUERY_STRING` is always there, an empty `SERVER_PORT` (a unix socket),
//! `CONTENT_TYPE` or `CONTENT_LENGTH` is left out, and a missing or empty `SERVER_NAME` is the
//! Host's name. The names most requests carry are frozen Ruby strings made once, so the hash
//! neither copies nor freezes them per request; the `rack.*` entries are the C side's.
//!
//! Rack 3 would change little here: `SERVER_PROTOCOL` stays, `rack.version` goes (C side), and
//! `rack.input` may be left out for an empty body (C side, `new_input`).

use liege_worker::Vars;

use crate::ffi::{self, RawVar, Value};

macro_rules! known {
    ($($name:ident),* $(,)?) => {
        /// The CGI names and request headers most requests carry.
        const KNOWN: &[&str] = &[$(stringify!($name)),*];

        /// The index of `name` in [`KNOWN`].
        fn index(name: &[u8]) -> Option<usize> {
            #[allow(non_camel_case_types, clippy::upper_case_acronyms, dead_code)]
            enum Ix { $($name),* }
            match name {
                $(n if n == stringify!($name).as_bytes() => Some(Ix::$name as usize),)*
                _ => None,
            }
        }
    };
}

known! {
    REQUEST_METHOD,
    SCRIPT_NAME,
    PATH_INFO,
    QUERY_STRING,
    SERVER_NAME,
    SERVER_PORT,
    SERVER_PROTOCOL,
    REQUEST_URI,
    REMOTE_ADDR,
    REMOTE_PORT,
    CONTENT_TYPE,
    CONTENT_LENGTH,
    DOCUMENT_ROOT,
    HTTPS,
    REMOTE_USER,
    UWSGI_SCHEME,
    HTTP_HOST,
    HTTP_USER_AGENT,
    HTTP_ACCEPT,
    HTTP_ACCEPT_ENCODING,
    HTTP_ACCEPT_LANGUAGE,
    HTTP_CONNECTION,
    HTTP_COOKIE,
    HTTP_REFERER,
    HTTP_ORIGIN,
    HTTP_AUTHORIZATION,
    HTTP_CACHE_CONTROL,
    HTTP_PRAGMA,
    HTTP_IF_MODIFIED_SINCE,
    HTTP_IF_NONE_MATCH,
    HTTP_X_FORWARDED_FOR,
    HTTP_X_FORWARDED_PROTO,
    HTTP_X_FORWARDED_HOST,
    HTTP_X_REAL_IP,
    HTTP_X_REQUESTED_WITH,
    HTTP_UPGRADE_INSECURE_REQUESTS,
    HTTP_DNT,
}

const SCRIPT_NAME: usize = 1;
const PATH_INFO: usize = 2;
const QUERY_STRING: usize = 3;
const SERVER_NAME: usize = 4;
const CONTENT_TYPE: usize = 10;
const CONTENT_LENGTH: usize = 11;
const SERVER_PORT: usize = 5;

/// The keys made once (frozen Ruby strings, one per [`KNOWN`] name).
#[derive(Debug)]
pub(crate) struct Keys {
    values: Vec<Value>,
}

impl Keys {
    /// Makes the keys; Ruby must be started (on this thread).
    pub(crate) fn new() -> Result<Keys, String> {
        Ok(Keys {
            values: ffi::keys(KNOWN)?,
        })
    }

    /// The variables of `vars` for the C side, borrowing their bytes; `server_name`: what
    /// replaces a missing or empty SERVER_NAME ([`Vars::server_name_fallback`]).
    pub(crate) fn vars<'v>(&self, vars: &'v Vars, server_name: Option<&'v [u8]>) -> Vec<RawVar> {
        let mut out = Vec::with_capacity(vars.len() + 3);
        let mut script: &'v [u8] = b"";
        let mut path: &'v [u8] = b"";
        let mut query = false;
        let var = |key: Value, name: &[u8], value: &[u8]| RawVar {
            key,
            name: name.as_ptr(),
            name_len: name.len(),
            value: value.as_ptr(),
            value_len: value.len(),
        };
        for (name, value) in vars.iter() {
            match index(name) {
                // Set below, once the last of each is known.
                Some(SCRIPT_NAME) => script = value,
                Some(PATH_INFO) => path = value,
                // nginx's uwsgi_params sends them empty for a request without a body.
                Some(SERVER_PORT | CONTENT_TYPE | CONTENT_LENGTH) if value.is_empty() => {}
                Some(SERVER_NAME) if server_name.is_some() => {}
                Some(i) => {
                    query |= i == QUERY_STRING;
                    out.push(var(self.values[i], name, value));
                }
                None => out.push(var(0, name, value)),
            }
        }
        if script == b"/" {
            script = b"";
        }
        if script.is_empty() && path.is_empty() {
            path = b"/";
        }
        if let Some(name) = server_name {
            out.push(var(self.values[SERVER_NAME], b"SERVER_NAME", name));
        }
        out.push(var(self.values[SCRIPT_NAME], b"SCRIPT_NAME", script));
        out.push(var(self.values[PATH_INFO], b"PATH_INFO", path));
        if !query {
            out.push(var(self.values[QUERY_STRING], b"QUERY_STRING", b""));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_indexes_used_name_the_right_keys() {
        assert_eq!(KNOWN[SCRIPT_NAME], "SCRIPT_NAME");
        assert_eq!(KNOWN[PATH_INFO], "PATH_INFO");
        assert_eq!(KNOWN[QUERY_STRING], "QUERY_STRING");
        assert_eq!(KNOWN[SERVER_NAME], "SERVER_NAME");
        assert_eq!(KNOWN[CONTENT_TYPE], "CONTENT_TYPE");
        assert_eq!(KNOWN[CONTENT_LENGTH], "CONTENT_LENGTH");
        assert_eq!(KNOWN[SERVER_PORT], "SERVER_PORT");
        for (i, k) in KNOWN.iter().enumerate() {
            assert_eq!(index(k.as_bytes()), Some(i));
        }
        assert_eq!(index(b"HTTP_X_OTHER"), None);
    }
}
