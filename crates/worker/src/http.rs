//! HTTP/1.1 request parsing, sans-io: the event loop reads a client's bytes into a buffer and asks
//! [`parse_head`] whether a whole request head is there; a chunked body then goes through a
//! [`ChunkedDecoder`]. Nothing here reads or writes a socket, so every rule is a unit test.
//!
//! `httparse` reads the request line and the header fields; this module adds what a server must
//! decide on top of it, strictly, because a worker may sit behind a proxy that reads the same
//! bytes differently (request smuggling):
//!
//! - The head (request line and fields, with any empty lines before it) may be at most
//!   [`Limits::head`] bytes (`buffer-size`). Past it without a complete head the answer is 431 when
//!   the request line was complete, 414 when the request line was still in its target
//!   (`METHOD /very-long...`), 400 when it was anything else.
//! - Empty lines before the request line are skipped (RFC 9112 2.2).
//! - Line endings: CRLF, or a bare LF, as `httparse` accepts (RFC 9112 2.2 lets a recipient take a
//!   bare LF as a line terminator in the head). A bare CR is an error. Inside a chunked body, by
//!   contrast, only CRLF is accepted.
//! - The request target is origin-form (`/path?query`), absolute-form (`http://host/path?query`:
//!   only the path and query are used, the authority is ignored, a userinfo `@` is an error) or
//!   `*` for OPTIONS. A `#` in it is an error. `PATH_INFO` is the path percent-decoded: `%2F`
//!   becomes `/`, like every escape (as nginx and uWSGI do; an app that must tell them apart reads
//!   `REQUEST_URI`). A `%` without two hex digits, or an escape decoding to NUL, is an error. No
//!   other normalisation happens (`..` and `//` stay): whoever maps paths to files must check.
//! - Version: HTTP/1.0 and HTTP/1.1; another `HTTP/x.y` is 505, anything else 400.
//! - Header names must be tokens, values may not hold control characters (NUL, a lone CR, ...),
//!   obsolete line folding is an error, more than [`MAX_HEADERS`] fields is 431, more than one
//!   `Host` is an error (none is accepted, as uWSGI does).
//! - Body framing: `Content-Length` (digits only; duplicates must agree) or
//!   `Transfer-Encoding: chunked` (HTTP/1.1 only, `chunked` the one and only coding; another
//!   coding is 501), never both. A length past [`Limits::body`] (`limit-post`) is 413 at once.
//! - Fields whose name holds `_` are dropped: their CGI name would collide with the `-` spelling
//!   (`X_Forwarded_For` would pass for `X-Forwarded-For`), so a client could forge a field a proxy
//!   in front sets. nginx (`underscores_in_headers off`), Apache and gunicorn drop them too.

use std::fmt::Write as _;
use std::io;

use crate::request::Vars;

/// At most this many header fields in a request head (more: 431).
pub const MAX_HEADERS: usize = 100;
/// At most this many bytes of chunk extensions on one chunk-size line.
pub const MAX_CHUNK_EXTENSION: usize = 4096;
/// At most this many bytes of trailer fields after a chunked body.
pub const MAX_TRAILERS: usize = 8192;
/// At most this many hex digits in a chunk size (16 fill a `u64`).
const MAX_SIZE_DIGITS: u8 = 16;
/// At most this many bytes of a [`Head::label`].
pub const LABEL_MAX: usize = 200;

/// How much a request may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes of a request head (`buffer-size`); for uwsgi, of the vars block.
    pub head: usize,
    /// The most bytes of a request body (`limit-post`); 0: no limit.
    pub body: u64,
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body (no `Content-Length`, or `Content-Length: 0`).
    None,
    /// `Content-Length` bytes (more than 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`: decode with a [`ChunkedDecoder`].
    Chunked,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The CGI variables: `REQUEST_METHOD`, `REQUEST_URI`, `PATH_INFO`, `QUERY_STRING`,
    /// `SERVER_PROTOCOL`, then `CONTENT_TYPE` and `CONTENT_LENGTH` when sent, then `HTTP_*` for
    /// every other field (fields of one name joined with `, `, `Cookie` with `; `).
    pub vars: Vars,
    /// How the body is framed.
    pub body: BodyKind,
    /// HTTP/1.1 (else HTTP/1.0).
    pub http11: bool,
    /// The connection may stay open: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request: answer `100 Continue` before reading the
    /// body.
    pub expect_continue: bool,
    /// A HEAD request.
    pub head_only: bool,
    /// `METHOD REQUEST_URI`, cut at [`LABEL_MAX`] bytes, for logs and the scoreboard.
    pub label: Vec<u8>,
}

