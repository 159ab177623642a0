//! Server and client connected by in-memory byte pipes, no sockets.

use bytes::Bytes;
use vshare_rtmp::{
    ClientConnection, ClientEvent, RtmpError, ServerConnection, ServerEvent, ServerLimits, amf0,
};

/// Moves bytes both ways until neither side has anything to send; `split` feeds the server in
/// pieces of that size to exercise partial input.
fn pump(
    client: &mut ClientConnection,
    server: &mut ServerConnection,
    split: usize,
) -> Result<(), RtmpError> {
    loop {
        let mut moved = false;
        while let Some(b) = client.poll_transmit() {
            moved = true;
            for piece in b.chunks(split) {
                server.handle_input(piece)?;
            }
        }
        while let Some(b) = server.poll_transmit() {
            moved = true;
            client.handle_input(&b)?;
        }
        if !moved {
            return Ok(());
        }
    }
}

fn server_events(server: &mut ServerConnection) -> Vec<ServerEvent> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

fn client_events(client: &mut ClientConnection) -> Vec<ClientEvent> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn connect(split: usize) -> (ClientConnection, ServerConnection, u32) {
    let mut client = ClientConnection::new("live", "key1", "rtmp://127.0.0.1:1935/live");
    let mut server = ServerConnection::new(ServerLimits::default());
    pump(&mut client, &mut server, split).expect("pump");
    let ev = server_events(&mut server);
    assert_eq!(
        ev[0],
        ServerEvent::Connected {
            app: "live".into(),
            tc_url: Some("rtmp://127.0.0.1:1935/live".into())
        }
    );
    let ServerEvent::PublishRequested {
        request_id,
        ref app,
        ref stream_key,
    } = ev[1]
    else {
        panic!("{ev:?}")
    };
    assert_eq!((app.as_str(), stream_key.as_str()), ("live", "key1"));
    (client, server, request_id)
}

#[test]
fn publish_media_and_finish() {
    for split in [1, 7, 4096, usize::MAX] {
        let (mut client, mut server, id) = connect(split);
        assert_eq!(client_events(&mut client), vec![ClientEvent::Connected]);
        assert!(
            client.send_video(0, &[1]).is_err(),
            "media before Publish.Start must be refused"
        );
        server.accept_publish(id).expect("accept");
        pump(&mut client, &mut server, split).expect("pump");
        assert_eq!(client_events(&mut client), vec![ClientEvent::Published]);

        client
            .send_metadata(&[("width".into(), amf0::Value::Number(640.0))])
            .expect("metadata");
        let big = vec![0x27; 100_000];
        client
            .send_video(0, &[0x17, 0, 0, 0, 0, 1, 2])
            .expect("video");
        client.send_audio(21, &[0xaf, 1, 9]).expect("audio");
        client.send_video(33, &big).expect("video");
        // Across the 32-bit wrap, in steps a real stream takes.
        client
            .send_video(2_000_000_000, &[0x27, 1, 0, 0, 0])
            .expect("video");
        client
            .send_video(4_000_000_000, &[0x27, 1, 0, 0, 0])
            .expect("video");
        client
            .send_video((1 << 32) + 10, &[0x27, 1, 0, 0, 0])
            .expect("video");
        client.finish();
        pump(&mut client, &mut server, split).expect("pump");
        let ev = server_events(&mut server);
        assert_eq!(
            ev[0],
            ServerEvent::Metadata(vec![("width".into(), amf0::Value::Number(640.0))])
        );
        assert_eq!(
            ev[1],
            ServerEvent::Video {
                timestamp_ms: 0,
                body: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2])
            }
        );
        assert_eq!(
            ev[2],
            ServerEvent::Audio {
                timestamp_ms: 21,
                body: Bytes::from_static(&[0xaf, 1, 9])
            }
        );
        assert_eq!(
            ev[3],
            ServerEvent::Video {
                timestamp_ms: 33,
                body: Bytes::from(big.clone())
            }
        );
        assert!(
            matches!(ev[6], ServerEvent::Video { timestamp_ms, .. } if timestamp_ms == (1 << 32) + 10)
        );
        assert_eq!(ev[7], ServerEvent::PublishFinished);
        assert_eq!(ev.len(), 8, "{ev:?}");
    }
}

#[test]
fn rejected_publish_reaches_the_client() {
    let (mut client, mut server, id) = connect(4096);
    server
        .reject_publish(id, "NetStream.Publish.BadName", "unknown stream key")
        .expect("reject");
    assert!(
        server.accept_publish(id).is_err(),
        "a request is answered once"
    );
    pump(&mut client, &mut server, 4096).expect("pump");
    assert_eq!(
        client_events(&mut client),
        vec![
            ClientEvent::Connected,
            ClientEvent::Rejected {
                code: "NetStream.Publish.BadName".into(),
                description: "unknown stream key".into()
            }
        ]
    );
    assert!(client.send_video(0, &[1]).is_err());
}

