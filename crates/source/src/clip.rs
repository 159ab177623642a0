//! A pre-encoded H.264/AAC FLV clip held in memory and looped with continuous timestamps: what
//! every publisher of `vshare bench` sends, read once and shared.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use vshare_media::flv::{self, TagType};

use crate::feed::TagFeed;
use crate::{SourceError, Tag, TagKind};

/// Sequence headers once, then media tags looped every [`Clip::period_ms`].
#[derive(Debug, Clone)]
pub struct Clip {
    headers: Vec<Tag>,
    tags: Vec<Tag>,
    period_ms: i64,
}

impl Clip {
    /// Reads an FLV file's audio and video tags.
    pub fn load(path: &Path) -> Result<Clip, SourceError> {
        let at = |e: &dyn std::fmt::Display| SourceError::Input(format!("{}: {e}", path.display()));
        let data = std::fs::read(path)
            .map_err(|e| SourceError::Input(format!("reading {}: {e}", path.display())))?;
        let file = flv::read_file(Bytes::from(data)).map_err(|e| at(&e))?;
        let mut tags = Vec::new();
        for t in file {
            let kind = match t.tag_type {
                TagType::Video => TagKind::Video,
                TagType::Audio => TagKind::Audio,
                _ => continue,
            };
            let config = match kind {
                TagKind::Video => match flv::parse_video(t.body.clone()) {
                    Ok(flv::VideoTag::SequenceHeader(_)) => true,
                    // FFmpeg ends FLV files with an AVC end-of-sequence tag: not media, and it
                    // would repeat the last timestamp when the clip loops.
                    Ok(flv::VideoTag::EndOfSequence) => continue,
                    _ => false,
                },
                TagKind::Audio => matches!(
                    flv::parse_audio(t.body.clone()),
                    Ok(flv::AudioTag::SequenceHeader(_))
                ),
            };
            // FLV video tag: frame type 1 in the high nibble is a keyframe (FLV spec E.4.3.1).
            let key = kind == TagKind::Audio || t.body.first().is_some_and(|b| b >> 4 == 1);
            tags.push(Tag {
                kind,
                timestamp_ms: i64::from(t.timestamp_ms),
                body: t.body,
                key,
                config,
            });
        }
        Self::from_tags(tags).map_err(|e| at(&e))
    }

    /// A clip of these tags: the sequence headers are sent once, the media tags loop, their
    /// timestamps from 0. One loop lasts the clip's video frames at their mean interval.
    pub fn from_tags(all: Vec<Tag>) -> Result<Clip, SourceError> {
        let (headers, mut tags): (Vec<Tag>, Vec<Tag>) = all.into_iter().partition(|t| t.config);
        if headers.is_empty() || tags.is_empty() {
            return Err(SourceError::Input(
                "no H.264/AAC sequence headers or no media tags".into(),
            ));
        }
        tags.sort_by_key(|t| t.timestamp_ms);
        let first = tags[0].timestamp_ms;
        for t in &mut tags {
            t.timestamp_ms -= first;
        }
        let video: Vec<i64> = tags
            .iter()
            .filter(|t| t.kind == TagKind::Video)
            .map(|t| t.timestamp_ms)
            .collect();
        // One loop lasts as many video frames as the clip has, at its mean frame interval, so
        // the next pass goes on along the same frame grid (a server sees a steady stream, not
        // a fraction of a frame's jump at every loop); tags from then on are cut.
        let period_ms = match video.as_slice() {
            [first, .., last] => {
                let n = video.len() as i64;
                ((last - first) * n + (n - 1) / 2) / (n - 1)
            }
            _ => tags.last().map_or(0, |t| t.timestamp_ms) + 33,
        }
        .max(1);
        tags.retain(|t| t.timestamp_ms < period_ms);
        Ok(Clip {
            headers,
            tags,
            period_ms,
        })
    }

    /// The sequence headers, to send before the first media tag.
    pub fn headers(&self) -> &[Tag] {
        &self.headers
    }

    /// Media tags in one loop.
    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }

    /// How long one loop lasts, ms.
    pub fn period_ms(&self) -> i64 {
        self.period_ms
    }
}

