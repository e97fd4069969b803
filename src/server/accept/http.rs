//! HTTP routes on the one port: the room upgrade, `/healthz` and `/metrics` (PROTOCOL §1, §7).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};

use super::listen::SocketPeer;
use crate::protocol::{CloseCode, RoomName};
use crate::server::ServerState;
use crate::server::admission::access::{self, ClientKey};
use crate::server::connection::guard::{GuardLimits, InboundGuard};
use crate::server::connection::outgoing::SharedOutgoing;
use crate::server::connection::session;
use crate::server::connection::upgrade::{Socket, Upgrade};
use crate::server::operations::metrics::Rejection;

pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(room_or_not_found)
        .with_state(state)
}

async fn healthz(State(state): State<Arc<ServerState>>) -> Response {
    let (status, body) = if state.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"draining"}"#)
    } else if state.registry.health() == crate::server::rooms::Health::Degraded {
        // Local peers are still served, but new joins would be refused: a load balancer
        // should send new clients elsewhere.
        (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"degraded"}"#)
    } else {
        (StatusCode::OK, r#"{"status":"ok"}"#)
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    state
        .metrics
        .unfinished_bytes
        .set(state.unfinished.held() as i64);
    state
        .metrics
        .unregistered
        .set(state.pending.waiting() as i64);
    state
        .metrics
        .outbound_bytes
        .set(state.outbound.used() as i64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

fn plain(status: StatusCode, line: impl Into<String>) -> Response {
    let mut body = line.into();
    body.push('\n');
    (status, body).into_response()
}

/// `/room/{room}/websocket`, matched by hand so that a malformed room name is a 400 with its
/// reason rather than a 404 from a router that did not match.
async fn room_or_not_found(
    State(state): State<Arc<ServerState>>,
    mut request: Request,
) -> Response {
    let path = request.uri().path();
    let Some(raw_room) = path
        .strip_prefix("/room/")
        .and_then(|rest| rest.strip_suffix("/websocket"))
    else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let room = match RoomName::from_path_segment(raw_room) {
        Ok(room) => room,
        Err(error) => return plain(StatusCode::BAD_REQUEST, error.to_string()),
    };
    if let Some(pattern) = &state.config.room_pattern
        && !pattern.is_match(room.as_str())
    {
        state.metrics.rejected(Rejection::RoomPattern);
        return plain(
            StatusCode::BAD_REQUEST,
            format!(
                "the room name does not match this server's pattern {}",
                pattern.as_str()
            ),
        );
    }
    let wants_websocket = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        let mut response = plain(
            StatusCode::UPGRADE_REQUIRED,
            "this is a WebSocket endpoint; connect with a WebSocket client",
        );
        response.headers_mut().insert(
            header::UPGRADE,
            header::HeaderValue::from_static("websocket"),
        );
        return response;
    }
    if state.is_draining() {
        state.metrics.rejected(Rejection::Draining);
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is shutting down",
        );
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let origins = state.origins.read().expect("never poisoned").clone();
    if let Err(reason) = origins.check(origin) {
        state.metrics.rejected(Rejection::Origin);
        return plain(StatusCode::FORBIDDEN, reason);
    }
    let client = client_of(&request, &state.config);
    let client_slot = if state.per_client.is_active() {
        match state
            .per_client
            .admit(ClientKey::of(client), std::time::Instant::now())
        {
            Ok(slot) => Some(slot),
            Err(too_many) => {
                let why = if too_many.rate {
                    Rejection::Rate
                } else {
                    Rejection::PerIp
                };
                state.metrics.rejected(why);
                let mut response = plain(StatusCode::TOO_MANY_REQUESTS, too_many.reason);
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    header::HeaderValue::from(too_many.retry_after.as_secs()),
                );
                return response;
            }
        }
    } else {
        None
    };
    let upgrade = match Upgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    // After the handshake's free checks: a request that is no upgrade costs no signature.
    let bearer = match bearer_grant(&request, &room, &state) {
        Ok(grant) => grant,
        Err(refused) => return *refused,
    };
    let config = &state.config;
    // Signaling messages are small; tungstenite's 128 KiB defaults would cost gigabytes at
    // 100k idle peers. The read buffer grows on demand up to the message limit, and the
    // transport reads ahead for busy connections without a buffer of their own.
    // Text frames bypass tungstenite's write buffer (see `outgoing`); what it writes itself
    // (pings, pongs, close) goes straight through, so that buffer never grows past one
    // control frame.
    let websocket = WebSocketConfig::default()
        .read_buffer_size(config.read_buffer)
        .write_buffer_size(0)
        .max_write_buffer_size(config.max_message_size * 4 + 64 * 1024)
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size));
    let limits = GuardLimits {
        rate_per_second: config.rate_limit,
        rate_burst: config.rate_burst,
        message_deadline: config.message_timeout,
        unfinished: state.unfinished.clone(),
    };
    let guard = Arc::new(Mutex::new(InboundGuard::new(limits, Instant::now())));
    let outgoing = SharedOutgoing::default();
    let (response, socket) = upgrade.accept(websocket, Some(guard.clone()), Some(outgoing.clone()));

    let permit = state.connection_slots.clone().try_acquire_owned().ok();
    let tracker = state.sessions.clone();
    tokio::spawn(tracker.clone().track_future(async move {
        let Some(socket) = socket.await else { return };
        match permit {
            Some(permit) => {
                let connection = session::Connection {
                    client,
                    guard,
                    outgoing,
                    slot: permit,
                    client_slot,
                    bearer,
                };
                // A task of its own, so the upgrade's state is freed now rather than carried
                // beside the session for the life of the connection.
                tracker.spawn(session::run(socket, room, state, connection));
            }
            None => refuse_over_capacity(socket, &state).await,
        }
    }));
    response
}

