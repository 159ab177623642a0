//! Recordings in object storage: a local directory by default, S3-compatible at scale.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

/// An object's bytes as they are read.
pub type ByteStream = futures::stream::BoxStream<'static, object_store::Result<Bytes>>;

/// Where a video's objects live: `videos/<id>/<name>`.
pub fn object_path(video_id: &str, name: &str) -> Path {
    Path::from(format!("videos/{video_id}/{name}"))
}

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl Storage {
    /// Opens `url` (`s3://…`, `file:///…`), or the local directory `default_dir`.
    pub fn open(url: Option<&str>, default_dir: &std::path::Path) -> anyhow::Result<Storage> {
        match url {
            None => {
                std::fs::create_dir_all(default_dir).map_err(|e| {
                    anyhow::anyhow!("storage directory {}: {e}", default_dir.display())
                })?;
                // Deleting a video's last object removes its emptied directories too.
                let store =
                    LocalFileSystem::new_with_prefix(default_dir)?.with_automatic_cleanup(true);
                Ok(Storage {
                    store: Arc::new(store),
                    prefix: Path::default(),
                })
            }
            Some(url) => {
                let parsed =
                    url::Url::parse(url).map_err(|e| anyhow::anyhow!("storage url {url}: {e}"))?;
                if parsed.scheme() == "file" {
                    let dir = parsed
                        .to_file_path()
                        .map_err(|_| anyhow::anyhow!("storage url {url}: not a local path"))?;
                    return Self::open(None, &dir);
                }
                let options = std::env::vars()
                    .filter(|(k, _)| k.starts_with("AWS_"))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v));
                let (store, prefix) = object_store::parse_url_opts(&parsed, options)?;
                Ok(Storage {
                    store: Arc::from(store),
                    prefix,
                })
            }
        }
    }

    fn full(&self, path: &Path) -> Path {
        if self.prefix.as_ref().is_empty() {
            path.clone()
        } else {
            Path::from(format!("{}/{}", self.prefix, path))
        }
    }

    pub async fn put(&self, path: &Path, bytes: Bytes) -> anyhow::Result<()> {
        self.store
            .put(&self.full(path), PutPayload::from_bytes(bytes))
            .await?;
        Ok(())
    }

    pub async fn get(&self, path: &Path) -> anyhow::Result<Bytes> {
        Ok(self.store.get(&self.full(path)).await?.bytes().await?)
    }

    pub async fn get_range(&self, path: &Path, range: Range<u64>) -> anyhow::Result<Bytes> {
        Ok(self.store.get_range(&self.full(path), range).await?)
    }

    /// The bytes of `range` (or the whole object) as a stream of chunks read as they are
    /// taken, with its length: a slow reader holds a chunk or two, never the object.
    pub async fn get_stream(
        &self,
        path: &Path,
        range: Option<Range<u64>>,
    ) -> anyhow::Result<(u64, ByteStream)> {
        let opts = GetOptions {
            range: range.map(Into::into),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&self.full(path), opts).await?;
        let len = got.range.end - got.range.start;
        Ok((len, got.into_stream()))
    }

    /// Size in bytes, or None when the object does not exist.
    pub async fn size(&self, path: &Path) -> anyhow::Result<Option<u64>> {
        match self.store.head(&self.full(path)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Object names under a video, relative to it (`seg3.m4s`, `240p/seg3.m4s`).
    pub async fn list_video(&self, video_id: &str) -> anyhow::Result<Vec<String>> {
        let prefix = self.full(&Path::from(format!("videos/{video_id}")));
        let metas: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        let base = format!("{prefix}/");
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&base).map(str::to_string))
            .collect())
    }

    /// Removes one object; one that is already gone is not an error.
    pub async fn delete(&self, path: &Path) -> anyhow::Result<()> {
        match self.store.delete(&self.full(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes every object of a video (in batches where the store has bulk deletes, as S3
    /// does); returns how many there were.
    pub async fn delete_video(&self, video_id: &str) -> anyhow::Result<usize> {
        let paths: Vec<object_store::Result<Path>> = self
            .list_video(video_id)
            .await?
            .iter()
            .map(|name| Ok(self.full(&object_path(video_id, name))))
            .collect();
        let n = paths.len();
        let mut results = self
            .store
            .delete_stream(futures::stream::iter(paths).boxed());
        while let Some(r) = results.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    /// Copies a local file into an object, streaming it.
    pub async fn put_file(&self, path: &Path, file: &std::path::Path) -> anyhow::Result<u64> {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let mut out = self.writer(path).await?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n as u64;
            out.write(&buf[..n]);
        }
        out.finish().await?;
        Ok(total)
    }

    /// Writes an object from parts as they come; it appears whole at the end or not at all.
    pub async fn writer(&self, path: &Path) -> anyhow::Result<WriteMultipart> {
        let upload = self.store.put_multipart(&self.full(path)).await?;
        Ok(WriteMultipart::new_with_chunk_size(upload, 8 << 20))
    }
}
