//! A node's answer: an HTTP/1.x head (a uwsgi worker answers in HTTP too), read as strictly as
//! a client's (a bare LF, a control byte in a value, folding, a bad status: 502, so what a
//! tenant's app emits cannot split the client's stream), then its body streamed a piece at a
//! time, by `Content-Length`, chunks or up to the close.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};

use crate::backend::BackendRead;
use crate::chunked::{self, ChunkError};
use crate::head::{self, MAX_HEADERS};

/// The most bytes of a node's response head.
pub(crate) const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// How many interim (1xx) responses a node may send before its answer.
const MAX_INTERIM: usize = 8;
/// How much is read from a node at once.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// A node's answer that cannot be used: 502 (or the client's connection is closed when part of
/// the answer was already sent).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadResponse {
    /// The node reset the connection before sending a byte: a listener that closed with the
    /// request still in its backlog (its vassal stopping), so the request was never read.
    #[error("the node reset the connection before answering: {0}")]
    Unanswered(io::Error),
    #[error("the node closed the connection before its answer's end")]
    Eof,
    #[error("reading from the node failed: {0}")]
    Io(#[from] io::Error),
    #[error("the node's response head does not parse: {0}")]
    Head(String),
    #[error("the node's response body is not well chunked: {0}")]
    Chunk(#[from] ChunkError),
}

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    Empty,
    /// This many bytes.
    Length(u64),
    /// Chunked.
    Chunked,
    /// Up to the close.
    Close,
}

/// A node's response head.
#[derive(Debug)]
pub(crate) struct RespHead {
    pub(crate) buf: Bytes,
    pub(crate) status: u16,
    pub(crate) reason: Range<usize>,
    pub(crate) headers: Vec<(Range<usize>, Range<usize>)>,
    /// Headers not passed on (hop-by-hop, framing).
    pub(crate) skip: u128,
    /// The `Content-Length` the node declared (passed on as is for HEAD and 304).
    pub(crate) length: Option<u64>,
    pub(crate) framing: Framing,
}

impl RespHead {
    /// The headers passed on to the client.
    pub(crate) fn passed(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .enumerate()
            .filter(|(i, _)| self.skip & (1u128 << i) == 0)
            .map(|(_, (n, v))| (&self.buf[n.clone()], &self.buf[v.clone()]))
    }

    pub(crate) fn reason(&self) -> &[u8] {
        &self.buf[self.reason.clone()]
    }
}

fn bad(s: impl Into<String>) -> BadResponse {
    BadResponse::Head(s.into())
}

/// Parses a response head at the start of `buf`: `Ok(None)` when not whole yet; else the head
/// and its length.
pub(crate) fn parse(
    buf: &[u8],
    request_is_head: bool,
    scan: &mut head::Scan,
) -> Result<Option<(RespHead, usize)>, BadResponse> {
    let Some(end) =
        head::find_end(buf, 0, MAX_RESPONSE_HEAD, scan).map_err(|e| bad(e.to_string()))?
    else {
        return Ok(None);
    };
    let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut raw);
    match resp.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(n)) if n == end => {}
        Ok(_) => return Err(bad("the head ends early")),
        Err(e) => return Err(bad(e.to_string())),
    }
    let (Some(status), Some(_)) = (resp.code, resp.version) else {
        return Err(bad("the status line is incomplete"));
    };
    if !(100..=599).contains(&status) {
        return Err(bad(format!("status {status}")));
    }
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| {
        let at = s.as_ptr() as usize - base;
        at..at + s.len()
    };
    let reason = resp.reason.map_or(0..0, |r| {
        if r.is_empty() {
            0..0
        } else {
            span(r.as_bytes())
        }
    });
    let mut head = RespHead {
        buf: Bytes::new(),
        status,
        reason,
        headers: Vec::with_capacity(resp.headers.len()),
        skip: 0,
        length: None,
        framing: Framing::Close,
    };
    let mut chunked = false;
    let mut listed: Vec<&[u8]> = Vec::new();
    for (i, h) in resp.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        let value = head::trim(h.value);
        let vspan = if value.is_empty() {
            let e = span(name).end;
            e..e
        } else {
            span(value)
        };
        head.headers.push((span(name), vspan));
        let bit = 1u128 << i;
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"content-length") {
            let n = head::content_length(value).ok_or_else(|| bad("a bad Content-Length"))?;
            if head.length.is_some_and(|m| m != n) {
                return Err(bad("two different Content-Lengths"));
            }
            head.length = Some(n);
            head.skip |= bit;
        } else if is(b"transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") || chunked {
                return Err(bad("a Transfer-Encoding other than one `chunked`"));
            }
            chunked = true;
            head.skip |= bit;
        } else if is(b"connection") {
            listed.extend(
                value
                    .split(|&c| c == b',')
                    .map(head::trim)
                    .filter(|t| !t.is_empty()),
            );
            head.skip |= bit;
        } else if is(b"keep-alive")
            || is(b"proxy-connection")
            || is(b"te")
            || is(b"trailer")
            || is(b"upgrade")
        {
            head.skip |= bit;
        }
    }
    for (i, h) in resp.headers.iter().enumerate() {
        if listed
            .iter()
            .any(|t| t.eq_ignore_ascii_case(h.name.as_bytes()))
        {
            head.skip |= 1u128 << i;
        }
    }
    head.framing = if request_is_head || status < 200 || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = head.length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Some((head, end)))
}

