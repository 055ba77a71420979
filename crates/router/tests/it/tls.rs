//! TLS: the certificate chosen by SNI (exact, wildcard, default), HTTP/1.1 and HTTP/2 by ALPN,
//! h2c by prior knowledge on a plain listener.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::support::*;

/// Accepts any certificate: the tests look at which one was presented.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS connection to the router for SNI `name` offering `alpn`.
pub(crate) async fn tls_connect(r: &Router, name: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let tcp = TcpStream::connect(r.tls).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
        .unwrap()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn sni_chooses_the_certificate() {
    let mut r = Router::start().await;
    let _n = named_node(&r, "a");
    let certs = vec![
        cert(Some("a.com"), &["a.com"]),
        cert(Some("*.b.com"), &["*.b.com"]),
        cert(None, &["default.test"]),
    ];
    let wanted = certs.clone();
    r.tweak(|s| s.certs = certs).await;
    r.set_routes(vec![route("a.com", "a")]).await;
    for (name, i) in [
        ("a.com", 0),
        ("x.b.com", 1),
        ("y.x.b.com", 2),
        ("c.com", 2),
        ("A.COM", 0),
    ] {
        let s = tls_connect(&r, name, &[b"http/1.1"]).await;
        let presented = s.get_ref().1.peer_certificates().unwrap()[0].clone();
        assert_eq!(presented, der(&wanted[i].cert_pem), "{name}");
    }
    // HTTPS over HTTP/1.1.
    let s = tls_connect(&r, "a.com", &[b"http/1.1"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (rd, mut wr) = tokio::io::split(s);
    wr.write_all(b"GET / HTTP/1.1\r\nHost: a.com\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut BufReader::new(rd), false).await.unwrap();
    assert_eq!(resp.text(), "a");
    // Without a default certificate, an unknown name fails the handshake.
    let only = vec![cert(Some("a.com"), &["a.com"])];
    r.tweak(|s| s.certs = only).await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    let tcp = TcpStream::connect(r.tls).await.unwrap();
    let res = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("nope.com").unwrap(), tcp)
        .await;
    assert!(res.is_err());
}

#[tokio::test]
async fn a_bad_certificate_is_refused_and_the_old_ones_stay() {
    let mut r = Router::start().await;
    let good = cert(Some("a.com"), &["a.com"]);
    let g = good.clone();
    r.tweak(|s| s.certs = vec![g]).await;
    let mut bad = cert(Some("b.com"), &["b.com"]);
    bad.key_pem = cert(None, &["x"]).key_pem;
    bad.vassal = Some("shop".into());
    let mut s = r.settings.clone();
    s.certs.push(bad);
    let err = r.apply(s).await.unwrap();
    assert!(
        err.starts_with(
            "certificate `b.com` of vassal `shop`: the key does not match the certificate"
        ),
        "{err}"
    );
    let c = tls_connect(&r, "a.com", &[]).await;
    assert_eq!(
        c.get_ref().1.peer_certificates().unwrap()[0],
        der(&good.cert_pem)
    );
}

#[tokio::test]
async fn https_vars_reach_the_node() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("shop");
    let _n = echo_vars_node(&dir.join("app.sock"));
    r.tweak(|s| s.certs = vec![cert(None, &["shop.com"])]).await;
    r.set_routes(vec![route("shop.com", "shop")]).await;
    let s = tls_connect(&r, "shop.com", &[b"http/1.1"]).await;
    let (rd, mut wr) = tokio::io::split(s);
    wr.write_all(b"GET /x HTTP/1.1\r\nHost: shop.com\r\nX-Forwarded-Proto: http\r\n\r\n")
        .await
        .unwrap();
    let v = read_response(&mut BufReader::new(rd), false)
        .await
        .unwrap()
        .vars();
    assert_eq!(v["HTTPS"], "on");
    assert_eq!(v["UWSGI_SCHEME"], "https");
    assert_eq!(v["HTTP_X_FORWARDED_PROTO"], "https");
    assert_eq!(v["SERVER_PORT"], r.tls.port().to_string());
}

/// Sends `n` concurrent requests over one HTTP/2 connection on `io` and checks their answers.
async fn h2_requests<I>(io: I, host: &str, scheme: &str)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let mut sender = sender.clone();
        let uri = format!("{scheme}://{host}/p{i}?q={i}");
        let host = host.to_owned();
        tasks.push(tokio::spawn(async move {
            let body = format!("body {i}");
            let req = hyper::Request::post(uri)
                .header("cookie", "a=1")
                .header("cookie", "b=2")
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let resp = sender.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            let text = String::from_utf8(
                resp.into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .to_vec(),
            )
            .unwrap();
            let v: std::collections::HashMap<&str, &str> =
                text.lines().filter_map(|l| l.split_once('=')).collect();
            assert_eq!(v["SERVER_PROTOCOL"], "HTTP/2.0");
            assert_eq!(v["REQUEST_URI"], format!("/p{i}?q={i}"));
            assert_eq!(v["BODY"], format!("body {i}"));
            assert_eq!(v["HTTP_COOKIE"], "a=1; b=2");
            assert_eq!(v["HTTP_HOST"], host.as_str());
            v.get("HTTPS").map(|s| s.to_string())
        }));
    }
    for t in tasks {
        let https = t.await.unwrap();
        assert_eq!(https.as_deref(), (scheme == "https").then_some("on"));
    }
    // An unknown host on the same connection: 404.
    let mut sender = sender.clone();
    let resp = sender
        .send_request(
            hyper::Request::get(format!("{scheme}://nope.org/"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn http2_by_alpn_and_h2c() {
    let mut r = Router::start().await;
    let dir = r.vassal_dir("shop");
    let _n = echo_vars_node(&dir.join("app.sock"));
    r.tweak(|s| s.certs = vec![cert(None, &["shop.com"])]).await;
    r.set_routes(vec![route("shop.com", "shop")]).await;
    let s = tls_connect(&r, "shop.com", &[b"h2", b"http/1.1"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2_requests(s, "shop.com", "https").await;
    let tcp = TcpStream::connect(r.plain).await.unwrap();
    h2_requests(tcp, "shop.com", "http").await;
}