/// Why a request cannot be served; [`HttpError::status`] is the answer to send.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("request head larger than {limit} bytes (buffer-size)")]
    HeadTooLarge { limit: usize },
    #[error("request target longer than the {limit} bytes of a request head (buffer-size)")]
    UriTooLong { limit: usize },
    #[error("request line longer than the {limit} bytes of a request head (buffer-size)")]
    RequestLineTooLong { limit: usize },
    #[error("malformed request line `{line}`")]
    RequestLine { line: String },
    #[error("malformed line ending (a CR without LF) in the request head")]
    LineEnding,
    #[error("unsupported HTTP version `{version}`")]
    UnsupportedVersion { version: String },
    #[error("malformed HTTP version `{version}`")]
    Version { version: String },
    #[error("request target `{target}` is not origin-form, absolute-form or `*` for OPTIONS")]
    Target { target: String },
    #[error("request target `{target}` has a `%` not followed by two hex digits")]
    PercentEncoding { target: String },
    #[error("request target `{target}` decodes to a path holding NUL")]
    NulInPath { target: String },
    #[error("header name `{name}` is not a token")]
    HeaderName { name: String },
    #[error("header `{name}` has a control character (NUL, CR...) in its value")]
    HeaderValue { name: String },
    #[error("header line `{line}` uses obsolete line folding")]
    ObsoleteLineFolding { line: String },
    #[error("more than {max} header fields")]
    TooManyHeaders { max: usize },
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("Content-Length `{value}` is not a number")]
    ContentLength { value: String },
    #[error("Content-Length `{first}` and `{second}` disagree")]
    ConflictingLengths { first: u64, second: u64 },
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("Transfer-Encoding `{value}` is malformed")]
    TransferEncoding { value: String },
    #[error("Transfer-Encoding `{value}` does not end with chunked, once")]
    ChunkedNotFinal { value: String },
    #[error("transfer coding `{coding}` is not supported (only chunked)")]
    UnsupportedTransferCoding { coding: String },
    #[error("Transfer-Encoding on an HTTP/1.0 request")]
    TransferEncodingOnHttp10,
    #[error("body of {length} bytes is larger than limit-post ({limit})")]
    BodyTooLarge { length: u64, limit: u64 },
    #[error("chunked body is larger than limit-post ({limit})")]
    ChunkedTooLarge { limit: u64 },
    #[error("malformed chunk size line `{line}`")]
    ChunkSize { line: String },
    #[error("chunk extensions longer than {max} bytes")]
    ChunkExtensionTooLong { max: usize },
    #[error("chunk data not followed by CRLF")]
    ChunkEnd,
    #[error("malformed trailer line after the last chunk")]
    Trailer,
    #[error("trailer fields longer than {max} bytes")]
    TrailersTooLarge { max: usize },
    #[error("cannot store the request body")]
    StoreBody(#[source] io::Error),
    #[error("invalid request block size: {size} bytes (buffer-size is {limit})")]
    UwsgiBlockSize { size: usize, limit: usize },
    #[error("uwsgi packet with modifier1 {modifier1} (only 0, 5 and 7 are requests)")]
    UwsgiModifier { modifier1: u8 },
    #[error(transparent)]
    UwsgiVars(#[from] liege_proto::uwsgi::UwsgiError),
}

impl HttpError {
    /// The status code and reason phrase to answer with.
    pub fn status(&self) -> (u16, &'static str) {
        use HttpError::*;
        match self {
            HeadTooLarge { .. } | TooManyHeaders { .. } | TrailersTooLarge { .. } => {
                (431, "Request Header Fields Too Large")
            }
            UriTooLong { .. } => (414, "URI Too Long"),
            UnsupportedVersion { .. } => (505, "HTTP Version Not Supported"),
            UnsupportedTransferCoding { .. } => (501, "Not Implemented"),
            BodyTooLarge { .. } | ChunkedTooLarge { .. } => (413, "Content Too Large"),
            StoreBody(_) => (500, "Internal Server Error"),
            RequestLineTooLong { .. }
            | RequestLine { .. }
            | LineEnding
            | Version { .. }
            | Target { .. }
            | PercentEncoding { .. }
            | NulInPath { .. }
            | HeaderName { .. }
            | HeaderValue { .. }
            | ObsoleteLineFolding { .. }
            | DuplicateHost
            | ContentLength { .. }
            | ConflictingLengths { .. }
            | LengthAndTransferEncoding
            | TransferEncoding { .. }
            | ChunkedNotFinal { .. }
            | TransferEncodingOnHttp10
            | ChunkSize { .. }
            | ChunkExtensionTooLong { .. }
            | ChunkEnd
            | Trailer
            | UwsgiBlockSize { .. }
            | UwsgiModifier { .. }
            | UwsgiVars(_) => (400, "Bad Request"),
        }
    }
}

/// Bytes for an error message: escaped, cut at 64 bytes.
pub(crate) fn show(bytes: &[u8]) -> String {
    let mut s = String::new();
    let _ = write!(s, "{}", bytes[..bytes.len().min(64)].escape_ascii());
    if bytes.len() > 64 {
        s.push_str("...");
    }
    s
}

/// `METHOD URI`, cut at [`LABEL_MAX`] bytes.
pub(crate) fn label(method: &[u8], uri: &[u8]) -> Vec<u8> {
    let mut l = Vec::with_capacity((method.len() + 1 + uri.len()).min(LABEL_MAX));
    l.extend_from_slice(method);
    l.push(b' ');
    l.extend_from_slice(uri);
    l.truncate(LABEL_MAX);
    l
}

/// Reads a request head from the start of `buf`: `Ok(None)` while it is incomplete and `buf`
/// holds at most `limits.head` bytes; else the head and how many bytes of `buf` it took (the body,
/// or the next pipelined request, starts there). At most `limits.head` bytes are ever taken.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, HttpError> {
    let window = &buf[..buf.len().min(limits.head)];
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => {
            let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version)
            else {
                return Err(HttpError::RequestLine {
                    line: show(first_line(window)),
                });
            };
            let head = build(
                method.as_bytes(),
                target.as_bytes(),
                version == 1,
                req.headers,
                limits,
            )?;
            Ok(Some((head, n)))
        }
        Ok(httparse::Status::Partial) if buf.len() > limits.head => Err(too_large(window, limits)),
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(explain(e, window)),
    }
}

