//! The HTTP/1.x request head, read strictly: the router faces the internet, and a request that
//! two parsers could read two ways (one in front of the other) is how requests are smuggled. So
//! a head is refused (and the connection closed) on anything ambiguous, rather than read one way:
//!
//! - a bare LF or bare CR as a line end, and obsolete line folding (a header line that starts
//!   with a space or a tab): 400;
//! - `Content-Length` together with `Transfer-Encoding`, `Content-Length` twice (even with the
//!   same value) or with anything but 1 to 19 digits, `Transfer-Encoding` twice, in HTTP/1.0,
//!   or other than `chunked`: 400;
//! - no `Host` in HTTP/1.1, two `Host` headers, a `Host` that is not a host name, an IP
//!   address or a bracketed IPv6 address with an optional port, an absolute-form target whose
//!   authority is not the `Host`: 400;
//! - a request line longer than the head limit: 414; a head over the limit or more than
//!   [`MAX_HEADERS`] headers: 431; a version other than HTTP/1.0 and HTTP/1.1: 505; an
//!   `Expect` other than `100-continue`: 417; `CONNECT`: 405.
//!
//! Tokens, header names and values (no control byte but a tab) are checked by `httparse`; what
//! it lets through (bare LF) is checked here first. Everything here is pure and is fuzzed
//! (`fuzz/fuzz_targets/router_head.rs`).

use std::ops::Range;

/// The most headers a request may have (past it, 431).
pub const MAX_HEADERS: usize = 100;

/// How many leading empty lines (CRLF) are skipped before a request line (RFC 9112 2.2 asks a
/// server to skip at least one, which some clients send after a POST body).
const MAX_LEADING_CRLF: usize = 4;

/// A request head that is refused, and the status that says so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("the request line is longer than {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("the head is longer than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request has more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("a line of the head ends in a bare LF or holds a bare CR")]
    BareLineEnd,
    #[error("a header line starts with white space (obsolete line folding)")]
    ObsFold,
    #[error("the request head does not parse: {0}")]
    Syntax(&'static str),
    #[error("the request's HTTP version is not 1.0 or 1.1")]
    Version,
    #[error("the request has no Host header")]
    MissingHost,
    #[error("the request has more than one Host header")]
    DuplicateHost,
    #[error("the request's Host is not a host name, an address or a bracketed IPv6 address")]
    BadHost,
    #[error("the request's absolute target names another host than its Host header")]
    HostMismatch,
    #[error("the request target is not a path, `*` (OPTIONS) or an http(s) URL")]
    BadTarget,
    #[error("CONNECT is not served")]
    Connect,
    #[error("the request has a Content-Length that is not a number of bytes")]
    BadContentLength,
    #[error("the request has more than one Content-Length")]
    DuplicateContentLength,
    #[error("the request has both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    #[error("the request's Transfer-Encoding is not `chunked`")]
    BadTransferEncoding,
    #[error("the request has more than one Transfer-Encoding")]
    DuplicateTransferEncoding,
    #[error("an HTTP/1.0 request has a Transfer-Encoding")]
    TransferEncodingInHttp10,
    #[error("the request's Expect is not `100-continue`")]
    Expectation,
}

impl HeadError {
    /// The status a client is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::UriTooLong { .. } => 414,
            HeadError::TooLarge { .. } | HeadError::TooManyHeaders => 431,
            HeadError::Version => 505,
            HeadError::Connect => 405,
            HeadError::Expectation => 417,
            _ => 400,
        }
    }
}

/// The HTTP version of a request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0.
    Http10,
    /// HTTP/1.1.
    Http11,
}

/// How a request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// `Content-Length` bytes (more than 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head that passed every check. The spans are byte ranges of the buffer given to
/// [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The head's length in the buffer, leading empty lines and the final empty line included:
    /// the body (or the next request) starts there.
    pub len: usize,
    /// The method (a token).
    pub method: Range<usize>,
    /// The target as to be forwarded: the path and query (origin form; of an absolute-form
    /// target, what follows the authority: empty when nothing does, which means `/`), or `*`.
    pub target: Range<usize>,
    /// The version.
    pub version: Version,
    /// Every header, in order: name and value (without the white space around it).
    pub headers: Vec<(Range<usize>, Range<usize>)>,
    /// Headers that are not forwarded as they are (bit `i` for `headers[i]`): hop-by-hop ones
    /// (`Connection` and what it names, `Keep-Alive`, `TE`, `Trailer`, `Upgrade`,
    /// `Proxy-Connection`), those the router sets itself (`Host`, `Content-Length`,
    /// `Transfer-Encoding`, `Expect`), and names with `_` (which a CGI mapping would confuse
    /// with `-`).
    pub skip: u128,
    /// The Host, as the client gave it (the authority of an absolute target, else the Host
    /// header); `None` for an HTTP/1.0 request without one.
    pub host: Option<Range<usize>>,
    /// How the body is framed.
    pub body: BodyKind,
    /// The connection may serve another request after this one.
    pub keep_alive: bool,
    /// A websocket upgrade (HTTP/1.1 GET, `Connection: upgrade`, `Upgrade: websocket`).
    pub websocket: bool,
    /// `Expect: 100-continue`.
    pub expect_continue: bool,
}

