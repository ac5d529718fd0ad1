//! Deployment events from the daemon's Server-Sent Event streams: a reader of the wire format
//! (bounded lines), the [`Subscription`] the bindings' `events()` iterate, and the
//! [`LogFollow`] their `follow_logs()` iterate.

use clank_api::Event;
use clank_api::services::WorkloadLogLine;
use clank_core::{ErrorKind, Result};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::{Method, Url};
use tokio::sync::{mpsc, oneshot};

use crate::http::{Http, error};

/// Longest line of an event stream kept (an event's JSON is far smaller); beyond it the
/// stream is refused rather than buffered without end.
const MAX_LINE: usize = 1 << 20;

/// Events buffered between the daemon and a subscriber that is not reading; beyond it events
/// are dropped (like the embedded platform's follower that falls behind).
const BUFFER: usize = 1024;

/// Log lines read ahead of a follower that is not reading; beyond it the reading waits (and
/// so does the daemon's stream, through the connection): nothing is dropped.
const LOG_BUFFER: usize = 256;

/// One Server-Sent Events stream, read event by event.
pub(crate) struct EventReader {
    chunks: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
    what: String,
}

/// An event as sent: its name and data.
pub(crate) struct RawEvent {
    pub(crate) name: String,
    pub(crate) data: String,
}

impl EventReader {
    /// Open `url` as an event stream (no deadline: it lives as long as it is read).
    pub(crate) async fn open(http: &Http, url: Url) -> Result<EventReader> {
        let what = format!("GET {}", url.path());
        let response = http
            .request(Method::GET, url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| {
                error(
                    ErrorKind::Unavailable,
                    format!(
                        "cannot reach the Clank daemon at {} ({what}): {e}; is `clank-daemon` \
                         running there?",
                        http.base()
                    ),
                )
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            return Err(http.refusal(&what, status, &body));
        }
        Ok(EventReader {
            chunks: response.bytes_stream().boxed(),
            buf: Vec::new(),
            what,
        })
    }

    /// The next event, `None` when the daemon ended the stream. Cancel-safe: what was read is
    /// kept in `self`.
    pub(crate) async fn next_raw(&mut self) -> Result<Option<RawEvent>> {
        let (mut name, mut data) = (String::new(), String::new());
        loop {
            while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    if !data.is_empty() {
                        return Ok(Some(RawEvent { name, data }));
                    }
                    name.clear();
                } else if let Some(v) = line.strip_prefix("event:") {
                    v.trim().clone_into(&mut name);
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
                // Comments (`:` keep-alives) and other fields are skipped.
            }
            if self.buf.len() > MAX_LINE {
                return Err(error(
                    ErrorKind::Internal,
                    format!("{}: an event line longer than {MAX_LINE} bytes", self.what),
                ));
            }
            match self.chunks.next().await {
                None => return Ok(None),
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    return Err(error(
                        ErrorKind::Unavailable,
                        format!("{}: the event stream broke: {e}", self.what),
                    ));
                }
            }
        }
    }
}

/// What a task reads from one of the daemon's streams into a bounded buffer; dropping it
/// aborts the task, which ends the HTTP request (the daemon's stream goes with the connection).
#[derive(Debug)]
pub struct Streamed<T> {
    items: mpsc::Receiver<Result<T>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T> Drop for Streamed<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T> Streamed<T> {
    /// The next item; `None` once the daemon ended the stream (for logs: the workloads are
    /// gone; either: it is shutting down). Cancel-safe.
    pub async fn next(&mut self) -> Result<Option<T>> {
        self.items.recv().await.transpose()
    }
}

/// Deployment events from the moment of [`Client::subscribe`](crate::Client::subscribe), read
/// by a task into a bounded buffer that drops what a reader does not take in time.
pub type Subscription = Streamed<Event>;

/// A service's log lines as the daemon streams them (`GET …/logs?follow=true`), from the tail
/// of its history on, into a bounded buffer that waits for a slow reader (backpressure,
/// nothing is dropped).
pub type LogFollow = Streamed<WorkloadLogLine>;

impl Subscription {
    /// Open `url` on `runtime`; `opened` fires once the daemon has answered (the stream is
    /// registered there) or refused.
    pub(crate) fn start(
        http: Http,
        url: Url,
        runtime: &tokio::runtime::Handle,
        opened: oneshot::Sender<()>,
    ) -> Subscription {
        let (tx, events) = mpsc::channel(BUFFER);
        let task = runtime.spawn(async move {
            let opening = EventReader::open(&http, url).await;
            let _ = opened.send(());
            let mut reader = match opening {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            loop {
                let item = match reader.next_raw().await {
                    Ok(None) => return,
                    Ok(Some(raw)) => serde_json::from_str::<Event>(&raw.data).map_err(|e| {
                        error(
                            ErrorKind::Internal,
                            format!(
                                "a `{}` event this client does not understand ({e}); are the \
                                 client and daemon the same version?",
                                raw.name
                            ),
                        )
                    }),
                    Err(e) => Err(e),
                };
                let last = item.is_err();
                match tx.try_send(item) {
                    // A subscriber that stopped reading loses events, never memory.
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
                if last {
                    return;
                }
            }
        });
        Streamed {
            items: events,
            task,
        }
    }
}

impl LogFollow {
    /// Follow `url` on `runtime`, or report `refused` (a request that could not be made) as
    /// the first line's error.
    pub(crate) fn start(
        http: Http,
        url: Result<Url>,
        runtime: &tokio::runtime::Handle,
    ) -> LogFollow {
        let (tx, lines) = mpsc::channel(LOG_BUFFER);
        let task = runtime.spawn(async move {
            let opening = match url {
                Ok(url) => EventReader::open(&http, url).await,
                Err(e) => Err(e),
            };
            let mut reader = match opening {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            loop {
                let item = match reader.next_raw().await {
                    Ok(None) => return,
                    Ok(Some(raw)) => match raw.name.as_str() {
                        "line" => serde_json::from_str::<WorkloadLogLine>(&raw.data).map_err(|e| {
                            error(
                                ErrorKind::Internal,
                                format!(
                                    "a log line this client does not understand ({e}); are the \
                                     client and daemon the same version?"
                                ),
                            )
                        }),
                        // The daemon's log stream failed; it ends the stream after it.
                        "error" => Err(error(ErrorKind::Unavailable, raw.data)),
                        _ => continue,
                    },
                    Err(e) => Err(e),
                };
                let last = item.is_err();
                // Waits while the buffer is full: a slow reader slows the stream, never loses
                // lines.
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        Streamed { items: lines, task }
    }
}
