//! The harness: a router served in this process on 127.0.0.1 listeners with a fake control
//! stream, a temp `RUN/vassals`, small uwsgi and HTTP nodes written here, and clients.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use liege_proto::router::{
    Balance, Cert, FrameDecoder, FromRouter, NodeProto, NodeState, Route, Settings, ToRouter,
    encode,
};
use liege_proto::uwsgi;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// A router under test.
pub struct Router {
    pub plain: SocketAddr,
    pub tls: SocketAddr,
    /// The subscription server's UDP address.
    pub subscription: SocketAddr,
    pub run: tempfile::TempDir,
    control: UnixStream,
    decoder: FrameDecoder,
    pub settings: Settings,
    pub routes: Vec<Route>,
    task: Option<JoinHandle<Result<(), liege_router::RouterError>>>,
    /// Counters messages seen while waiting for answers.
    pub counters: Vec<Vec<liege_proto::router::Counters>>,
}

/// Socket buffers of the router's client connections (and of [`Client::small`]): fixed and
/// small, so what sits in the kernel is bounded and what a test sees in flight is the router's.
pub const SOCKET_BUFFER: u32 = 256 * 1024;

fn listener() -> (OwnedFd, SocketAddr) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
    s.set_send_buffer_size(SOCKET_BUFFER).unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let l = s.listen(1024).unwrap().into_std().unwrap();
    let a = l.local_addr().unwrap();
    (OwnedFd::from(l), a)
}

/// The uid this test runs as (the owner of the sockets it makes).
pub fn my_uid() -> u32 {
    fs_err::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap()
}

impl Router {
    /// Starts a router with test settings (applied) and no routes.
    pub async fn start() -> Router {
        let (pf, plain) = listener();
        let (tf, tls) = listener();
        let (ours, theirs) = UnixStream::pair().unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let subscription = udp.local_addr().unwrap();
        let task = tokio::spawn(liege_router::serve(
            vec![
                liege_router::Listener { fd: pf, tls: false },
                liege_router::Listener { fd: tf, tls: true },
            ],
            theirs,
            Some(OwnedFd::from(udp)),
        ));
        let run = tempfile::tempdir().unwrap();
        fs_err::create_dir(run.path().join("vassals")).unwrap();
        let settings = Router::test_settings(run.path());
        let mut r = Router {
            plain,
            tls,
            subscription,
            run,
            control: ours,
            decoder: FrameDecoder::new(),
            settings,
            routes: Vec::new(),
            task: Some(task),
            counters: Vec::new(),
        };
        let s = r.settings.clone();
        assert_eq!(r.apply(s).await, None);
        r
    }

    /// The settings tests start with: no certificates, short timeouts, no per-address limit.
    pub fn test_settings(run_dir: &Path) -> Settings {
        Settings {
            certs: Vec::new(),
            trusted_proxies: Vec::new(),
            http_to: Vec::new(),
            run_dir: run_dir.to_str().unwrap().into(),
            connect_timeout_ms: 1500,
            header_timeout_ms: 3000,
            idle_timeout_ms: 5000,
            max_header_bytes: 8192,
            max_conns_per_ip: 0,
            balance: Balance::LeastConn,
            access_log: false,
        }
    }

    async fn send(&mut self, msg: &ToRouter) {
        self.control.write_all(&encode(msg)).await.unwrap();
    }

    /// The next message from the router.
    pub async fn recv(&mut self) -> FromRouter {
        let mut buf = [0u8; 65536];
        loop {
            if let Some(m) = self.decoder.next_message::<FromRouter>().unwrap() {
                return m;
            }
            let n = self.control.read(&mut buf).await.unwrap();
            assert!(n > 0, "the router closed its control channel");
            self.decoder.feed(&buf[..n]);
        }
    }

