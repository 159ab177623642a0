//! The encoders of the decode+encode and test-pattern pipelines: libx264 tuned for live
//! publishing, and AAC at 48 kHz stereo; each turns its packets into FLV tags.

use ff::format::Pixel;
use ff::format::sample::{Sample, Type as SampleType};
use ff::util::channel_layout::ChannelLayout;
use ffmpeg_next as ff;
use vshare_media::flv;

use super::{AUDIO_RATE, extradata_of_context, ms, tag};
use crate::{Merger, SourceError, Tag, TagKind, annexb, ff};

/// Opens libx264 for live publishing: `veryfast`, `zerolatency`, a key frame every second, no
/// B-frames, a VBV of `bufsize` bits; returns it with its AVCDecoderConfigurationRecord.
pub(crate) fn open_x264(
    width: u32,
    height: u32,
    fps: u32,
    bitrate: u64,
    time_base: ff::Rational,
    bufsize: u64,
    extra: &[(&str, &str)],
) -> Result<(ff::encoder::Video, Vec<u8>), SourceError> {
    let codec = ff::encoder::find_by_name("libx264")
        .ok_or_else(|| SourceError::Input("this FFmpeg has no libx264 encoder".into()))?;
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(ff("creating the H.264 encoder"))?;
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(Pixel::YUV420P);
    enc.set_time_base(time_base);
    enc.set_frame_rate(Some(ff::Rational(fps as i32, 1)));
    enc.set_bit_rate(bitrate as usize);
    enc.set_max_bit_rate(bitrate as usize);
    enc.set_gop(fps);
    enc.set_max_b_frames(0);
    enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
    let mut opts = ff::Dictionary::new();
    opts.set("preset", "veryfast");
    opts.set("tune", "zerolatency");
    opts.set("bufsize", &bufsize.to_string());
    opts.set("sc_threshold", "0");
    for (k, v) in extra {
        opts.set(k, v);
    }
    let enc = enc.open_with(opts).map_err(ff("opening libx264"))?;
    let record = annexb::decoder_configuration_record(&extradata_of_context(&enc))
        .ok_or_else(|| SourceError::Input("libx264 gave no SPS/PPS in its extradata".into()))?;
    Ok((enc, record))
}

pub(super) struct VideoEncoder {
    enc: ff::encoder::Video,
    pub(super) time_base: ff::Rational,
    record: Vec<u8>,
}

impl VideoEncoder {
    pub(super) fn open(
        width: u32,
        height: u32,
        fps: u32,
        bitrate: u64,
    ) -> Result<Self, SourceError> {
        let time_base = ff::Rational(1, fps as i32);
        let keyint = fps.to_string();
        let (enc, record) = open_x264(
            width,
            height,
            fps,
            bitrate,
            time_base,
            bitrate,
            &[("keyint_min", &keyint)],
        )?;
        Ok(Self {
            enc,
            time_base,
            record,
        })
    }

    pub(super) fn header(&self) -> Tag {
        tag(
            TagKind::Video,
            0,
            flv::video_sequence_header(&self.record),
            true,
            true,
        )
    }

    fn drain(&mut self, out: &mut Merger) {
        let mut pkt = ff::Packet::empty();
        while self.enc.receive_packet(&mut pkt).is_ok() {
            let Some(pts) = pkt.pts() else { continue };
            let dts = pkt.dts().unwrap_or(pts);
            let cts = (ms(pts, self.time_base) - ms(dts, self.time_base)) as i32;
            let data = annexb::to_avcc(pkt.data().unwrap_or_default());
            let body = flv::video_frame(pkt.is_key(), cts, &data);
            out.video.push_back(tag(
                TagKind::Video,
                ms(dts, self.time_base),
                body,
                pkt.is_key(),
                false,
            ));
        }
    }

    pub(super) fn encode(
        &mut self,
        frame: &ff::frame::Video,
        out: &mut Merger,
    ) -> Result<(), SourceError> {
        self.enc.send_frame(frame).map_err(ff("encoding video"))?;
        self.drain(out);
        Ok(())
    }

    pub(super) fn finish(&mut self, out: &mut Merger) {
        let _ = self.enc.send_eof();
        self.drain(out);
    }
}

pub(super) struct AudioEncoder {
    enc: ff::encoder::Audio,
    asc: Vec<u8>,
}

impl AudioEncoder {
    pub(super) fn open(bitrate: u64) -> Result<Self, SourceError> {
        let codec = ff::encoder::find(ff::codec::Id::AAC)
            .ok_or_else(|| SourceError::Input("this FFmpeg has no AAC encoder".into()))?;
        let mut enc = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(ff("creating the AAC encoder"))?;
        enc.set_rate(AUDIO_RATE as i32);
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_format(Sample::F32(SampleType::Planar));
        enc.set_bit_rate(bitrate as usize);
        enc.set_time_base(ff::Rational(1, AUDIO_RATE as i32));
        enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        let enc = enc.open_as(codec).map_err(ff("opening the AAC encoder"))?;
        let asc = extradata_of_context(&enc);
        if asc.len() < 2 {
            return Err(SourceError::Input(
                "the AAC encoder gave no AudioSpecificConfig".into(),
            ));
        }
        Ok(Self { enc, asc })
    }

    pub(super) fn header(&self) -> Tag {
        tag(
            TagKind::Audio,
            0,
            flv::audio_sequence_header(&self.asc),
            true,
            true,
        )
    }

    fn drain(&mut self, out: &mut Merger) {
        let mut pkt = ff::Packet::empty();
        let tb = ff::Rational(1, AUDIO_RATE as i32);
        while self.enc.receive_packet(&mut pkt).is_ok() {
            let Some(pts) = pkt.pts() else { continue };
            let body = flv::audio_frame(pkt.data().unwrap_or_default());
            out.audio
                .push_back(tag(TagKind::Audio, ms(pts, tb), body, true, false));
        }
    }

    pub(super) fn encode(
        &mut self,
        frame: &ff::frame::Audio,
        out: &mut Merger,
    ) -> Result<(), SourceError> {
        self.enc.send_frame(frame).map_err(ff("encoding audio"))?;
        self.drain(out);
        Ok(())
    }

    pub(super) fn finish(&mut self, out: &mut Merger) {
        let _ = self.enc.send_eof();
        self.drain(out);
    }
}
