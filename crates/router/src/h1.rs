//! HTTP/1.x client connections: keep-alive (and pipelining, one request at a time), strict
//! heads ([`crate::head`]), bodies streamed to the node while its answer streams back, and
//! websocket upgrades spliced. An h2c preface on a plain connection hands it to HTTP/2.
//!
//! Timeouts: a head must arrive within `header_timeout` of the connection's start (or, between
//! requests, of its first byte); an idle keep-alive connection is closed after `idle_timeout`;
//! a request body or a response that makes no progress for `idle_timeout` closes the
//! connection. After any refused head the connection is closed (nothing after it can be
//! trusted to be where a request starts), with a lingering close so the answer is read.
//!
//! Memory: between requests a connection holds no buffer (a plain one waits for readability
//! first) and its request state is boxed only while a request runs.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use liege_proto::router::NodeProto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::backend::{Backend, BackendRead, BackendWrite};
use crate::chunked::{self, ChunkError};
use crate::config::Config;
use crate::forward::{self, BodyLen, Peer, Req, ReqVersion};
use crate::head::{self, Head};
use crate::response::{self, BadResponse, BodyReader, Framing, RespHead};
use crate::shared::{self, Entry, Shared};

/// The HTTP/2 connection preface (h2c by prior knowledge).
pub(crate) const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The most bytes of a body of unknown length (chunked) read whole for a uwsgi node when the
/// vassal has no `limit-post`: the uwsgi protocol needs the length before the body.
pub(crate) const UNKNOWN_LENGTH_MAX: u64 = 16 << 20;
/// How much is read from a client at once.
const READ_CHUNK: usize = 16 * 1024;

/// How many times a request the router holds whole is sent again after its node reset the
/// connection before answering (its vassal stopping with the request in its backlog).
pub(crate) const RESENDS: u32 = 3;
/// How long a closing connection is read from (and discarded) so the client sees the answer
/// rather than a reset.
const LINGER: Duration = Duration::from_secs(2);
/// The most bytes read while lingering.
const LINGER_BYTES: usize = 256 * 1024;

/// A client stream.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Waits until a read may not block, without a buffer (an idle connection holds none).
    fn ready(&mut self) -> impl Future<Output = io::Result<()>> + Send;
}

impl ClientIo for TcpStream {
    fn ready(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        self.readable()
    }
}

impl ClientIo for tokio_rustls::server::TlsStream<TcpStream> {
    async fn ready(&mut self) -> io::Result<()> {
        let (tcp, conn) = self.get_mut();
        // Records already read may hold plaintext (or the close): then a read will not block.
        let state = conn.process_new_packets().map_err(io::Error::other)?;
        if state.plaintext_bytes_to_read() > 0 || state.peer_has_closed() {
            return Ok(());
        }
        tcp.readable().await
    }
}

/// What came next on a connection.
enum Next {
    Head(Head),
    /// An HTTP/2 preface.
    H2c,
    /// The client left or idled out, or the router stops.
    Close,
    /// A head that is refused (status), or one that did not arrive in time (408).
    Refuse(u16),
}

/// Why a request body could not be read.
#[derive(Debug)]
enum BodyError {
    /// Bad chunks: 400.
    Bad,
    /// Over the limit: 413.
    TooLarge,
    /// No progress for the idle timeout: 408.
    Timeout,
    /// The client left or its read failed.
    Gone,
    /// The node stopped reading (its write failed).
    Node,
}

impl From<ChunkError> for BodyError {
    fn from(_: ChunkError) -> Self {
        BodyError::Bad
    }
}

/// What remains of a request body.
#[derive(Debug)]
enum ClientBody {
    Length(u64),
    Chunked(chunked::Decoder),
    Done,
}

impl ClientBody {
    fn new(len: BodyLen) -> ClientBody {
        match len {
            BodyLen::None | BodyLen::Known(0) => ClientBody::Done,
            BodyLen::Known(n) => ClientBody::Length(n),
            BodyLen::Unknown => ClientBody::Chunked(chunked::Decoder::new()),
        }
    }
}

