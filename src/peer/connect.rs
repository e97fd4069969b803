//! Reaching a server: the room URL, TLS (system roots, a private CA, or none), custom
//! headers, and telling a refused handshake from a failed connection.

use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How to treat the server's certificate on `wss://`.
pub struct TlsOptions<'a> {
    pub ca: Option<&'a Path>,
    pub insecure: bool,
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The server answered the upgrade with an HTTP status (and maybe a body).
    Refused {
        status: u16,
        reason: String,
        body: String,
    },
    Failed(String),
}

pub async fn connect(
    url: &str,
    headers: &[(String, String)],
    tls: &TlsOptions<'_>,
) -> Result<Socket, ConnectError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| ConnectError::Failed(format!("{url}: {e}")))?;
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConnectError::Failed(format!("bad header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| ConnectError::Failed(format!("bad value for header {name}")))?;
        request.headers_mut().append(name, value);
    }
    let connector = if url.starts_with("wss://") {
        Some(Connector::Rustls(Arc::new(
            tls_config(tls).map_err(ConnectError::Failed)?,
        )))
    } else {
        None
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(16 << 20));
    match tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector)
        .await
    {
        Ok((socket, _response)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = response.status();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                .unwrap_or_default();
            Err(ConnectError::Refused {
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_owned(),
                body,
            })
        }
        Err(e) => Err(ConnectError::Failed(explain(url, &e))),
    }
}

fn tls_config(options: &TlsOptions<'_>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if options.insecure {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth());
    }
    let mut roots = rustls::RootCertStore::empty();
    match options.ca {
        Some(path) => {
            use rustls::pki_types::pem::PemObject as _;
            let shown = path.display();
            let certificates = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("{shown}: {e}"))?;
            for certificate in certificates {
                let certificate = certificate.map_err(|e| format!("{shown}: {e}"))?;
                roots
                    .add(certificate)
                    .map_err(|e| format!("{shown}: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!("{shown}: no certificates found"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// `--insecure`: accepts any certificate, for tests against self-signed servers. Signatures
/// are still checked so the handshake itself is sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The connection error in words that say what to do: rustls reports a plain-HTTP answer to
/// its ClientHello as a "corrupt message of type InvalidContentType".
fn explain(url: &str, error: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    let text = error.to_string();
    let tls_to_plain =
        matches!(error, Error::Tls(_) | Error::Io(_)) && text.contains("InvalidContentType");
    if url.starts_with("wss://") && tls_to_plain {
        let plain = url.replacen("wss://", "ws://", 1);
        return format!(
            "{url}: the server does not speak TLS (it answered in plain text); \
             try {plain}"
        );
    }
    // A TLS server read as plain HTTP answers with a TLS alert, which is no HTTP at all.
    if url.starts_with("ws://") && text.contains("invalid HTTP version") {
        let secure = url.replacen("ws://", "wss://", 1);
        return format!("{url}: the server did not answer in HTTP (is it TLS?); try {secure}");
    }
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        return format!(
            "{url}: {text}: the server's certificate is not signed by a CA this machine \
             trusts; give its CA with --ca FILE, or --insecure to skip the check (tests only)"
        );
    }
    format!("{url}: {text}")
}
