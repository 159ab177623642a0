//! An SMPP client (ESME) over tokio: connect with retries and backoff, bind, submit a batch
//! with the session's window, receive deliver_sm. The protocol lives in [`vshare_smpp::Session`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vshare_smpp::pdu::Sm;
use vshare_smpp::{BindKind, Config, Event, Session};

/// Where and how to bind.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port`.
    pub addr: String,
    pub kind: BindKind,
    pub system_id: String,
    pub password: String,
    /// For a receiver: the number it receives for.
    pub address_range: String,
    pub config: Config,
    /// Connection attempts before giving up, with doubling backoff from `retry_backoff`.
    pub attempts: u32,
    pub retry_backoff: Duration,
    /// How long to wait for bind_resp.
    pub bind_timeout: Duration,
}

impl ClientOptions {
    pub fn new(addr: &str, kind: BindKind, system_id: &str, password: &str) -> ClientOptions {
        ClientOptions {
            addr: addr.into(),
            kind,
            system_id: system_id.into(),
            password: password.into(),
            address_range: String::new(),
            config: Config::default(),
            attempts: 5,
            retry_backoff: Duration::from_millis(200),
            bind_timeout: Duration::from_secs(10),
        }
    }
}

/// Why one message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("SMSC refused the message with command_status 0x{0:08X}")]
    Refused(u32),
    #[error("SMSC did not answer in time (the message may have been accepted)")]
    TimedOut,
    #[error(
        "the connection broke after the message was sent and before the SMSC answered; not sent again"
    )]
    Unconfirmed,
}

/// A bound SMPP connection.
pub struct Client {
    stream: TcpStream,
    session: Session,
    events: VecDeque<Event>,
    deliveries: VecDeque<Sm>,
    buf: Vec<u8>,
    peer: String,
}

impl Client {
    /// Connects (retrying with backoff) and binds.
    pub async fn connect(opts: &ClientOptions) -> anyhow::Result<Client> {
        let mut backoff = opts.retry_backoff;
        let mut attempt = 0;
        let stream = loop {
            attempt += 1;
            match TcpStream::connect(&opts.addr).await {
                Ok(s) => break s,
                Err(e) if attempt < opts.attempts.max(1) => {
                    tracing::warn!(
                        "SMPP connect to {} failed ({e}); retrying in {backoff:?}",
                        opts.addr
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("connecting to the SMSC at {}", opts.addr));
                }
            }
        };
        stream.set_nodelay(true)?;
        let mut c = Client {
            stream,
            session: Session::esme(opts.config.clone()),
            events: VecDeque::new(),
            deliveries: VecDeque::new(),
            buf: vec![0; 64 * 1024],
            peer: opts.addr.clone(),
        };
        c.session.bind(
            opts.kind,
            &opts.system_id,
            &opts.password,
            &opts.address_range,
            Instant::now(),
        );
        let deadline = Instant::now() + opts.bind_timeout;
        loop {
            if Instant::now() >= deadline {
                bail!(
                    "the SMSC at {} did not answer the bind within {:?}",
                    opts.addr,
                    opts.bind_timeout
                );
            }
            c.step(Some(deadline)).await?;
            while let Some(e) = c.events.pop_front() {
                match e {
                    Event::Bound { system_id, .. } => {
                        tracing::info!("bound to {} ({system_id}) as {:?}", opts.addr, opts.kind);
                        return Ok(c);
                    }
                    Event::BindFailed { status } => {
                        bail!(
                            "the SMSC at {} refused the bind: command_status 0x{status:08X}",
                            opts.addr
                        )
                    }
                    other => c.events.push_back(other),
                }
            }
        }
    }

