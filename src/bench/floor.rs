//! The raw relay floor: the least a relay on this WebSocket stack can do, to measure rdv
//! against. A connection to `/floor/{id}` is known by `id`; a text frame `TARGET|payload` is
//! forwarded to TARGET as `SENDER|payload`. No JSON, no rooms, no identity, no limits — but
//! the same stack as rdv: its accept loop, handshake, read-ahead transport and read buffer.
//! It writes the way tokio-tungstenite does on its own (its write buffer, a tokio channel per
//! connection), which keeps it the plain baseline rdv's own writer is measured against.
//! Once a connection is routable it is sent `ready` (the floor's `welcome`), so no client
//! sends to a peer the floor does not know yet.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse as _, Response};
use dashmap::DashMap;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::server::stack::{Socket, Upgrade};

/// Bytes of frames tungstenite gathers before one write: the floor batches writes the way
/// tokio-tungstenite does on its own.
const WRITE_BUFFER: usize = 8 * 1024;

type Routes = Arc<DashMap<String, mpsc::Sender<Utf8Bytes>>>;

/// Serves the floor on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, read_buffer: usize) {
    let routes: Routes = Arc::new(DashMap::new());
    let app = Router::new()
        .route("/floor/{id}", axum::routing::get(upgrade))
        .with_state((routes, read_buffer));
    let never = tokio_util::sync::CancellationToken::new();
    let header_timeout = std::time::Duration::from_secs(10);
    let options = crate::server::stack::ListenOptions {
        header_timeout,
        pending: None,
        tls: None,
    };
    crate::server::stack::serve(listener, app, options, never).await;
}

async fn upgrade(
    Path(id): Path<String>,
    State((routes, read_buffer)): State<(Routes, usize)>,
    mut request: Request,
) -> Response {
    let upgrade = match Upgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    // rdv serve's read buffer, so the comparison is about the relay work.
    let config = WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(64 * 1024));
    let (response, socket) = upgrade.accept(config, None, None);
    tokio::spawn(async move {
        if let Some(socket) = socket.await {
            connection(socket, id, routes).await;
        }
    });
    response
}

async fn connection(socket: Socket, id: String, routes: Routes) {
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(1024);
    let _ = tx.try_send(Utf8Bytes::from_static("ready"));
    routes.insert(id.clone(), tx);
    let (mut sink, mut stream) = socket.split();
    let writer = async {
        while let Some(text) = rx.recv().await {
            if sink.feed(Message::Text(text)).await.is_err() {
                return;
            }
            while let Ok(text) = rx.try_recv() {
                if sink.feed(Message::Text(text)).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    };
    let reader = async {
        while let Some(Ok(message)) = stream.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let Some((target, payload)) = text.split_once('|') else {
                continue;
            };
            let target = routes.get(target).map(|entry| entry.value().clone());
            if let Some(target) = target {
                let _ = target.try_send(format!("{id}|{payload}").into());
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    routes.remove(&id);
}