/// Where the scan of an incomplete head may resume: the caller keeps it between reads so a
/// head that arrives a byte at a time is not rescanned from its start each time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    /// Bytes already known to hold no head end and no bad line end.
    pub checked: usize,
}

/// Reads a request head from the start of `buf`. `Ok(None)`: not whole yet (read more, then call
/// again with the same `scan`). A head is at most `limit` bytes (past it, 414 or 431).
pub fn parse(buf: &[u8], limit: usize, scan: &mut Scan) -> Result<Option<Head>, HeadError> {
    let mut start = 0;
    while buf[start..].starts_with(b"\r\n") && start < 2 * MAX_LEADING_CRLF {
        start += 2;
    }
    let Some(end) = find_end(buf, start, limit, scan)? else {
        return Ok(None);
    };
    parse_whole(buf, start, end)
}

/// Finds the end of the head (the index past its final empty line) checking each line end on
/// the way: every LF follows a CR and every CR precedes an LF; no line after the first starts
/// with white space.
pub(crate) fn find_end(
    buf: &[u8],
    start: usize,
    limit: usize,
    scan: &mut Scan,
) -> Result<Option<usize>, HeadError> {
    let max = (start + limit).min(buf.len());
    let mut i = scan.checked.max(start);
    while i < max {
        match buf[i] {
            b'\n' => {
                if i == start || buf[i - 1] != b'\r' {
                    return Err(HeadError::BareLineEnd);
                }
                match buf.get(i + 1) {
                    None => {
                        // Cannot tell yet whether the next line folds: look again later.
                        scan.checked = i;
                        return Ok(None);
                    }
                    Some(b' ' | b'\t') => {
                        // A request line cannot be followed by folding either.
                        return Err(HeadError::ObsFold);
                    }
                    Some(b'\r') => match buf.get(i + 2) {
                        None => {
                            scan.checked = i;
                            return Ok(None);
                        }
                        Some(b'\n') => {
                            if i + 3 > start + limit {
                                return Err(HeadError::TooLarge { limit });
                            }
                            return Ok(Some(i + 3));
                        }
                        Some(_) => return Err(HeadError::BareLineEnd),
                    },
                    Some(_) => {}
                }
            }
            b'\r' => match buf.get(i + 1) {
                None => {
                    scan.checked = i;
                    return Ok(None);
                }
                Some(b'\n') => {}
                Some(_) => return Err(HeadError::BareLineEnd),
            },
            _ => {}
        }
        i += 1;
    }
    scan.checked = i;
    if buf.len() >= start + limit {
        if memchr(b'\n', &buf[start..start + limit]).is_none() {
            return Err(HeadError::UriTooLong { limit });
        }
        return Err(HeadError::TooLarge { limit });
    }
    Ok(None)
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

/// The span of `part` (a sub-slice of `buf`) in `buf`.
fn span(buf: &[u8], part: &[u8]) -> Range<usize> {
    let at = part.as_ptr() as usize - buf.as_ptr() as usize;
    at..at + part.len()
}

/// ASCII case-insensitive equality.
fn eq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The comma-separated tokens of a header value, trimmed, empty ones left out.
fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&c| c == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

/// `s` without the spaces and tabs around it.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let is_ws = |c: &u8| *c == b' ' || *c == b'\t';
    let start = s.iter().position(|c| !is_ws(c)).unwrap_or(s.len());
    let end = s.iter().rposition(|c| !is_ws(c)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// A `Content-Length` value: 1 to 19 ASCII digits, nothing else.
pub fn content_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Whether `host` is a host a request may name: a DNS name (letters, digits, `-`, `_`, `.`),
/// an IPv4 address, or an IPv6 address in brackets, then an optional `:port` of 1 to 5 digits.
pub fn valid_host(host: &[u8]) -> bool {
    let (name, port) = split_port(host);
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit))
    {
        return false;
    }
    if let Some(inner) = name.strip_prefix(b"[") {
        let Some(addr) = inner.strip_suffix(b"]") else {
            return false;
        };
        return !addr.is_empty()
            && addr
                .iter()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'));
    }
    !name.is_empty()
        && name.len() <= 253
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
}

