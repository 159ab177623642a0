//! Fragmented MP4 (ISO/IEC 14496-12 §8.8) in the CMAF layout (ISO/IEC 23000-19): the init
//! segment and moof+mdat fragments. Boxes are mp4-atom's types; this module decides their contents.

use bytes::{BufMut, Bytes, BytesMut};
use mp4_atom::{
    Atom, Audio, Avc1, Avcc, Codec, Dinf, Dref, Encode, Esds, Ftyp, Hdlr, Mdhd, Mdia, Mfhd, Minf,
    Moof, Moov, Mp4a, Mvex, Mvhd, Smhd, Stbl, Stco, Stsd, Tfdt, Tfhd, Tkhd, Traf, Trak, Trex, Trun,
    TrunEntry, Url, Visual, Vmhd, esds,
};
use vshare_media::{AacConfig, AvcConfig};

use crate::PackageError;

/// Track ID of the video track (ISO/IEC 14496-12 §8.3.2 `track_ID`).
pub const VIDEO_TRACK_ID: u32 = 1;
/// Track ID of the audio track.
pub const AUDIO_TRACK_ID: u32 = 2;
/// Media timescale of the video track (ticks per second), as MPEG-TS and most muxers use.
pub const VIDEO_TIMESCALE: u32 = 90_000;

/// `sample_flags` of a sync sample: sample_depends_on = 2 (depends on no other sample)
/// (ISO/IEC 14496-12 §8.8.3.1).
pub const FLAGS_SYNC: u32 = 0x0200_0000;
/// `sample_flags` of a non-sync sample: sample_depends_on = 1, sample_is_non_sync_sample = 1.
pub const FLAGS_NON_SYNC: u32 = 0x0101_0000;

/// One sample of a track fragment run.
#[derive(Debug, Clone)]
pub struct FragmentSample {
    /// Duration in the track's timescale.
    pub duration: u32,
    /// Composition offset (CTS − DTS) in the track's timescale; `None` for audio.
    pub cts: Option<i32>,
    pub sync: bool,
    pub data: Bytes,
}

/// The samples of one track in one fragment.
#[derive(Debug, Clone)]
pub struct TrackFragment<'a> {
    pub track_id: u32,
    /// `baseMediaDecodeTime` of the first sample (ISO/IEC 14496-12 §8.8.12), track timescale.
    pub base_decode_time: u64,
    pub samples: &'a [FragmentSample],
}

fn encode<T: Encode>(atom: &T) -> Result<Vec<u8>, PackageError> {
    let mut buf = Vec::new();
    atom.encode(&mut buf)?;
    Ok(buf)
}

/// `ftyp` of the init segment. No `cmfc` brand: a CMAF track holds one media track, and our
/// fragments mux audio and video (ISO/IEC 23000-19 §7.3.1), as HLS allows.
fn init_ftyp() -> Ftyp {
    Ftyp {
        major_brand: b"iso6".into(),
        minor_version: 0,
        compatible_brands: vec![b"iso6".into(), b"isom".into(), b"mp41".into()],
    }
}

