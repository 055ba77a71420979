//! The router alone, for measuring by hand: `bench_router LISTEN RUN_DIR DOMAIN VASSAL SOCKET
//! UID [access-log]` serves LISTEN (plain HTTP) with one route, DOMAIN to the uwsgi socket
//! RUN_DIR/vassals/VASSAL/SOCKET listened on by UID, until killed. `BENCH_TLS=ADDR,CRT,KEY`
//! adds a TLS listener; `BENCH_THREADS=N` serves on a multi-thread runtime of N threads instead
//! of `run`'s thread per core.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use liege_proto::router::{Balance, NodeProto, NodeState, Route, Settings, ToRouter, encode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [listen, run_dir, domain, vassal, socket, uid, rest @ ..] = a.as_slice() else {
        return Err(
            "usage: bench_router LISTEN RUN_DIR DOMAIN VASSAL SOCKET UID [access-log]".into(),
        );
    };
    let listener = std::net::TcpListener::bind(listen)?;
    let (ours, theirs) = UnixStream::pair()?;
    // `BENCH_TLS=ADDR,CRT,KEY`: a TLS listener too, with that certificate as the default one.
    let mut certs = Vec::new();
    let mut tls_listener = None;
    if let Ok(spec) = std::env::var("BENCH_TLS") {
        let [addr, crt, key] = spec.split(',').collect::<Vec<_>>()[..] else {
            return Err("BENCH_TLS=ADDR,CRT,KEY".into());
        };
        tls_listener = Some(std::net::TcpListener::bind(addr)?);
        certs.push(liege_proto::router::Cert {
            sni: None,
            cert_pem: fs_err::read_to_string(crt)?,
            key_pem: fs_err::read_to_string(key)?,
            vassal: None,
        });
    }
    let settings = Settings {
        certs,
        trusted_proxies: Vec::new(),
        http_to: Vec::new(),
        run_dir: run_dir.clone(),
        connect_timeout_ms: 3000,
        header_timeout_ms: 10_000,
        idle_timeout_ms: 60_000,
        max_header_bytes: 8192,
        max_conns_per_ip: 0,
        balance: Balance::LeastConn,
        access_log: rest.first().is_some_and(|s| s == "access-log"),
    };
    let routes = vec![Route {
        domain: domain.clone(),
        vassal: vassal.clone(),
        uid: uid.parse()?,
        socket: socket.clone(),
        proto: NodeProto::Uwsgi,
        limit_post: None,
        state: NodeState::Up,
    }];
    std::thread::spawn(move || {
        let mut ours = ours;
        std::io::Write::write_all(&mut ours, &encode(&ToRouter::Settings(settings))).ok();
        std::io::Write::write_all(&mut ours, &encode(&ToRouter::Routes(routes))).ok();
        // Keep the channel open (and drain what the router says) until the process ends.
        let mut sink = [0u8; 4096];
        while matches!(ours.read(&mut sink), Ok(n) if n > 0) {}
    });
    let mut listeners = vec![liege_router::Listener {
        fd: OwnedFd::from(listener),
        tls: false,
    }];
    if let Some(l) = tls_listener {
        listeners.push(liege_router::Listener {
            fd: OwnedFd::from(l),
            tls: true,
        });
    }
    // `BENCH_THREADS=N`: serve on N runtime threads instead of `run`'s one per core.
    match std::env::var("BENCH_THREADS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build()?;
            theirs.set_nonblocking(true)?;
            rt.block_on(async {
                let control = tokio::net::UnixStream::from_std(theirs)?;
                liege_router::serve(listeners, control, None).await?;
                Ok::<_, Box<dyn std::error::Error>>(())
            })?;
        }
        None => liege_router::run(listeners, theirs, None)?,
    }
    Ok(())
}
