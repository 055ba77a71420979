//! What a node is sent: a request (from HTTP/1 or HTTP/2) as a uwsgi packet (the vars nginx's
//! `uwsgi_pass` sends) or as an HTTP/1.1 head, with the headers the router sets.
//!
//! The router sets `REMOTE_ADDR`/`REMOTE_PORT` (the client), `X-Forwarded-For` (the client,
//! after a trusted proxy's own list), `X-Forwarded-Proto`, and `HTTPS=on` with
//! `UWSGI_SCHEME=https` (which gives `wsgi.url_scheme`) over TLS. What a client sends that could
//! pass for those is dropped unless the client is a trusted proxy: `X-Forwarded-*`,
//! `Forwarded`, `X-Real-IP`, `UWSGI-*` headers; `HTTPS` and `Proxy` (httpoxy) headers are
//! dropped from everyone, as are names with `_` (which map to the same CGI name as with `-`).
//! A header name always becomes `HTTP_*`, never a bare variable.

use std::net::SocketAddr;
use std::ops::Range;

use bytes::Bytes;
use liege_proto::router::NodeProto;
use liege_proto::uwsgi::{HEADER_LEN, Header, MAX_BLOCK};

use crate::head;

/// The protocol version a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReqVersion {
    Http10,
    Http11,
    Http2,
}

impl ReqVersion {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReqVersion::Http10 => "HTTP/1.0",
            ReqVersion::Http11 => "HTTP/1.1",
            ReqVersion::Http2 => "HTTP/2.0",
        }
    }
}

/// How long a request's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyLen {
    None,
    Known(u64),
    /// Chunked (HTTP/1.1) or an HTTP/2 body without `content-length`.
    Unknown,
}

/// A request's head, whatever it came in: spans of `buf`.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub(crate) buf: Bytes,
    pub(crate) method: Range<usize>,
    /// The path and query (empty means `/`), or `*`.
    pub(crate) target: Range<usize>,
    pub(crate) version: ReqVersion,
    /// The Host as sent (the `:authority` in HTTP/2).
    pub(crate) host: Option<Range<usize>>,
    /// The domain routed by: lower case, no port, no trailing dot.
    pub(crate) domain: String,
    /// Every header, name and value.
    pub(crate) headers: Vec<(Range<usize>, Range<usize>)>,
    /// Headers not forwarded as they are (bit `i` for `headers[i]`).
    pub(crate) skip: u128,
    pub(crate) body: BodyLen,
    pub(crate) websocket: bool,
}

impl Req {
    /// A request of an HTTP/1 head (whose spans index `buf`).
    pub(crate) fn from_h1(buf: Bytes, h: head::Head) -> Req {
        let domain = h
            .host
            .as_ref()
            .map(|r| head::domain_of(&buf[r.clone()]))
            .unwrap_or_default();
        Req {
            method: h.method,
            target: h.target,
            version: match h.version {
                head::Version::Http10 => ReqVersion::Http10,
                head::Version::Http11 => ReqVersion::Http11,
            },
            host: h.host,
            domain,
            headers: h.headers,
            skip: h.skip,
            body: match h.body {
                head::BodyKind::None => BodyLen::None,
                head::BodyKind::Length(n) => BodyLen::Known(n),
                head::BodyKind::Chunked => BodyLen::Unknown,
            },
            websocket: h.websocket,
            buf,
        }
    }

    pub(crate) fn method(&self) -> &[u8] {
        &self.buf[self.method.clone()]
    }

    pub(crate) fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }

    /// Whether sending the request twice means the same as once (RFC 9110 9.2.2): it may be
    /// sent again to a node that reset the connection before answering.
    pub(crate) fn idempotent(&self) -> bool {
        matches!(
            self.method(),
            b"GET" | b"HEAD" | b"OPTIONS" | b"TRACE" | b"PUT" | b"DELETE"
        )
    }

    /// The target to forward (`/` for an empty one).
    pub(crate) fn target(&self) -> &[u8] {
        if self.target.is_empty() {
            b"/"
        } else {
            &self.buf[self.target.clone()]
        }
    }

    fn host(&self) -> &[u8] {
        match &self.host {
            Some(r) => &self.buf[r.clone()],
            None => self.domain.as_bytes(),
        }
    }

    /// The forwarded headers: not skipped.
    fn forwarded(&self) -> impl Iterator<Item = (usize, &[u8], &[u8])> {
        self.headers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i >= 128 || self.skip & (1u128 << i) == 0)
            .map(|(i, (n, v))| (i, &self.buf[n.clone()], &self.buf[v.clone()]))
    }
}

