//! The server's webhook: a signed POST of each video event (`stream.live`, `video.ready`,
//! `video.formats`) to the configured URL. It is a channel of the proxy's outbox: the event is
//! queued in the transaction that changes the video (so the hand-off is never lost between the
//! two) as a direct message to the URL, and the proxy's webhook dispatcher delivers it with its
//! retries, backoff and signature (`x-vshare-signature: sha256=<hex>`).

use vshare_proxy::Proxy;
use vshare_proxy::direct::{Direct, Target};
use vshare_proxy::store::Channel;

use crate::config::WebhookConfig;

/// The configured webhook and the proxy that delivers it.
#[derive(Clone, Default)]
pub struct Webhooks {
    config: Option<WebhookConfig>,
    proxy: Option<Proxy>,
}

/// One video event to queue with a video update.
#[derive(Debug, Clone)]
pub struct Hook {
    /// `stream.live`, `video.ready`, `video.formats`.
    pub event: &'static str,
    pub url: String,
}

impl Hook {
    /// The outbox message for it: the body is the server's event JSON, posted as it is.
    pub fn message(&self, source: &str, video_id: &str, body: String) -> Direct {
        Direct {
            id: vshare_sql::random_id(16),
            kind: self.event.to_string(),
            source: source.to_string(),
            video_id: video_id.to_string(),
            records: Vec::new(),
            body: Some(body),
            targets: vec![Target {
                channel: Channel::Webhook,
                address: self.url.clone(),
                form: "json".into(),
            }],
        }
    }
}

impl Webhooks {
    /// With `config` set, `proxy` must run the webhook dispatcher.
    pub fn new(config: Option<WebhookConfig>, proxy: Option<Proxy>) -> Self {
        Webhooks { config, proxy }
    }

    /// The hook to queue with a video update, or None when no webhook is configured.
    pub fn hook(&self, event: &'static str) -> Option<Hook> {
        self.config.as_ref().map(|c| Hook {
            event,
            url: c.url.clone(),
        })
    }

    /// Tells the dispatcher that an event was queued.
    pub fn wake(&self) {
        if let Some(p) = &self.proxy {
            p.wake();
        }
    }
}
