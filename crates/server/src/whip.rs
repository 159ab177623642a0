//! WHIP ingest (RFC 9725): a publisher's WebRTC session becomes an ordinary source.
//!
//! The session itself lives in the WebRTC task beside the WHEP viewers (one UDP port,
//! [`crate::whep`]); what it receives comes here, to one forwarding task per publisher, which
//! converts Opus to AAC for the recording (as the upload protocol does) and hands the events to
//! the video server. Ending the WebRTC session (DELETE, the publisher gone, ICE never up) ends
//! the forwarder's input and with it the video session.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use vshare_media::{MediaEvent, TrackConfig};
use vshare_transcode::OpusToAac;
use vshare_webrtc::IngestEvent;

use crate::db::StreamKey;
use crate::video::{IngestMessage, Publisher, StartError, VideoServer};
use crate::whep::{Whep, WhepError};

/// Events a publisher's WebRTC session may have waiting for the video server (~10 s of 30 fps
/// video and 50 Opus packets a second); past that, video waits for the next keyframe.
pub const INGEST_QUEUE: usize = 1024;

/// AAC bitrate of the converted Opus audio, bit/s.
const AAC_BITRATE: u64 = 96_000;

/// Why a WHIP offer got no session.
#[derive(Debug, thiserror::Error)]
pub enum WhipError {
    #[error("{0}")]
    Start(#[from] StartError),
    #[error("{0}")]
    Session(#[from] WhepError),
}

/// Answers publisher `key`'s offer from `ip`: the video id, the session id and the SDP answer.
/// `segment_target`: the live segments' target, the longest the publisher may go without a
/// keyframe.
pub async fn publish(
    whep: &Arc<Whep>,
    videos: &Arc<VideoServer>,
    key: &StreamKey,
    offer: &str,
    ip: IpAddr,
    segment_target: Duration,
) -> Result<(String, String, String), WhipError> {
    // The offer is checked (and the DTLS certificate made) before a video exists.
    let (session, ingest, answer) = whep.answer_publisher(offer, ip, segment_target)?;
    let has_audio = ingest.has_audio();
    let publisher = match videos.start(key, "").await {
        Ok(p) => p,
        Err(e) => {
            whep.forget_publisher(&session);
            return Err(e.into());
        }
    };
    let video_id = publisher.video_id.clone();
    let (sink, rx) = mpsc::channel(INGEST_QUEUE);
    if let Err(e) = whep.add_publisher(&session, &video_id, ingest, sink).await {
        let _ = publisher.tx.send(IngestMessage::End).await;
        return Err(e.into());
    }
    info!(video = %video_id, %session, %ip, "WHIP publish");
    tokio::spawn(forward(publisher, rx, has_audio));
    Ok((video_id, session, answer))
}

/// Hands a publisher's events to its video session until the WebRTC session ends.
async fn forward(publisher: Publisher, mut rx: mpsc::Receiver<IngestEvent>, has_audio: bool) {
    let video = publisher.video_id.clone();
    let mut opus = None;
    if has_audio {
        // WebRTC's Opus is signalled as two channels; what browsers send is mostly mono, and
        // the decoder mixes down what is not.
        match OpusToAac::new(None, 1, 48_000, AAC_BITRATE) {
            Ok(c) => {
                let config = MediaEvent::Config(TrackConfig::Aac(c.config().clone()));
                if !send(&publisher, config).await {
                    return;
                }
                opus = Some(c);
            }
            Err(e) => warn!(%video, "WHIP: no audio (Opus to AAC: {e})"),
        }
    }
    let mut decode_errors = 0u64;
    while let Some(event) = rx.recv().await {
        let events = match event {
            IngestEvent::Media(m) => vec![m],
            IngestEvent::Opus { pts, data } => match opus.as_mut() {
                Some(c) => {
                    // WebRTC players get the publisher's Opus as it came; the AAC made from it
                    // is for the recording and LL-HLS.
                    let own = IngestMessage::Opus {
                        pts,
                        data: data.clone(),
                    };
                    if publisher.tx.send(own).await.is_err() {
                        return;
                    }
                    match c.push(pts, &data) {
                        Ok(frames) => frames.into_iter().map(MediaEvent::Frame).collect(),
                        Err(e) => {
                            decode_errors += 1;
                            if decode_errors.is_power_of_two() {
                                debug!(%video, "WHIP: Opus to AAC: {e}");
                            }
                            Vec::new()
                        }
                    }
                }
                None => Vec::new(),
            },
        };
        for e in events {
            if !send(&publisher, e).await {
                return;
            }
        }
    }
    if let Some(c) = opus.as_mut() {
        for f in c.finish() {
            if !send(&publisher, MediaEvent::Frame(f)).await {
                return;
            }
        }
    }
    let _ = publisher.tx.send(IngestMessage::End).await;
    info!(%video, "WHIP publish ended");
}

async fn send(p: &Publisher, event: MediaEvent) -> bool {
    let arrival = chrono::Utc::now().timestamp_micros();
    p.tx.send(IngestMessage::Media(event, arrival))
        .await
        .is_ok()
}