/// Who sent a request, and where.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) client: SocketAddr,
    pub(crate) local_port: u16,
    pub(crate) tls: bool,
}

/// A request head too large for a uwsgi packet (its vars over 64 KiB): 431.
#[derive(Debug, thiserror::Error)]
#[error("the request's uwsgi vars take more than {MAX_BLOCK} bytes")]
pub(crate) struct TooLarge;

/// What the router decides about a request's forwarded headers.
struct Decided<'a> {
    /// `X-Forwarded-For` values a trusted proxy sent (joined).
    xff: Vec<&'a [u8]>,
    /// The scheme (`https` when over TLS, or when a trusted proxy says so).
    https: bool,
}

/// Header names a client may not set unless it is a trusted proxy.
fn spoofable(name: &[u8]) -> bool {
    let lower_starts = |p: &[u8]| name.len() >= p.len() && name[..p.len()].eq_ignore_ascii_case(p);
    lower_starts(b"x-forwarded-")
        || name.eq_ignore_ascii_case(b"forwarded")
        || name.eq_ignore_ascii_case(b"x-real-ip")
        || lower_starts(b"uwsgi-")
}

/// Header names never forwarded.
fn never(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"proxy") || name.eq_ignore_ascii_case(b"https")
}

/// Whether header `name` is forwarded, and what the router takes from it.
fn keep<'a>(name: &[u8], value: &'a [u8], trusted: bool, d: &mut Decided<'a>) -> bool {
    if never(name) {
        return false;
    }
    if spoofable(name) {
        if !trusted {
            return false;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            d.xff.push(value);
            return false;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-proto") {
            d.https = d.https || value.eq_ignore_ascii_case(b"https");
            return false;
        }
    }
    true
}

/// The client's address as text (an IPv4-mapped address as IPv4).
fn client_ip(peer: &Peer) -> String {
    crate::config::canonical(peer.client.ip()).to_string()
}

/// The `X-Forwarded-For` value.
fn xff_value(d: &Decided<'_>, client: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for x in &d.xff {
        if !x.is_empty() {
            v.extend_from_slice(x);
            v.extend_from_slice(b", ");
        }
    }
    v.extend_from_slice(client.as_bytes());
    v
}

/// Percent-decodes a path (`%2F` stays decoded as `/`, as uWSGI and nginx do); an invalid
/// escape is kept as it is. `None` when it decodes to a NUL byte.
pub(crate) fn decode_path(path: &[u8]) -> Option<Vec<u8>> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%'
            && i + 2 < path.len()
            && let (Some(h), Some(l)) = (hex(path[i + 1]), hex(path[i + 2]))
        {
            let b = u8::try_from(h * 16 + l).unwrap_or(0);
            if b == 0 {
                return None;
            }
            out.push(b);
            i += 3;
            continue;
        }
        out.push(path[i]);
        i += 1;
    }
    Some(out)
}

/// The target split into path and query.
fn split_target(t: &[u8]) -> (&[u8], &[u8]) {
    match t.iter().position(|&c| c == b'?') {
        Some(q) => (&t[..q], &t[q + 1..]),
        None => (t, &[]),
    }
}

/// Writes one uwsgi var.
fn var(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    for part in [key, value] {
        let len = u16::try_from(part.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&part[..usize::from(len)]);
    }
}

/// `HTTP_` and the header name upper-cased with `-` as `_`.
fn cgi_name(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(b"HTTP_");
    out.extend(name.iter().map(|&c| {
        if c == b'-' {
            b'_'
        } else {
            c.to_ascii_uppercase()
        }
    }));
}

/// A var whose key is built in place.
fn var_with(out: &mut Vec<u8>, key: impl FnOnce(&mut Vec<u8>), value: &[&[u8]], sep: &[u8]) {
    let at = out.len();
    out.extend_from_slice(&[0, 0]);
    key(out);
    let klen = out.len() - at - 2;
    out[at..at + 2].copy_from_slice(&u16::try_from(klen).unwrap_or(u16::MAX).to_le_bytes());
    let vlen: usize =
        value.iter().map(|v| v.len()).sum::<usize>() + sep.len() * value.len().saturating_sub(1);
    out.extend_from_slice(&u16::try_from(vlen).unwrap_or(u16::MAX).to_le_bytes());
    for (k, v) in value.iter().enumerate() {
        if k > 0 {
            out.extend_from_slice(sep);
        }
        out.extend_from_slice(v);
    }
}

