//! Where a publisher's tags come from: the [`TagFeed`] trait, and the source on its own thread
//! ([`SourceThread`]) feeding one.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::{Input, Source, SourceError, SourceInfo, SourceOptions, Tag};

/// Tags in decode order, for [`crate::RtmpSession::send_in_real_time`].
pub trait TagFeed {
    /// The next tag, waiting for it if need be; `Ok(None)` at the end. Cancel-safe: dropped
    /// while it waits (one branch of a `select!`), it loses no tag.
    fn next_tag(&mut self) -> impl Future<Output = Result<Option<Tag>, SourceError>> + Send;

    /// The next tag if one is ready now; `Ok(None)` when none is (or at the end, which
    /// [`TagFeed::next_tag`] tells). Lets the publisher queue every due tag before it writes.
    fn ready_tag(&mut self) -> Result<Option<Tag>, SourceError>;
}

/// How many tags the source thread may run ahead of the network.
const AHEAD: usize = 64;

/// A [`Source`] on its own thread (FFmpeg's work is blocking). Its tags come through a bounded
/// channel, so the thread runs at most a few dozen tags ahead of the network.
pub struct SourceThread {
    tags: mpsc::Receiver<Result<Tag, SourceError>>,
}

impl SourceThread {
    /// Opens the source on a new thread and waits until it is open.
    pub async fn spawn(
        input: Input,
        options: SourceOptions,
    ) -> Result<(SourceInfo, SourceThread), SourceError> {
        let (tx, tags) = mpsc::channel(AHEAD);
        let (info_tx, info_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("vshare-source".into())
            .spawn(move || {
                let source = match Source::open(&input, &options) {
                    Ok(s) => {
                        let _ = info_tx.send(Ok(s.info().clone()));
                        s
                    }
                    Err(e) => {
                        let _ = info_tx.send(Err(e));
                        return;
                    }
                };
                for t in source {
                    let failed = t.is_err();
                    // A closed channel: the publish is over.
                    if tx.blocking_send(t).is_err() || failed {
                        break;
                    }
                }
            })
            .map_err(|e| SourceError::Input(format!("starting the source thread: {e}")))?;
        let info = info_rx
            .await
            .map_err(|_| SourceError::Input("the source thread ended early".into()))??;
        Ok((info, SourceThread { tags }))
    }
}

impl TagFeed for SourceThread {
    async fn next_tag(&mut self) -> Result<Option<Tag>, SourceError> {
        self.tags.recv().await.transpose()
    }

    fn ready_tag(&mut self) -> Result<Option<Tag>, SourceError> {
        self.tags.try_recv().ok().transpose()
    }
}