/// An `Authorization: Bearer` token on the upgrade (PROTOCOL §13), for native clients: checked
/// for this room before the upgrade, and refused with 401 there. Without `--auth-key`, or
/// with another scheme (a proxy's own Basic auth), the header is not read.
fn bearer_grant(
    request: &Request,
    room: &RoomName,
    state: &ServerState,
) -> Result<Option<Box<crate::token::Grant>>, Box<Response>> {
    let Some(gate) = &state.tokens else {
        return Ok(None);
    };
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let token = match value.to_str().ok().and_then(|v| v.trim().split_once(' ')) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return Ok(None),
    };
    let Some(checked) = gate.check(&state.proof_budget, token, room.as_str()) else {
        let mut response = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is checking too many tokens; retry later",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(1));
        return Err(Box::new(response));
    };
    match checked {
        // Counted as accepted once the register it serves passes (the peer check is
        // still to come).
        Ok(grant) => Ok(Some(Box::new(grant))),
        Err(error) => {
            let code = error.code();
            state.metrics.token_checked("header", Some(code));
            state.metrics.rejected(Rejection::Token);
            // RFC 6750 §3: the scheme, and the refusal's code for clients that read it.
            let challenge = format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                code.as_str()
            );
            let mut response = plain(
                StatusCode::UNAUTHORIZED,
                format!("{}: {error}", code.as_str()),
            );
            if let Ok(value) = header::HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            Err(Box::new(response))
        }
    }
}

/// The client's address: the socket peer, or what the trusted proxies say it is.
fn client_of(request: &Request, config: &crate::server::Config) -> std::net::IpAddr {
    let socket = request
        .extensions()
        .get::<SocketPeer>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |peer| peer.0.ip());
    let header = config.client_address_header;
    // Every line of the header, in order; a line that is not text names nobody.
    let lines: Vec<&str> = request
        .headers()
        .get_all(header.name())
        .iter()
        .map(|value| value.to_str().unwrap_or(""))
        .collect();
    access::client_address(socket, &config.trusted_proxy, header, lines.into_iter())
}

/// The connection cap answers with a close code, so the upgrade is completed first.
async fn refuse_over_capacity(mut socket: Socket, state: &ServerState) {
    state.metrics.rejected(Rejection::Capacity);
    state.metrics.closed(CloseCode::OVERLOADED);
    let frame = CloseFrame {
        code: CloseCode::OVERLOADED.0.into(),
        reason: "server at its connection limit".into(),
    };
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        socket.send(Message::Close(Some(frame))),
    )
    .await;
}