fn video_trak(avc: &AvcConfig) -> Result<Trak, PackageError> {
    let mut record: &[u8] = &avc.record;
    let mut avcc = match Avcc::decode_body(&mut record) {
        Ok(a) => a,
        // A record with a damaged or padded High-profile extension: keep its parameter sets.
        Err(_) => {
            let (sps, pps) = avc.parameter_sets();
            if sps.is_empty() || pps.is_empty() {
                return Err(PackageError::Config(
                    "avcC without a sequence and a picture parameter set".into(),
                ));
            }
            Avcc {
                configuration_version: 1,
                avc_profile_indication: avc.profile_idc,
                profile_compatibility: avc.constraint_flags,
                avc_level_indication: avc.level_idc,
                length_size: 4,
                sequence_parameter_sets: sps.iter().map(|b| b.to_vec()).collect(),
                picture_parameter_sets: pps.iter().map(|b| b.to_vec()).collect(),
                ext: None,
            }
        }
    };
    // Frames reach us with 4-byte NAL unit lengths whatever the publisher used
    // (vshare_media::flv rewrites them), so the sample entry says 4 (ISO/IEC 14496-15 §5.3.3.1).
    avcc.length_size = 4;
    let width = u16::try_from(avc.width)
        .map_err(|_| PackageError::Config(format!("picture width {} too large", avc.width)))?;
    let height = u16::try_from(avc.height)
        .map_err(|_| PackageError::Config(format!("picture height {} too large", avc.height)))?;
    let codec = Avc1 {
        visual: Visual {
            data_reference_index: 1,
            width,
            height,
            ..Default::default()
        },
        avcc,
        ..Default::default()
    };
    Ok(Trak {
        tkhd: Tkhd {
            track_id: VIDEO_TRACK_ID,
            enabled: true,
            in_movie: true,
            width: width.into(),
            height: height.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: VIDEO_TIMESCALE,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"vide".into(),
                name: "vshare video".into(),
            },
            minf: Minf {
                vmhd: Some(Vmhd::default()),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url::default().into()],
                    },
                },
                stbl: empty_stbl(Codec::Avc1(codec)),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

fn audio_trak(aac: &AacConfig) -> Result<Trak, PackageError> {
    let mut dec = esds::DecoderSpecific {
        profile: aac.object_type,
        freq_index: 0,
        chan_conf: aac.channels,
        raw: aac.asc.to_vec(),
    };
    // freq_index is only informative next to the raw AudioSpecificConfig, which is what is written.
    if let Some(i) = [
        96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000,
    ]
    .iter()
    .chain(&[11025, 8000, 7350])
    .position(|r| *r == aac.sample_rate)
    {
        dec.freq_index = i as u8;
    }
    let codec = Mp4a {
        audio: Audio {
            data_reference_index: 1,
            channel_count: u16::from(aac.channels.max(1)),
            sample_size: 16,
            // ISO/IEC 14496-12 §12.2.3: 16.16 fixed point; rates above 65535 Hz do not fit, the
            // decoder takes the rate from the AudioSpecificConfig.
            sample_rate: u16::try_from(aac.output_sample_rate).unwrap_or(0).into(),
        },
        esds: Esds {
            es_desc: esds::EsDescriptor {
                es_id: AUDIO_TRACK_ID as u16,
                depends_on_es_id: None,
                url: None,
                ocr_es_id: None,
                stream_priority: 0,
                dec_config: esds::DecoderConfig {
                    // ISO/IEC 14496-1 Table 5: 0x40 = Audio ISO/IEC 14496-3; stream type 5 = audio.
                    object_type_indication: 0x40,
                    stream_type: 5,
                    up_stream: 0,
                    buffer_size_db: Default::default(),
                    max_bitrate: 0,
                    avg_bitrate: 0,
                    dec_specific: Some(dec),
                },
                sl_config: esds::SLConfig::default(),
            },
        },
        btrt: None,
        taic: None,
    };
    Ok(Trak {
        tkhd: Tkhd {
            track_id: AUDIO_TRACK_ID,
            enabled: true,
            in_movie: true,
            alternate_group: 1,
            volume: 1.into(),
            ..Default::default()
        },
        mdia: Mdia {
            mdhd: Mdhd {
                timescale: aac.sample_rate,
                language: "und".into(),
                ..Default::default()
            },
            hdlr: Hdlr {
                handler: b"soun".into(),
                name: "vshare audio".into(),
            },
            minf: Minf {
                smhd: Some(Smhd::default()),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![Url::default().into()],
                    },
                },
                stbl: empty_stbl(Codec::Mp4a(codec)),
                ..Default::default()
            },
        },
        ..Default::default()
    })
}

fn empty_stbl(codec: Codec) -> Stbl {
    Stbl {
        stsd: Stsd {
            codecs: vec![codec],
        },
        stco: Some(Stco::default()),
        ..Default::default()
    }
}

/// The init segment, laid out as a CMAF header (ISO/IEC 23000-19 §7.3.2.1): `ftyp` + `moov` with an `mvex` that announces
/// fragments for each track. Video is track 1 (90 kHz), audio track 2 (timescale = sample rate).
pub fn init_segment(
    video: Option<&AvcConfig>,
    audio: Option<&AacConfig>,
) -> Result<Bytes, PackageError> {
    let mut trak = Vec::new();
    let mut trex = Vec::new();
    if let Some(v) = video {
        trak.push(video_trak(v)?);
        trex.push(Trex {
            track_id: VIDEO_TRACK_ID,
            default_sample_description_index: 1,
            ..Default::default()
        });
    }
    if let Some(a) = audio {
        trak.push(audio_trak(a)?);
        trex.push(Trex {
            track_id: AUDIO_TRACK_ID,
            default_sample_description_index: 1,
            ..Default::default()
        });
    }
    if trak.is_empty() {
        return Err(PackageError::Config(
            "an init segment needs at least one track".into(),
        ));
    }
    let moov = Moov {
        mvhd: Mvhd {
            timescale: 1000,
            next_track_id: AUDIO_TRACK_ID + 1,
            rate: 1.into(),
            volume: 1.into(),
            ..Default::default()
        },
        mvex: Some(Mvex { mehd: None, trex }),
        trak,
        ..Default::default()
    };
    let mut out = encode(&init_ftyp())?;
    out.extend_from_slice(&encode(&moov)?);
    Ok(Bytes::from(out))
}

