//! `LISTEN herald_work` on a dedicated connection: wakes this node's engine when another node commits work.
//! Reconnects by itself with backoff; after every (re)connect it wakes the engine once to catch up on anything
//! sent while it was away. Stops when the store is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio_postgres::{AsyncMessage, NoTls};

use super::WORK_CHANNEL;

/// Run the listener until `stop` resolves (its sender is dropped with the store).
pub async fn run(
    config: tokio_postgres::Config,
    wake: Arc<Notify>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = listen_once(&config, &wake) => {}
            _ = &mut stop => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut stop => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// One connection's life: connect, LISTEN, forward notifications until the connection ends.
async fn listen_once(config: &tokio_postgres::Config, wake: &Arc<Notify>) {
    let (client, mut connection) = match config.connect(NoTls).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "cannot connect to listen for work; retrying");
            return;
        }
    };
    let forward = wake.clone();
    let driver = async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => forward.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "work listener connection lost; reconnecting");
                    return;
                }
                None => return,
            }
        }
    };
    let subscribe = async {
        match client
            .batch_execute(&format!("LISTEN {WORK_CHANNEL}"))
            .await
        {
            Ok(()) => wake.notify_one(),
            Err(e) => tracing::warn!(error = %e, "LISTEN failed"),
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = driver => {}
        _ = subscribe => {}
    }
}