/// Reads into `buf` from `rd`; 0 at the end.
pub(crate) fn poll_fill(
    rd: &mut BackendRead,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < READ_CHUNK / 4 {
        buf.reserve(READ_CHUNK);
    }
    tokio_util::io::poll_read_buf(Pin::new(rd), cx, buf)
}

/// Reads a node's response head (after any interim 1xx but 101): the head, and the body
/// reader holding what followed it.
pub(crate) async fn read_head(
    mut rd: BackendRead,
    request_is_head: bool,
) -> Result<(RespHead, BodyReader), BadResponse> {
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut interim = 0;
    let mut scan = head::Scan::default();
    loop {
        if !buf.is_empty()
            && let Some((mut h, n)) = parse(&buf, request_is_head, &mut scan)?
        {
            let raw = buf.split_to(n).freeze();
            scan = head::Scan::default();
            if h.status < 200 && h.status != 101 {
                interim += 1;
                if interim > MAX_INTERIM {
                    return Err(bad("too many interim responses"));
                }
                continue;
            }
            h.buf = raw;
            let body = BodyReader {
                rd,
                buf,
                framing: h.framing,
                decoder: chunked::Decoder::new(),
            };
            return Ok((h, body));
        }
        let n = match std::future::poll_fn(|cx| poll_fill(&mut rd, cx, &mut buf)).await {
            Ok(n) => n,
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionReset && buf.is_empty() && interim == 0 =>
            {
                return Err(BadResponse::Unanswered(e));
            }
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(BadResponse::Eof);
        }
    }
}

/// A node's response body, a piece at a time.
#[derive(Debug)]
pub(crate) struct BodyReader {
    pub(crate) rd: BackendRead,
    /// What was read and not yet given out.
    pub(crate) buf: BytesMut,
    pub(crate) framing: Framing,
    decoder: chunked::Decoder,
}

impl BodyReader {
    /// The next piece of the body, or `None` at its end.
    pub(crate) fn poll_chunk(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, BadResponse>> {
        loop {
            match self.framing {
                Framing::Empty | Framing::Length(0) => return Poll::Ready(Ok(None)),
                Framing::Length(left) => {
                    if !self.buf.is_empty() {
                        let n =
                            usize::try_from(left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
                        self.framing = Framing::Length(left - n as u64);
                        return Poll::Ready(Ok(Some(self.buf.split_to(n).freeze())));
                    }
                }
                Framing::Chunked => {
                    if !self.buf.is_empty() {
                        let step = self.decoder.step(&self.buf)?;
                        self.buf.advance(step.framing);
                        if step.done {
                            self.framing = Framing::Empty;
                            if step.data == 0 {
                                return Poll::Ready(Ok(None));
                            }
                        }
                        if step.data > 0 {
                            return Poll::Ready(Ok(Some(self.buf.split_to(step.data).freeze())));
                        }
                        if !self.buf.is_empty() {
                            continue;
                        }
                    }
                }
                Framing::Close => {
                    if !self.buf.is_empty() {
                        return Poll::Ready(Ok(Some(self.buf.split().freeze())));
                    }
                }
            }
            let n = ready!(poll_fill(&mut self.rd, cx, &mut self.buf))?;
            if n == 0 {
                if self.framing == Framing::Close {
                    self.framing = Framing::Empty;
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Err(BadResponse::Eof));
            }
        }
    }

    /// The next piece of the body, or `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>, BadResponse> {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    /// Whether the body was read to its end.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.framing, Framing::Empty | Framing::Length(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, head_req: bool) -> Result<Option<(RespHead, usize)>, BadResponse> {
        parse(s.as_bytes(), head_req, &mut head::Scan::default())
    }

    #[test]
    fn framing() {
        let (h, n) = p("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close, X-A\r\nX-A: 1\r\nX-B: 2\r\n\r\nhello", false).unwrap().unwrap();
        assert_eq!(n, 78);
        assert_eq!(h.framing, Framing::Length(5));
        let mut h = h;
        h.buf = Bytes::copy_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close, X-A\r\nX-A: 1\r\nX-B: 2\r\n\r\n");
        let passed: Vec<_> = h.passed().collect();
        assert_eq!(passed, [(&b"X-B"[..], &b"2"[..])]);
        assert_eq!(h.reason(), b"OK");
        let (h, _) = p("HTTP/1.0 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(h.framing, Framing::Close);
        let (h, _) = p(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let (h, _) = p("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.length), (Framing::Empty, Some(3)));
        let (h, _) = p("HTTP/1.1 304 Not Modified\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
    }

    #[test]
    fn splitting_is_refused() {
        for s in [
            "HTTP/1.1 200 OK\r\nX: a\nInjected: b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\rInjected: b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 099 OK\r\n\r\n",
            "HTTX/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        ] {
            assert!(p(s, false).is_err(), "{s:?}");
        }
    }
}
