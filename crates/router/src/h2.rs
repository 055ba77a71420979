//! HTTP/2 client connections (over TLS by ALPN, or h2c by prior knowledge), served by hyper:
//! at most [`MAX_STREAMS`] streams at once, header lists up to the head limit, hyper's guards
//! against rapid resets. Each stream is forwarded like an HTTP/1 request (over HTTP/1.1 or
//! uwsgi to the node); its body is pumped by a task of its own while the answer streams back.
//! A body of unknown length (no `content-length`) is read whole first when the node speaks
//! uwsgi or the vassal has a `limit-post` (so 413 comes before anything is sent), else
//! streamed chunked. A connection with no stream for `idle_timeout` is closed (GOAWAY).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use liege_proto::router::NodeProto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::backend::BackendWrite;
use crate::config::Config;
use crate::forward::{self, BodyLen, Peer, Req, ReqVersion};
use crate::h1::{RESENDS, UNKNOWN_LENGTH_MAX};
use crate::head::{self, MAX_HEADERS};
use crate::response::{self, BadResponse, BodyReader, Framing};
use crate::routes::Picked;
use crate::shared::{self, Entry, Shared};

/// The most streams a client may have open at once.
pub(crate) const MAX_STREAMS: u32 = 100;

/// Streams in flight on a connection, and when the last one ended.
#[derive(Debug, Default)]
struct Activity {
    inflight: AtomicUsize,
    /// ms since the router started.
    last: AtomicU64,
}

