//! A run: build the plan from the arguments, drive the connections, print a progress
//! line each second, and merge what every connection measured into the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::Semaphore;
use tokio::time::{timeout, Instant};

use crate::args::{Mode, RunArgs};
use crate::auth::{self, Auth, TokenEndpoint};
use crate::conn::{self, Sender, Target};
use crate::identity::{self, Rotation, Sessions};
use crate::pace::Schedule;
use crate::report::{classify, Report, RunInfo, Stats};
use crate::sigv4::Credentials;

/// Connections being opened at once in idle mode (keeps the accept queue from overflowing).
const IDLE_CONNECT_CONCURRENCY: usize = 64;

/// Everything the connections share.
pub struct Plan {
    pub target: Target,
    pub configs: Vec<Arc<rustls::ClientConfig>>,
    pub rotation: Rotation,
    pub mode: Mode,
    pub schedule: Schedule,
    pub method: Method,
    pub headers: HeaderMap,
    /// Sent with every request (empty: none).
    pub body: Bytes,
    pub auth: Auth,
    pub timeout: Duration,
    pub live: Live,
    /// When the run began: the origin of the latency intervals.
    pub start: Instant,
}

/// Counters the progress line reads.
#[derive(Default)]
pub struct Live {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
    pub handshakes: AtomicU64,
}

/// Runs the load described by `args` and returns its report.
pub async fn run(args: &RunArgs) -> Result<Report> {
    let uri: http::Uri = args
        .url
        .parse()
        .with_context(|| format!("{}: not a URL", args.url))?;
    let target = Target::from_uri(&uri, args.server_name.as_deref()).await?;
    let mut ids = match (&args.identities, &args.cert, &args.key) {
        (Some(dir), _, _) => identity::load_folder(dir)?,
        (None, Some(c), Some(k)) => vec![identity::load_pair(c, k)?],
        _ => vec![],
    };
    if args.max_identities > 0 {
        ids.truncate(args.max_identities);
    }
    let n_ids = ids.len();
    let alpn: &[&[u8]] = if args.http2 { &[b"h2"] } else { &[b"http/1.1"] };
    let sessions = if args.mode == Mode::Resume {
        Sessions::On
    } else {
        Sessions::Off
    };
    let roots = identity::roots(&args.ca)?;
    let configs = identity::client_configs(roots, ids, alpn, sessions)?;
    let auth = build_auth(args, &configs[0]).await?;
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (k, v) = h
            .split_once(':')
            .ok_or_else(|| anyhow!("header {h:?}: want `name: value`"))?;
        headers.append(
            HeaderName::from_bytes(k.trim().as_bytes())?,
            HeaderValue::from_str(v.trim())?,
        );
    }
    if args.body.is_some() && !headers.contains_key(http::header::CONTENT_TYPE) {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    if args.mode == Mode::Idle && duration.is_none() {
        bail!("--mode idle needs --duration (how long to hold the connections)");
    }
    let start = Instant::now();
    let plan = Arc::new(Plan {
        target,
        rotation: Rotation::new(configs.len()),
        configs,
        mode: args.mode,
        schedule: Schedule::new(start, duration, args.requests, args.rate),
        method: Method::from_bytes(args.method.as_bytes())?,
        headers,
        body: Bytes::from(args.body.clone().unwrap_or_default()),
        auth,
        timeout: args.timeout,
        live: Live::default(),
        start,
    });
    let cpu0 = crate::cpu::process_cpu().unwrap_or_default();
    let progress = (!args.quiet).then(|| tokio::spawn(progress(plan.clone(), args.threads)));
    let idle_gate = Arc::new(Semaphore::new(IDLE_CONNECT_CONCURRENCY));
    let workers: Vec<_> = (0..args.connections.max(1))
        .map(|_| {
            let plan = plan.clone();
            let gate = idle_gate.clone();
            tokio::spawn(async move {
                if plan.mode == Mode::Idle {
                    idle_worker(&plan, &gate).await
                } else {
                    worker(&plan).await
                }
            })
        })
        .collect();
    let mut total = Stats::default();
    for w in workers {
        match w.await {
            Ok(s) => total.merge(&s),
            Err(e) => total.error(format!("internal:{e}")),
        }
    }
    let wall = start.elapsed();
    if let Some(p) = progress {
        p.abort();
    }
    let cpu = crate::cpu::process_cpu()
        .unwrap_or_default()
        .saturating_sub(cpu0);
    let info = RunInfo {
        target: args.url.clone(),
        mode: args.mode.name().into(),
        protocol: if args.http2 { "h2" } else { "http/1.1" }.into(),
        connections: args.connections.max(1),
        identities: n_ids,
        rate: args.rate,
        threads: args.threads,
    };
    Ok(Report::build(&info, &total, wall, cpu))
}

async fn build_auth(args: &RunArgs, tls: &Arc<rustls::ClientConfig>) -> Result<Auth> {
    if let Some(t) = &args.bearer {
        return Ok(Auth::Bearer(Arc::new(RwLock::new(auth::bearer_value(t)?))));
    }
    if let Some(pair) = &args.basic_auth {
        return Ok(Auth::Basic(auth::basic_value(pair)?));
    }
    if let (Some(url), Some(id), Some(secret)) =
        (&args.token_url, &args.client_id, &args.client_secret)
    {
        let ep = TokenEndpoint {
            url: url.parse().with_context(|| format!("{url}: not a URL"))?,
            client_id: id.clone(),
            client_secret: secret.clone(),
            scope: args.scope.clone(),
        };
        let (token, life) = auth::fetch_token(&ep, tls.clone()).await?;
        let slot = Arc::new(RwLock::new(auth::bearer_value(&token)?));
        auth::spawn_refresher(ep, tls.clone(), slot.clone(), life);
        return Ok(Auth::Bearer(slot));
    }
    if let (Some(ak), Some(sk)) = (&args.sigv4_access_key, &args.sigv4_secret_key) {
        return Ok(Auth::SigV4(Credentials {
            access_key: ak.clone(),
            secret_key: sk.clone(),
            session_token: args.sigv4_session_token.clone(),
            region: args.sigv4_region.clone(),
            service: args.sigv4_service.clone(),
        }));
    }
    Ok(Auth::None)
}

