//! The recorder: stores a rendition's init segments and segments as they are made (a killed
//! server loses at most the segment in progress), writes the fast-start MP4 at the end, and
//! reads a recording back from storage alone after a crash. The layout is [`super::recording`]'s.

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{info, warn};
use vshare_package::VodMp4Builder;

use super::recording::{
    RecordMessage, Recording, RecordingError, Store, StoredLayout, init_name, segment_name,
};
use crate::db::{Db, SegmentRow};
use crate::storage::{Storage, object_path};

/// Storage and URL prefix of a rendition: nothing for the source, `<name>/` for a rung.
pub fn rendition_prefix(rendition: Option<&str>) -> String {
    rendition.map(|n| format!("{n}/")).unwrap_or_default()
}

/// Records one rendition from the session's messages until the channel closes; `stored` is
/// told each segment number once its object is stored (the live server then lets its parts go).
pub async fn record(
    storage: Storage,
    db: Db,
    id: String,
    rendition: Option<String>,
    mut rx: mpsc::UnboundedReceiver<RecordMessage>,
    stored: impl Fn(u64) + Send,
) -> anyhow::Result<Recording> {
    let prefix = rendition_prefix(rendition.as_deref());
    let rendition = rendition.unwrap_or_default();
    let mut recording = Recording::default();
    while let Some(message) = rx.recv().await {
        let stores = match recording.push(message) {
            Ok(stores) => stores,
            Err(RecordingError::SegmentBeforeInit(msn)) => {
                warn!(video = %id, msn, "segment before init segment; not recorded");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for store in stores {
            match store {
                Store::Object { name, bytes } => {
                    if name.starts_with("init") && name != init_name(true, 0) {
                        info!(video = %id, rendition = %rendition, init = %name, "codec configuration changed; recording goes on with a new init segment");
                    }
                    storage
                        .put(&object_path(&id, &format!("{prefix}{name}")), bytes)
                        .await?;
                }
                Store::Row(row) => {
                    db.add_segment(&id, &rendition, &row).await?;
                    stored(row.msn as u64);
                }
            }
        }
    }
    Ok(recording)
}

/// The source's recording read back from storage alone (after a crash). A segment or init
/// segment that does not read (cut short by the crash) ends the recording.
pub async fn rebuild(storage: &Storage, id: &str) -> anyhow::Result<Recording> {
    let names = storage.list_video(id).await?;
    let layout = StoredLayout::from_names(names.iter().map(String::as_str));
    let first = init_name(true, 0);
    let init = storage.get(&object_path(id, &first)).await?;
    let mut builder = VodMp4Builder::new(&init)?;
    let mut recording = Recording::default();
    recording.init_size = init.len() as u64;
    let mut current = first;
    for &msn in &layout.segments {
        let wanted = layout.init_of(msn);
        if wanted != current {
            let bytes = storage.get(&object_path(id, &wanted)).await?;
            if let Err(e) = builder.add_init(&bytes) {
                warn!(video = %id, msn, init = %wanted, "init segment not usable: {e}");
                break;
            }
            recording.init_size += bytes.len() as u64;
            current = wanted;
        }
        let bytes = storage.get(&object_path(id, &segment_name(msn))).await?;
        let before = builder.duration_us();
        if let Err(e) = builder.add_segment(&bytes) {
            warn!(video = %id, msn, "segment not usable: {e}");
            break;
        }
        recording.segments.push(SegmentRow {
            msn: msn as i64,
            duration_us: builder.duration_us() - before,
            size: bytes.len() as i64,
            init_name: current.clone(),
        });
    }
    recording.builder = Some(builder);
    Ok(recording)
}

/// Writes `video.mp4`: the fast-start header, then the sample data of every segment in order.
/// Returns its size.
pub async fn write_mp4(
    storage: &Storage,
    id: &str,
    prefix: &str,
    builder: &VodMp4Builder,
    segments: &[SegmentRow],
) -> anyhow::Result<u64> {
    let mut out = storage
        .writer(&object_path(id, &format!("{prefix}video.mp4")))
        .await?;
    let header = builder.header();
    let mut size = header.len() as u64;
    out.write(&header);
    let mut cached: Option<(usize, Bytes)> = None;
    for (index, range) in builder.payload_ranges() {
        let bytes = match &cached {
            Some((i, b)) if *i == index => b.clone(),
            _ => {
                let seg = segments.get(index).ok_or_else(|| {
                    anyhow::anyhow!("segment #{index} of the MP4 layout was not recorded")
                })?;
                let b = storage
                    .get(&object_path(
                        id,
                        &format!("{prefix}{}", segment_name(seg.msn as u64)),
                    ))
                    .await?;
                cached = Some((index, b.clone()));
                b
            }
        };
        if range.start > range.end || range.end > bytes.len() {
            anyhow::bail!(
                "segment #{index}: range {range:?} beyond its {} bytes",
                bytes.len()
            );
        }
        size += range.len() as u64;
        // A view of the segment as read, not a copy into the upload's buffer.
        out.put(bytes.slice(range));
    }
    out.finish().await?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use vshare_package::{Packager, PackagerConfig, PackagerOutput};
    use vshare_testkit::db::sqlite_url;
    use vshare_testkit::ffmpeg::{decode_errors, frame_sizes, make_test_clip, size_runs};
    use vshare_testkit::flv::read_events;

    use super::*;
    use crate::db::{Video, random_id};

    /// 3 s of H.264 at `size` (30 fps, a key frame each second) + AAC, as an FLV made by
    /// ffmpeg; its parameter sets are only in the sequence header (global headers).
    fn clip(dir: &std::path::Path, size: &str) -> std::path::PathBuf {
        make_test_clip(
            &dir.join(format!("{size}.flv")),
            size,
            3,
            Some(44100),
            &[
                "-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv",
            ],
        )
    }

    /// Runs of decoded pictures of one size: ((width, height), count).
    type SizeRuns = Vec<((u64, u64), usize)>;

    /// ffmpeg's decode errors (empty when clean) and the decoded pictures' sizes as runs.
    fn decode(path: &std::path::Path) -> (String, SizeRuns) {
        (decode_errors(path), size_runs(&frame_sizes(path)))
    }

    /// The source's recorder task over `rx`, its stored confirmations ignored.
    fn spawn_source_recorder(
        storage: &Storage,
        db: &Db,
        id: &str,
        rx: mpsc::UnboundedReceiver<RecordMessage>,
    ) -> tokio::task::JoinHandle<anyhow::Result<Recording>> {
        tokio::spawn(record(
            storage.clone(),
            db.clone(),
            id.to_string(),
            None,
            rx,
            |_| {},
        ))
    }

    /// Storage in `dir`, an SQLite database and a live video: (storage, db, video id).
    async fn recording(dir: &std::path::Path) -> (Storage, Db, String) {
        let storage = Storage::open(None, &dir.join("store")).expect("storage");
        let db = Db::open(&sqlite_url(dir, "t.db")).await.expect("db");
        let (key, _) = db
            .create_key("phone")
            .await
            .expect("key")
            .expect("new name");
        let id = random_id(12);
        db.insert_video(&Video::new_live(&id, &key.id, "t"))
            .await
            .expect("video");
        (storage, db, id)
    }

    #[tokio::test]
    async fn an_init_segment_before_any_segment_replaces_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (storage, db, id) = recording(dir.path()).await;
        let mut packager = Packager::new(PackagerConfig::default());
        let mut outputs = Vec::new();
        for (i, (_, event)) in read_events(&clip(dir.path(), "320x180"), 0)
            .into_iter()
            .enumerate()
        {
            outputs.extend(packager.push(event, i as i64).expect("push"));
        }
        outputs.extend(packager.finish());
        let (tx, rx) = mpsc::unbounded_channel();
        let recorder = spawn_source_recorder(&storage, &db, &id, rx);
        // A configuration that no segment used: the publisher changed it before its first key
        // frame was packaged.
        let unused = vshare_package::fmp4::init_segment(
            None,
            Some(&vshare_media::AacConfig::parse(Bytes::from_static(&[0x11, 0x90])).expect("asc")),
        )
        .expect("init");
        tx.send(RecordMessage::Init(unused)).expect("send");
        let mut init = None;
        for out in outputs {
            match out {
                PackagerOutput::Init { bytes, .. } => {
                    init = Some(bytes.clone());
                    tx.send(RecordMessage::Init(bytes)).expect("send");
                }
                PackagerOutput::Segment {
                    msn,
                    duration_us,
                    bytes,
                    ..
                } => tx
                    .send(RecordMessage::Segment {
                        msn,
                        duration_us,
                        bytes,
                    })
                    .expect("send"),
                PackagerOutput::Part { .. } => {}
            }
        }
        drop(tx);
        let rec = recorder.await.expect("join").expect("recorded");
        let init = init.expect("init");
        assert_eq!(
            storage
                .get(&object_path(&id, "init.mp4"))
                .await
                .expect("init"),
            init
        );
        assert_eq!(rec.init_size, init.len() as u64);
        let names = storage.list_video(&id).await.expect("list");
        assert!(
            names.iter().filter(|n| n.starts_with("init")).count() == 1,
            "{names:?}"
        );
        assert!(rec.segments.iter().all(|s| s.init_name == "init.mp4"));
        write_mp4(
            &storage,
            &id,
            "",
            rec.builder.as_ref().expect("b"),
            &rec.segments,
        )
        .await
        .expect("mp4");
        let (errors, runs) = decode(&dir.path().join("store/videos").join(&id).join("video.mp4"));
        assert!(errors.is_empty(), "decode errors: {errors}");
        assert_eq!(runs, [((320, 180), 90)]);
    }

    #[tokio::test]
    async fn a_configuration_change_is_recorded_and_rebuilt_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        let (storage, db, id) = recording(dir.path()).await;

        // 640x360 → 320x180 → 640x360, each step a new encoder and a new avcC.
        let (big, small) = (clip(dir.path(), "640x360"), clip(dir.path(), "320x180"));
        let mut input = read_events(&big, 0);
        input.extend(read_events(&small, 3000));
        input.extend(read_events(&big, 6000));
        let mut packager = Packager::new(PackagerConfig::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let recorder = spawn_source_recorder(&storage, &db, &id, rx);
        // The init segment each segment was packaged under, as the packager said.
        let mut inits: Vec<Bytes> = Vec::new();
        let mut expected: Vec<(i64, usize)> = Vec::new();
        let mut outputs = Vec::new();
        for (i, (_, event)) in input.into_iter().enumerate() {
            outputs.extend(packager.push(event, i as i64).expect("push"));
        }
        outputs.extend(packager.finish());
        for out in outputs {
            match out {
                PackagerOutput::Init { bytes, .. } => {
                    inits.push(bytes.clone());
                    tx.send(RecordMessage::Init(bytes)).expect("send");
                }
                PackagerOutput::Segment {
                    msn,
                    duration_us,
                    bytes,
                    ..
                } => {
                    expected.push((msn as i64, inits.len() - 1));
                    tx.send(RecordMessage::Segment {
                        msn,
                        duration_us,
                        bytes,
                    })
                    .expect("send");
                }
                PackagerOutput::Part { .. } => {}
            }
        }
        drop(tx);
        let rec = recorder.await.expect("join").expect("recorded");
        assert_eq!(inits.len(), 3);

        // Each init segment is stored under the first segment that uses it; each row names it.
        let first_of = |init: usize| expected.iter().find(|(_, i)| *i == init).expect("used").0;
        let names = [
            "init.mp4".to_string(),
            format!("init{}.mp4", first_of(1)),
            format!("init{}.mp4", first_of(2)),
        ];
        for (name, bytes) in names.iter().zip(&inits) {
            let stored = storage.get(&object_path(&id, name)).await.expect(name);
            assert_eq!(&stored, bytes, "{name}");
        }
        let rows = db.segments(&id, "").await.expect("rows");
        assert_eq!(
            rows.iter()
                .map(|r| (r.msn, r.init_name.as_str()))
                .collect::<Vec<_>>(),
            expected
                .iter()
                .map(|(msn, i)| (*msn, names[*i].as_str()))
                .collect::<Vec<_>>()
        );
        assert_eq!(rec.segments, rows);
        assert_eq!(
            rec.init_size,
            inits.iter().map(|b| b.len() as u64).sum::<u64>()
        );

        // The MP4 decodes whole, each picture at the size it was sent.
        let builder = rec.builder.as_ref().expect("builder");
        write_mp4(&storage, &id, "", builder, &rec.segments)
            .await
            .expect("mp4");
        let mp4 = store.join("videos").join(&id).join("video.mp4");
        let (errors, runs) = decode(&mp4);
        assert!(errors.is_empty(), "decode errors: {errors}");
        assert_eq!(runs, [((640, 360), 90), ((320, 180), 90), ((640, 360), 90)]);

        // After a crash, storage alone gives back the same recording.
        let rebuilt = rebuild(&storage, &id).await.expect("rebuild");
        assert_eq!(
            rebuilt
                .segments
                .iter()
                .map(|r| (r.msn, r.init_name.clone()))
                .collect::<Vec<_>>(),
            rows.iter()
                .map(|r| (r.msn, r.init_name.clone()))
                .collect::<Vec<_>>()
        );
        assert_eq!(rebuilt.init_size, rec.init_size);
        assert_eq!(
            rebuilt.builder.as_ref().expect("builder").header(),
            builder.header()
        );

        // A crash right after the last init segment was stored, before its first segment:
        // the init segment is left unused and the recording ends at the segment before.
        let last_change = first_of(2);
        for (msn, _) in expected.iter().filter(|(m, _)| *m >= last_change) {
            storage
                .delete(&object_path(&id, &format!("seg{msn}.m4s")))
                .await
                .expect("delete");
        }
        let cut = rebuild(&storage, &id).await.expect("rebuild after crash");
        assert_eq!(
            cut.segments.last().map(|r| (r.msn, r.init_name.clone())),
            Some((last_change - 1, names[1].clone()))
        );
        write_mp4(
            &storage,
            &id,
            "",
            cut.builder.as_ref().expect("b"),
            &cut.segments,
        )
        .await
        .expect("mp4");
        let (errors, runs) = decode(&mp4);
        assert!(errors.is_empty(), "decode errors: {errors}");
        assert_eq!(runs, [((640, 360), 90), ((320, 180), 90)]);
    }
}
