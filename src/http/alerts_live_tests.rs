//! Tests of closing a subscriber's WebSocket: a close frame only ever starts on a frame
//! boundary.

use std::time::Duration;

use axum::body::Bytes;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpSocket};

use super::close_on_boundary;
use crate::wslite::{Conn, frame};

/// The hub task wrote the first byte of a large alert's frame, then the client stopped
/// reading, so the rest cannot be written within the close's one second. The client reads
/// again a little later: it must find the start of that frame and then the end of the
/// stream, never a close frame spliced into the alert (which a lenient client would take
/// for the alert, and skip it when it resumes with `since`).
#[tokio::test]
async fn no_close_frame_follows_a_frame_the_client_left_unfinished() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let socket = TcpSocket::new_v4().expect("socket");
    // Small buffers, set before connecting: the frame cannot fit in what the kernels hold.
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let (client, accepted) = tokio::join!(socket.connect(addr), listener.accept());
    let (mut client, (server, _)) = (client.expect("connect"), accepted.expect("accept"));
    socket2::SockRef::from(&server)
        .set_send_buffer_size(4096)
        .expect("sndbuf");

    let payload = vec![b'x'; 1 << 20];
    let (head, head_len) = frame::header(frame::TEXT, payload.len());
    let mut whole = head[..head_len].to_vec();
    whole.extend_from_slice(&payload);

    let reader = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let (mut got, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
        loop {
            match tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => return got,
            }
        }
    });
    let mut conn = Conn::tcp(server, Bytes::new(), 4096);
    conn.send_raw(&whole[..1], Duration::from_secs(1))
        .await
        .expect("the hub task's first byte");
    close_on_boundary(
        &mut conn,
        Some(&payload),
        1,
        4008,
        "slow consumer",
        Duration::from_secs(10),
    )
    .await;
    drop(conn);
    let got = reader.await.expect("reader");
    assert!(
        got.len() > 1 && got.len() < whole.len(),
        "the frame was cut: {} of {} bytes",
        got.len(),
        whole.len()
    );
    let spliced = got.iter().zip(&whole).position(|(a, b)| a != b);
    assert_eq!(
        spliced,
        None,
        "bytes after the cut frame's start: {:?}",
        spliced.map(|at| &got[at..got.len().min(at + 8)])
    );
}