    /// Sends settings and waits for the answer (`Some(error)` when refused).
    pub async fn apply(&mut self, s: Settings) -> Option<String> {
        self.send(&ToRouter::Settings(s.clone())).await;
        loop {
            match self.recv().await {
                FromRouter::Applied { error } => {
                    if error.is_none() {
                        self.settings = s;
                    }
                    return error;
                }
                FromRouter::Counters(c) => self.counters.push(c),
            }
        }
    }

    /// Sends the route table, then waits until it is in (settings sent after it are answered
    /// after it is applied).
    pub async fn set_routes(&mut self, routes: Vec<Route>) {
        self.routes = routes.clone();
        self.send(&ToRouter::Routes(routes)).await;
        let s = self.settings.clone();
        assert_eq!(self.apply(s).await, None);
    }

    /// Changes the settings with `f` and applies them.
    pub async fn tweak(&mut self, f: impl FnOnce(&mut Settings)) {
        let mut s = self.settings.clone();
        f(&mut s);
        assert_eq!(self.apply(s).await, None);
    }

    /// Makes `RUN/vassals/NAME` and returns it.
    pub fn vassal_dir(&self, name: &str) -> PathBuf {
        let d = self.run.path().join("vassals").join(name);
        fs_err::create_dir_all(&d).unwrap();
        d
    }

    /// Closes the control channel and waits for `serve` to return.
    pub async fn stop(mut self) -> Result<(), liege_router::RouterError> {
        let task = self.task.take().unwrap();
        drop(self.control);
        task.await.unwrap()
    }
}

/// A route for `domain` to `vassal`'s `app.sock` (uwsgi, up, our uid).
pub fn route(domain: &str, vassal: &str) -> Route {
    Route {
        domain: domain.into(),
        vassal: vassal.into(),
        uid: my_uid(),
        socket: "app.sock".into(),
        proto: NodeProto::Uwsgi,
        limit_post: None,
        state: NodeState::Up,
    }
}

/// A self-signed certificate for `names`, served for SNI `sni`.
pub fn cert(sni: Option<&str>, names: &[&str]) -> Cert {
    let ck =
        rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    Cert {
        sni: sni.map(str::to_owned),
        cert_pem: ck.cert.pem(),
        key_pem: ck.key_pair.serialize_pem(),
        vassal: None,
    }
}