/// How a request's answer went.
enum Responded {
    Done {
        close: bool,
    },
    /// A 101: the connection is spliced to the node's.
    Upgrade(BodyReader),
}

/// Why an answer could not be relayed.
enum RespondError {
    Node(BadResponse),
    Client,
}

/// One client connection.
struct Conn<S> {
    io: S,
    buf: BytesMut,
    shared: Arc<Shared>,
    peer: Peer,
    /// The current request is HTTP/1.0.
    http10: bool,
}

/// Serves a client connection; `h2c`: an HTTP/2 preface switches it to HTTP/2.
pub(crate) async fn serve<S: ClientIo>(shared: Arc<Shared>, io: S, peer: Peer, h2c: bool) {
    let mut c = Conn {
        io,
        buf: BytesMut::new(),
        shared,
        peer,
        http10: false,
    };
    let mut first = true;
    loop {
        match c.next(first, h2c && first).await {
            Next::Head(h) => {
                if !Box::pin(c.request(h)).await {
                    return;
                }
            }
            Next::H2c => {
                let pre = std::mem::take(&mut c.buf).freeze();
                let io = Rewind { pre, inner: c.io };
                // Boxed: an HTTP/1 connection's state stays small.
                Box::pin(crate::h2::serve(c.shared, io, c.peer)).await;
                return;
            }
            Next::Close => return,
            Next::Refuse(status) => {
                let mut e = Entry::refused(&c.peer, Instant::now(), status);
                c.http10 = false;
                c.answer(&mut e, status, false).await;
                let cfg = c.shared.config.load();
                c.shared.finish(&e, cfg.access_log);
                return;
            }
        }
        first = false;
        if c.buf.is_empty() {
            // Hold nothing while idle.
            c.buf = BytesMut::new();
        }
    }
}

