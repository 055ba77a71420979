//! A complete request, as the app receives it: CGI-style variables and the whole body.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The CGI names and request headers most requests carry, most common first: a language makes
/// its env's keys for these once (interned, shared or frozen strings) rather than per request.
pub const COMMON_VARS: &[&str] = &[
    "REQUEST_METHOD",
    "REQUEST_URI",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_PROTOCOL",
    "SCRIPT_NAME",
    "SERVER_NAME",
    "SERVER_PORT",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "DOCUMENT_ROOT",
    "HTTPS",
    "REMOTE_USER",
    "UWSGI_SCHEME",
    "HTTP_HOST",
    "HTTP_USER_AGENT",
    "HTTP_ACCEPT",
    "HTTP_ACCEPT_ENCODING",
    "HTTP_ACCEPT_LANGUAGE",
    "HTTP_CONNECTION",
    "HTTP_COOKIE",
    "HTTP_REFERER",
    "HTTP_ORIGIN",
    "HTTP_AUTHORIZATION",
    "HTTP_CACHE_CONTROL",
    "HTTP_PRAGMA",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_NONE_MATCH",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_REAL_IP",
    "HTTP_X_REQUESTED_WITH",
    "HTTP_UPGRADE_INSECURE_REQUESTS",
    "HTTP_DNT",
    "HTTP_SEC_FETCH_DEST",
    "HTTP_SEC_FETCH_MODE",
    "HTTP_SEC_FETCH_SITE",
    "HTTP_SEC_FETCH_USER",
    "HTTP_SEC_CH_UA",
    "HTTP_SEC_CH_UA_MOBILE",
    "HTTP_SEC_CH_UA_PLATFORM",
];

