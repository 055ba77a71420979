//! TLS: the certificates of the settings, chosen by SNI, and the rustls configuration of the TLS
//! listeners (ring provider; ALPN `h2`, then `http/1.1`).
//!
//! A handshake takes the configuration of the moment it starts; a settings message builds a new
//! one and swaps it in, so handshakes in progress and connections already up are untouched.
//! The choice by SNI: the exact name, then a wildcard one label up (`*.example.com` for
//! `www.example.com`, as a certificate's wildcard covers one label only), then the default
//! certificate (`sni: None`); with none, the handshake fails.

use std::collections::HashMap;
use std::sync::Arc;

use liege_proto::router::Cert;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions};
use rustls::sign::CertifiedKey;

/// A certificate of the settings that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate {which}: no certificate in its PEM")]
    NoCertificate { which: String },
    #[error("certificate {which}: its PEM does not parse: {reason}")]
    Pem { which: String, reason: String },
    #[error("certificate {which}: no private key in its key PEM")]
    NoKey { which: String },
    #[error("certificate {which}: the key is not usable: {reason}")]
    Key { which: String, reason: String },
    #[error("certificate {which}: the key does not match the certificate: {reason}")]
    Mismatch { which: String, reason: String },
    #[error("certificate {which}: `{name}` is not a name SNI can ask for")]
    BadName { which: String, name: String },
    #[error("the TLS configuration cannot be built: {0}")]
    Config(String),
}

/// The certificates, by the names they answer.
#[derive(Debug, Default)]
pub(crate) struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` kept as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Certs {
    /// The certificate for SNI `name` (lower case), or the default one.
    fn choose(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            if let Some(k) = self.exact.get(name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.')
                && let Some(k) = self.wildcard.get(parent)
            {
                return Some(k.clone());
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        self.choose(name.as_deref())
    }
}

/// How a certificate is named in messages.
fn which(c: &Cert) -> String {
    let name = c.sni.as_deref().unwrap_or("(default)");
    match &c.vassal {
        Some(v) => format!("`{name}` of vassal `{v}`"),
        None => format!("`{name}`"),
    }
}

/// Parses one certificate and its key.
fn certified_key(c: &Cert) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = CertificateDer::pem_slice_iter(c.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem {
            which: which(c),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate { which: which(c) });
    }
    let key = PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => CertError::NoKey { which: which(c) },
        e => CertError::Pem {
            which: which(c),
            reason: e.to_string(),
        },
    })?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| CertError::Key {
            which: which(c),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(|e| CertError::Mismatch {
        which: which(c),
        reason: e.to_string(),
    })?;
    Ok(Arc::new(ck))
}

/// Parses every certificate.
pub(crate) fn certs(list: &[Cert]) -> Result<Certs, CertError> {
    let mut out = Certs::default();
    for c in list {
        let key = certified_key(c)?;
        match &c.sni {
            None => out.default = Some(key),
            Some(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let bad = || CertError::BadName {
                    which: which(c),
                    name: name.clone(),
                };
                match name.strip_prefix("*.") {
                    Some(base) => {
                        if base.is_empty() || base.contains('*') {
                            return Err(bad());
                        }
                        out.wildcard.insert(base.to_owned(), key);
                    }
                    None => {
                        if name.is_empty() || name.contains('*') {
                            return Err(bad());
                        }
                        out.exact.insert(name, key);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What survives a reload: the resumption state.
#[derive(Debug)]
pub(crate) struct Resumption {
    sessions: Arc<dyn StoresServerSessions>,
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
}

impl Resumption {
    pub(crate) fn new() -> Result<Resumption, CertError> {
        Ok(Resumption {
            sessions: rustls::server::ServerSessionMemoryCache::new(4096),
            ticketer: rustls::crypto::ring::Ticketer::new()
                .map_err(|e| CertError::Config(e.to_string()))?,
        })
    }
}

/// The rustls configuration serving `certs`.
pub(crate) fn server_config(
    certs: Certs,
    resumption: &Resumption,
) -> Result<Arc<ServerConfig>, CertError> {
    let mut provider = rustls::crypto::ring::default_provider();
    // The SHA-256 suites first, and the server's order wins: ring's SHA-512 (of the SHA-384
    // suites clients list first) is not accelerated on every CPU (on this AMD machine it costs
    // a tenth of a handshake), while its SHA-256 is; AES-128-GCM is no weaker in practice.
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => 1,
        _ => 2,
    });
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| CertError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(certs));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    config.session_storage = resumption.sessions.clone();
    config.ticketer = resumption.ticketer.clone();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(sni: Option<&str>, names: &[&str]) -> Cert {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        Cert {
            sni: sni.map(str::to_owned),
            cert_pem: ck.cert.pem(),
            key_pem: ck.key_pair.serialize_pem(),
            vassal: Some("shop".into()),
        }
    }

    #[test]
    fn chooses_exact_then_wildcard_then_default() {
        let list = [
            cert(Some("a.com"), &["a.com"]),
            cert(Some("*.b.com"), &["*.b.com"]),
            cert(None, &["default"]),
        ];
        let certs = certs(&list).unwrap();
        let end = |name: Option<&str>| certs.choose(name).map(|k| k.cert[0].clone());
        let der = |c: &Cert| CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap();
        assert_eq!(end(Some("a.com")), Some(der(&list[0])));
        assert_eq!(end(Some("x.b.com")), Some(der(&list[1])));
        assert_eq!(end(Some("y.x.b.com")), Some(der(&list[2])));
        assert_eq!(end(Some("b.com")), Some(der(&list[2])));
        assert_eq!(end(None), Some(der(&list[2])));
        let certs = super::certs(&list[..1]).unwrap();
        assert!(certs.choose(Some("other.com")).is_none());
    }

    #[test]
    fn bad_certificates_are_named() {
        let mut c = cert(Some("a.com"), &["a.com"]);
        c.key_pem = cert(None, &["x"]).key_pem;
        let e = certs(&[c]).unwrap_err();
        assert!(matches!(e, CertError::Mismatch { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("certificate `a.com` of vassal `shop`: the key does not match"),
            "{e}"
        );
        let mut c = cert(None, &["a.com"]);
        c.key_pem = "nothing".into();
        assert_eq!(
            certs(&[c]).unwrap_err().to_string(),
            "certificate `(default)` of vassal `shop`: no private key in its key PEM"
        );
        let mut c = cert(None, &["a.com"]);
        c.cert_pem = String::new();
        assert!(matches!(
            certs(&[c]).unwrap_err(),
            CertError::NoCertificate { .. }
        ));
        let c = cert(Some("a.*.com"), &["a.com"]);
        assert!(matches!(
            certs(&[c]).unwrap_err(),
            CertError::BadName { .. }
        ));
    }
}
