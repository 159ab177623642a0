//! The graceful stop of `vshare serve`: the signals that start it, and the flag every listener
//! and publisher connection watches (docs/deployment.md, "Stopping and killing").

use tokio::sync::watch;

/// Set once, when the process is to stop; listeners stop accepting and publishes end.
#[derive(Clone)]
pub struct Stopping(watch::Receiver<bool>);

/// What sets [`Stopping`].
pub struct Trigger(watch::Sender<bool>);

/// A flag and its trigger; the flag is never set while the trigger lives and is not pulled.
pub fn flag() -> (Trigger, Stopping) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Stopping(rx))
}

impl Trigger {
    pub fn pull(&self) {
        self.0.send_replace(true);
    }

    pub fn flag(&self) -> Stopping {
        Stopping(self.0.subscribe())
    }
}

impl Stopping {
    /// A flag that is never set (for servers run without a stop).
    pub fn never() -> Stopping {
        let (tx, rx) = watch::channel(false);
        // The sender is kept alive for good: a dropped one would read as "stop".
        std::mem::forget(tx);
        Stopping(rx)
    }

    pub fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the flag is set (or its trigger is gone).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// SIGTERM and SIGINT (Ctrl-C), listened to from creation on: none is missed between two
/// calls of [`Signals::next`].
pub struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    pub fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Signals { streams }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Resolves with the name of the next signal to arrive.
    pub async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            match &mut self.streams {
                Some((term, int)) => tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                },
                None => std::future::pending().await,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => "Ctrl-C",
                Err(_) => std::future::pending().await,
            }
        }
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_flag_is_seen_by_every_copy_and_never_is_never() {
        let (trigger, flag) = flag();
        let copy = flag.clone();
        assert!(!flag.is_set());
        trigger.pull();
        copy.wait().await;
        assert!(flag.is_set() && trigger.flag().is_set());
        assert!(!Stopping::never().is_set());
    }
}