/// Runs `f` for at most `t`; a timeout is an `io::ErrorKind::TimedOut` error.
async fn within<T>(t: Duration, f: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    match tokio::time::timeout(t, f).await {
        Ok(r) => r,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

impl<S: ClientIo> Conn<S> {
    /// Reads the next request head.
    async fn next(&mut self, first: bool, h2c: bool) -> Next {
        let (limit, header_t, idle_t) = {
            let cfg = self.shared.config.load();
            (cfg.max_header_bytes, cfg.header_timeout, cfg.idle_timeout)
        };
        let mut shutdown = self.shared.shutdown_rx();
        if *shutdown.borrow_and_update() && self.buf.is_empty() {
            return Next::Close;
        }
        let start = Instant::now();
        let mut head_deadline = (first || !self.buf.is_empty()).then(|| start + header_t);
        let idle_deadline = start + idle_t;
        let mut scan = head::Scan::default();
        loop {
            if !self.buf.is_empty() {
                if h2c && H2_PREFACE.starts_with(&self.buf[..self.buf.len().min(H2_PREFACE.len())])
                {
                    if self.buf.len() >= H2_PREFACE.len() {
                        return Next::H2c;
                    }
                } else {
                    match head::parse(&self.buf, limit, &mut scan) {
                        Ok(Some(h)) => return Next::Head(h),
                        Ok(None) => {}
                        Err(e) => return Next::Refuse(e.status()),
                    }
                }
                head_deadline.get_or_insert_with(|| Instant::now() + header_t);
            }
            let deadline = head_deadline.unwrap_or(idle_deadline);
            let idle = self.buf.is_empty();
            let io = &mut self.io;
            let buf = &mut self.buf;
            let read = async move {
                if buf.capacity() == 0 {
                    io.ready().await?;
                }
                if buf.capacity() - buf.len() < 512 {
                    buf.reserve(4096);
                }
                io.read_buf(buf).await
            };
            tokio::select! {
                r = tokio::time::timeout_at(deadline.into(), read) => match r {
                    Err(_) => {
                        return if self.buf.is_empty() { Next::Close } else { Next::Refuse(408) };
                    }
                    Ok(Ok(0)) | Ok(Err(_)) => return Next::Close,
                    Ok(Ok(_)) => {}
                },
                _ = shutdown.changed(), if idle => return Next::Close,
            }
        }
    }

    /// Serves one request; whether the connection goes on.
    async fn request(&mut self, h: Head) -> bool {
        let started = Instant::now();
        let cfg = self.shared.config.load_full();
        let keep_alive = h.keep_alive;
        let expect = h.expect_continue;
        self.http10 = h.version == head::Version::Http10;
        let raw = self.buf.split_to(h.len).freeze();
        let req = Req::from_h1(raw, h);
        let mut e = Entry::new(&req, &self.peer, started, cfg.access_log);
        let keep = self.forward(&cfg, &req, keep_alive, expect, &mut e).await;
        self.shared.finish(&e, cfg.access_log);
        keep && !self.shared.shutting_down()
    }

    /// Forwards a request to its node and relays the answer.
    async fn forward(
        &mut self,
        cfg: &Config,
        req: &Req,
        keep_alive: bool,
        expect: bool,
        e: &mut Entry,
    ) -> bool {
        let no_body = req.body == BodyLen::None;
        let path = req
            .target()
            .split(|&c| c == b'?')
            .next()
            .unwrap_or_default();
        if forward::decode_path(path).is_none() {
            return self.answer(e, 400, false).await;
        }
        let Some(domain) = self.shared.route(cfg, &req.domain) else {
            return self.answer(e, 404, keep_alive && no_body).await;
        };
        let limit = domain.limit_post;
        if let (BodyLen::Known(n), Some(l)) = (req.body, limit)
            && n > l
        {
            return self.answer(e, 413, false).await;
        }
        let mut body = req.body;
        let mut client_body = ClientBody::new(req.body);
        let mut whole: Option<Bytes> = None;
        let mut continued = false;
        if req.body == BodyLen::Unknown && domain.needs_length {
            if expect {
                if self.continue_100(cfg).await.is_err() {
                    return false;
                }
                continued = true;
            }
            let max = limit.unwrap_or(UNKNOWN_LENGTH_MAX);
            match self
                .read_whole(&mut client_body, max, cfg.idle_timeout)
                .await
            {
                Ok(b) => {
                    body = BodyLen::Known(b.len() as u64);
                    whole = Some(b);
                }
                Err(err) => return self.body_failed(e, err).await,
            }
        }
        let consumed = matches!(client_body, ClientBody::Done);
        // A body that is here whole goes with the head, in one write.
        let held: Option<Bytes> = match (&whole, &client_body) {
            (Some(b), _) => Some(b.clone()),
            (None, &ClientBody::Length(n)) if self.buf.len() as u64 >= n => {
                client_body = ClientBody::Done;
                Some(
                    self.buf
                        .split_to(usize::try_from(n).unwrap_or(usize::MAX))
                        .freeze(),
                )
            }
            _ => None,
        };
        // Held whole, it can be sent again to a node that reset the connection unanswered.
        let resendable =
            matches!(client_body, ClientBody::Done) && !req.websocket && req.idempotent();
        let mut resends = 0;
        let (node, result, pumped, started, bwr) = loop {
            let (picked, backend) = match self.shared.connect(cfg, &req.domain).await {
                Ok(x) => x,
                Err(status) => {
                    // Counted as the vassal's (its nodes are down or starting).
                    e.node = domain.nodes.first().cloned();
                    return self.answer(e, status, keep_alive && consumed).await;
                }
            };
            let node = picked.node.clone();
            e.node = Some(node.clone());
            let trusted = cfg.is_trusted(self.peer.client.ip());
            let mut out = match forward::encode(node.proto, req, &self.peer, trusted, body) {
                Ok(o) => o,
                Err(_) => return self.answer(e, 431, keep_alive && consumed).await,
            };
            let chunk_out = body == BodyLen::Unknown && node.proto == NodeProto::Http;
            if let Some(b) = &held {
                out.extend_from_slice(b);
            }
            if expect
                && !continued
                && !matches!(client_body, ClientBody::Done)
                && self.continue_100(cfg).await.is_err()
            {
                return false;
            }
            let (brd, bwr) = backend.split();
            let mut bwr = Some(bwr);
            let Some(w) = bwr.as_mut() else { return false };
            if let Err(err) = w.write_all(&out).await {
                // A listener that closed with the connection in its backlog.
                if resendable && resends < RESENDS {
                    resends += 1;
                    self.shared.log.error(format_args!(
                        "node `{}` (for {}): writing to it failed: {err}; the request is sent again",
                        node.target, req.domain
                    ));
                    continue;
                }
                return self.answer(e, 502, false).await;
            }
            e.bytes_in = out.len() as u64;
            drop(out);

            let pump_done = AtomicBool::new(matches!(client_body, ClientBody::Done));
            let started = AtomicBool::new(false);
            let idle = cfg.idle_timeout;
            let shared = self.shared.clone();
            let mut pumped: Option<Result<u64, BodyError>> =
                pump_done.load(Ordering::Relaxed).then_some(Ok(0));
            let result = if pumped.is_some() {
                if !req.websocket
                    && let Some(w) = bwr.take()
                {
                    // All was sent: no shutdown of the node's side (a system call per request).
                    w.forget();
                }
                Some(
                    respond(
                        &mut self.io,
                        brd,
                        req,
                        keep_alive,
                        &pump_done,
                        &started,
                        idle,
                        &shared,
                        e,
                    )
                    .await,
                )
            } else {
                let (mut crd, mut cwr) = tokio::io::split(&mut self.io);
                let buf = &mut self.buf;
                let Some(w) = bwr.as_mut() else { return false };
                let pump = async {
                    let r = pump(&mut crd, buf, &mut client_body, w, chunk_out, limit, idle).await;
                    // Done means the whole body went: a body cut short leaves the connection to close.
                    pump_done.store(r.is_ok(), Ordering::Relaxed);
                    r
                };
                let resp = respond(
                    &mut cwr, brd, req, keep_alive, &pump_done, &started, idle, &shared, e,
                );
                tokio::pin!(pump);
                tokio::pin!(resp);
                loop {
                    tokio::select! {
                        r = &mut pump, if pumped.is_none() => {
                            // A node that stops reading may still answer (a 413 of its own):
                            // wait for it. A client's fault ends the request.
                            let failed = matches!(r, Err(ref e) if !matches!(e, BodyError::Node));
                            pumped = Some(r);
                            if failed {
                                break None;
                            }
                        }
                        r = &mut resp => break Some(r),
                    }
                }
            };
            let started = started.load(Ordering::Relaxed);
            if let Some(Err(RespondError::Node(err @ BadResponse::Unanswered(_)))) = &result
                && resendable
                && !started
                && resends < RESENDS
            {
                resends += 1;
                self.shared.log.error(format_args!(
                    "node `{}` (for {}): {err}; the request is sent again",
                    node.target, req.domain
                ));
                // Withdrawn meanwhile: the domain is no longer served.
                if self.shared.route(cfg, &req.domain).is_none() {
                    e.node = None;
                    return self.answer(e, 404, keep_alive).await;
                }
                continue;
            }
            break (node, result, pumped, started, bwr);
        };
        if let Some(Ok(n)) = &pumped {
            e.bytes_in += n;
        }
        match (result, pumped) {
            (None, Some(Err(err))) => {
                if started {
                    return false;
                }
                self.body_failed(e, err).await
            }
            (Some(Ok(Responded::Done { close })), pumped) => {
                let consumed = matches!(pumped, Some(Ok(_)));
                if !consumed {
                    // The client may still be sending the body: let it read the answer.
                    self.linger().await;
                }
                !close && consumed
            }
            (Some(Ok(Responded::Upgrade(body))), _) => {
                if let Some(w) = bwr {
                    self.splice(body, w, e).await;
                }
                false
            }
            (Some(Err(RespondError::Node(err))), _) => {
                if started {
                    self.shared.log.error(format_args!(
                        "node `{}` (for {}): {err}; the client's connection is closed",
                        node.target, req.domain
                    ));
                    return false;
                }
                self.shared.log.error(format_args!(
                    "node `{}` (for {}): {err}",
                    node.target, req.domain
                ));
                self.answer(e, 502, false).await
            }
            (Some(Err(RespondError::Client)), _) | (None, _) => false,
        }
    }

    /// Answers a failed body read.
    async fn body_failed(&mut self, e: &mut Entry, err: BodyError) -> bool {
        match err {
            BodyError::Bad => self.answer(e, 400, false).await,
            BodyError::TooLarge => self.answer(e, 413, false).await,
            BodyError::Timeout => self.answer(e, 408, false).await,
            BodyError::Node => self.answer(e, 502, false).await,
            BodyError::Gone => {
                e.status = 499;
                false
            }
        }
    }

    /// Writes `100 Continue`.
    async fn continue_100(&mut self, cfg: &Config) -> io::Result<()> {
        within(cfg.idle_timeout, async {
            self.io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
            self.io.flush().await
        })
        .await
    }

    /// Reads a whole chunked body (at most `max` bytes).
    async fn read_whole(
        &mut self,
        body: &mut ClientBody,
        max: u64,
        idle: Duration,
    ) -> Result<Bytes, BodyError> {
        let mut out = BytesMut::new();
        let ClientBody::Chunked(dec) = body else {
            return Ok(Bytes::new());
        };
        loop {
            if !self.buf.is_empty() {
                let step = dec.step(&self.buf)?;
                self.buf.advance(step.framing);
                if step.data > 0 {
                    if (out.len() + step.data) as u64 > max {
                        return Err(BodyError::TooLarge);
                    }
                    out.extend_from_slice(&self.buf.split_to(step.data));
                }
                if step.done {
                    *body = ClientBody::Done;
                    return Ok(out.freeze());
                }
                if !self.buf.is_empty() {
                    continue;
                }
            }
            self.buf.reserve(READ_CHUNK);
            match within(idle, self.io.read_buf(&mut self.buf)).await {
                Ok(0) => return Err(BodyError::Gone),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(BodyError::Timeout),
                Err(_) => return Err(BodyError::Gone),
            }
        }
    }

    /// Answers with a page of the router's own.
    async fn answer(&mut self, e: &mut Entry, status: u16, keep: bool) -> bool {
        let keep = keep && !self.shared.shutting_down();
        e.status = status;
        let body = shared::page(status);
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
            shared::reason(status),
            body.len()
        );
        match (keep, self.http10) {
            (false, _) => out.push_str("Connection: close\r\n"),
            (true, true) => out.push_str("Connection: keep-alive\r\n"),
            (true, false) => {}
        }
        out.push_str("\r\n");
        out.push_str(&body);
        let idle = self.shared.config.load().idle_timeout;
        let sent = within(idle, async {
            self.io.write_all(out.as_bytes()).await?;
            self.io.flush().await
        })
        .await;
        if sent.is_err() {
            return false;
        }
        e.bytes_out += out.len() as u64;
        if !keep {
            self.linger().await;
        }
        keep
    }

    /// Closes gracefully: says so, then reads what the client still sends for a while, so
    /// that the answer is not lost to a reset.
    async fn linger(&mut self) {
        if self.io.shutdown().await.is_err() {
            return;
        }
        let mut discard = vec![0u8; 4096];
        let mut total = 0;
        let _ = tokio::time::timeout(LINGER, async {
            while total < LINGER_BYTES {
                match self.io.read(&mut discard).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n,
                }
            }
        })
        .await;
    }

    /// Splices the client to the node after a 101, both ways, until both sides are done.
    async fn splice(&mut self, body: BodyReader, bwr: BackendWrite, e: &mut Entry) {
        let BodyReader {
            rd, buf: pending, ..
        } = body;
        let Some(mut node) = Backend::reunite(rd, bwr) else {
            return;
        };
        if !pending.is_empty() {
            if self.io.write_all(&pending).await.is_err() {
                return;
            }
            e.bytes_out += pending.len() as u64;
        }
        if !self.buf.is_empty() {
            if node.write_all(&self.buf).await.is_err() {
                return;
            }
            e.bytes_in += self.buf.len() as u64;
            self.buf.clear();
        }
        if self.io.flush().await.is_err() {
            return;
        }
        if let Ok((up, down)) = tokio::io::copy_bidirectional(&mut self.io, &mut node).await {
            e.bytes_in += up;
            e.bytes_out += down;
        }
    }
}

