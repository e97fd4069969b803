//! TLS termination with rustls: the certificate chain and key from PEM files, checked to
//! match, offered with ALPN `http/1.1`, and swappable at run time (SIGHUP) without touching
//! a connection: each new handshake asks [`ReloadableCertificate`] for the pair in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate and key could not be used; every message names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error(
        "{given} is set but {missing} is not: TLS needs both the certificate and its key \
         (tls-cert and tls-key in a config file, RDV_TLS_CERT and RDV_TLS_KEY in the \
         environment); set both, or neither to serve plain ws://"
    )]
    HalfPair {
        given: &'static str,
        missing: &'static str,
    },
    #[error("{cert} and {key} do not belong together: {problem}")]
    Mismatch {
        cert: String,
        key: String,
        problem: String,
    },
}

/// Where the pair comes from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads and checks the pair.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let shown = |path: &Path| path.display().to_string();
        let file_error = |path: &Path, problem: String| TlsError::File {
            path: shown(path),
            problem,
        };
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| file_error(path, crate::files::describe_io(&e)))
        };
        let cert_pem = read(&self.cert)?;
        let certs = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error(&self.cert, format!("not a PEM certificate chain: {e}")))?;
        if certs.is_empty() {
            return Err(file_error(
                &self.cert,
                "holds no certificate (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let key_pem = read(&self.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| file_error(&self.key, format!("not a PEM private key: {e}")))?;
        CertifiedKey::from_der(certs, key, &provider())
            .map(Arc::new)
            .map_err(|e| TlsError::Mismatch {
                cert: shown(&self.cert),
                key: shown(&self.key),
                problem: match e {
                    rustls::Error::InconsistentKeys(_) => {
                        "the private key is not the key of the certificate's first entry \
                         (check that --tls-key is the key the certificate was issued for)"
                            .into()
                    }
                    other => other.to_string(),
                },
            })
    }
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The pair new handshakes use; [`Self::replace`] swaps it for the next handshake on.
#[derive(Debug)]
pub struct ReloadableCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCertificate {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(key),
        })
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        *self.current.write().expect("never poisoned") = key;
    }
}

impl ResolvesServerCert for ReloadableCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().expect("never poisoned").clone())
    }
}

/// The acceptor for the listener: TLS 1.2 and 1.3, ALPN `http/1.1` (WebSockets over HTTP/2
/// are not served).
pub fn acceptor(certificate: Arc<ReloadableCertificate>) -> tokio_rustls::TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