/// Splits `host:port` (or `[v6]:port`) at the port's colon.
fn split_port(host: &[u8]) -> (&[u8], Option<&[u8]>) {
    let after_bracket = if host.starts_with(b"[") {
        host.iter()
            .position(|&c| c == b']')
            .map_or(host.len(), |p| p + 1)
    } else {
        0
    };
    match host[after_bracket..].iter().position(|&c| c == b':') {
        Some(p) => (
            &host[..after_bracket + p],
            Some(&host[after_bracket + p + 1..]),
        ),
        None => (host, None),
    }
}

/// The domain a Host names, as routes are keyed: lower case, without the port and without a
/// trailing dot (`Example.COM.:8080` is `example.com`).
pub fn domain_of(host: &[u8]) -> String {
    let (name, _) = split_port(host);
    let name = name.strip_suffix(b".").unwrap_or(name);
    String::from_utf8_lossy(name).to_ascii_lowercase()
}

/// Splits an absolute-form target (`http://host/path`) into its authority and the rest, or
/// `None` when it is not one.
fn absolute(target: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = if target.len() > 7 && eq(&target[..7], b"http://") {
        &target[7..]
    } else if target.len() > 8 && eq(&target[..8], b"https://") {
        &target[8..]
    } else {
        return None;
    };
    let end = rest
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    Some((&rest[..end], &rest[end..]))
}