/// A stream in flight.
#[derive(Debug)]
struct Active {
    act: Arc<Activity>,
    shared: Arc<Shared>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.act.last.store(self.shared.now_ms(), Ordering::Relaxed);
        self.act.inflight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves an HTTP/2 connection.
pub(crate) async fn serve<I>(shared: Arc<Shared>, io: I, peer: Peer)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (max_header, idle) = {
        let cfg = shared.config.load();
        (cfg.max_header_bytes, cfg.idle_timeout)
    };
    let mut b = http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(u32::try_from(max_header).unwrap_or(u32::MAX));
    let act = Arc::new(Activity::default());
    act.last.store(shared.now_ms(), Ordering::Relaxed);
    let svc = {
        let shared = shared.clone();
        let act = act.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            act.inflight.fetch_add(1, Ordering::Relaxed);
            let active = Active {
                act: act.clone(),
                shared: shared.clone(),
            };
            async move { Ok::<_, Infallible>(handle(shared, peer, active, req).await) }
        })
    };
    let conn = b.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut shutdown = shared.shutdown_rx();
    let mut closing = false;
    enum Ev {
        Done,
        Tick,
        Stop,
    }
    loop {
        let nap = {
            let since = shared
                .now_ms()
                .saturating_sub(act.last.load(Ordering::Relaxed));
            idle.saturating_sub(Duration::from_millis(since))
                .max(Duration::from_millis(10))
        };
        let ev = tokio::select! {
            _ = conn.as_mut() => Ev::Done,
            () = tokio::time::sleep(nap), if !closing => Ev::Tick,
            _ = shutdown.changed(), if !closing => Ev::Stop,
        };
        match ev {
            Ev::Done => return,
            Ev::Tick => {
                let since = shared
                    .now_ms()
                    .saturating_sub(act.last.load(Ordering::Relaxed));
                if act.inflight.load(Ordering::Relaxed) == 0 && Duration::from_millis(since) >= idle
                {
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            Ev::Stop => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// What finishes a stream's log line and counters when its answer is done (or dropped).
#[derive(Debug)]
struct Finish {
    shared: Arc<Shared>,
    entry: Entry,
    access_log: bool,
    /// Body bytes the pump task sent to the node.
    pumped: Arc<AtomicU64>,
    picked: Option<Picked>,
    _active: Active,
}

impl Drop for Finish {
    fn drop(&mut self) {
        self.entry.bytes_in += self.pumped.load(Ordering::Relaxed);
        self.shared.finish(&self.entry, self.access_log);
        self.picked.take();
    }
}

/// An answer's body.
#[derive(Debug)]
pub(crate) struct RespBody {
    kind: Kind,
    fin: Option<Finish>,
}

#[derive(Debug)]
enum Kind {
    Full(Option<Bytes>),
    Stream(BodyReader),
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = BadResponse;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BadResponse>>> {
        let this = self.get_mut();
        let piece = match &mut this.kind {
            Kind::Full(b) => b.take(),
            Kind::Stream(r) => match ready!(r.poll_chunk(cx)) {
                Ok(p) => p,
                Err(e) => {
                    if let Some(f) = &this.fin {
                        let target = f
                            .entry
                            .node
                            .as_ref()
                            .map(|n| n.target.to_string())
                            .unwrap_or_default();
                        f.shared.log.error(format_args!(
                            "node `{target}` (for {}): {e}; the stream is reset",
                            f.entry.domain
                        ));
                    }
                    return Poll::Ready(Some(Err(e)));
                }
            },
        };
        match piece {
            Some(b) => {
                if let Some(f) = &mut this.fin {
                    f.entry.bytes_out += b.len() as u64;
                }
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            None => {
                this.fin.take();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(b) => b.is_none(),
            Kind::Stream(r) => r.is_done(),
        }
    }
}

impl Finish {
    /// A page of the router's own.
    fn page(mut self, status: u16) -> Response<RespBody> {
        self.entry.status = status;
        let body = shared::page(status);
        self.entry.bytes_out = body.len() as u64;
        let mut r = Response::new(RespBody {
            kind: Kind::Full(Some(Bytes::from(body))),
            fin: Some(self),
        });
        *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    }
}

/// A request of an HTTP/2 head; `Err(status)` when it is refused.
fn request_of(parts: &http::request::Parts, body: &Incoming) -> Result<Req, u16> {
    if parts.method == Method::CONNECT {
        return Err(405);
    }
    if parts.headers.len() > MAX_HEADERS {
        return Err(431);
    }
    let mut buf = Vec::with_capacity(256);
    let mut push = |b: &[u8]| {
        let s = buf.len();
        buf.extend_from_slice(b);
        s..s + b.len()
    };
    let method = push(parts.method.as_str().as_bytes());
    let target = push(
        parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .as_bytes(),
    );
    let host = match (parts.uri.authority(), parts.headers.get(http::header::HOST)) {
        (Some(a), _) => a.as_str().as_bytes().to_vec(),
        (None, Some(h)) => h.as_bytes().to_vec(),
        (None, None) => return Err(400),
    };
    if !head::valid_host(&host) {
        return Err(400);
    }
    let host_span = push(&host);
    let mut headers = Vec::with_capacity(parts.headers.len());
    let mut skip = 0u128;
    let mut length = None;
    for (i, (name, value)) in parts.headers.iter().enumerate() {
        let n = name.as_str().as_bytes();
        let bit = 1u128 << i;
        if name == http::header::HOST
            || name == http::header::TE
            || name == http::header::EXPECT
            || n.contains(&b'_')
        {
            skip |= bit;
        } else if name == http::header::CONTENT_LENGTH {
            if length.is_some() {
                return Err(400);
            }
            length = Some(head::content_length(value.as_bytes()).ok_or(400u16)?);
            skip |= bit;
        }
        let ns = push(n);
        let vs = push(value.as_bytes());
        headers.push((ns, vs));
    }
    let body_len = match length {
        Some(0) => BodyLen::None,
        Some(n) => BodyLen::Known(n),
        None if body.is_end_stream() => BodyLen::None,
        None => BodyLen::Unknown,
    };
    Ok(Req {
        buf: Bytes::from(buf),
        method,
        target,
        version: ReqVersion::Http2,
        host: Some(host_span),
        domain: head::domain_of(&host),
        headers,
        skip,
        body: body_len,
        websocket: false,
    })
}

/// Handles one stream.
async fn handle(
    shared: Arc<Shared>,
    peer: Peer,
    active: Active,
    req: Request<Incoming>,
) -> Response<RespBody> {
    let started = Instant::now();
    let cfg = shared.config.load_full();
    let (parts, body) = req.into_parts();
    let (entry, req) = match request_of(&parts, &body) {
        Ok(r) => (Entry::new(&r, &peer, started, cfg.access_log), Some(r)),
        Err(status) => (Entry::refused(&peer, started, status), None),
    };
    let fin = Finish {
        shared: shared.clone(),
        entry,
        access_log: cfg.access_log,
        pumped: Arc::new(AtomicU64::new(0)),
        picked: None,
        _active: active,
    };
    match req {
        Some(req) => forward(&shared, &cfg, &peer, &req, body, fin).await,
        None => {
            let status = fin.entry.status;
            fin.page(status)
        }
    }
}

/// Reads a whole body of unknown length, at most `max` bytes: `Err(413)` past it, `Err(400)`
/// when the client's stream fails.
async fn collect(body: &mut Incoming, max: u64) -> Result<Bytes, u16> {
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| 400u16)?;
        if let Ok(data) = frame.into_data() {
            if (out.len() + data.len()) as u64 > max {
                return Err(413);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out.freeze())
}

/// Streams a request body to the node (chunked when `chunk_out`).
async fn pump(mut body: Incoming, mut node: BackendWrite, chunk_out: bool, pumped: Arc<AtomicU64>) {
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let w = if chunk_out {
            let mut out = Vec::with_capacity(data.len() + 16);
            out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
            out.extend_from_slice(&data);
            out.extend_from_slice(b"\r\n");
            node.write_all(&out).await
        } else {
            node.write_all(&data).await
        };
        if w.is_err() {
            return;
        }
        pumped.fetch_add(data.len() as u64, Ordering::Relaxed);
    }
    if chunk_out {
        let _ = node.write_all(b"0\r\n\r\n").await;
    }
    node.forget();
}

/// Forwards a stream to its node.
async fn forward(
    shared: &Arc<Shared>,
    cfg: &Config,
    peer: &Peer,
    req: &Req,
    mut body: Incoming,
    mut fin: Finish,
) -> Response<RespBody> {
    let path = req
        .target()
        .split(|&c| c == b'?')
        .next()
        .unwrap_or_default();
    if forward::decode_path(path).is_none() {
        return fin.page(400);
    }
    let Some(domain) = shared.route(cfg, &req.domain) else {
        return fin.page(404);
    };
    let limit = domain.limit_post;
    if let (BodyLen::Known(n), Some(l)) = (req.body, limit)
        && n > l
    {
        return fin.page(413);
    }
    let mut len = req.body;
    let mut whole = None;
    if len == BodyLen::Unknown && (domain.needs_length || limit.is_some()) {
        match collect(&mut body, limit.unwrap_or(UNKNOWN_LENGTH_MAX)).await {
            Ok(b) => {
                len = BodyLen::Known(b.len() as u64);
                whole = Some(b);
            }
            Err(status) => return fin.page(status),
        }
    }
    // Held whole, it can be sent again to a node that reset the connection unanswered.
    let resendable = (whole.is_some() || len == BodyLen::None) && req.idempotent();
    let mut resends = 0;
    let mut body = Some(body);
    let (node, h, reader) = loop {
        let (picked, backend) = match shared.connect(cfg, &req.domain).await {
            Ok(x) => x,
            Err(status) => {
                // Counted as the vassal's (its nodes are down or starting).
                fin.entry.node = domain.nodes.first().cloned();
                return fin.page(status);
            }
        };
        let node = picked.node.clone();
        fin.entry.node = Some(node.clone());
        fin.picked = Some(picked);
        let trusted = cfg.is_trusted(peer.client.ip());
        let mut out = match forward::encode(node.proto, req, peer, trusted, len) {
            Ok(o) => o,
            Err(_) => return fin.page(431),
        };
        if let Some(b) = &whole {
            out.extend_from_slice(b);
        }
        let (brd, mut bwr) = backend.split();
        if let Err(err) = bwr.write_all(&out).await {
            // A listener that closed with the connection in its backlog.
            if resendable && resends < RESENDS {
                resends += 1;
                shared.log.error(format_args!(
                    "node `{}` (for {}): writing to it failed: {err}; the request is sent again",
                    node.target, req.domain
                ));
                continue;
            }
            return fin.page(502);
        }
        fin.entry.bytes_in = out.len() as u64;
        if whole.is_none()
            && len != BodyLen::None
            && let Some(body) = body.take()
        {
            // Not resendable: this is the only try.
            let chunk_out = len == BodyLen::Unknown && node.proto == NodeProto::Http;
            tokio::spawn(pump(body, bwr, chunk_out, fin.pumped.clone()));
        } else {
            // Keep the node's read side open until its answer is read.
            bwr.forget();
        }
        match response::read_head(brd, req.is_head()).await {
            Ok((h, reader)) => break (node, h, reader),
            Err(e @ BadResponse::Unanswered(_)) if resendable && resends < RESENDS => {
                resends += 1;
                shared.log.error(format_args!(
                    "node `{}` (for {}): {e}; the request is sent again",
                    node.target, req.domain
                ));
            }
            Err(e) => {
                shared.log.error(format_args!(
                    "node `{}` (for {}): {e}",
                    node.target, req.domain
                ));
                return fin.page(502);
            }
        }
    };
    if h.status == 101 {
        shared.log.error(format_args!(
            "node `{}` (for {}): a 101 to an HTTP/2 request",
            node.target, req.domain
        ));
        return fin.page(502);
    }
    fin.entry.status = h.status;
    let mut resp = Response::builder()
        .status(StatusCode::from_u16(h.status).unwrap_or(StatusCode::BAD_GATEWAY));
    if let Some(hs) = resp.headers_mut() {
        for (n, v) in h.passed() {
            if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
                hs.append(n, v);
            }
        }
        let declared = match h.framing {
            Framing::Length(n) => Some(n),
            Framing::Empty if h.status != 204 && h.status >= 200 => h.length,
            _ => None,
        };
        if let Some(n) = declared {
            hs.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    let body = RespBody {
        kind: Kind::Stream(reader),
        fin: Some(fin),
    };
    match resp.body(body) {
        Ok(r) => r,
        Err(_) => Response::new(RespBody {
            kind: Kind::Full(None),
            fin: None,
        }),
    }
}