/// Closed or open loop on one connection slot, reconnecting as the mode requires.
async fn worker(plan: &Plan) -> Stats {
    let mut s = Stats::default();
    let mut sender: Option<Sender> = None;
    let fresh = matches!(plan.mode, Mode::NewConn | Mode::Resume);
    while let Some(ticket) = plan.schedule.take() {
        if let Some(at) = ticket.intended {
            tokio::time::sleep_until(at).await;
        }
        let t0 = ticket.intended.unwrap_or_else(Instant::now);
        let outcome = match timeout(plan.timeout, exchange(plan, &mut sender, &mut s)).await {
            Ok(r) => r,
            Err(_) => Err("timeout".to_string()),
        };
        settle(plan, &mut s, outcome, t0.elapsed(), &mut sender);
        if fresh {
            sender = None;
        }
    }
    s
}

/// Opens one connection, proves it with one request, then holds it until the deadline.
async fn idle_worker(plan: &Plan, gate: &Semaphore) -> Stats {
    let mut s = Stats::default();
    let mut sender: Option<Sender> = None;
    {
        let _permit = gate.acquire().await;
        let t0 = Instant::now();
        let outcome = match timeout(plan.timeout, exchange(plan, &mut sender, &mut s)).await {
            Ok(r) => r,
            Err(_) => Err("timeout".to_string()),
        };
        settle(plan, &mut s, outcome, t0.elapsed(), &mut sender);
    }
    if let Some(d) = plan.schedule.deadline() {
        tokio::time::sleep_until(d).await;
    }
    drop(sender);
    s
}

fn settle(
    plan: &Plan,
    s: &mut Stats,
    outcome: Result<StatusCode, String>,
    latency: Duration,
    sender: &mut Option<Sender>,
) {
    match outcome {
        Ok(status) if status.is_success() || status.is_redirection() => {
            s.ok += 1;
            s.record_at(latency, plan.start.elapsed());
            plan.live.ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(status) => {
            s.error(format!("http_status:{}", status.as_u16()));
            plan.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        Err(class) => {
            s.error(class);
            plan.live.errors.fetch_add(1, Ordering::Relaxed);
            *sender = None;
        }
    }
}

/// One request, connecting first when there is no usable connection.
async fn exchange(
    plan: &Plan,
    sender: &mut Option<Sender>,
    s: &mut Stats,
) -> Result<StatusCode, String> {
    if sender.as_ref().is_none_or(Sender::is_closed) {
        let cfg = plan.configs[plan.rotation.next()].clone();
        let c = conn::connect(&plan.target, cfg, false).await?;
        if c.resumed {
            s.handshakes_resumed += 1;
        } else {
            s.handshakes_full += 1;
        }
        plan.live.handshakes.fetch_add(1, Ordering::Relaxed);
        *sender = Some(c.sender);
    }
    let Some(tx) = sender.as_mut() else {
        return Err("internal:no_connection".into());
    };
    let t = &plan.target;
    let mut req = Request::builder()
        .method(plan.method.clone())
        .uri(t.request_uri(tx.is_h2()))
        .body(Full::new(plan.body.clone()))
        .map_err(|e| format!("internal:{e}"))?;
    *req.headers_mut() = plan.headers.clone();
    if !tx.is_h2() {
        if let Ok(h) = HeaderValue::from_str(&t.authority) {
            req.headers_mut().insert(http::header::HOST, h);
        }
    }
    plan.auth.apply(
        req.headers_mut(),
        plan.method.as_str(),
        &t.path_and_query,
        &t.authority,
    );
    let resp = tx.send(req).await?;
    let status = resp.status();
    if let Err(e) = resp.into_body().collect().await {
        return Err(tx.driver_error().await.unwrap_or_else(|| classify(&e)));
    }
    Ok(status)
}

/// Prints one line a second: requests/s, errors, handshakes/s, the client's own CPU.
async fn progress(plan: Arc<Plan>, threads: usize) {
    let start = Instant::now();
    let mut last = (
        0u64,
        0u64,
        crate::cpu::process_cpu().unwrap_or_default(),
        Instant::now(),
    );
    let mut tick = tokio::time::interval_at(
        Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    loop {
        tick.tick().await;
        let now = Instant::now();
        let ok = plan.live.ok.load(Ordering::Relaxed);
        let hs = plan.live.handshakes.load(Ordering::Relaxed);
        let cpu = crate::cpu::process_cpu().unwrap_or_default();
        let dt = now.duration_since(last.3).as_secs_f64().max(1e-9);
        let share = cpu.saturating_sub(last.2).as_secs_f64() / dt;
        let warn = if share >= 0.85 * threads as f64 {
            "  << client CPU-bound"
        } else {
            ""
        };
        eprintln!(
            "[{:5.1}s] {:9.1} req/s  {:7.1} hs/s  errors {}  client cpu {:3.0}%{warn}",
            start.elapsed().as_secs_f64(),
            (ok - last.0) as f64 / dt,
            (hs - last.1) as f64 / dt,
            plan.live.errors.load(Ordering::Relaxed),
            share * 100.0,
        );
        last = (ok, hs, cpu, now);
    }
}
