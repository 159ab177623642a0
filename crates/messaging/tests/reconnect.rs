//! A connection that breaks in the middle of a batch: the messages not yet sent go out after a
//! reconnect; the one sent but not answered is reported, not sent twice.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vshare_messaging::smpp_client::{Client, ClientOptions, SubmitError};
use vshare_smpp::pdu::Sm;
use vshare_smpp::{BindKind, Config, Event, Session};

/// An SMSC that answers `answer` submits on its first connection, then hangs up when the next
/// one arrives; later connections are answered in full. Returns every short_message it accepted.
async fn flaky_smsc(listener: TcpListener, answer: usize) -> Vec<Vec<u8>> {
    let mut accepted = Vec::new();
    let mut first = true;
    loop {
        let Ok(Ok((mut sock, _))) =
            tokio::time::timeout(Duration::from_secs(3), listener.accept()).await
        else {
            return accepted;
        };
        let mut s = Session::smsc(Config::default());
        let mut buf = vec![0u8; 65536];
        let mut answered = 0;
        'conn: loop {
            let n = match sock.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            s.handle_input(&buf[..n], Instant::now()).unwrap();
            while let Some(e) = s.poll_event() {
                match e {
                    Event::BindRequest { sequence, .. } => s.accept_bind(sequence, "flaky"),
                    Event::Submit { sequence, sm } => {
                        if first && answered == answer {
                            break 'conn;
                        }
                        answered += 1;
                        accepted.push(sm.short_message.clone());
                        s.respond_submit(sequence, 0, &format!("m{}", accepted.len()));
                    }
                    Event::Unbound => break 'conn,
                    _ => {}
                }
            }
            while let Some(b) = s.poll_transmit() {
                sock.write_all(&b).await.unwrap();
            }
        }
        first = false;
    }
}

#[tokio::test]
async fn unsent_messages_go_after_a_reconnect_and_none_twice() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let smsc = tokio::spawn(flaky_smsc(listener, 3));
    let mut opts = ClientOptions::new(&addr, BindKind::Transmitter, "vshare", "pw");
    opts.config = Config {
        window: 1,
        ..Config::default()
    };
    opts.retry_backoff = Duration::from_millis(20);
    let messages: Vec<Sm> = (0..8u8)
        .map(|i| Sm::text("+1", "+2", &[b'a' + i]))
        .collect();
    let (results, client) = Client::submit_with_reconnect(&opts, messages, 3)
        .await
        .unwrap();
    client.unbind().await.unwrap();
    assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
    assert_eq!(results[3], Err(SubmitError::Unconfirmed));
    assert!(results[4..].iter().all(Result::is_ok), "{results:?}");
    let accepted = smsc.await.unwrap();
    // Every message but the unconfirmed one arrived exactly once.
    let mut got: Vec<u8> = accepted.iter().map(|m| m[0]).collect();
    got.sort();
    assert_eq!(got, b"abcefgh");
}
