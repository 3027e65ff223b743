//! The JSON access log: one line per request, written when the response body ends.
//!
//! Lines are handed to a dedicated writer thread through a bounded channel, so a slow
//! stdout or disk never blocks a request; when the channel is full the line is dropped and
//! counted (`portcullis_access_log_dropped_total`). Query strings are never logged: they may
//! carry credentials (presigned URLs).

use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};
use crate::config::AccessLog;
use crate::identity::ConnInfo;
use crate::telemetry::metrics as m;

const CHANNEL_CAPACITY: usize = 16 * 1024;

/// Cloneable handle to the access-log writer (or a no-op when the log is off).
#[derive(Clone, Debug)]
pub struct AccessLogger {
    tx: Option<SyncSender<String>>,
}

impl AccessLogger {
    pub fn start(target: &AccessLog) -> io::Result<AccessLogger> {
        let out: Box<dyn Write + Send> = match target {
            AccessLog::Off => return Ok(AccessLogger { tx: None }),
            AccessLog::Stdout => Box::new(io::stdout()),
            AccessLog::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = mpsc::sync_channel(CHANNEL_CAPACITY);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(rx, out))?;
        Ok(AccessLogger { tx: Some(tx) })
    }

    pub fn off() -> AccessLogger {
        AccessLogger { tx: None }
    }

    /// Whether lines are written at all: with `access_log = "off"` the line is never
    /// built (building it was ~9 % of the gateway's CPU per keep-alive request).
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Write a line that is not a request's (the issuer's audit lines), same rules.
    pub fn write_line(&self, line: String) {
        self.log(line);
    }

    fn log(&self, line: String) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(_)) = tx.try_send(line) {
                metrics::counter!(m::ACCESS_LOG_DROPPED_TOTAL).increment(1);
            }
        }
    }
}

fn write_lines(rx: Receiver<String>, out: Box<dyn Write + Send>) {
    let mut out = BufWriter::new(out);
    while let Ok(line) = rx.recv() {
        let mut ok = writeln!(out, "{line}").is_ok();
        // Drain what is already queued before paying for a flush.
        while let Ok(line) = rx.try_recv() {
            ok &= writeln!(out, "{line}").is_ok();
        }
        ok &= out.flush().is_ok();
        if !ok {
            eprintln!("portcullis: access log write failed; lines are being lost");
        }
    }
}

/// What is known about one request, filled in as it moves through the pipeline.
#[derive(Debug)]
pub struct AccessRecord {
    pub start: Instant,
    pub time: SystemTime,
    pub conn: Arc<ConnInfo>,
    pub method: http::Method,
    pub path: String,
    pub route: Option<Arc<str>>,
    pub upstream: Option<Arc<str>>,
    pub status: u16,
    /// `allowed`, or why the gateway refused or failed the request.
    pub reason: &'static str,
    /// The bearer token's claims, when a `jwt` method authenticated the request.
    pub token: Option<Arc<crate::auth::jwt::Verified>>,
    /// How the request authenticated beyond mTLS (`sigv4`), and as whom.
    pub auth: Option<&'static str>,
    pub principal: Option<Arc<str>>,
    pub access_key_id: Option<Arc<str>>,
    /// The role and session name of a SigV4 session credential.
    pub role: Option<Arc<str>>,
    pub session: Option<Arc<str>>,
}

impl AccessRecord {
    pub fn new(conn: Arc<ConnInfo>, method: http::Method, path: &str) -> Self {
        conn.activity.begin();
        AccessRecord {
            start: Instant::now(),
            time: SystemTime::now(),
            conn,
            method,
            path: path.to_owned(),
            route: None,
            upstream: None,
            status: 0,
            reason: "",
            token: None,
            auth: None,
            principal: None,
            access_key_id: None,
            role: None,
            session: None,
        }
    }

    fn to_line(&self, bytes: u64, complete: bool) -> String {
        let id = self.conn.identity();
        let client: SocketAddr = self.conn.peer;
        serde_json::json!({
            "time": humantime::format_rfc3339_millis(self.time).to_string(),
            "client": client.to_string(),
            "listener": &*self.conn.listener,
            "subject": id.map(|i| i.subject.as_str()),
            "uri_san": id.and_then(|i| i.uri_sans.first()).map(String::as_str),
            "fingerprint": id.map(|i| i.fingerprint.as_str()),
            "route": self.route.as_deref(),
            "method": self.method.as_str(),
            "path": self.path,
            "status": self.status,
            "upstream": self.upstream.as_deref(),
            "bytes": bytes,
            // Microsecond resolution; more digits are float noise, not precision.
            "duration_ms": (self.start.elapsed().as_micros() as f64) / 1000.0,
            "reason": self.reason,
            "client_id": self.token.as_ref().and_then(|t| t.client_id.as_deref()),
            "sub": self.token.as_ref().and_then(|t| t.sub.as_deref()),
            "scopes": self.token.as_ref().map(|t| t.scopes.join(" ")),
            "auth": self.auth,
            "principal": self.principal.as_deref(),
            "access_key_id": self.access_key_id.as_deref(),
            "role": self.role.as_deref(),
            "session": self.session.as_deref(),
            "complete": complete,
        })
        .to_string()
    }
}

/// A response body that counts what it sends and writes the access-log line when it ends
/// (or is dropped early: `complete` is then false).
pub struct LoggedBody {
    inner: ProxyBody,
    record: Option<AccessRecord>,
    logger: AccessLogger,
    bytes: u64,
    complete: bool,
}

impl LoggedBody {
    pub fn new(inner: ProxyBody, record: AccessRecord, logger: AccessLogger) -> Self {
        LoggedBody {
            inner,
            record: Some(record),
            logger,
            bytes: 0,
            complete: false,
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                }
            }
            Poll::Ready(None) => this.complete = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(rec) = self.record.take() {
            if self.logger.is_on() {
                // An empty body that hyper never polled still completed.
                let complete = self.complete || self.inner.is_end_stream();
                self.logger.log(rec.to_line(self.bytes, complete));
            }
            rec.conn.activity.end();
        }
    }
}
