use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A loopback server answering every connection with `body` (HTTP/1.1, closed after one answer).
async fn serve_once(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    addr
}

fn outbound(allow_private: bool, overrides: &str) -> Outbound {
    Outbound::new(
        Arc::new(UrlPolicy::new(allow_private, None).unwrap()),
        overrides.parse().unwrap(),
    )
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

#[test]
fn overrides_parse_and_name_the_bad_part() {
    let o: ResolveOverrides = "internal.test=127.0.0.1, v6.test=[::1],Internal.Test=10.0.0.1"
        .parse()
        .unwrap();
    assert_eq!(o.get("INTERNAL.test.").unwrap().len(), 2);
    assert_eq!(o.get("v6.test").unwrap()[0].to_string(), "::1");
    assert!("".parse::<ResolveOverrides>().unwrap().is_empty());
    assert!("a.test"
        .parse::<ResolveOverrides>()
        .unwrap_err()
        .contains("name=address"));
    assert!("a.test=nope"
        .parse::<ResolveOverrides>()
        .unwrap_err()
        .contains("nope"));
}

#[tokio::test]
async fn ip_literals_are_refused_before_connecting() {
    let addr = serve_once("secret").await;
    let client = outbound(false, "").client(ClientOptions::default());
    let err = client
        .send(get(&format!("http://{addr}/")))
        .await
        .unwrap_err();
    assert!(matches!(err, OutboundError::Blocked(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Blocked);
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused() {
    let addr = serve_once("secret").await;
    let client = outbound(false, "internal.test=127.0.0.1").client(ClientOptions::default());
    let url = format!("http://internal.test:{}/", addr.port());
    let err = client.send(get(&url)).await.unwrap_err();
    assert!(matches!(err, OutboundError::Blocked(_)), "{err:?}");
}

#[tokio::test]
async fn allowed_private_targets_connect_and_answers_are_capped() {
    let addr = serve_once("0123456789").await;
    let client = outbound(true, "internal.test=127.0.0.1").client(ClientOptions::default());
    let url = format!("http://internal.test:{}/", addr.port());
    let response = client.send(get(&url)).await.unwrap();
    let (body, truncated) = read_capped(response.into_body(), 4).await.unwrap();
    assert_eq!(&body[..], b"0123");
    assert!(truncated);
    let response = client.send(get(&url)).await.unwrap();
    let (body, truncated) = read_capped(response.into_body(), 64).await.unwrap();
    assert_eq!(&body[..], b"0123456789");
    assert!(!truncated);
}

#[tokio::test]
async fn the_allowlist_applies_to_every_client() {
    let policy = UrlPolicy::new(true, Some(r"https://hooks\.example/.*")).unwrap();
    let client = Outbound::new(Arc::new(policy), ResolveOverrides::default())
        .client(ClientOptions::default());
    let err = client.send(get("http://127.0.0.1:9/")).await.unwrap_err();
    assert!(matches!(err, OutboundError::Blocked(_)), "{err:?}");
}
