//! The HTTP server every stage's admin port (and inference's API) runs on,
//! over real loopback TCP: connections that never finish their headers, or
//! never send a byte, are closed after the header timeout, while complete
//! requests are answered (issue 17: before, axum::serve kept them open for
//! good).

use std::time::{Duration, Instant};

use service_kit::admin::{self, Readiness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_server_closes_connections_that_do_not_finish_their_headers() {
    let listener = admin::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(admin::serve_http(
        listener,
        admin::router(Readiness::default()),
        Duration::from_millis(500),
        cancel.clone(),
    ));
    let started = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..30 {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // Two thirds send half a request, the rest nothing at all.
        if i % 3 != 0 {
            c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAcc").await.expect("write");
        }
        stalled.push(c);
    }
    // A complete request is answered meanwhile.
    let mut ok = tokio::net::TcpStream::connect(addr).await.expect("connect");
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    ok.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");

    let closed = futures_closed(stalled, Duration::from_secs(10)).await;
    assert_eq!(closed, 30, "stalled connections still open after 10 s");
    assert!(started.elapsed() < Duration::from_secs(4), "closed after {:?}", started.elapsed());
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), server).await.expect("stops on cancel").unwrap().unwrap();
}

/// How many of `conns` reach end of stream (closed by the server) within `wait`.
async fn futures_closed(conns: Vec<tokio::net::TcpStream>, wait: Duration) -> usize {
    let mut handles = Vec::new();
    for mut c in conns {
        handles.push(tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::time::timeout(wait, c.read_to_end(&mut sink)).await.is_ok()
        }));
    }
    let mut closed = 0;
    for h in handles {
        closed += usize::from(h.await.unwrap());
    }
    closed
}