/// Parses a whole head, `buf[start..end]`, whose line ends were checked.
fn parse_whole(buf: &[u8], start: usize, end: usize) -> Result<Option<Head>, HeadError> {
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut raw);
    match req.parse(&buf[start..end]) {
        Ok(httparse::Status::Complete(n)) if n == end - start => {}
        Ok(_) => return Err(HeadError::Syntax("the head ends early")),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => return Err(HeadError::Version),
        Err(e) => return Err(HeadError::Syntax(syntax(e))),
    }
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Syntax("the request line is incomplete"));
    };
    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(HeadError::Version),
    };
    if method == "CONNECT" {
        return Err(HeadError::Connect);
    }
    let method_span = span(buf, method.as_bytes());
    let target_bytes = target.as_bytes();
    let (target_span, authority) = if target_bytes.starts_with(b"/") {
        (span(buf, target_bytes), None)
    } else if target_bytes == b"*" {
        if method != "OPTIONS" {
            return Err(HeadError::BadTarget);
        }
        (span(buf, target_bytes), None)
    } else if let Some((authority, rest)) = absolute(target_bytes) {
        // `http://host` asks for `/` (an empty target, which the caller forwards as `/`).
        if !(rest.is_empty() || rest.starts_with(b"/")) || !valid_host(authority) {
            return Err(HeadError::BadTarget);
        }
        (span(buf, rest), Some(span(buf, authority)))
    } else {
        return Err(HeadError::BadTarget);
    };

    let mut head = Head {
        len: end,
        method: method_span,
        target: target_span,
        version,
        headers: Vec::with_capacity(req.headers.len()),
        skip: 0,
        host: authority.clone(),
        body: BodyKind::None,
        keep_alive: version == Version::Http11,
        websocket: false,
        expect_continue: false,
    };
    let mut host_header: Option<Range<usize>> = None;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut conn_upgrade = false;
    let mut upgrade_ws = false;
    // Names listed in Connection, checked once every header is known.
    let mut listed: Vec<&[u8]> = Vec::new();
    for (i, h) in req.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        let name_span = span(buf, name);
        let value_span = if value.is_empty() {
            name_span.end..name_span.end
        } else {
            span(buf, value)
        };
        head.headers.push((name_span, value_span.clone()));
        let bit = 1u128 << i;
        if name.contains(&b'_') {
            head.skip |= bit;
        }
        match name.len() {
            4 if eq(name, b"host") => {
                if host_header.is_some() {
                    return Err(HeadError::DuplicateHost);
                }
                if !valid_host(value) {
                    return Err(HeadError::BadHost);
                }
                host_header = Some(value_span);
                head.skip |= bit;
            }
            14 if eq(name, b"content-length") => {
                if length.is_some() {
                    return Err(HeadError::DuplicateContentLength);
                }
                length = Some(content_length(value).ok_or(HeadError::BadContentLength)?);
                head.skip |= bit;
            }
            17 if eq(name, b"transfer-encoding") => {
                if version == Version::Http10 {
                    return Err(HeadError::TransferEncodingInHttp10);
                }
                if chunked {
                    return Err(HeadError::DuplicateTransferEncoding);
                }
                if !eq(value, b"chunked") {
                    return Err(HeadError::BadTransferEncoding);
                }
                chunked = true;
                head.skip |= bit;
            }
            10 if eq(name, b"connection") => {
                for t in tokens(value) {
                    if eq(t, b"close") {
                        head.keep_alive = false;
                    } else if eq(t, b"keep-alive") {
                        if version == Version::Http10 {
                            head.keep_alive = true;
                        }
                    } else if eq(t, b"upgrade") {
                        conn_upgrade = true;
                    } else {
                        listed.push(t);
                    }
                }
                head.skip |= bit;
            }
            7 if eq(name, b"upgrade") => {
                upgrade_ws = tokens(value).any(|t| eq(t, b"websocket"));
                head.skip |= bit;
            }
            6 if eq(name, b"expect") => {
                if !eq(value, b"100-continue") {
                    return Err(HeadError::Expectation);
                }
                head.expect_continue = version == Version::Http11;
                head.skip |= bit;
            }
            2 if eq(name, b"te") => head.skip |= bit,
            7 if eq(name, b"trailer") => head.skip |= bit,
            10 if eq(name, b"keep-alive") => head.skip |= bit,
            16 if eq(name, b"proxy-connection") => head.skip |= bit,
            _ => {}
        }
    }
    if !listed.is_empty() {
        for (i, h) in req.headers.iter().enumerate() {
            if listed.iter().any(|t| eq(t, h.name.as_bytes())) {
                head.skip |= 1u128 << i;
            }
        }
    }
    if chunked && length.is_some() {
        return Err(HeadError::LengthAndChunked);
    }
    head.body = match (chunked, length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(0) | None) => BodyKind::None,
        (false, Some(n)) => BodyKind::Length(n),
    };
    match (&head.host, &host_header) {
        (Some(a), Some(h)) => {
            if domain_of(&buf[a.clone()]) != domain_of(&buf[h.clone()]) {
                return Err(HeadError::HostMismatch);
            }
        }
        (None, Some(h)) => head.host = Some(h.clone()),
        (Some(_), None) | (None, None) => {
            if version == Version::Http11 {
                return Err(HeadError::MissingHost);
            }
        }
    }
    head.websocket = version == Version::Http11
        && method == "GET"
        && conn_upgrade
        && upgrade_ws
        && head.body == BodyKind::None;
    Ok(Some(head))
}

