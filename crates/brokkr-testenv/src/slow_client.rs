//! What a hostile client sends to hold a connection slot of an HTTP server: the largest request head actix buffers,
//! never finished. Shared by the broker's own flood tests and the end-to-end tests against a real pod.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Just under actix-http's `MAX_BUFFER_SIZE` (128 KiB): a head this long is buffered whole, never refused as too
/// large, until the head timeout.
pub const HEAD_BYTES: usize = 127 * 1024;

/// Sends a request head of [`HEAD_BYTES`] without its end, then holds the connection until the server closes it or
/// `until`. Whether the whole head was written.
pub async fn unfinished_head<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, until: Instant) -> bool {
    let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
    head.resize(HEAD_BYTES, b'a');
    let written = stream.write_all(&head).await.is_ok() && stream.flush().await.is_ok();
    let mut sink = [0; 512];
    let held = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
    drop(tokio::time::timeout(until.saturating_duration_since(Instant::now()), held).await);
    written
}