/// The request line (after any empty lines), up to its first CR or LF, or to the end of `buf`.
fn first_line(buf: &[u8]) -> &[u8] {
    let start = buf
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(buf.len());
    let rest = &buf[start..];
    let end = rest
        .iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The error for a head that did not end within the limit.
fn too_large(window: &[u8], limits: &Limits) -> HttpError {
    let start = window
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(window.len());
    let line = &window[start..];
    if line.contains(&b'\n') {
        return HttpError::HeadTooLarge { limit: limits.head };
    }
    // Still in the request line: in its target when that is `TOKEN SP` then no other space.
    let in_target = match line.iter().position(|&c| c == b' ') {
        Some(sp) => {
            sp > 0 && line[..sp].iter().all(|&c| is_tchar(c)) && !line[sp + 1..].contains(&b' ')
        }
        None => false,
    };
    if in_target {
        HttpError::UriTooLong { limit: limits.head }
    } else {
        HttpError::RequestLineTooLong { limit: limits.head }
    }
}

/// Turns an `httparse` error into ours, finding the line at fault for the message.
fn explain(e: httparse::Error, window: &[u8]) -> HttpError {
    let line = first_line(window);
    match e {
        httparse::Error::Version => {
            let version = line.rsplit(|&c| c == b' ').next().unwrap_or(line);
            if looks_like_version(version) {
                HttpError::UnsupportedVersion {
                    version: show(version),
                }
            } else {
                HttpError::Version {
                    version: show(version),
                }
            }
        }
        httparse::Error::HeaderName | httparse::Error::HeaderValue => {
            bad_field(window).unwrap_or(HttpError::HeaderName {
                name: String::new(),
            })
        }
        // After the version: `HTTP/1.10` is a bad version, `HTTP/1.1\rX` a bad line ending.
        httparse::Error::NewLine => {
            let version = line.rsplit(|&c| c == b' ').next().unwrap_or(line);
            if line.contains(&b' ') && version != b"HTTP/1.1" && version != b"HTTP/1.0" {
                HttpError::Version {
                    version: show(version),
                }
            } else {
                HttpError::LineEnding
            }
        }
        httparse::Error::TooManyHeaders => HttpError::TooManyHeaders { max: MAX_HEADERS },
        _ => HttpError::RequestLine { line: show(line) },
    }
}

/// `HTTP/` DIGIT `.` DIGIT, or a beginning of it with at least the major digit (the rest may not
/// have arrived yet).
fn looks_like_version(v: &[u8]) -> bool {
    let pattern = |i: usize, c: u8| match i {
        0..=4 => c == b"HTTP/"[i],
        5 | 7 => c.is_ascii_digit(),
        6 => c == b'.',
        _ => false,
    };
    v.len() >= 6 && v.iter().enumerate().all(|(i, &c)| pattern(i, c))
}

/// Finds the first header line `httparse` refused, and says why.
fn bad_field(window: &[u8]) -> Option<HttpError> {
    let start = window
        .iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(window.len());
    let mut lines = window[start..].split(|&c| c == b'\n');
    lines.next(); // the request line
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Some(HttpError::ObsoleteLineFolding { line: show(line) });
        }
        let colon = line.iter().position(|&c| c == b':');
        let name = &line[..colon.unwrap_or(line.len())];
        if colon.is_none() || name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Some(HttpError::HeaderName { name: show(name) });
        }
        let value = &line[name.len() + 1..];
        if value.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f) {
            return Some(HttpError::HeaderValue { name: show(name) });
        }
    }
    None
}

/// A `tchar` of RFC 9110 (header names, methods, codings).
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Optional whitespace trimmed from both ends.
fn trim_ows(v: &[u8]) -> &[u8] {
    let is_ows = |c: &u8| *c == b' ' || *c == b'\t';
    let start = v.iter().position(|c| !is_ows(c)).unwrap_or(v.len());
    let end = v.iter().rposition(|c| !is_ows(c)).map_or(start, |e| e + 1);
    &v[start..end]
}

/// The comma-separated elements of a list field, trimmed.
fn list(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&c| c == b',').map(trim_ows)
}

/// A decimal `Content-Length`.
fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, &c| {
        n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
    })
}

/// A request target taken apart.
struct Target<'a> {
    /// What goes into `REQUEST_URI`: the target in origin-form.
    uri: &'a [u8],
    /// Before the `?`, still percent-encoded.
    path: &'a [u8],
    /// After the `?`.
    query: &'a [u8],
}

/// Where the path and the query of a request target are.
fn split_target<'a>(method: &[u8], target: &'a [u8]) -> Result<Target<'a>, HttpError> {
    let bad = || HttpError::Target {
        target: show(target),
    };
    if target.contains(&b'#') {
        return Err(bad());
    }
    if target == b"*" {
        return if method == b"OPTIONS" {
            Ok(Target {
                uri: target,
                path: target,
                query: b"",
            })
        } else {
            Err(bad())
        };
    }
    let origin = if target.starts_with(b"/") {
        target
    } else {
        let scheme_len = if target.len() >= 7 && target[..7].eq_ignore_ascii_case(b"http://") {
            7
        } else if target.len() >= 8 && target[..8].eq_ignore_ascii_case(b"https://") {
            8
        } else {
            return Err(bad());
        };
        let rest = &target[scheme_len..];
        let authority_end = rest
            .iter()
            .position(|&c| c == b'/' || c == b'?')
            .unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        if authority.is_empty() || authority.contains(&b'@') {
            return Err(bad());
        }
        &rest[authority_end..]
    };
    let (path, query) = match origin.iter().position(|&c| c == b'?') {
        Some(q) => (&origin[..q], &origin[q + 1..]),
        None => (origin, &b""[..]),
    };
    Ok(Target {
        uri: origin,
        path,
        query,
    })
}

