//! The raw relay floor: the least a relay on this WebSocket stack can do, to measure rdv
//! against. A connection to `/floor/{id}` is known by `id`; a text frame `TARGET|payload` is
//! forwarded to TARGET as `SENDER|payload`. No JSON, no rooms, no identity, no limits — but
//! the same stack as rdv: its accept loop, handshake, read-ahead transport and read buffer.
//! It writes the way tokio-tungstenite does on its own (its write buffer, a tokio channel per
//! connection), which keeps it the plain baseline rdv's own writer is measured against.
//! Once a connection is routable it is sent `ready` (the floor's `welcome`), so no client
//! sends to a peer the floor does not know yet.
//!
//! `/floor/{room}/{id}` adds the writes presence costs, and nothing else: the floor waits for
//! the connection's first text frame (a `register`, unparsed), answers `ready` followed by
//! each member's `id|first frame` on its own line, and sends `joined|id|first frame` to every
//! member, then `left|id` when it goes. The bytes match rdv's `welcome` and `peer-joined`
//! closely; the JSON, key checks and limits rdv adds are what the comparison leaves.

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

/// A member of a presence room: what is announced of it, and its queue.
struct Member {
    id: String,
    entry: String,
    queue: mpsc::Sender<Utf8Bytes>,
}

type Rooms = Arc<DashMap<String, Vec<Member>>>;

#[derive(Clone)]
struct Floor {
    routes: Routes,
    rooms: Rooms,
    read_buffer: usize,
}

/// Serves the floor on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, read_buffer: usize) {
    let floor = Floor {
        routes: Arc::new(DashMap::new()),
        rooms: Arc::new(DashMap::new()),
        read_buffer,
    };
    let app = Router::new()
        .route("/floor/{id}", axum::routing::get(upgrade))
        .route("/floor/{room}/{id}", axum::routing::get(upgrade_in_room))
        .with_state(floor);
    let never = tokio_util::sync::CancellationToken::new();
    let header_timeout = std::time::Duration::from_secs(10);
    let options = crate::server::stack::ListenOptions {
        header_timeout,
        pending: None,
        tls: None,
    };
    crate::server::stack::serve(listener, app, options, never).await;
}

async fn upgrade(Path(id): Path<String>, State(floor): State<Floor>, request: Request) -> Response {
    accept(floor, id, None, request)
}

async fn upgrade_in_room(
    Path((room, id)): Path<(String, String)>,
    State(floor): State<Floor>,
    request: Request,
) -> Response {
    accept(floor, id, Some(room), request)
}

fn accept(floor: Floor, id: String, room: Option<String>, mut request: Request) -> Response {
    let upgrade = match Upgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(refused) => return refused.into_response(),
    };
    // rdv serve's read buffer, so the comparison is about the relay work.
    let config = WebSocketConfig::default()
        .read_buffer_size(floor.read_buffer)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(Some(64 * 1024));
    let (response, socket) = upgrade.accept(config, None, None);
    tokio::spawn(async move {
        if let Some(socket) = socket.await {
            connection(socket, id, room, floor).await;
        }
    });
    response
}

async fn connection(socket: Socket, id: String, room: Option<String>, floor: Floor) {
    let Floor { routes, rooms, .. } = floor;
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(1024);
    let (mut sink, mut stream) = socket.split();
    match &room {
        None => {
            let _ = tx.try_send(Utf8Bytes::from_static("ready"));
        }
        Some(room) => {
            let Some(first) = first_text(&mut stream).await else {
                return;
            };
            enter(&rooms, room, &id, &first, &tx);
        }
    }
    routes.insert(id.clone(), tx);
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
    if let Some(room) = room {
        leave(&rooms, &room, &id);
    }
}

async fn first_text(stream: &mut futures_util::stream::SplitStream<Socket>) -> Option<Utf8Bytes> {
    while let Some(Ok(message)) = stream.next().await {
        if let Message::Text(text) = message {
            return Some(text);
        }
    }
    None
}

/// Adds `id` to `room`: `ready` with the members to it, `joined` to each member. Sent while
/// the room is locked, so `ready` is the first thing the newcomer's queue holds.
fn enter(rooms: &Rooms, room: &str, id: &str, first: &str, queue: &mpsc::Sender<Utf8Bytes>) {
    let entry = format!("{id}|{first}");
    let mut members = rooms.entry(room.to_owned()).or_default();
    let mut ready = String::from("ready");
    let joined = Utf8Bytes::from(format!("joined|{entry}"));
    for member in members.iter() {
        ready.push('\n');
        ready.push_str(&member.entry);
        let _ = member.queue.try_send(joined.clone());
    }
    let _ = queue.try_send(ready.into());
    members.push(Member {
        id: id.to_owned(),
        entry,
        queue: queue.clone(),
    });
}

fn leave(rooms: &Rooms, room: &str, id: &str) {
    let left = Utf8Bytes::from(format!("left|{id}"));
    let mut emptied = false;
    if let Some(mut members) = rooms.get_mut(room) {
        members.retain(|member| member.id != id);
        for member in members.iter() {
            let _ = member.queue.try_send(left.clone());
        }
        emptied = members.is_empty();
    }
    if emptied {
        rooms.remove_if(room, |_, members| members.is_empty());
    }
}