#[test]
fn oversized_message_is_refused() {
    let mut client = ClientConnection::new("live", "k", "rtmp://h/live");
    let mut server = ServerConnection::new(ServerLimits {
        max_message_size: 50_000,
        max_chunk_size: 65_536,
        ..ServerLimits::default()
    });
    pump(&mut client, &mut server, 4096).expect("pump");
    let id = match server_events(&mut server).pop() {
        Some(ServerEvent::PublishRequested { request_id, .. }) => request_id,
        e => panic!("{e:?}"),
    };
    server.accept_publish(id).expect("accept");
    pump(&mut client, &mut server, 4096).expect("pump");
    client.send_video(0, &vec![0x17; 60_000]).expect("queue");
    let e = pump(&mut client, &mut server, 4096).unwrap_err();
    assert!(
        matches!(
            e,
            RtmpError::MessageTooLarge {
                length: 60_000,
                limit: 50_000,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("larger than the 50000-byte limit"),
        "{e}"
    );
    // The connection stays failed.
    assert!(matches!(
        server.handle_input(&[0]),
        Err(RtmpError::Failed(_))
    ));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut s = ServerConnection::new(ServerLimits::default());
    let e = s.handle_input(b"GET / HTTP/1.1\r\n\r\n").unwrap_err();
    assert!(e.to_string().starts_with("RTMP handshake:"), "{e}");

    // A valid handshake, then chunks for a chunk stream that never had a type 0 header.
    let mut client = ClientConnection::new("live", "k", "rtmp://h/live");
    let mut server = ServerConnection::new(ServerLimits::default());
    let c0c1 = client.poll_transmit().expect("c0c1");
    server.handle_input(&c0c1).expect("c0c1");
    client
        .handle_input(&server.poll_transmit().expect("s0s1s2"))
        .expect("s0s1s2");
    let c2 = client.poll_transmit().expect("c2");
    server.handle_input(&c2[..1536]).expect("c2");
    let e = server.handle_input(&[0x47, 0, 0, 0]).unwrap_err();
    assert!(
        e.to_string()
            .contains("chunk stream 7 starts with a type 1 header"),
        "{e}"
    );

    // Media on a stream nobody published.
    let (mut client, mut server, _id) = connect(4096);
    let mut w = vshare_rtmp::message::Writer::default();
    w.media(true, 3, 0, &[0x17, 0, 0, 0, 0]);
    let _ = client.poll_transmit();
    let e = server.handle_input(&w.take().expect("bytes")).unwrap_err();
    assert!(
        e.to_string().contains("not publishing") || e.to_string().contains("chunk"),
        "{e}"
    );

    // Pseudo-random garbage after a good handshake, in many shapes: errors or nothing, never a
    // panic.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..300 {
        let (_c, mut server, _) = connect(4096);
        let len = 1 + round * 7;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let _ = server.handle_input(&bytes);
    }
}

#[test]
fn play_is_answered_with_an_error() {
    let mut client = ClientConnection::new("live", "k", "rtmp://h/live");
    let mut server = ServerConnection::new(ServerLimits::default());
    pump(&mut client, &mut server, 4096).expect("pump");
    let _ = server_events(&mut server);
    let mut w = vshare_rtmp::message::Writer::default();
    w.command(1, "play", 6.0, &[amf0::Value::Null, amf0::string("k")]);
    server
        .handle_input(&w.take().expect("bytes"))
        .expect("play");
    assert_eq!(
        server_events(&mut server),
        vec![ServerEvent::PlayRejected {
            app: "live".into(),
            stream_key: "k".into()
        }]
    );
    assert!(server.poll_transmit().is_some());
}

/// Mutation fuzzing without libFuzzer: a real session's client bytes with random bytes
/// changed, dropped or repeated, fed in random pieces. Errors are expected; panics are not.
#[test]
fn mutated_sessions_never_panic() {
    let mut client = ClientConnection::new("live", "key1", "rtmp://127.0.0.1:1935/live");
    let mut server = ServerConnection::new(ServerLimits::default());
    let mut sent = Vec::new();
    let step =
        |client: &mut ClientConnection, server: &mut ServerConnection, sent: &mut Vec<u8>| loop {
            let mut moved = false;
            while let Some(b) = client.poll_transmit() {
                moved = true;
                sent.extend_from_slice(&b);
                server.handle_input(&b).expect("valid");
            }
            while let Some(b) = server.poll_transmit() {
                moved = true;
                client.handle_input(&b).expect("valid");
            }
            while let Some(ServerEvent::PublishRequested { request_id, .. }) = server.poll_event() {
                server.accept_publish(request_id).expect("accept");
                moved = true;
            }
            if !moved {
                break;
            }
        };
    step(&mut client, &mut server, &mut sent);
    client
        .send_metadata(&[("width".into(), amf0::Value::Number(640.0))])
        .expect("meta");
    for i in 0..20 {
        client
            .send_video(i * 33, &vec![0x27; 300 + i as usize * 50])
            .expect("video");
        client.send_audio(i * 21, &[0xaf, 1, 2, 3]).expect("audio");
    }
    client.finish();
    step(&mut client, &mut server, &mut sent);

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..1500 {
        let mut bytes = sent.clone();
        for _ in 0..(1 + rnd() % 8) {
            // Mutate after the handshake mostly: that is where the parsers are.
            let pos = 3073 + (rnd() as usize) % (bytes.len() - 3073);
            match rnd() % 4 {
                0 => bytes[pos] = rnd() as u8,
                1 => bytes[pos] ^= 1 << (rnd() % 8),
                2 => {
                    bytes.remove(pos);
                }
                _ => bytes.insert(pos, rnd() as u8),
            }
        }
        let mut s = ServerConnection::new(ServerLimits {
            max_message_size: 1 << 16,
            max_chunk_size: 1 << 16,
            ..ServerLimits::default()
        });
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = (1 + rnd() as usize % 700).min(rest.len());
            if s.handle_input(&rest[..n]).is_err() {
                break;
            }
            while let Some(ev) = s.poll_event() {
                if let ServerEvent::PublishRequested { request_id, .. } = ev {
                    let _ = s.accept_publish(request_id);
                }
            }
            while s.poll_transmit().is_some() {}
            rest = &rest[n..];
        }
    }
}
