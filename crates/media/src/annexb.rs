//! H.264 byte stream (ITU-T H.264 Annex B) to AVCC (ISO/IEC 14496-15 §5.3.3.1): x264 writes
//! start codes, FLV and MP4 carry length-prefixed NAL units and an AVCDecoderConfigurationRecord.
//! A few lines of our own, shared by the publisher and the transcoder; the input is our encoders' output.

/// NAL unit type (H.264 §7.4.1, Table 7-1) of a NAL unit.
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// Splits an Annex B byte stream at its start codes (`00 00 01` or `00 00 00 01`).
pub fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i + 2 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(&data[s..end]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start
        && s < data.len()
    {
        nals.push(&data[s..]);
    }
    nals.retain(|n| !n.is_empty());
    nals
}

/// An access unit in AVCC form (4-byte lengths), without access unit delimiters (type 9) and
/// parameter sets (types 7, 8: they travel in the sequence header).
pub fn to_avcc(data: &[u8]) -> Vec<u8> {
    if !is_annexb(data) {
        return data.to_vec();
    }
    let mut out = Vec::with_capacity(data.len() + 16);
    for nal in split(data) {
        if matches!(nal_type(nal), 7..=9) {
            continue;
        }
        out.extend_from_slice(&(nal.len() as u32).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

fn is_annexb(data: &[u8]) -> bool {
    data.starts_with(&[0, 0, 1]) || data.starts_with(&[0, 0, 0, 1])
}

/// The AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1.2) for an encoder's extradata:
/// returned as is when it already is one (first byte 1), built from the SPS and PPS when it is
/// Annex B. `None` if no SPS/PPS is found.
pub fn decoder_configuration_record(extradata: &[u8]) -> Option<Vec<u8>> {
    if extradata.first() == Some(&1) {
        return Some(extradata.to_vec());
    }
    let nals = split(extradata);
    let sps: Vec<&[u8]> = nals.iter().copied().filter(|n| nal_type(n) == 7).collect();
    let pps: Vec<&[u8]> = nals.iter().copied().filter(|n| nal_type(n) == 8).collect();
    let first = sps.first()?;
    if first.len() < 4 || pps.is_empty() {
        return None;
    }
    let mut r = vec![
        1,
        first[1],
        first[2],
        first[3],
        0xff,
        0xe0 | sps.len().min(31) as u8,
    ];
    for s in sps.iter().take(31) {
        r.extend_from_slice(&(s.len() as u16).to_be_bytes());
        r.extend_from_slice(s);
    }
    r.push(pps.len().min(255) as u8);
    for p in pps.iter().take(255) {
        r.extend_from_slice(&(p.len() as u16).to_be_bytes());
        r.extend_from_slice(p);
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_convert() {
        let stream = [
            0, 0, 0, 1, 9, 0xf0, 0, 0, 1, 0x65, 1, 2, 0, 0, 0, 1, 0x41, 3,
        ];
        assert_eq!(
            split(&stream),
            vec![&[9, 0xf0][..], &[0x65, 1, 2], &[0x41, 3]]
        );
        assert_eq!(
            to_avcc(&stream),
            vec![0, 0, 0, 3, 0x65, 1, 2, 0, 0, 0, 2, 0x41, 3]
        );
        // Already AVCC: untouched.
        assert_eq!(to_avcc(&[0, 0, 0, 2, 0x41, 3]), vec![0, 0, 0, 2, 0x41, 3]);
    }

    #[test]
    fn record_from_parameter_sets() {
        let extradata = [
            0, 0, 0, 1, 0x67, 0x64, 0, 0x1e, 0xac, 0, 0, 0, 1, 0x68, 0xeb, 0xe3,
        ];
        let r = decoder_configuration_record(&extradata).expect("record");
        assert_eq!(
            r,
            vec![
                1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 5, 0x67, 0x64, 0, 0x1e, 0xac, 1, 0, 3, 0x68, 0xeb,
                0xe3
            ]
        );
        assert_eq!(decoder_configuration_record(&[0, 0, 1, 0x68, 1]), None);
    }
}