/// A path percent-decoded.
fn decode_path(path: &[u8], target: &[u8]) -> Result<Vec<u8>, HttpError> {
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let c = path[i];
        if c == b'%' {
            let byte = path
                .get(i + 1)
                .and_then(|&h| hex(h))
                .zip(path.get(i + 2).and_then(|&l| hex(l)))
                .map(|(h, l)| h << 4 | l)
                .ok_or_else(|| HttpError::PercentEncoding {
                    target: show(target),
                })?;
            if byte == 0 {
                return Err(HttpError::NulInPath {
                    target: show(target),
                });
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    Ok(out)
}

/// Checks the framing fields and turns a parsed head into a [`Head`].
fn build(
    method: &[u8],
    target: &[u8],
    http11: bool,
    fields: &[httparse::Header<'_>],
    limits: &Limits,
) -> Result<Head, HttpError> {
    let Target { uri, path, query } = split_target(method, target)?;
    let path_info = if path == b"*" {
        path.to_vec()
    } else if path.is_empty() {
        b"/".to_vec()
    } else {
        decode_path(path, target)?
    };
    // An absolute-form target without a path (`http://host?q`) means `/`.
    let uri: std::borrow::Cow<'_, [u8]> = if uri.first() == Some(&b'?') {
        [&b"/"[..], uri].concat().into()
    } else {
        uri.into()
    };

    let mut length: Option<u64> = None;
    let mut transfer_encoding: Option<Vec<u8>> = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut expect_continue = false;
    let mut hosts = 0;
    for f in fields {
        let name = f.name.as_bytes();
        let value = trim_ows(f.value);
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_length(value)
                .ok_or_else(|| HttpError::ContentLength { value: show(value) })?;
            match length {
                Some(first) if first != n => {
                    return Err(HttpError::ConflictingLengths { first, second: n });
                }
                _ => length = Some(n),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let te = transfer_encoding.get_or_insert_with(Vec::new);
            if !te.is_empty() {
                te.extend_from_slice(b", ");
            }
            te.extend_from_slice(value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list(value) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if hosts > 1 {
                return Err(HttpError::DuplicateHost);
            }
        }
    }

    let body = match (&transfer_encoding, length) {
        (Some(_), Some(_)) => return Err(HttpError::LengthAndTransferEncoding),
        (Some(_), None) if !http11 => return Err(HttpError::TransferEncodingOnHttp10),
        (Some(te), None) => {
            check_transfer_encoding(te)?;
            BodyKind::Chunked
        }
        (None, Some(n)) if limits.body != 0 && n > limits.body => {
            return Err(HttpError::BodyTooLarge {
                length: n,
                limit: limits.body,
            });
        }
        (None, Some(0)) | (None, None) => BodyKind::None,
        (None, Some(n)) => BodyKind::Length(n),
    };

    let head_bytes: usize = fields
        .iter()
        .map(|f| f.name.len() + f.value.len() + 8)
        .sum();
    let mut vars = Vars::with_capacity(head_bytes + 2 * target.len() + 100, fields.len() + 7);
    vars.push(b"REQUEST_METHOD", method);
    vars.push(b"REQUEST_URI", &uri);
    vars.push(b"PATH_INFO", &path_info);
    vars.push(b"QUERY_STRING", query);
    vars.push(
        b"SERVER_PROTOCOL",
        if http11 { b"HTTP/1.1" } else { b"HTTP/1.0" },
    );
    let mut joined = Vec::new();
    let content_type = join(fields, b"content-type", b", ", &mut joined);
    if content_type {
        vars.push(b"CONTENT_TYPE", &joined);
    }
    if let Some(n) = length {
        vars.push(b"CONTENT_LENGTH", n.to_string().as_bytes());
    }
    for (i, f) in fields.iter().enumerate() {
        let name = f.name.as_bytes();
        if name.contains(&b'_')
            || name.eq_ignore_ascii_case(b"content-type")
            || name.eq_ignore_ascii_case(b"content-length")
            || fields[..i]
                .iter()
                .any(|e| e.name.eq_ignore_ascii_case(f.name))
        {
            continue;
        }
        let separator: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
            b"; "
        } else {
            b", "
        };
        join(&fields[i..], name, separator, &mut joined);
        vars.push_header(name, &joined);
    }

    Ok(Head {
        vars,
        body,
        http11,
        keep_alive: if http11 {
            !close
        } else {
            keep_alive_token && !close
        },
        expect_continue: http11 && expect_continue,
        head_only: method == b"HEAD",
        label: label(method, &uri),
    })
}

/// Puts the values of every field named `name` into `out`, joined with `separator`; false when
/// there is none.
fn join(fields: &[httparse::Header<'_>], name: &[u8], separator: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut found = false;
    for f in fields {
        if f.name.as_bytes().eq_ignore_ascii_case(name) {
            if found {
                out.extend_from_slice(separator);
            }
            out.extend_from_slice(trim_ows(f.value));
            found = true;
        }
    }
    found
}

/// `Transfer-Encoding` (all its fields joined) must be exactly `chunked`.
fn check_transfer_encoding(te: &[u8]) -> Result<(), HttpError> {
    let codings: Vec<&[u8]> = list(te).collect();
    if codings
        .iter()
        .any(|c| c.is_empty() || !c.iter().all(|&b| is_tchar(b)))
    {
        return Err(HttpError::TransferEncoding { value: show(te) });
    }
    if let Some(other) = codings.iter().find(|c| !c.eq_ignore_ascii_case(b"chunked")) {
        return Err(HttpError::UnsupportedTransferCoding {
            coding: show(other),
        });
    }
    if codings.len() != 1 {
        return Err(HttpError::ChunkedNotFinal { value: show(te) });
    }
    Ok(())
}

/// Where a [`ChunkedDecoder`] is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line's hex digits.
    Size {
        size: u64,
        digits: u8,
    },
    /// After a chunk size, in whitespace (which must lead to `;` or the line's end).
    SizeWs {
        size: u64,
    },
    /// In a chunk-size line's extensions (after `;`), `len` bytes so far.
    Extension {
        size: u64,
        len: usize,
    },
    /// After a chunk-size line's CR.
    SizeLf {
        size: u64,
    },
    /// In a chunk's data.
    Data {
        left: u64,
    },
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// In a trailer line.
    TrailerLine,
    /// After a trailer line's CR.
    TrailerLf,
    /// After the final empty line's CR.
    EndLf,
    Done,
}

/// Decodes a `Transfer-Encoding: chunked` body as its bytes arrive, in pieces of any size.
///
/// Strict on framing: every line ends with CRLF; a chunk size is 1 to 16 hex digits, with no
/// sign; extensions (`;name=value`, whitespace allowed before the `;`) are skipped but bounded by
/// [`MAX_CHUNK_EXTENSION`]; trailer fields are skipped but bounded by [`MAX_TRAILERS`].
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    limit: u64,
    total: u64,
    trailers: usize,
    /// The current size line so far (for the error message), at most 32 bytes.
    line: Vec<u8>,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `limit` bytes (`limit-post`; 0: no limit).
    pub fn new(limit: u64) -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            limit,
            total: 0,
            trailers: 0,
            line: Vec::new(),
        }
    }

    /// Body bytes decoded so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether the last chunk and the trailers were read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn size_error(&self, c: u8) -> HttpError {
        let mut line = self.line.clone();
        line.push(c);
        HttpError::ChunkSize { line: show(&line) }
    }

    fn note(&mut self, c: u8) {
        if self.line.len() < 32 {
            self.line.push(c);
        }
    }

    /// A size line is complete: check the size against the limit.
    fn sized(&mut self, size: u64) -> Result<State, HttpError> {
        if self.limit != 0 && self.total.saturating_add(size) > self.limit {
            return Err(HttpError::ChunkedTooLarge { limit: self.limit });
        }
        Ok(State::SizeLf { size })
    }

    /// Decodes as much of `input` as it can, giving each piece of body to `out`; returns the
    /// bytes of `input` used and whether the body is complete. Until it is complete every byte
    /// is used; what follows the body is not (it is the next request). After an error the
    /// decoder is of no further use.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> Result<(usize, bool), HttpError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            let c = input[i];
            self.state = match self.state {
                State::Size { size, digits } => {
                    let digit = (c as char).to_digit(16).map(u64::from);
                    match (digit, c) {
                        (Some(d), _) if digits < MAX_SIZE_DIGITS => {
                            self.note(c);
                            State::Size {
                                size: size << 4 | d,
                                digits: digits + 1,
                            }
                        }
                        (None, b'\r') if digits > 0 => self.sized(size)?,
                        (None, b';') if digits > 0 => State::Extension { size, len: 1 },
                        (None, b' ' | b'\t') if digits > 0 => State::SizeWs { size },
                        _ => return Err(self.size_error(c)),
                    }
                }
                State::SizeWs { size } => match c {
                    b' ' | b'\t' => State::SizeWs { size },
                    b';' => State::Extension { size, len: 1 },
                    b'\r' => self.sized(size)?,
                    _ => return Err(self.size_error(c)),
                },
                State::Extension { size, len } => match c {
                    b'\r' => self.sized(size)?,
                    _ if len >= MAX_CHUNK_EXTENSION => {
                        return Err(HttpError::ChunkExtensionTooLong {
                            max: MAX_CHUNK_EXTENSION,
                        });
                    }
                    b'\t' | b' '..=0x7e | 0x80..=0xff => State::Extension { size, len: len + 1 },
                    _ => return Err(self.size_error(c)),
                },
                State::SizeLf { size } => match (c, size) {
                    (b'\n', 0) => State::TrailerStart,
                    (b'\n', _) => State::Data { left: size },
                    _ => return Err(self.size_error(c)),
                },
                State::Data { left } => {
                    let avail = input.len() - i;
                    let n = usize::try_from(left).map_or(avail, |l| l.min(avail));
                    out(&input[i..i + n]).map_err(HttpError::StoreBody)?;
                    self.total += n as u64;
                    i += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { left }
                    };
                    continue;
                }
                State::DataCr if c == b'\r' => State::DataLf,
                State::DataLf if c == b'\n' => {
                    self.line.clear();
                    State::Size { size: 0, digits: 0 }
                }
                State::DataCr | State::DataLf => return Err(HttpError::ChunkEnd),
                State::TrailerStart | State::TrailerLine => {
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(HttpError::TrailersTooLarge { max: MAX_TRAILERS });
                    }
                    match (c, self.state) {
                        (b'\r', State::TrailerStart) => State::EndLf,
                        (b'\r', _) => State::TrailerLf,
                        (b'\t' | b' '..=0x7e | 0x80..=0xff, _) => State::TrailerLine,
                        _ => return Err(HttpError::Trailer),
                    }
                }
                State::TrailerLf if c == b'\n' => State::TrailerStart,
                State::EndLf if c == b'\n' => State::Done,
                State::TrailerLf | State::EndLf => return Err(HttpError::Trailer),
                State::Done => break,
            };
            i += 1;
        }
        Ok((i, self.state == State::Done))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        head: 4096,
        body: 0,
    };

    fn head(req: &[u8]) -> Head {
        let (h, n) = parse_head(req, &LIMITS).unwrap().unwrap();
        assert_eq!(n, req.len(), "the whole head is used");
        h
    }

    fn err(req: &[u8]) -> HttpError {
        parse_head(req, &LIMITS).unwrap_err()
    }

    fn status(req: &[u8]) -> u16 {
        err(req).status().0
    }

    fn vars(h: &Head) -> Vec<(String, String)> {
        h.vars
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn vars_come_in_cgi_order() {
        let h = head(
            b"POST /a%20b/c?x=1&y HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\n\
              X-Thing: one\r\nContent-Length: 5\r\nx-thing: two\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
        );
        let want: Vec<(String, String)> = [
            ("REQUEST_METHOD", "POST"),
            ("REQUEST_URI", "/a%20b/c?x=1&y"),
            ("PATH_INFO", "/a b/c"),
            ("QUERY_STRING", "x=1&y"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("CONTENT_TYPE", "text/plain"),
            ("CONTENT_LENGTH", "5"),
            ("HTTP_HOST", "example.com"),
            ("HTTP_X_THING", "one, two"),
            ("HTTP_COOKIE", "a=1; b=2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(vars(&h), want);
        assert_eq!(h.body, BodyKind::Length(5));
        assert!(h.http11 && h.keep_alive && !h.expect_continue && !h.head_only);
        assert_eq!(h.label, b"POST /a%20b/c?x=1&y");
    }

    #[test]
    fn incomplete_head_waits_and_consumed_excludes_the_body() {
        let req = b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\n";
        for cut in 0..27 {
            assert!(
                parse_head(&req[..cut], &LIMITS).unwrap().is_none(),
                "cut {cut}"
            );
        }
        let (h, n) = parse_head(req, &LIMITS).unwrap().unwrap();
        assert_eq!(n, 27);
        assert_eq!(h.vars.get(b"PATH_INFO"), Some(&b"/"[..]));
        assert_eq!(h.vars.get(b"QUERY_STRING"), Some(&b""[..]));
        assert_eq!(h.body, BodyKind::None);
    }

    #[test]
    fn leading_empty_lines_are_skipped_and_counted() {
        let (h, n) = parse_head(b"\r\n\r\nGET /x HTTP/1.0\r\n\r\n", &LIMITS)
            .unwrap()
            .unwrap();
        assert_eq!(n, 23);
        assert_eq!(h.label, b"GET /x");
        assert!(!h.http11 && !h.keep_alive);
    }

    #[test]
    fn bare_lf_line_endings_are_accepted_a_bare_cr_is_not() {
        let h = head(b"GET /x HTTP/1.1\nHost: h\n\n");
        assert_eq!(h.vars.get(b"HTTP_HOST"), Some(&b"h"[..]));
        assert!(matches!(
            err(b"GET /x HTTP/1.1\rHost: h\r\n\r\n"),
            HttpError::LineEnding
        ));
    }

    #[test]
    fn limits_of_the_head() {
        let small = Limits { head: 32, body: 0 };
        let long_target = [&b"GET /"[..], &[b'a'; 40]].concat();
        // Up to the limit, an incomplete head waits.
        assert!(parse_head(&long_target[..32], &small).unwrap().is_none());
        let e = parse_head(&long_target, &small).unwrap_err();
        assert!(matches!(e, HttpError::UriTooLong { limit: 32 }));
        assert_eq!(e.status(), (414, "URI Too Long"));
        let e = parse_head(&[b'G'; 40], &small).unwrap_err();
        assert!(matches!(e, HttpError::RequestLineTooLong { limit: 32 }));
        assert_eq!(e.status().0, 400);
        let big_field = b"GET / HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        let e = parse_head(big_field, &small).unwrap_err();
        assert_eq!(e.status().0, 431);
        assert_eq!(
            e.to_string(),
            "request head larger than 32 bytes (buffer-size)"
        );
        // A head that fits exactly is fine, and a body after it does not count.
        let fits = b"GET / HTTP/1.1\r\nA: 12345678901\r\n\r\nBODYBODY";
        let (_, n) = parse_head(fits, &Limits { head: 34, body: 0 })
            .unwrap()
            .unwrap();
        assert_eq!(n, 34);
        assert_eq!(
            parse_head(fits, &Limits { head: 33, body: 0 })
                .unwrap_err()
                .status()
                .0,
            431
        );
    }

    #[test]
    fn too_many_headers() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let big = Limits {
            head: 1 << 16,
            body: 0,
        };
        let e = parse_head(&req, &big).unwrap_err();
        assert!(matches!(e, HttpError::TooManyHeaders { max: 100 }));
        assert_eq!(e.status().0, 431);
        // Exactly the maximum is fine.
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..MAX_HEADERS {
            req.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        let (h, _) = parse_head(&req, &big).unwrap().unwrap();
        assert_eq!(h.vars.len(), 5 + MAX_HEADERS);
    }

    #[test]
    fn target_forms() {
        let h = head(b"GET http://example.com:8080/p%2Fq?a=b HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.vars.get(b"REQUEST_URI"), Some(&b"/p%2Fq?a=b"[..]));
        assert_eq!(h.vars.get(b"PATH_INFO"), Some(&b"/p/q"[..]));
        assert_eq!(h.vars.get(b"QUERY_STRING"), Some(&b"a=b"[..]));
        assert_eq!(h.vars.get(b"HTTP_HOST"), Some(&b"x"[..]));
        let h = head(b"GET HTTPS://example.com?q HTTP/1.1\r\n\r\n");
        assert_eq!(h.vars.get(b"REQUEST_URI"), Some(&b"/?q"[..]));
        assert_eq!(h.vars.get(b"PATH_INFO"), Some(&b"/"[..]));
        assert_eq!(h.vars.get(b"QUERY_STRING"), Some(&b"q"[..]));
        let h = head(b"OPTIONS * HTTP/1.1\r\n\r\n");
        assert_eq!(h.vars.get(b"PATH_INFO"), Some(&b"*"[..]));
        assert_eq!(h.vars.get(b"REQUEST_URI"), Some(&b"*"[..]));
        for bad in [
            &b"GET * HTTP/1.1\r\n\r\n"[..],
            b"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
            b"GET ftp://h/x HTTP/1.1\r\n\r\n",
            b"GET http:///x HTTP/1.1\r\n\r\n",
            b"GET http://user@h/x HTTP/1.1\r\n\r\n",
            b"GET /a#frag HTTP/1.1\r\n\r\n",
            b"GET a/b HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(err(bad), HttpError::Target { .. }),
                "{}",
                bad.escape_ascii()
            );
        }
    }

    #[test]
    fn percent_escapes() {
        let h = head(b"GET /%41%e9%2f%2e%2E/x%25y HTTP/1.1\r\n\r\n");
        assert_eq!(h.vars.get(b"PATH_INFO"), Some(&b"/A\xe9/../x%y"[..]));
        for bad in [
            &b"GET /%4 HTTP/1.1\r\n\r\n"[..],
            b"GET /%zz HTTP/1.1\r\n\r\n",
            b"GET /% HTTP/1.1\r\n\r\n",
            b"GET /%+1 HTTP/1.1\r\n\r\n",
        ] {
            assert!(
                matches!(err(bad), HttpError::PercentEncoding { .. }),
                "{}",
                bad.escape_ascii()
            );
        }
        let e = err(b"GET /a%00b HTTP/1.1\r\n\r\n");
        assert_eq!(
            e.to_string(),
            "request target `/a%00b` decodes to a path holding NUL"
        );
        // The query is not decoded, so a bad escape there is the app's business.
        let h = head(b"GET /?a=%zz HTTP/1.1\r\n\r\n");
        assert_eq!(h.vars.get(b"QUERY_STRING"), Some(&b"a=%zz"[..]));
    }

    #[test]
    fn versions() {
        let e = err(b"GET / HTTP/2.0\r\n\r\n");
        assert!(matches!(e, HttpError::UnsupportedVersion { .. }));
        assert_eq!(e.status(), (505, "HTTP Version Not Supported"));
        assert_eq!(e.to_string(), "unsupported HTTP version `HTTP/2.0`");
        assert_eq!(status(b"GET / HTTP/1.2\r\n\r\n"), 505);
        // The HTTP/2 preface, before its line ends.
        assert_eq!(status(b"PRI * HTTP/2"), 505);
        assert!(matches!(
            err(b"GET / HTTX/1.1\r\n\r\n"),
            HttpError::Version { .. }
        ));
        assert!(matches!(
            err(b"GET / http/1.1\r\n\r\n"),
            HttpError::Version { .. }
        ));
        let e = err(b"GET / HTTP/1.10\r\n\r\n");
        assert_eq!(e.to_string(), "malformed HTTP version `HTTP/1.10`");
        assert!(matches!(
            err(b"GET /\r\n\r\n"),
            HttpError::RequestLine { .. }
        ));
    }

    #[test]
    fn request_line_strictness() {
        for bad in [
            &b"GET  / HTTP/1.1\r\n\r\n"[..],
            b"G(T / HTTP/1.1\r\n\r\n",
            b" GET / HTTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(status(bad), 400, "{}", bad.escape_ascii());
        }
    }

    #[test]
    fn header_strictness() {
        let e = err(b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  folded\r\n\r\n");
        assert!(matches!(e, HttpError::ObsoleteLineFolding { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "header line `  folded` uses obsolete line folding"
        );
        let e = err(b"GET / HTTP/1.1\r\nHost: h\r\n\tX-A: 1\r\n\r\n");
        assert!(matches!(e, HttpError::ObsoleteLineFolding { .. }), "{e}");
        let e = err(b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n");
        assert_eq!(
            e.to_string(),
            "header `X-A` has a control character (NUL, CR...) in its value"
        );
        let e = err(b"GET / HTTP/1.1\r\nX-B: a\rb\r\n\r\n");
        assert!(
            matches!(e, HttpError::HeaderValue { ref name } if name == "X-B"),
            "{e}"
        );
        let e = err(b"GET / HTTP/1.1\r\nX(B): 1\r\n\r\n");
        assert!(
            matches!(e, HttpError::HeaderName { ref name } if name == "X(B)"),
            "{e}"
        );
        let e = err(b"GET / HTTP/1.1\r\nX-B : 1\r\n\r\n");
        assert!(matches!(e, HttpError::HeaderName { .. }), "{e}");
        let e = err(b"GET / HTTP/1.1\r\nno colon\r\n\r\n");
        assert!(matches!(e, HttpError::HeaderName { .. }), "{e}");
        assert!(matches!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            HttpError::DuplicateHost
        ));
    }

    #[test]
    fn underscore_fields_and_framing_fields_are_not_passed_as_http() {
        let h = head(
            b"GET / HTTP/1.1\r\nX_Forwarded_For: evil\r\nX-Forwarded-For: 10.0.0.1\r\n\
              Content_Length: 9\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
        );
        assert_eq!(h.vars.get(b"HTTP_X_FORWARDED_FOR"), Some(&b"10.0.0.1"[..]));
        assert_eq!(
            h.vars
                .iter()
                .filter(|(k, _)| k.starts_with(b"HTTP_X"))
                .count(),
            1
        );
        assert_eq!(h.vars.get(b"HTTP_CONTENT_LENGTH"), None);
        assert_eq!(h.vars.get(b"HTTP_CONTENT_TYPE"), None);
        assert_eq!(h.vars.get(b"CONTENT_TYPE"), Some(&b"a, b"[..]));
        assert_eq!(h.vars.get(b"CONTENT_LENGTH"), None);
    }

    #[test]
    fn connection_and_expect() {
        let h = head(b"GET / HTTP/1.1\r\nConnection: Keep-Alive, CLOSE\r\n\r\n");
        assert!(!h.keep_alive);
        let h = head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive && !h.http11);
        assert_eq!(h.vars.get(b"SERVER_PROTOCOL"), Some(&b"HTTP/1.0"[..]));
        let h = head(b"PUT / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n");
        assert!(h.expect_continue);
        let h = head(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
        assert!(!h.expect_continue);
        let h = head(b"HEAD /x HTTP/1.1\r\n\r\n");
        assert!(h.head_only);
    }

    #[test]
    fn content_length_rules() {
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: 7\r\ncontent-length: 007\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(7));
        assert_eq!(h.vars.get(b"CONTENT_LENGTH"), Some(&b"7"[..]));
        let h = head(b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.body, BodyKind::None);
        assert_eq!(h.vars.get(b"CONTENT_LENGTH"), Some(&b"0"[..]));
        let e = err(b"POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n");
        assert!(matches!(
            e,
            HttpError::ConflictingLengths {
                first: 7,
                second: 8
            }
        ));
        for bad in [
            "+7",
            "-7",
            "7 7",
            "0x10",
            "",
            "7,7",
            "99999999999999999999999",
        ] {
            let req = format!("POST / HTTP/1.1\r\nContent-Length: {bad}\r\n\r\n");
            let e = err(req.as_bytes());
            assert!(matches!(e, HttpError::ContentLength { .. }), "{bad}: {e}");
            assert_eq!(e.status().0, 400);
        }
        let limited = Limits {
            head: 4096,
            body: 10,
        };
        let e = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", &limited).unwrap_err();
        assert_eq!(e.status(), (413, "Content Too Large"));
        assert_eq!(
            e.to_string(),
            "body of 11 bytes is larger than limit-post (10)"
        );
        let (h, _) = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n", &limited)
            .unwrap()
            .unwrap();
        assert_eq!(h.body, BodyKind::Length(10));
    }

    #[test]
    fn transfer_encoding_rules() {
        let h = head(b"POST / HTTP/1.1\r\nTransfer-Encoding: ChUnKeD\r\n\r\n");
        assert_eq!(h.body, BodyKind::Chunked);
        let e = err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert!(matches!(e, HttpError::LengthAndTransferEncoding));
        let e = err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(matches!(e, HttpError::TransferEncodingOnHttp10));
        for (te, want) in [
            ("gzip, chunked", 501),
            ("gzip", 501),
            ("identity", 501),
            ("chunked, gzip", 501),
            ("chunked, chunked", 400),
            ("chunked,", 400),
            ("", 400),
            ("chunked;q=1", 400),
            ("\"chunked\"", 400),
        ] {
            let req = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(status(req.as_bytes()), want, "{te}");
        }
        // Split over two fields: still twice.
        let e = err(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        assert!(matches!(e, HttpError::ChunkedNotFinal { .. }), "{e}");
        let e = err(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(
            e.to_string(),
            "transfer coding `gzip` is not supported (only chunked)"
        );
    }

    #[test]
    fn label_is_cut() {
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(300));
        let h = head(long.as_bytes());
        assert_eq!(h.label.len(), LABEL_MAX);
        assert!(h.label.starts_with(b"GET /aaa"));
    }

    /// Decodes `input` fed in pieces cut at `cuts`; the body, the bytes used and whether done.
    fn decode_pieces(
        input: &[u8],
        cuts: &[usize],
        limit: u64,
    ) -> Result<(Vec<u8>, usize, bool), HttpError> {
        let mut d = ChunkedDecoder::new(limit);
        let mut body = Vec::new();
        let mut used = 0;
        let mut done = false;
        let mut from = 0;
        for to in cuts.iter().copied().chain([input.len()]) {
            let piece = &input[from..to.max(from)];
            let (n, now_done) = d.decode(piece, &mut |b| {
                body.extend_from_slice(b);
                Ok(())
            })?;
            used += n;
            done = now_done;
            if done {
                break;
            }
            assert_eq!(n, piece.len(), "an unfinished decoder uses every byte");
            from = to.max(from);
        }
        assert_eq!(d.total(), body.len() as u64);
        Ok((body, used, done))
    }

    const SAMPLE: &[u8] = b"5;name=value\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n\
                            0000000000000003 ; x\r\n!!!\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\nNEXT";

    #[test]
    fn chunked_body_at_every_split_point_and_byte_by_byte() {
        let want = b"helloabcdefghijklmnopqrstuvwxyz!!!".to_vec();
        let used = SAMPLE.len() - 4;
        assert_eq!(
            decode_pieces(SAMPLE, &[], 0).unwrap(),
            (want.clone(), used, true)
        );
        for cut in 0..=SAMPLE.len() {
            assert_eq!(
                decode_pieces(SAMPLE, &[cut], 0).unwrap(),
                (want.clone(), used, true),
                "cut at {cut}"
            );
        }
        let every: Vec<usize> = (1..SAMPLE.len()).collect();
        assert_eq!(
            decode_pieces(SAMPLE, &every, 0).unwrap(),
            (want, used, true)
        );
    }

    #[test]
    fn chunked_incomplete_is_not_done() {
        let (body, used, done) = decode_pieces(b"5\r\nhel", &[], 0).unwrap();
        assert_eq!((body.as_slice(), used, done), (&b"hel"[..], 6, false));
        let (_, used, done) = decode_pieces(b"0\r\n\r", &[], 0).unwrap();
        assert_eq!((used, done), (4, false));
    }

    #[test]
    fn chunked_size_errors() {
        for bad in [
            &b"\r\n"[..],
            b";x\r\n",
            b"+5\r\n",
            b"-5\r\n",
            b"0x5\r\n",
            b"g\r\n",
            b"5\n",
            b"5\r\r",
            b"00000000000000001\r\n",
            b"1 \x00\r\n",
            b"1;a\nb\r\n",
        ] {
            let e = decode_pieces(bad, &[], 0).unwrap_err();
            assert!(
                matches!(e, HttpError::ChunkSize { .. }),
                "{}: {e}",
                bad.escape_ascii()
            );
            assert_eq!(e.status().0, 400);
        }
        let e = decode_pieces(b"12x\r\n", &[], 0).unwrap_err();
        assert_eq!(e.to_string(), "malformed chunk size line `12x`");
        // 16 digits are fine (and a size that large is then limited only by the data).
        let (_, _, done) = decode_pieces(b"ffffffffffffffff\r\nab", &[], 0).unwrap();
        assert!(!done);
    }

    #[test]
    fn chunked_bounds() {
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_CHUNK_EXTENSION));
        long.extend_from_slice(b"\r\na\r\n");
        assert!(matches!(
            decode_pieces(&long, &[], 0).unwrap_err(),
            HttpError::ChunkExtensionTooLong { .. }
        ));
        let mut ok = b"1;".to_vec();
        ok.extend(std::iter::repeat_n(b'x', MAX_CHUNK_EXTENSION - 2));
        ok.extend_from_slice(b"\r\na\r\n0\r\n\r\n");
        assert!(decode_pieces(&ok, &[], 0).unwrap().2);

        let e = decode_pieces(b"5\r\nhelloX\r\n", &[], 0).unwrap_err();
        assert!(matches!(e, HttpError::ChunkEnd));

        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..1000 {
            trailers.extend_from_slice(b"X-Trailer: 1234\r\n");
        }
        trailers.extend_from_slice(b"\r\n");
        let e = decode_pieces(&trailers, &[], 0).unwrap_err();
        assert_eq!(e.status().0, 431);
        assert!(matches!(
            decode_pieces(b"0\r\nX: 1\n\r\n", &[], 0).unwrap_err(),
            HttpError::Trailer
        ));

        // The limit counts decoded bytes, and refuses a chunk as soon as its size is known.
        assert!(decode_pieces(SAMPLE, &[], 34).unwrap().2);
        let e = decode_pieces(SAMPLE, &[], 33).unwrap_err();
        assert_eq!(e.status().0, 413);
        let mut seen = 0;
        let mut d = ChunkedDecoder::new(10);
        let r = d.decode(b"5\r\nhello\r\n6\r\n", &mut |b| {
            seen += b.len();
            Ok(())
        });
        assert!(matches!(r, Err(HttpError::ChunkedTooLarge { limit: 10 })));
        assert_eq!(seen, 5);
    }

    #[test]
    fn chunked_store_error_is_500() {
        let mut d = ChunkedDecoder::new(0);
        let e = d
            .decode(b"3\r\nabc\r\n", &mut |_| Err(io::Error::other("disk full")))
            .unwrap_err();
        assert_eq!(e.status().0, 500);
        assert_eq!(e.to_string(), "cannot store the request body");
    }

    #[test]
    fn decode_stops_at_the_end_of_the_body() {
        let mut d = ChunkedDecoder::new(0);
        let (n, done) = d.decode(b"0\r\n\r\nGET", &mut |_| Ok(())).unwrap();
        assert_eq!((n, done), (5, true));
        assert!(d.is_done());
        assert_eq!(d.decode(b"GET", &mut |_| Ok(())).unwrap(), (0, true));
    }
}