/// One fragment: `moof` (a `traf` per track with `tfhd` default-base-is-moof, `tfdt` v1 and a
/// `trun` v1 with durations, sizes, flags and signed composition offsets) followed by its `mdat`
/// (ISO/IEC 14496-12 §8.8.4–§8.8.12). Tracks without samples are left out.
pub fn fragment(sequence_number: u32, tracks: &[TrackFragment<'_>]) -> Result<Bytes, PackageError> {
    let tracks: Vec<&TrackFragment<'_>> = tracks.iter().filter(|t| !t.samples.is_empty()).collect();
    let mut moof = Moof {
        mfhd: Mfhd { sequence_number },
        traf: tracks
            .iter()
            .map(|t| Traf {
                tfhd: Tfhd {
                    track_id: t.track_id,
                    default_base_is_moof: true,
                    ..Default::default()
                },
                tfdt: Some(Tfdt {
                    base_media_decode_time: t.base_decode_time,
                }),
                trun: vec![Trun {
                    data_offset: Some(0),
                    samples: t
                        .samples
                        .iter()
                        .map(|s| TrunEntry {
                            duration: Some(s.duration),
                            size: Some(s.data.len() as u32),
                            flags: Some(if s.sync { FLAGS_SYNC } else { FLAGS_NON_SYNC }),
                            cts: s.cts.map(i64::from),
                        })
                        .collect::<Vec<_>>()
                        .into(),
                }],
                ..Default::default()
            })
            .collect(),
    };
    let payload: usize = tracks
        .iter()
        .flat_map(|t| t.samples.iter())
        .map(|s| s.data.len())
        .sum();
    let moof_len = encode(&moof)?.len();
    // The data offsets do not change the moof's size, so the first encoding measures it.
    let mut offset = moof_len + 8;
    for (traf, t) in moof.traf.iter_mut().zip(&tracks) {
        if let Some(trun) = traf.trun.first_mut() {
            trun.data_offset = Some(i32::try_from(offset).map_err(|_| {
                PackageError::Encode(format!("fragment of {payload} bytes is too large"))
            })?);
        }
        offset += t.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    let mdat_len = u32::try_from(payload + 8)
        .map_err(|_| PackageError::Encode(format!("fragment of {payload} bytes is too large")))?;
    let mut out = BytesMut::with_capacity(moof_len + 8 + payload);
    out.extend_from_slice(&encode(&moof)?);
    out.put_u32(mdat_len);
    out.put_slice(b"mdat");
    for s in tracks.iter().flat_map(|t| t.samples.iter()) {
        out.put_slice(&s.data);
    }
    Ok(out.freeze())
}

/// One top-level box located in a buffer.
#[derive(Debug, Clone, Copy)]
pub struct BoxSpan {
    pub kind: [u8; 4],
    pub start: usize,
    pub body: usize,
    pub end: usize,
}

/// Walks the top-level boxes of `data` (ISO/IEC 14496-12 §4.2: 32-bit size, or 1 and a 64-bit
/// size, or 0 for "to the end"), checking every size against the buffer.
pub fn top_level_boxes(data: &[u8], layer: &str) -> Result<Vec<BoxSpan>, PackageError> {
    let err = |offset: usize, what: String| PackageError::Mp4 {
        layer: layer.to_string(),
        offset,
        what,
    };
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let h = data.get(pos..pos + 8).ok_or_else(|| {
            err(
                pos,
                format!("truncated box header ({} bytes left)", data.len() - pos),
            )
        })?;
        let size32 = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let kind = [h[4], h[5], h[6], h[7]];
        let (body, size) = match size32 {
            0 => (pos + 8, (data.len() - pos) as u64),
            1 => {
                let l = data
                    .get(pos + 8..pos + 16)
                    .ok_or_else(|| err(pos, "truncated 64-bit box size".into()))?;
                let mut b = [0u8; 8];
                b.copy_from_slice(l);
                (pos + 16, u64::from_be_bytes(b))
            }
            n => (pos + 8, u64::from(n)),
        };
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|e| *e >= body && *e <= data.len())
            .ok_or_else(|| {
                err(
                    pos,
                    format!(
                        "box '{}' of {size} bytes does not fit ({} bytes left)",
                        fourcc(kind),
                        data.len() - pos
                    ),
                )
            })?;
        out.push(BoxSpan {
            kind,
            start: pos,
            body,
            end,
        });
        pos = end;
    }
    Ok(out)
}

/// A four-character code for messages, with non-printable bytes escaped.
pub fn fourcc(kind: [u8; 4]) -> String {
    kind.iter()
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect()
}
