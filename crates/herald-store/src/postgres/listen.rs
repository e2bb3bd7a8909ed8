//! `LISTEN` on a dedicated connection: wakes this node when another node commits something it waits for
//! (`herald_work`: due deliveries; `herald_jobs`: a job changed, the payload is its id). Reconnects by itself
//! with backoff; after every (re)connect the handler is called with `None`, to catch up on anything sent while
//! the connection was away. Stops when the store is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_postgres::{AsyncMessage, NoTls};

/// Called with each notification's payload, or `None` after a (re)connect.
pub type Handler = Arc<dyn Fn(Option<&str>) + Send + Sync>;

/// Listen on `channel` until `stop` resolves (its sender is dropped with the store).
pub async fn run(
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    channel: &'static str,
    handler: Handler,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = listen(&config, tls.as_ref(), channel, &handler) => {}
            _ = &mut stop => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut stop => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life, over TLS when the store uses it.
async fn listen(
    config: &tokio_postgres::Config,
    tls: Option<&tokio_postgres_rustls::MakeRustlsConnect>,
    channel: &str,
    handler: &Handler,
) {
    match tls {
        Some(tls) => listen_once(config, tls.clone(), channel, handler).await,
        None => listen_once(config, NoTls, channel, handler).await,
    }
}

/// Connect, LISTEN, forward notifications until the connection ends.
async fn listen_once<T>(config: &tokio_postgres::Config, tls: T, channel: &str, handler: &Handler)
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = match config.connect(tls).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, channel, "cannot connect to listen; retrying");
            return;
        }
    };
    let forward = handler.clone();
    let driver = async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => forward(Some(n.payload())),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "listener connection lost; reconnecting");
                    return;
                }
                None => return,
            }
        }
    };
    let subscribe = async {
        match client.batch_execute(&format!("LISTEN {channel}")).await {
            Ok(()) => handler(None),
            Err(e) => tracing::warn!(error = %e, channel, "LISTEN failed"),
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = driver => {}
        _ = subscribe => {}
    }
}
