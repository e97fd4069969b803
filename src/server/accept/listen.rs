//! The accept loop: HTTP/1.1 on each TCP connection, with upgrades, until told to stop.
//!
//! hyper's HTTP/1 connection is driven directly (not through `axum::serve`, whose protocol
//! sniffing wraps the socket in a private type) so an upgraded connection hands back its
//! bare `TcpStream` (see `upgrade`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::connection::pending::{self, PendingConnections};
use prometheus_client::metrics::counter::Counter;

/// How long requests still in flight may take once `stop` fires.
const HTTP_GRACE: Duration = Duration::from_secs(1);

/// The largest request head accepted (hyper's smallest buffer); a larger one gets 431. A
/// WebSocket upgrade needs well under 2 KiB.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The TCP peer of the connection a request came on (a proxy's, behind one).
#[derive(Debug, Clone, Copy)]
pub struct SocketPeer(pub std::net::SocketAddr);

/// What the accept loop needs besides the listener and the routes.
pub struct ListenOptions {
    /// A connection that has not sent a whole request head by then is closed (with TLS, the
    /// handshake counts too).
    pub header_timeout: Duration,
    /// Every connection counts as unregistered from the moment it is accepted (see
    /// `pending`), so idle sockets can neither pile up nor crowd out new clients.
    pub pending: Option<Arc<PendingConnections>>,
    /// Terminate TLS here, counting failed handshakes.
    pub tls: Option<(tokio_rustls::TlsAcceptor, Counter)>,
}

/// Serves `app` on `listener` until `stop` is cancelled, then gives plain HTTP requests in
/// flight a short grace. Upgraded connections are not waited for: they belong to their
/// sessions by then.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ListenOptions,
    stop: CancellationToken,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
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
        let stop = stop.clone();
        let ticket = options.pending.as_ref().map(|pending| pending.admit());
        // Every request on this connection carries the socket's peer address.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(SocketPeer(peer));
                request
            },
        ));
        let http = http.clone();
        let tls = options.tls.clone();
        let handshake_timeout = options.header_timeout;
        connections.spawn(async move {
            let evicted = pending::evicted(ticket.as_ref());
            let Some((acceptor, failures)) = tls else {
                let connection = http.serve_connection(TokioIo::new(tcp), service);
                return serve_one(connection.with_upgrades(), evicted, stop).await;
            };
            let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp));
            let tls = tokio::select! {
                done = handshake => done,
                () = evicted => return,
                () = stop.cancelled() => return,
            };
            let Ok(Ok(tls)) = tls else {
                failures.inc();
                return;
            };
            let connection = http.serve_connection(TokioIo::new(tls), service);
            // The ticket's eviction is still what ends it.
            let evicted = pending::evicted(ticket.as_ref());
            serve_one(connection.with_upgrades(), evicted, stop).await;
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Drives one HTTP connection until it is served or handed over to a WebSocket session, the
/// connection is evicted, or the server stops (then in-flight requests get a short grace).
async fn serve_one<C>(connection: C, evicted: impl Future<Output = ()>, stop: CancellationToken)
where
    C: Future + GracefulShutdown,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        // Room was needed for a newer connection: this one is dropped.
        () = evicted => return,
        () = stop.cancelled() => {}
    }
    connection.as_mut().shut_down_gracefully();
    let _ = tokio::time::timeout(HTTP_GRACE, connection).await;
}

/// hyper's upgradeable connection, over whichever stream.
trait GracefulShutdown {
    fn shut_down_gracefully(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulShutdown for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shut_down_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    )
}