/// The values of every forwarded header named like `headers[i]` from `i` on (merged as CGI
/// does), or `None` when an earlier one has the name (it was merged there).
fn merged<'a>(req: &'a Req, i: usize, name: &[u8], kept: &[bool]) -> Option<Vec<&'a [u8]>> {
    let same = |j: usize| req.buf[req.headers[j].0.clone()].eq_ignore_ascii_case(name);
    if (0..i).any(|j| kept[j] && same(j)) {
        return None;
    }
    Some(
        (i..req.headers.len())
            .filter(|&j| kept[j] && same(j))
            .map(|j| &req.buf[req.headers[j].1.clone()])
            .collect(),
    )
}

/// The uwsgi packet of `req` (header and vars), for a body of `body` bytes.
pub(crate) fn uwsgi_packet(
    req: &Req,
    peer: &Peer,
    trusted: bool,
    body: Option<u64>,
) -> Result<Vec<u8>, TooLarge> {
    let mut d = Decided {
        xff: Vec::new(),
        https: peer.tls,
    };
    let mut kept = vec![false; req.headers.len()];
    for (i, name, value) in req.forwarded() {
        kept[i] = keep(name, value, trusted, &mut d);
    }
    let mut out = Vec::with_capacity(512 + req.buf.len() * 2);
    out.extend_from_slice(&[0; HEADER_LEN]);
    let target = req.target();
    let (path, query) = split_target(target);
    var(&mut out, b"REQUEST_METHOD", req.method());
    var(&mut out, b"REQUEST_URI", target);
    var(
        &mut out,
        b"PATH_INFO",
        &decode_path(path).unwrap_or_else(|| path.to_vec()),
    );
    var(&mut out, b"QUERY_STRING", query);
    var(
        &mut out,
        b"SERVER_PROTOCOL",
        req.version.as_str().as_bytes(),
    );
    let client = client_ip(peer);
    var(&mut out, b"REMOTE_ADDR", client.as_bytes());
    var(
        &mut out,
        b"REMOTE_PORT",
        peer.client.port().to_string().as_bytes(),
    );
    var(&mut out, b"SERVER_NAME", req.domain.as_bytes());
    var(
        &mut out,
        b"SERVER_PORT",
        peer.local_port.to_string().as_bytes(),
    );
    if let Some(n) = body {
        var(&mut out, b"CONTENT_LENGTH", n.to_string().as_bytes());
    }
    if d.https {
        var(&mut out, b"HTTPS", b"on");
        var(&mut out, b"UWSGI_SCHEME", b"https");
    }
    var(&mut out, b"HTTP_HOST", req.host());
    if req.websocket {
        var(&mut out, b"HTTP_CONNECTION", b"Upgrade");
        var(&mut out, b"HTTP_UPGRADE", b"websocket");
    }
    for i in 0..req.headers.len() {
        if !kept[i] {
            continue;
        }
        let name = &req.buf[req.headers[i].0.clone()];
        let Some(values) = merged(req, i, name, &kept) else {
            continue;
        };
        if name.eq_ignore_ascii_case(b"content-type") {
            var_with(
                &mut out,
                |o| o.extend_from_slice(b"CONTENT_TYPE"),
                &values[..1],
                b"",
            );
        } else {
            let sep: &[u8] = if name.eq_ignore_ascii_case(b"cookie") {
                b"; "
            } else {
                b", "
            };
            var_with(&mut out, |o| cgi_name(o, name), &values, sep);
        }
    }
    var(&mut out, b"HTTP_X_FORWARDED_FOR", &xff_value(&d, &client));
    var(
        &mut out,
        b"HTTP_X_FORWARDED_PROTO",
        if d.https { b"https" } else { b"http" },
    );
    let size = out.len() - HEADER_LEN;
    let datasize = u16::try_from(size).map_err(|_| TooLarge)?;
    // Every single key and value is shorter than the block, so none was cut above.
    out[..HEADER_LEN].copy_from_slice(
        &Header {
            modifier1: 0,
            datasize,
            modifier2: 0,
        }
        .to_bytes(),
    );
    Ok(out)
}

