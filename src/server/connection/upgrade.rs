//! The WebSocket opening handshake (RFC 6455 §4.2), done here rather than by axum's
//! `WebSocketUpgrade` so the session gets tungstenite's own stream over the bare TCP socket:
//! no wrapper conversions per message, and our [`Transport`] underneath (which also carries
//! the session's own outgoing frames, see `outgoing`).

use std::fmt;
use std::future::Future;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use super::outgoing::SharedOutgoing;
use super::transport::{SharedGuard, Stream, Transport};
use tokio_rustls::server::TlsStream;

/// A server-side WebSocket connection.
pub type Socket = WebSocketStream<Transport>;

/// Why an upgrade request was refused; each is a 400 with this reason (PROTOCOL §1), except a
/// method other than GET (405).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    NotGet,
    NotHttp11,
    NoConnectionUpgrade,
    NotWebSocketUpgrade,
    UnsupportedVersion,
    NoKey,
    /// A body (Content-Length or Transfer-Encoding): after an upgrade the connection
    /// carries frames, and a body would be read as frames, or hide them (request smuggling).
    HasBody,
    /// The connection cannot be taken over (no upgrade support on this connection).
    NotUpgradable,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotGet => "a WebSocket upgrade must be a GET request",
            Self::NotHttp11 => "a WebSocket upgrade needs HTTP/1.1",
            Self::NoConnectionUpgrade => "the Connection header does not include 'upgrade'",
            Self::NotWebSocketUpgrade => "the Upgrade header is not 'websocket'",
            Self::UnsupportedVersion => "only WebSocket version 13 is supported",
            Self::NoKey => "the Sec-WebSocket-Key header is missing",
            Self::HasBody => "a WebSocket upgrade request must not have a body",
            Self::NotUpgradable => "this connection cannot be upgraded",
        })
    }
}

impl IntoResponse for HandshakeError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::NotGet => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut response = (status, format!("{self}\n")).into_response();
        if self == Self::UnsupportedVersion {
            // RFC 6455 §4.4: tell the client which version to retry with.
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

/// A validated upgrade request, not yet answered.
pub struct Upgrade {
    on_upgrade: OnUpgrade,
    accept_key: HeaderValue,
}

impl Upgrade {
    /// Checks the request's handshake headers and takes over its connection.
    pub fn from_request(request: &mut Request) -> Result<Self, HandshakeError> {
        if request.method() != Method::GET {
            return Err(HandshakeError::NotGet);
        }
        if request.version() != Version::HTTP_11 {
            return Err(HandshakeError::NotHttp11);
        }
        let headers = request.headers();
        if !header_has_token(headers, header::CONNECTION, "upgrade") {
            return Err(HandshakeError::NoConnectionUpgrade);
        }
        if !header_has_token(headers, header::UPGRADE, "websocket") {
            return Err(HandshakeError::NotWebSocketUpgrade);
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(|v| v.as_bytes())
            != Some(b"13")
        {
            return Err(HandshakeError::UnsupportedVersion);
        }
        let key = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(HandshakeError::NoKey)?;
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get_all(header::CONTENT_LENGTH)
                .iter()
                .any(|length| length.as_bytes() != b"0");
        if has_body {
            return Err(HandshakeError::HasBody);
        }
        let accept_key = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header value");
        let on_upgrade = request
            .extensions_mut()
            .remove::<OnUpgrade>()
            .ok_or(HandshakeError::NotUpgradable)?;
        Ok(Self {
            on_upgrade,
            accept_key,
        })
    }

    /// The `101 Switching Protocols` answer, and the socket it leads to once it is sent
    /// (`None` if the client went away first).
    pub fn accept(
        self,
        config: WebSocketConfig,
        guard: Option<SharedGuard>,
        outgoing: Option<SharedOutgoing>,
    ) -> (Response, impl Future<Output = Option<Socket>> + Send) {
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept_key)
            .body(axum::body::Body::empty())
            .expect("a valid response");
        let socket = async move {
            let upgraded = self.on_upgrade.await.ok()?;
            // The listener hands hyper plain TCP or TLS streams; taking the stream back skips
            // two layers of boxed I/O on every read and write. Bytes the client sent right
            // after its request were read along with it.
            let (stream, read_buf) = match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => (Stream::Plain(parts.io.into_inner()), parts.read_buf),
                Err(upgraded) => match upgraded.downcast::<TokioIo<TlsStream<TcpStream>>>() {
                    Ok(parts) => (Stream::Tls(Box::new(parts.io.into_inner())), parts.read_buf),
                    Err(_) => {
                        tracing::error!("an upgraded connection was neither TCP nor TLS");
                        return None;
                    }
                },
            };
            let transport = Transport::new(stream, read_buf, guard, outgoing);
            Some(WebSocketStream::from_raw_socket(transport, Role::Server, Some(config)).await)
        };
        (response, socket)
    }
}

/// Whether a comma-separated header (any of its values) lists `token`, ignoring case.
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = Request::builder().uri("/room/a/websocket");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    const GOOD: [(&str, &str); 4] = [
        ("Connection", "keep-alive, Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn each_missing_or_wrong_header_has_its_own_reason() {
        let without = |name: &str| {
            let headers: Vec<_> = GOOD.iter().copied().filter(|(n, _)| *n != name).collect();
            Upgrade::from_request(&mut request(&headers)).err()
        };
        assert_eq!(
            without("Connection"),
            Some(HandshakeError::NoConnectionUpgrade)
        );
        assert_eq!(
            without("Upgrade"),
            Some(HandshakeError::NotWebSocketUpgrade)
        );
        assert_eq!(
            without("Sec-WebSocket-Version"),
            Some(HandshakeError::UnsupportedVersion)
        );
        assert_eq!(without("Sec-WebSocket-Key"), Some(HandshakeError::NoKey));
        for body in [("Content-Length", "5"), ("Transfer-Encoding", "chunked")] {
            let mut headers = GOOD.to_vec();
            headers.push(body);
            assert_eq!(
                Upgrade::from_request(&mut request(&headers)).err(),
                Some(HandshakeError::HasBody),
                "{body:?}"
            );
        }
        // Every header present, but no connection to take over outside a real server.
        assert_eq!(
            Upgrade::from_request(&mut request(&GOOD)).err(),
            Some(HandshakeError::NotUpgradable)
        );
        let mut post = request(&GOOD);
        *post.method_mut() = Method::POST;
        assert_eq!(
            Upgrade::from_request(&mut post).err(),
            Some(HandshakeError::NotGet)
        );
    }
}
