//! The control channel between an instance that runs the HTTP router (the emperor, or a master
//! run by hand) and the router process: what the router must serve (its settings, its
//! certificates, its route table), and what it reports back (per-vassal counters).
//!
//! The router is a process of its own (a tokio runtime: nothing forks it). Its parent binds the
//! listening sockets as root and hands them over at exec, named by [`LISTENERS`]; the control
//! channel is a unix stream socket named by [`CONTROL_FD`]. Each message is a frame: a 4-byte
//! little-endian length, then that many bytes of JSON. The parent sends the whole settings and
//! the whole route table each time one changes (a few hundred bytes a vassal), so the router
//! never has to merge partial updates and a reload of the router's config is one message.

use serde::{Deserialize, Serialize};

/// The environment variable naming the control socket's descriptor.
pub const CONTROL_FD: &str = "LIEGE_ROUTER_CONTROL_FD";
/// The environment variable listing the listening sockets: `FD:plain` or `FD:tls`, separated by
/// commas (`3:plain,4:tls`).
pub const LISTENERS: &str = "LIEGE_ROUTER_LISTENERS";
/// The environment variable naming the subscription server's UDP socket, when there is one.
pub const SUBSCRIPTION_FD: &str = "LIEGE_ROUTER_SUBSCRIPTION_FD";

/// The most bytes one frame may carry (a route table for tens of thousands of domains).
pub const MAX_FRAME: usize = 64 << 20;

/// A certificate and its key, PEM, for the domains it names by SNI (`None`: the default one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    /// The SNI name it answers (`example.com`, `*.example.com`); `None` for the default.
    pub sni: Option<String>,
    /// The certificate chain, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
    /// The vassal whose file named it (read as that vassal's uid), if one did.
    pub vassal: Option<String>,
}

/// How requests for a domain with several nodes are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// The node with the fewest requests in flight (ties: round robin).
    #[default]
    LeastConn,
    /// Each node in turn.
    RoundRobin,
}

/// Everything the router is configured with, but its routes and listening sockets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// The certificates of the TLS listeners.
    pub certs: Vec<Cert>,
    /// Clients whose `X-Forwarded-For`, `X-Forwarded-Proto` (and uWSGI-style variables) are
    /// believed: addresses or CIDR blocks (`10.0.0.0/8`, `::1`).
    pub trusted_proxies: Vec<String>,
    /// `http-to`: fixed backends for requests no route matches (`/path/app.sock`,
    /// `127.0.0.1:9000`), spoken to in HTTP/1.1.
    pub http_to: Vec<String>,
    /// The emperor's run dir (`RUN`); vassal sockets are reached as `RUN/vassals/NAME/SOCKET`,
    /// never following a symlink.
    pub run_dir: String,
    /// How long a request waits for a node (connecting, or while its vassal restarts).
    pub connect_timeout_ms: u64,
    /// How long a client may take to send a request's head.
    pub header_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept.
    pub idle_timeout_ms: u64,
    /// The most bytes of a request head (request line and headers); past it, 431.
    pub max_header_bytes: u64,
    /// The most connections one client address may hold at once.
    pub max_conns_per_ip: u32,
    /// How several nodes share a domain.
    pub balance: Balance,
    /// One log line per request on the router's stderr.
    pub access_log: bool,
}

/// How the router speaks to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeProto {
    /// The uwsgi protocol (a vassal's `socket`).
    Uwsgi,
    /// HTTP/1.1 (a vassal's `http-socket`).
    Http,
}

/// Whether a route's vassal serves now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Accepting requests.
    Up,
    /// Being (re)started: requests wait for it, up to the connect timeout.
    Starting,
}

/// One domain of one vassal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The domain, lower case, without a port; `*.example.com` for every subdomain.
    pub domain: String,
    /// The vassal's name (its folder in `RUN/vassals`).
    pub vassal: String,
    /// The uid the vassal's socket must be listened on by (`SO_PEERCRED`).
    pub uid: u32,
    /// The socket's name in the vassal's run dir.
    pub socket: String,
    /// How to speak to it.
    pub proto: NodeProto,
    /// `limit-post` of the vassal: past it, 413.
    pub limit_post: Option<u64>,
    /// Whether the vassal serves now.
    pub state: NodeState,
}

/// What the parent tells the router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToRouter {
    /// The settings, whole (the first message, then again on each change).
    Settings(Settings),
    /// The route table, whole.
    Routes(Vec<Route>),
}

/// A vassal's traffic through the router since the router started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// The vassal.
    pub vassal: String,
    /// Requests answered.
    pub requests: u64,
    /// Of them, answered 4xx.
    pub status_4xx: u64,
    /// Of them, answered 5xx (by the vassal or by the router).
    pub status_5xx: u64,
    /// Request bytes sent to the vassal.
    pub bytes_in: u64,
    /// Response bytes sent to clients.
    pub bytes_out: u64,
}

/// What the router tells its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FromRouter {
    /// The router applied a settings message (or says why it could not).
    Applied {
        /// `None` when applied; else why not (a certificate that does not parse...).
        error: Option<String>,
    },
    /// Every vassal's counters, sent every second while they change.
    Counters(Vec<Counters>),
}

/// A frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is past [`MAX_FRAME`].
    #[error("a router control frame of {len} bytes, more than {MAX_FRAME}")]
    TooLarge {
        /// The announced length.
        len: usize,
    },
    /// The JSON is not a message.
    #[error("a router control frame that is not a message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes `msg` as one frame.
pub fn encode<M: Serialize>(msg: &M) -> Vec<u8> {
    let json = serde_json::to_vec(msg).unwrap_or_default();
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(json.len() + 4);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&json);
    out
}

/// Splits a byte stream into messages.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes read from the stream.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, if one has arrived.
    pub fn next_message<M: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<M>, FrameError> {
        let Some(head) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge { len });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&self.buf[4..4 + len]);
        self.buf.drain(..4 + len);
        Ok(Some(msg?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_and_in_pieces() {
        let routes = ToRouter::Routes(vec![Route {
            domain: "*.example.com".into(),
            vassal: "shop".into(),
            uid: 10001,
            socket: "app.sock".into(),
            proto: NodeProto::Uwsgi,
            limit_post: Some(1 << 20),
            state: NodeState::Up,
        }]);
        let bytes = [encode(&routes), encode(&ToRouter::Routes(Vec::new()))].concat();
        let mut d = FrameDecoder::new();
        for chunk in bytes.chunks(7) {
            d.feed(chunk);
        }
        assert_eq!(d.next_message::<ToRouter>().unwrap(), Some(routes));
        assert_eq!(
            d.next_message::<ToRouter>().unwrap(),
            Some(ToRouter::Routes(Vec::new()))
        );
        assert_eq!(d.next_message::<ToRouter>().unwrap(), None);
        let mut d = FrameDecoder::new();
        d.feed(&(u32::MAX).to_le_bytes());
        assert!(matches!(
            d.next_message::<ToRouter>(),
            Err(FrameError::TooLarge { .. })
        ));
    }
}