/// The media tags of a [`Clip`] again and again, each pass `period_ms` later, until
/// `duration_ms` of media time.
pub struct LoopedClip {
    clip: Arc<Clip>,
    duration_ms: i64,
    pass: i64,
    next: usize,
}

impl LoopedClip {
    pub fn new(clip: Arc<Clip>, duration_ms: i64) -> Self {
        Self {
            clip,
            duration_ms,
            pass: 0,
            next: 0,
        }
    }

    fn advance(&mut self) -> Option<Tag> {
        let t = self.clip.tags.get(self.next)?;
        let timestamp_ms = t.timestamp_ms + self.pass * self.clip.period_ms;
        if timestamp_ms >= self.duration_ms {
            return None;
        }
        let tag = Tag {
            timestamp_ms,
            ..t.clone()
        };
        self.next += 1;
        if self.next == self.clip.tags.len() {
            self.next = 0;
            self.pass += 1;
        }
        Some(tag)
    }
}

impl TagFeed for LoopedClip {
    async fn next_tag(&mut self) -> Result<Option<Tag>, SourceError> {
        Ok(self.advance())
    }

    fn ready_tag(&mut self) -> Result<Option<Tag>, SourceError> {
        Ok(self.advance())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(kind: TagKind, timestamp_ms: i64, config: bool) -> Tag {
        Tag {
            kind,
            timestamp_ms,
            body: Bytes::from_static(b"x"),
            key: true,
            config,
        }
    }

    fn clip() -> Clip {
        Clip::from_tags(vec![
            tag(TagKind::Video, 0, true),
            tag(TagKind::Audio, 0, true),
            tag(TagKind::Video, 100, false),
            tag(TagKind::Audio, 110, false),
            tag(TagKind::Video, 140, false),
        ])
        .expect("clip")
    }

    #[test]
    fn headers_are_apart_and_media_starts_at_zero() {
        let c = clip();
        assert_eq!(c.headers().len(), 2);
        assert_eq!(c.tag_count(), 3);
        assert_eq!(c.period_ms(), 80, "last tag at 40 ms plus one 40 ms frame");
    }

    #[test]
    fn the_loop_has_continuous_timestamps_and_stops_at_the_duration() {
        let mut looped = LoopedClip::new(Arc::new(clip()), 200);
        let got: Vec<i64> = std::iter::from_fn(|| looped.ready_tag().ok().flatten())
            .map(|t| t.timestamp_ms)
            .collect();
        assert_eq!(got, vec![0, 10, 40, 80, 90, 120, 160, 170]);
    }

    #[test]
    fn a_loop_keeps_a_30_fps_grid_and_cuts_audio_past_it() {
        // ffmpeg's FLV of 10 s at 30 fps: times rounded to the ms, video every 33 or 34 ms,
        // AAC 44.1 kHz to 10.03 s.
        let ms = |num: i64, den: i64| (num * 1000 + den / 2) / den;
        let mut tags = vec![tag(TagKind::Video, 0, true), tag(TagKind::Audio, 0, true)];
        tags.extend((0..300).map(|i| tag(TagKind::Video, ms(i, 30), false)));
        tags.extend((0..432).map(|i| tag(TagKind::Audio, ms(i * 1024, 44_100), false)));
        let c = Clip::from_tags(tags).expect("clip");
        assert_eq!(c.period_ms(), 10_000);
        assert_eq!(
            c.tag_count(),
            300 + 431,
            "the audio frame at 10.007 s is cut"
        );
        // The second pass's frames sit on the first pass's grid: 300 frames later, to the ms.
        let mut looped = LoopedClip::new(Arc::new(c), 20_000);
        let video: Vec<i64> = std::iter::from_fn(|| looped.ready_tag().ok().flatten())
            .filter(|t| t.kind == TagKind::Video)
            .map(|t| t.timestamp_ms)
            .collect();
        assert_eq!(video.len(), 600);
        assert!((0..600).all(|i| video[i] == ms(i as i64, 30)));
    }

    #[test]
    fn a_clip_without_headers_is_refused() {
        assert!(Clip::from_tags(vec![tag(TagKind::Video, 0, false)]).is_err());
    }
}