    /// Writes what the session has, then waits for input or the session's next timer (or
    /// `deadline`), and collects events.
    async fn step(&mut self, deadline: Option<Instant>) -> anyhow::Result<()> {
        while let Some(bytes) = self.session.poll_transmit() {
            self.stream
                .write_all(&bytes)
                .await
                .with_context(|| format!("writing to the SMSC at {}", self.peer))?;
        }
        let wake = [self.session.poll_timeout(), deadline]
            .into_iter()
            .flatten()
            .min();
        let sleep = async {
            match wake {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = self.stream.read(&mut self.buf) => {
                let n = r.with_context(|| format!("reading from the SMSC at {}", self.peer))?;
                if n == 0 {
                    bail!("the SMSC at {} closed the connection", self.peer);
                }
                self.session.handle_input(&self.buf[..n], Instant::now())?;
            }
            _ = sleep => self.session.handle_timeout(Instant::now()),
        }
        // Answers (deliver_sm_resp, enquire_link_resp) go out at once, not at the next call.
        while let Some(bytes) = self.session.poll_transmit() {
            self.stream
                .write_all(&bytes)
                .await
                .with_context(|| format!("writing to the SMSC at {}", self.peer))?;
        }
        while let Some(e) = self.session.poll_event() {
            match e {
                Event::Deliver { sm } => self.deliveries.push_back(sm),
                Event::LinkDead => {
                    bail!("the SMSC at {} stopped answering enquire_link", self.peer)
                }
                Event::Unbound => bail!("the SMSC at {} unbound", self.peer),
                Event::BadPdu { error } => tracing::warn!("bad PDU from {}: {error}", self.peer),
                other => self.events.push_back(other),
            }
        }
        Ok(())
    }

    /// Submits every message, keeping the window full; returns each message's id or error,
    /// in order. Throttling answers are retried by the session after a backoff.
    pub async fn submit_many(
        &mut self,
        messages: Vec<Sm>,
    ) -> anyhow::Result<Vec<Result<String, SubmitError>>> {
        let n = messages.len();
        let mut results: Vec<Option<Result<String, SubmitError>>> = vec![None; n];
        self.submit_tagged(messages.into_iter().enumerate().collect(), &mut results)
            .await?;
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or(Err(SubmitError::TimedOut)))
            .collect())
    }

    /// Submits (index, message) pairs and fills `results[index]` as answers come.
    async fn submit_tagged(
        &mut self,
        messages: Vec<(usize, Sm)>,
        results: &mut [Option<Result<String, SubmitError>>],
    ) -> anyhow::Result<()> {
        let n = messages.len();
        let now = Instant::now();
        for (i, sm) in messages {
            self.session.submit(i as u64, sm, now);
        }
        let mut left = n;
        while left > 0 {
            self.step(None)
                .await
                .with_context(|| format!("{left} of {n} messages unanswered"))?;
            while let Some(e) = self.events.pop_front() {
                let (tag, r) = match e {
                    Event::Submitted { tag, message_id } => (tag, Ok(message_id)),
                    Event::Failed { tag, status } => (tag, Err(SubmitError::Refused(status))),
                    Event::TimedOut { tag } => (tag, Err(SubmitError::TimedOut)),
                    Event::Throttled {
                        tag,
                        status,
                        retry_at,
                    } => {
                        tracing::debug!(
                            "message {tag} throttled (0x{status:02X}); retry in {:?}",
                            retry_at.saturating_duration_since(Instant::now())
                        );
                        continue;
                    }
                    _ => continue,
                };
                if let Some(slot) = results.get_mut(tag as usize)
                    && slot.is_none()
                {
                    *slot = Some(r);
                    left -= 1;
                }
            }
        }
        Ok(())
    }

    /// Connects, binds and submits; when the connection breaks, reconnects (up to
    /// `reconnects` times, backing off) and sends again the messages that had not gone out.
    /// A message that was sent but not answered before the break is *not* sent again (it may
    /// have arrived; a duplicate is worse than a report): it comes back as
    /// [`SubmitError::Unconfirmed`]. Returns the results in order and the bound client.
    pub async fn submit_with_reconnect(
        opts: &ClientOptions,
        messages: Vec<Sm>,
        reconnects: u32,
    ) -> anyhow::Result<(Vec<Result<String, SubmitError>>, Client)> {
        let n = messages.len();
        let mut results: Vec<Option<Result<String, SubmitError>>> = vec![None; n];
        let mut todo: Vec<(usize, Sm)> = messages.into_iter().enumerate().collect();
        let mut backoff = opts.retry_backoff;
        let mut attempt = 0;
        loop {
            let mut client = Client::connect(opts).await?;
            match client
                .submit_tagged(std::mem::take(&mut todo), &mut results)
                .await
            {
                Ok(()) => {
                    let out = results
                        .into_iter()
                        .map(|r| r.unwrap_or(Err(SubmitError::TimedOut)))
                        .collect();
                    return Ok((out, client));
                }
                Err(e) => {
                    let (queued, in_flight) = client.session.take_unanswered();
                    for (tag, _) in in_flight {
                        if let Some(slot) = results.get_mut(tag as usize)
                            && slot.is_none()
                        {
                            *slot = Some(Err(SubmitError::Unconfirmed));
                        }
                    }
                    todo = queued.into_iter().map(|(t, sm)| (t as usize, sm)).collect();
                    attempt += 1;
                    if attempt > reconnects {
                        return Err(e.context(format!(
                            "gave up after {reconnects} reconnect(s); {} message(s) not sent",
                            todo.len()
                        )));
                    }
                    tracing::warn!(
                        "SMPP connection lost ({e:#}); reconnecting in {backoff:?} with {} message(s) to send",
                        todo.len()
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// The next deliver_sm, or `None` at `deadline`.
    pub async fn recv(&mut self, deadline: Option<Instant>) -> anyhow::Result<Option<Sm>> {
        loop {
            if let Some(sm) = self.deliveries.pop_front() {
                return Ok(Some(sm));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            self.step(deadline).await?;
            self.events.clear();
        }
    }

    /// Unbinds politely (waits up to a second for unbind_resp).
    pub async fn unbind(mut self) -> anyhow::Result<()> {
        self.session.unbind(Instant::now());
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if self.step(Some(deadline)).await.is_err() {
                break;
            }
        }
        Ok(())
    }
}