/// What an httparse error says, in words.
fn syntax(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => {
            "a header name is not a token (or white space precedes its colon)"
        }
        httparse::Error::HeaderValue => "a header value holds a control byte",
        httparse::Error::NewLine => "a line ends badly",
        httparse::Error::Status => "the status is not a number",
        httparse::Error::Token => "the method or the target holds a byte it may not",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Version => "the version is not HTTP/1.x",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(s: &[u8]) -> Result<Option<Head>, HeadError> {
        parse(s, 8192, &mut Scan::default())
    }

    fn err(s: &str) -> HeadError {
        parse_all(s.as_bytes()).unwrap_err()
    }

    fn ok(s: &str) -> Head {
        parse_all(s.as_bytes()).unwrap().unwrap()
    }

    #[test]
    fn a_plain_request() {
        let s = "GET /a?b=c HTTP/1.1\r\nHost: Example.com:80\r\nX-A: 1\r\n\r\nrest";
        let h = ok(s);
        assert_eq!(h.len, s.len() - 4);
        assert_eq!(&s[h.target.clone()], "/a?b=c");
        assert_eq!(&s[h.host.clone().unwrap()], "Example.com:80");
        assert_eq!(domain_of(&s.as_bytes()[h.host.unwrap()]), "example.com");
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive);
        assert_eq!(h.skip, 1);
    }

    #[test]
    fn incomplete_heads_wait_and_resume() {
        let s = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut scan = Scan::default();
        for n in 0..s.len() {
            assert_eq!(parse(&s[..n], 8192, &mut scan), Ok(None), "{n}");
        }
        assert_eq!(parse(s, 8192, &mut scan).unwrap().unwrap().len, s.len());
    }

    #[test]
    fn smuggling_and_framing_are_refused() {
        use HeadError::*;
        let cases: &[(&str, HeadError)] = &[
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
                LengthAndChunked,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                LengthAndChunked,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                DuplicateContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                DuplicateContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                BadContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
                BadContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
                BadContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
                BadContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n",
                BadContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0_0\r\n\r\n",
                BadContentLength,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
                BadTransferEncoding,
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                DuplicateTransferEncoding,
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                TransferEncodingInHttp10,
            ),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", ObsFold),
            ("GET / HTTP/1.1\r\n Host: a\r\n\r\n", ObsFold),
            ("GET / HTTP/1.1\nHost: a\r\n\r\n", BareLineEnd),
            ("GET / HTTP/1.1\r\nHost: a\n\r\n", BareLineEnd),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", BareLineEnd),
            ("GET / HTTP/1.1\r\n\r\n", MissingHost),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                DuplicateHost,
            ),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", BadHost),
            ("GET / HTTP/1.1\r\nHost: a:x\r\n\r\n", BadHost),
            ("GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", HostMismatch),
            ("GET x HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", BadTarget),
            ("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", Connect),
            ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", Version),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nExpect: fancy\r\n\r\n",
                Expectation,
            ),
        ];
        for (s, e) in cases {
            assert_eq!(&err(s), e, "{s:?}");
            assert!(matches!(e.status(), 400 | 405 | 417 | 505));
        }
        assert_eq!(
            err("GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n").status(),
            400
        );
        assert_eq!(
            err("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n").status(),
            400
        );
    }

    #[test]
    fn limits() {
        let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(200));
        assert_eq!(
            parse(long.as_bytes(), 100, &mut Scan::default()),
            Err(HeadError::UriTooLong { limit: 100 })
        );
        let long = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(200)
        );
        assert_eq!(
            parse(long.as_bytes(), 100, &mut Scan::default()),
            Err(HeadError::TooLarge { limit: 100 })
        );
        // Exactly at the limit is fine.
        let s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(
            parse(s.as_bytes(), s.len(), &mut Scan::default())
                .unwrap()
                .is_some()
        );
        assert_eq!(
            parse(s.as_bytes(), s.len() - 1, &mut Scan::default()),
            Err(HeadError::TooLarge { limit: s.len() - 1 })
        );
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        let s = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(err(&s), HeadError::TooManyHeaders);
        assert_eq!(err(&s).status(), 431);
    }

    #[test]
    fn framing_and_connection() {
        let h = ok("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: Chunked\r\n\r\n");
        assert_eq!(h.body, BodyKind::Chunked);
        let h = ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(12));
        let h = ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(h.body, BodyKind::None);
        let h = ok("GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive && h.host.is_none());
        let h = ok("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(h.keep_alive);
        let h = ok(
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nX_Y: 2\r\nX-Z: 3\r\n\r\n",
        );
        assert!(!h.keep_alive);
        assert_eq!(h.skip, 0b1111);
        let s = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        assert!(ok(s).websocket);
        let s = "\r\n\r\nGET http://A.b./x?y HTTP/1.1\r\nHost: a.B\r\n\r\n";
        let h = ok(s);
        assert_eq!(&s[h.target.clone()], "/x?y");
        assert_eq!(&s[h.host.unwrap()], "A.b.");
        let s = "OPTIONS * HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n";
        assert_eq!(&s[ok(s).target], "*");
    }

    #[test]
    fn hosts_and_domains() {
        assert!(valid_host(b"a.b-c.d"));
        assert!(valid_host(b"1.2.3.4:80"));
        assert!(valid_host(b"[::1]"));
        assert!(!valid_host(b"[::1"));
        assert!(!valid_host(b"a:"));
        assert!(!valid_host(b"a:123456"));
        assert!(!valid_host(b"a/b"));
        assert!(!valid_host(b""));
        assert_eq!(domain_of(b"WWW.Example.COM.:443"), "www.example.com");
        assert_eq!(domain_of(b"[::1]:80"), "[::1]");
        assert_eq!(content_length(b"0012"), Some(12));
        assert_eq!(content_length(b""), None);
        assert_eq!(content_length(b"18446744073709551616"), None);
    }
}