/// The HTTP/1.1 head of `req` for an HTTP node, for a body of `body` bytes (`None`: chunked).
pub(crate) fn http_head(req: &Req, peer: &Peer, trusted: bool, body: BodyLen) -> Vec<u8> {
    let mut d = Decided {
        xff: Vec::new(),
        https: peer.tls,
    };
    let mut kept = vec![false; req.headers.len()];
    for (i, name, value) in req.forwarded() {
        kept[i] = keep(name, value, trusted, &mut d);
    }
    let mut out = Vec::with_capacity(256 + req.buf.len());
    out.extend_from_slice(req.method());
    out.push(b' ');
    out.extend_from_slice(req.target());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(req.host());
    out.extend_from_slice(b"\r\n");
    for i in 0..req.headers.len() {
        if !kept[i] {
            continue;
        }
        let name = &req.buf[req.headers[i].0.clone()];
        if name.eq_ignore_ascii_case(b"cookie") {
            // HTTP/2 splits cookies; HTTP/1.1 wants one header.
            let Some(values) = merged(req, i, name, &kept) else {
                continue;
            };
            out.extend_from_slice(b"Cookie: ");
            out.extend_from_slice(&values.join(&b"; "[..]));
        } else {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(&req.buf[req.headers[i].1.clone()]);
        }
        out.extend_from_slice(b"\r\n");
    }
    let client = client_ip(peer);
    out.extend_from_slice(b"X-Forwarded-For: ");
    out.extend_from_slice(&xff_value(&d, &client));
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
    out.extend_from_slice(if d.https { b"https" } else { b"http" });
    out.extend_from_slice(b"\r\n");
    match body {
        BodyLen::None => {}
        BodyLen::Known(n) => {
            out.extend_from_slice(b"Content-Length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyLen::Unknown => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    if req.websocket {
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    } else {
        out.extend_from_slice(b"Connection: close\r\n\r\n");
    }
    out
}

/// The head for `proto`.
pub(crate) fn encode(
    proto: NodeProto,
    req: &Req,
    peer: &Peer,
    trusted: bool,
    body: BodyLen,
) -> Result<Vec<u8>, TooLarge> {
    match proto {
        NodeProto::Uwsgi => uwsgi_packet(
            req,
            peer,
            trusted,
            match body {
                BodyLen::Known(n) => Some(n),
                _ => None,
            },
        ),
        NodeProto::Http => Ok(http_head(req, peer, trusted, body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liege_proto::uwsgi::{parse_header, vars};

    fn req(s: &str) -> Req {
        let h = head::parse(s.as_bytes(), 8192, &mut head::Scan::default())
            .unwrap()
            .unwrap();
        Req::from_h1(Bytes::copy_from_slice(s.as_bytes()), h)
    }

    fn peer(tls: bool) -> Peer {
        Peer {
            client: "[::ffff:10.0.0.7]:4321".parse().unwrap(),
            local_port: 8443,
            tls,
        }
    }

    fn vars_of(p: &[u8]) -> Vec<(String, String)> {
        let h = parse_header(p).unwrap();
        assert_eq!(usize::from(h.datasize), p.len() - 4);
        vars(&p[4..])
            .map(|r| {
                let (k, v) = r.unwrap();
                (
                    String::from_utf8_lossy(k).into(),
                    String::from_utf8_lossy(v).into(),
                )
            })
            .collect()
    }

    fn get<'a>(v: &'a [(String, String)], k: &str) -> Vec<&'a str> {
        v.iter()
            .filter(|(a, _)| a == k)
            .map(|(_, b)| b.as_str())
            .collect()
    }

    const SPOOF: &str = "POST /a%20b/c?x=1 HTTP/1.1\r\nHost: Shop.example.com:8443\r\nContent-Type: text/plain\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nx_forwarded_for: 7.7.7.7\r\nForwarded: for=1\r\nX-Real-IP: 6.6.6.6\r\nUWSGI-File: /etc/passwd\r\nProxy: http://evil\r\nHTTPS: on\r\nAccept: a\r\naccept: b\r\nCookie: c=1\r\nCookie: d=2\r\nContent-Length: 5\r\n\r\n";

    #[test]
    fn uwsgi_vars_from_an_untrusted_client() {
        let v = vars_of(&uwsgi_packet(&req(SPOOF), &peer(false), false, Some(5)).unwrap());
        assert_eq!(get(&v, "REQUEST_METHOD"), ["POST"]);
        assert_eq!(get(&v, "REQUEST_URI"), ["/a%20b/c?x=1"]);
        assert_eq!(get(&v, "PATH_INFO"), ["/a b/c"]);
        assert_eq!(get(&v, "QUERY_STRING"), ["x=1"]);
        assert_eq!(get(&v, "SERVER_PROTOCOL"), ["HTTP/1.1"]);
        assert_eq!(get(&v, "REMOTE_ADDR"), ["10.0.0.7"]);
        assert_eq!(get(&v, "REMOTE_PORT"), ["4321"]);
        assert_eq!(get(&v, "SERVER_NAME"), ["shop.example.com"]);
        assert_eq!(get(&v, "SERVER_PORT"), ["8443"]);
        assert_eq!(get(&v, "HTTP_HOST"), ["Shop.example.com:8443"]);
        assert_eq!(get(&v, "CONTENT_TYPE"), ["text/plain"]);
        assert_eq!(get(&v, "CONTENT_LENGTH"), ["5"]);
        assert_eq!(get(&v, "HTTP_X_FORWARDED_FOR"), ["10.0.0.7"]);
        assert_eq!(get(&v, "HTTP_X_FORWARDED_PROTO"), ["http"]);
        assert_eq!(get(&v, "HTTP_ACCEPT"), ["a, b"]);
        assert_eq!(get(&v, "HTTP_COOKIE"), ["c=1; d=2"]);
        for k in [
            "HTTPS",
            "UWSGI_SCHEME",
            "HTTP_FORWARDED",
            "HTTP_X_REAL_IP",
            "HTTP_UWSGI_FILE",
            "HTTP_PROXY",
            "HTTP_HTTPS",
            "HTTP_CONTENT_TYPE",
            "HTTP_CONTENT_LENGTH",
        ] {
            assert!(get(&v, k).is_empty(), "{k}");
        }
        assert!(
            v.iter()
                .all(|(k, _)| !k.starts_with("UWSGI_") || k == "UWSGI_SCHEME")
        );
    }

    #[test]
    fn uwsgi_vars_from_a_trusted_proxy_over_tls() {
        let v = vars_of(&uwsgi_packet(&req(SPOOF), &peer(true), true, Some(5)).unwrap());
        assert_eq!(get(&v, "HTTP_X_FORWARDED_FOR"), ["6.6.6.6, 10.0.0.7"]);
        assert_eq!(get(&v, "HTTP_X_FORWARDED_PROTO"), ["https"]);
        assert_eq!(get(&v, "HTTPS"), ["on"]);
        assert_eq!(get(&v, "UWSGI_SCHEME"), ["https"]);
        assert_eq!(get(&v, "HTTP_X_REAL_IP"), ["6.6.6.6"]);
        assert_eq!(get(&v, "HTTP_UWSGI_FILE"), ["/etc/passwd"]);
        assert!(get(&v, "HTTP_PROXY").is_empty());
        // Plain, but a trusted proxy says https.
        let v = vars_of(&uwsgi_packet(&req(SPOOF), &peer(false), true, Some(5)).unwrap());
        assert_eq!(get(&v, "HTTPS"), ["on"]);
    }

    #[test]
    fn http_head_for_an_http_node() {
        let s = "GET /ws HTTP/1.1\r\nHost: a.com\r\nConnection: Upgrade, X-Hop\r\nX-Hop: 1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
        let out =
            String::from_utf8(http_head(&req(s), &peer(false), false, BodyLen::None)).unwrap();
        assert_eq!(
            out,
            "GET /ws HTTP/1.1\r\nHost: a.com\r\nSec-WebSocket-Key: k\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        );
        let s = "POST / HTTP/1.1\r\nHost: a.com\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nExpect: 100-continue\r\n\r\n";
        let out =
            String::from_utf8(http_head(&req(s), &peer(true), false, BodyLen::Unknown)).unwrap();
        assert_eq!(
            out,
            "POST / HTTP/1.1\r\nHost: a.com\r\nX-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: https\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn oversized_vars_are_refused() {
        let big = "a".repeat(8000);
        let hs: String = (0..9).map(|i| format!("X-{i}: {big}\r\n")).collect();
        let s = format!("GET / HTTP/1.1\r\nHost: a\r\n{hs}\r\n");
        let h = head::parse(s.as_bytes(), 1 << 20, &mut head::Scan::default())
            .unwrap()
            .unwrap();
        let r = Req::from_h1(Bytes::from(s.into_bytes()), h);
        assert!(uwsgi_packet(&r, &peer(false), false, None).is_err());
    }

    #[test]
    fn paths_decode() {
        assert_eq!(decode_path(b"/a%2fb%41%zz%4").unwrap(), b"/a/bA%zz%4");
        assert_eq!(decode_path(b"/a%00"), None);
    }
}