/// CGI-style variables, in one buffer: what a uwsgi packet carries, and what an HTTP request is
/// turned into (`REQUEST_METHOD`, `REQUEST_URI`, `PATH_INFO` (percent-decoded), `QUERY_STRING`,
/// `SERVER_PROTOCOL`, `CONTENT_TYPE`, `CONTENT_LENGTH`, `HTTP_*`, `REMOTE_ADDR`, `REMOTE_PORT`,
/// `SERVER_NAME`, `SERVER_PORT`, `SCRIPT_NAME`). Names and values are bytes, as on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    buf: Vec<u8>,
    /// (key start, key end, value end) in `buf`; the value starts at key end.
    spans: Vec<(u32, u32, u32)>,
}

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(bytes: usize, vars: usize) -> Self {
        Vars {
            buf: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(vars),
        }
    }

    /// Adds a variable (a later one with the same name does not replace an earlier one; `get`
    /// returns the last).
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        let k = self.offset();
        self.buf.extend_from_slice(key);
        let v = self.offset();
        self.buf.extend_from_slice(value);
        let e = self.offset();
        self.spans.push((k, v, e));
    }

    /// Adds `HTTP_` + the header name upper-cased with `-` as `_`.
    pub fn push_header(&mut self, name: &[u8], value: &[u8]) {
        let k = self.offset();
        self.buf.extend_from_slice(b"HTTP_");
        self.buf.extend(name.iter().map(|&c| {
            if c == b'-' {
                b'_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
        let v = self.offset();
        self.buf.extend_from_slice(value);
        let e = self.offset();
        self.spans.push((k, v, e));
    }

    fn offset(&self) -> u32 {
        u32::try_from(self.buf.len()).unwrap_or(u32::MAX)
    }

    /// The last value named `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// What SERVER_NAME becomes, for a spec that requires a non-empty one (PSGI, Rack), when
    /// the request gives none or an empty one (nginx's `uwsgi_params` sends `$server_name`,
    /// empty in a server block without `server_name`): the Host header's name, else
    /// `localhost`. `None` when the request gives one.
    pub fn server_name_fallback(&self) -> Option<Vec<u8>> {
        if self.get(b"SERVER_NAME").is_some_and(|v| !v.is_empty()) {
            return None;
        }
        let host = self.get(b"HTTP_HOST").unwrap_or_default();
        // `[::1]:8080`, `example.org:8080`, `example.org`.
        let name = if host.starts_with(b"[") {
            host.iter()
                .position(|&c| c == b']')
                .map_or(host, |end| &host[..=end])
        } else {
            host.split(|&c| c == b':').next().unwrap_or_default()
        };
        Some(if name.is_empty() {
            b"localhost".to_vec()
        } else {
            name.to_vec()
        })
    }

    /// `METHOD URI` of the request, for a language's error log (the URI from PATH_INFO and
    /// QUERY_STRING when REQUEST_URI is missing).
    pub fn request_line(&self) -> String {
        let text = |k: &[u8]| String::from_utf8_lossy(self.get(k).unwrap_or_default()).into_owned();
        let uri = match self.get(b"REQUEST_URI") {
            Some(u) => String::from_utf8_lossy(u).into_owned(),
            None => {
                let q = text(b"QUERY_STRING");
                let p = text(b"PATH_INFO");
                if q.is_empty() { p } else { format!("{p}?{q}") }
            }
        };
        format!("{} {uri}", text(b"REQUEST_METHOD"))
    }

    /// The last value named `key`, if it is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key.as_bytes())
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every variable, in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + ExactSizeIterator {
        self.spans.iter().map(|&(k, v, e)| {
            (
                &self.buf[k as usize..v as usize],
                &self.buf[v as usize..e as usize],
            )
        })
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// A request body, received whole before the app runs: in memory up to `post-buffering`, in an
/// unnamed temporary file beyond.
#[derive(Debug, Default)]
pub enum Body {
    #[default]
    Empty,
    Memory(Vec<u8>),
    /// An unnamed file (`O_TMPFILE`) holding `len` bytes.
    File {
        file: File,
        len: u64,
    },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Memory(v) => v.len() as u64,
            Body::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A complete request.
#[derive(Debug)]
pub struct Request {
    pub vars: Vars,
    pub body: Body,
    /// `http` or `https` (uwsgi packets say which in `UWSGI_SCHEME` or `HTTPS`).
    pub scheme: &'static str,
}

impl Request {
    /// A request as the runtime makes one of an HTTP/1.1 request from 127.0.0.1 to
    /// `localhost:8080`: `METHOD URI`, `body` (with its CONTENT_LENGTH and an
    /// `application/octet-stream` CONTENT_TYPE when not empty), then `extra` variables. For the
    /// languages' tests and tools that call an app without a connection.
    pub fn http11(method: &str, uri: &str, body: Body, extra: &[(&str, &[u8])]) -> Request {
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut vars = Vars::new();
        vars.push(b"REQUEST_METHOD", method.as_bytes());
        vars.push(b"REQUEST_URI", uri.as_bytes());
        vars.push(b"PATH_INFO", path.as_bytes());
        vars.push(b"QUERY_STRING", query.as_bytes());
        vars.push(b"SERVER_PROTOCOL", b"HTTP/1.1");
        vars.push(b"SCRIPT_NAME", b"");
        vars.push(b"SERVER_NAME", b"localhost");
        vars.push(b"SERVER_PORT", b"8080");
        vars.push(b"REMOTE_ADDR", b"127.0.0.1");
        vars.push(b"REMOTE_PORT", b"40000");
        vars.push_header(b"Host", b"localhost:8080");
        if !body.is_empty() {
            vars.push(b"CONTENT_LENGTH", body.len().to_string().as_bytes());
            vars.push(b"CONTENT_TYPE", b"application/octet-stream");
        }
        for (k, v) in extra {
            vars.push(k.as_bytes(), v);
        }
        Request {
            vars,
            body,
            scheme: "http",
        }
    }
}

/// A reader over a [`Body`] with the calls every language's input object needs (PEP 3333's
/// `wsgi.input`, PSGI's `psgi.input`, Rack's `rack.input`): read, readline, seek.
#[derive(Debug)]
pub struct Input {
    body: Body,
    pos: u64,
}

impl Input {
    pub fn new(body: Body) -> Self {
        Input { body, pos: 0 }
    }

    /// The body's length.
    pub fn len(&self) -> u64 {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// Where the next read starts.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves the read position (clamped to the body's length).
    pub fn seek(&mut self, pos: u64) {
        self.pos = pos.min(self.len());
    }

    fn remaining(&self) -> u64 {
        self.len() - self.pos
    }

    /// Reads up to `limit` bytes (all that remain when `None`); empty at the end.
    pub fn read(&mut self, limit: Option<usize>) -> io::Result<Vec<u8>> {
        let n = limit.map_or(self.remaining(), |l| (l as u64).min(self.remaining()));
        let n = usize::try_from(n).map_err(io::Error::other)?;
        let out = self.peek(n)?;
        self.pos += out.len() as u64;
        Ok(out)
    }

    /// Reads one line, with its `\n`, or up to `limit` bytes of it.
    pub fn readline(&mut self, limit: Option<usize>) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let max = limit.map_or(self.remaining(), |l| (l as u64).min(self.remaining()));
        while (out.len() as u64) < max {
            let want = usize::try_from((max - out.len() as u64).min(8192)).unwrap_or(8192);
            let chunk = self.peek(want)?;
            if chunk.is_empty() {
                break;
            }
            if let Some(i) = chunk.iter().position(|&c| c == b'\n') {
                out.extend_from_slice(&chunk[..=i]);
                self.pos += i as u64 + 1;
                return Ok(out);
            }
            self.pos += chunk.len() as u64;
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Up to `n` bytes from the position, without moving it.
    fn peek(&self, n: usize) -> io::Result<Vec<u8>> {
        let start = usize::try_from(self.pos).map_err(io::Error::other)?;
        match &self.body {
            Body::Empty => Ok(Vec::new()),
            Body::Memory(v) => {
                let end = start.saturating_add(n).min(v.len());
                Ok(v.get(start..end).unwrap_or_default().to_vec())
            }
            Body::File { file, .. } => {
                let mut out = vec![0; n];
                let mut got = 0;
                while got < n {
                    let r = file.read_at(&mut out[got..], self.pos + got as u64)?;
                    if r == 0 {
                        break;
                    }
                    got += r;
                }
                out.truncate(got);
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_server_name_is_the_hosts_name() {
        let vars = |pairs: &[(&[u8], &[u8])]| {
            let mut v = Vars::new();
            for (k, val) in pairs {
                v.push(k, val);
            }
            v
        };
        let given: &[(&[u8], &[u8])] = &[(b"SERVER_NAME", b"a.test"), (b"HTTP_HOST", b"b.test")];
        assert_eq!(vars(given).server_name_fallback(), None);
        for (host, want) in [
            (&b"b.test:8080"[..], &b"b.test"[..]),
            (b"b.test", b"b.test"),
            (b"[::1]:8080", b"[::1]"),
            (b"", b"localhost"),
        ] {
            let got = vars(&[(b"SERVER_NAME", b""), (b"HTTP_HOST", host)]).server_name_fallback();
            assert_eq!(got.as_deref(), Some(want));
        }
        assert_eq!(
            vars(&[]).server_name_fallback().as_deref(),
            Some(&b"localhost"[..])
        );
    }
    use std::io::Write;

    #[test]
    fn vars_keep_order_and_get_returns_the_last() {
        let mut v = Vars::new();
        v.push(b"A", b"1");
        v.push_header(b"x-forwarded-for", b"h");
        v.push(b"A", b"2");
        assert_eq!(v.get(b"A"), Some(&b"2"[..]));
        assert_eq!(v.get(b"HTTP_X_FORWARDED_FOR"), Some(&b"h"[..]));
        assert_eq!(v.iter().count(), 3);
    }

    fn inputs(data: &[u8]) -> Vec<Input> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        vec![
            Input::new(Body::Memory(data.to_vec())),
            Input::new(Body::File {
                file: f,
                len: data.len() as u64,
            }),
        ]
    }

    #[test]
    fn readline_read_and_seek_agree_for_memory_and_file() {
        for mut i in inputs(b"one\ntwo\nthree") {
            assert_eq!(i.readline(None).unwrap(), b"one\n");
            assert_eq!(i.readline(Some(2)).unwrap(), b"tw");
            assert_eq!(i.readline(None).unwrap(), b"o\n");
            assert_eq!(i.read(Some(3)).unwrap(), b"thr");
            assert_eq!(i.read(None).unwrap(), b"ee");
            assert_eq!(i.read(None).unwrap(), b"");
            assert_eq!(i.readline(None).unwrap(), b"");
            i.seek(4);
            assert_eq!(i.read(Some(100)).unwrap(), b"two\nthree");
        }
    }
}