/// Streams the rest of a request body from the client to the node.
async fn pump<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    body: &mut ClientBody,
    node: &mut BackendWrite,
    chunk_out: bool,
    limit: Option<u64>,
    idle: Duration,
) -> Result<u64, BodyError> {
    let mut total = 0u64;
    let mut framed = Vec::new();
    loop {
        if buf.is_empty() && !matches!(body, ClientBody::Done) {
            if buf.capacity() < READ_CHUNK {
                buf.reserve(READ_CHUNK);
            }
            match within(idle, rd.read_buf(buf)).await {
                Ok(0) => return Err(BodyError::Gone),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(BodyError::Timeout),
                Err(_) => return Err(BodyError::Gone),
            }
        }
        let data = match body {
            ClientBody::Done => {
                if chunk_out {
                    node.write_all(b"0\r\n\r\n")
                        .await
                        .map_err(|_| BodyError::Node)?;
                }
                return Ok(total);
            }
            ClientBody::Length(left) => {
                let n = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= n as u64;
                if *left == 0 {
                    *body = ClientBody::Done;
                }
                buf.split_to(n)
            }
            ClientBody::Chunked(dec) => {
                let step = dec.step(buf)?;
                buf.advance(step.framing);
                let data = buf.split_to(step.data);
                if step.done {
                    *body = ClientBody::Done;
                }
                data
            }
        };
        if data.is_empty() {
            continue;
        }
        total += data.len() as u64;
        if limit.is_some_and(|l| total > l) {
            return Err(BodyError::TooLarge);
        }
        let w = if chunk_out {
            framed.clear();
            framed.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            framed.extend_from_slice(&data);
            framed.extend_from_slice(b"\r\n");
            node.write_all(&framed).await
        } else {
            node.write_all(&data).await
        };
        w.map_err(|_| BodyError::Node)?;
    }
}

