//! The accept loop: HTTP/1.1 on each TCP connection, with upgrades, until told to stop.
//!
//! hyper's HTTP/1 connection is driven directly (not through `axum::serve`, whose protocol
//! sniffing wraps the socket in a private type) so an upgraded connection hands back its
//! bare `TcpStream` (see `upgrade`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::pending::PendingConnections;

/// How long requests still in flight may take once `stop` fires.
const HTTP_GRACE: Duration = Duration::from_secs(1);

/// The largest request head accepted (hyper's smallest buffer); a larger one gets 431. A
/// WebSocket upgrade needs well under 2 KiB.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Serves `app` on `listener` until `stop` is cancelled, then gives plain HTTP requests in
/// flight a short grace. Upgraded connections are not waited for: they belong to their
/// sessions by then. A connection that has not sent a whole request head within
/// `header_timeout` is closed, and with `pending`, every connection counts as unregistered
/// from the moment it is accepted (see `pending`), so idle sockets can neither pile up nor
/// crowd out new clients.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    pending: Option<Arc<PendingConnections>>,
    stop: CancellationToken,
) {
    let service = TowerToHyperService::new(app);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            // The client gave up between SYN and accept: nothing to do.
            Err(error) if is_per_connection(&error) => continue,
            Err(error) => {
                // Out of file descriptors, most likely: retrying at once would spin.
                tracing::error!(%error, "accept failed; retrying in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Signaling messages are small and latency-bound.
        let _ = tcp.set_nodelay(true);
        let connection = http
            .serve_connection(TokioIo::new(tcp), service.clone())
            .with_upgrades();
        let stop = stop.clone();
        let ticket = pending.as_ref().map(|pending| pending.admit());
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let evicted = async {
                match &ticket {
                    Some(ticket) => ticket.evicted().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                // Served to the end, or handed over to a WebSocket session.
                _ = connection.as_mut() => return,
                // Room was needed for a newer connection: this one is dropped.
                () = evicted => return,
                () = stop.cancelled() => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(HTTP_GRACE, connection).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}