/// A uwsgi request as a node sees it.
#[derive(Debug, Clone, Default)]
pub struct UwsgiReq {
    pub vars: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl UwsgiReq {
    /// The value of `key` (the only one: panics on two).
    pub fn var(&self, key: &str) -> Option<&str> {
        let v: Vec<&str> = self
            .vars
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(v.len() <= 1, "{key} twice: {v:?}");
        v.first().copied()
    }
}

/// Reads a uwsgi packet's head (vars) from `s`.
pub async fn read_uwsgi_vars<R: AsyncRead + Unpin>(s: &mut R) -> Vec<(String, String)> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await.unwrap();
    let h = uwsgi::parse_header(&h).unwrap();
    let mut block = vec![0u8; usize::from(h.datasize)];
    s.read_exact(&mut block).await.unwrap();
    uwsgi::vars(&block)
        .map(|r| {
            let (k, v) = r.unwrap();
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// Reads a whole uwsgi request (vars, then `CONTENT_LENGTH` bytes).
pub async fn read_uwsgi<R: AsyncRead + Unpin>(s: &mut R) -> UwsgiReq {
    let vars = read_uwsgi_vars(s).await;
    let len: usize = vars
        .iter()
        .find(|(k, _)| k == "CONTENT_LENGTH")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    UwsgiReq { vars, body }
}

/// A fake node listening on a unix socket.
pub struct Node {
    pub path: PathBuf,
    pub hits: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Node {
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves each connection on `path` with `f`.
pub fn serve_unix<F, Fut>(path: &Path, f: F) -> Node
where
    F: Fn(UnixStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let _ = fs_err::remove_file(path);
    let l = UnixListener::bind(path).unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let f = Arc::new(f);
    let task = tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            h.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(f(s));
        }
    });
    Node {
        path: path.to_owned(),
        hits,
        task,
    }
}

/// A uwsgi node answering each request with `reply(request)` (a whole HTTP response).
pub fn uwsgi_node<F>(path: &Path, reply: F) -> Node
where
    F: Fn(UwsgiReq) -> Vec<u8> + Send + Sync + 'static,
{
    let reply = Arc::new(reply);
    serve_unix(path, move |mut s| {
        let reply = reply.clone();
        async move {
            let req = read_uwsgi(&mut s).await;
            let out = reply(req);
            let _ = s.write_all(&out).await;
        }
    })
}

/// A uwsgi node of vassal `name` (in `RUN/vassals/NAME/app.sock`) answering `200` with its
/// name as the body.
pub fn named_node(r: &Router, name: &str) -> Node {
    let dir = r.vassal_dir(name);
    let name = name.to_owned();
    uwsgi_node(&dir.join("app.sock"), move |_| ok(name.as_bytes()))
}

/// A uwsgi node that answers with the vars it got as `KEY=VALUE` lines.
pub fn echo_vars_node(path: &Path) -> Node {
    uwsgi_node(path, |req| {
        let mut body = String::new();
        for (k, v) in &req.vars {
            body.push_str(&format!("{k}={v}\n"));
        }
        body.push_str(&format!("BODY={}\n", String::from_utf8_lossy(&req.body)));
        ok(body.as_bytes())
    })
}

/// `200 OK` with `body`.
pub fn ok(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `KEY=VALUE` lines of an [`echo_vars_node`] answer.
    pub fn vars(&self) -> HashMap<String, String> {
        self.text()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect()
    }
}

/// Reads one response from `r` (`head`: the request was HEAD); `None` when the connection
/// closes before a status line.
pub async fn read_response<R: AsyncRead + Unpin>(r: &mut BufReader<R>, head: bool) -> Option<Resp> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            r.read_line(&mut line).await.ok()?;
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':')?;
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        if status < 200 && status != 101 {
            continue;
        }
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if head || status == 204 || status == 304 || status == 101 {
        } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            loop {
                line.clear();
                r.read_line(&mut line).await.ok()?;
                let n = usize::from_str_radix(line.trim_end(), 16).ok()?;
                let mut chunk = vec![0u8; n + 2];
                r.read_exact(&mut chunk).await.ok()?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(n) = get("content-length") {
            body = vec![0u8; n.parse().ok()?];
            r.read_exact(&mut body).await.ok()?;
        } else {
            r.read_to_end(&mut body).await.ok()?;
        }
        return Some(Resp {
            status,
            headers,
            body,
        });
    }
}

/// A keep-alive client connection.
pub struct Client {
    pub r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    pub w: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        Client {
            r: BufReader::new(r),
            w,
        }
    }

    /// A connection with small socket buffers.
    pub async fn small(addr: SocketAddr) -> Client {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_recv_buffer_size(SOCKET_BUFFER).unwrap();
        s.set_send_buffer_size(SOCKET_BUFFER).unwrap();
        let s = s.connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        Client {
            r: BufReader::new(r),
            w,
        }
    }

    pub async fn send(&mut self, raw: &[u8]) {
        self.w.write_all(raw).await.unwrap();
    }

    pub async fn response(&mut self) -> Option<Resp> {
        read_response(&mut self.r, false).await
    }

    /// Whether the router closed the connection (reads to the end; a reset counts).
    pub async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest).await {
            Ok(_) => rest.is_empty(),
            Err(_) => true,
        }
    }
}

/// Sends `raw` on a new connection and reads one response.
pub async fn http(addr: SocketAddr, raw: &str) -> Resp {
    let mut c = Client::connect(addr).await;
    c.send(raw.as_bytes()).await;
    c.response().await.expect("a response")
}

/// `GET /` for `host` (with `Connection: close`).
pub async fn get(addr: SocketAddr, host: &str) -> Resp {
    http(
        addr,
        &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    )
    .await
}