/// How the body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// No body; a `Content-Length` to pass on as is (HEAD, 304).
    Empty(Option<u64>),
    Length(u64),
    Chunked,
    /// Up to the close (an HTTP/1.0 client, length unknown).
    Close,
}

/// Writes a response head for the client.
fn write_head(out: &mut Vec<u8>, h: &RespHead, framing: Out, close: bool, http10: bool) {
    let reason = h.reason();
    out.extend_from_slice(format!("HTTP/1.1 {} ", h.status).as_bytes());
    if reason.is_empty() {
        out.extend_from_slice(shared::reason(h.status).as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    for (n, v) in h.passed() {
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        Out::Empty(Some(n)) | Out::Length(n) => {
            out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
        }
        Out::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        Out::Empty(None) | Out::Close => {}
    }
    if h.status == 101 {
        out.extend_from_slice(b"Connection: Upgrade\r\nUpgrade: websocket\r\n");
    } else if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends a body piece, chunk-framed or not.
fn append(out: &mut Vec<u8>, data: &[u8], chunked: bool) {
    if chunked {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(data);
    }
}

/// Reads the node's answer and relays it to the client.
#[allow(clippy::too_many_arguments)]
async fn respond<W: AsyncWrite + Unpin>(
    w: &mut W,
    brd: BackendRead,
    req: &Req,
    keep_alive: bool,
    pump_done: &AtomicBool,
    started: &AtomicBool,
    idle: Duration,
    shared: &Shared,
    e: &mut Entry,
) -> Result<Responded, RespondError> {
    let (h, mut body) = response::read_head(brd, req.is_head())
        .await
        .map_err(RespondError::Node)?;
    e.status = h.status;
    let http10 = req.version == ReqVersion::Http10;
    if h.status == 101 {
        if !req.websocket {
            return Err(RespondError::Node(BadResponse::Head(
                "a 101 to a request that asked for no upgrade".into(),
            )));
        }
        let mut out = Vec::with_capacity(h.buf.len() + 64);
        write_head(&mut out, &h, Out::Empty(None), false, false);
        started.store(true, Ordering::Relaxed);
        within(idle, async {
            w.write_all(&out).await?;
            w.flush().await
        })
        .await
        .map_err(|_| RespondError::Client)?;
        e.bytes_out += out.len() as u64;
        return Ok(Responded::Upgrade(body));
    }
    let framing = match h.framing {
        Framing::Empty => Out::Empty(if h.status == 204 || h.status < 200 {
            None
        } else {
            h.length
        }),
        Framing::Length(n) => Out::Length(n),
        Framing::Chunked | Framing::Close if !http10 => Out::Chunked,
        Framing::Chunked | Framing::Close => Out::Close,
    };
    let close = !keep_alive
        || framing == Out::Close
        || !pump_done.load(Ordering::Relaxed)
        || shared.shutting_down();
    let chunked = framing == Out::Chunked;
    let mut out = Vec::with_capacity(h.buf.len() + 64 + body.buf.len().min(READ_CHUNK));
    write_head(&mut out, &h, framing, close, http10);
    // What came with the head goes with it, in one write.
    if !body.buf.is_empty() && !body.is_done() {
        match body.chunk().await {
            Ok(Some(piece)) => append(&mut out, &piece, chunked),
            Ok(None) => {}
            Err(err) => return Err(RespondError::Node(err)),
        }
    }
    let mut finished = body.is_done();
    if finished && chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    started.store(true, Ordering::Relaxed);
    within(idle, w.write_all(&out))
        .await
        .map_err(|_| RespondError::Client)?;
    e.bytes_out += out.len() as u64;
    while !finished {
        let piece = match body.chunk().await {
            Ok(Some(p)) => p,
            Ok(None) => {
                finished = true;
                if chunked {
                    within(idle, w.write_all(b"0\r\n\r\n"))
                        .await
                        .map_err(|_| RespondError::Client)?;
                    e.bytes_out += 5;
                }
                continue;
            }
            Err(err) => {
                let _ = w.flush().await;
                return Err(RespondError::Node(err));
            }
        };
        let sent = if chunked {
            out.clear();
            append(&mut out, &piece, true);
            within(idle, w.write_all(&out)).await.map(|()| out.len())
        } else {
            within(idle, w.write_all(&piece))
                .await
                .map(|()| piece.len())
        };
        e.bytes_out += sent.map_err(|_| RespondError::Client)? as u64;
    }
    within(idle, w.flush())
        .await
        .map_err(|_| RespondError::Client)?;
    Ok(Responded::Done {
        close: close || !pump_done.load(Ordering::Relaxed),
    })
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
pub(crate) struct Rewind<S> {
    pre: Bytes,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(buf.remaining());
            let piece = self.pre.split_to(n);
            buf.put_slice(&piece);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
