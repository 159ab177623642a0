//! Closing a WebSocket as RFC 6455 §7.1.1 asks: send our close frame, then read until the peer's
//! close frame comes back (or a short wait ends) before dropping TCP. Dropping at once, with the
//! peer's frames still unread, makes the kernel answer with a reset, and a client on a slow or
//! loaded link then sees a reset instead of the close code and reason.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};

/// How long a closing endpoint waits for the peer's close frame.
pub const CLOSE_WAIT: Duration = Duration::from_secs(3);

/// Sends `frame` (unless a close was already sent) and waits up to [`CLOSE_WAIT`] for the
/// peer's close, discarding what arrives before it.
pub async fn close(socket: &mut WebSocket, frame: Option<CloseFrame>) {
    if socket.send(Message::Close(frame)).await.is_err() {
        return;
    }
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(m)) = socket.recv().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}
