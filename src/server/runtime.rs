//! The runtimes a gateway runs on (`[runtime] mode`).
//!
//! - **per-core**: the caller's runtime is the control thread (reloads, CRL and JWKS
//!   fetches, the issuer, the admin listener, signals); [`Cores`] starts one thread per
//!   worker, each running a single-threaded tokio runtime. Every listener gets one
//!   `SO_REUSEPORT` socket per core, so the kernel spreads new connections over the cores
//!   and a connection, its requests and its pooled upstream connections stay on the core
//!   that accepted it: no work stealing, no wake-ups across threads on the request path.
//! - **work-stealing**: one multi-threaded tokio runtime runs everything; one socket per
//!   listener.
//!
//! [`control_runtime`] builds the caller's runtime for either mode (`portcullis run`);
//! tests bring their own, and [`super::start`] starts the cores on its own.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::runtime::{Builder, Handle, Runtime};
use tokio::sync::oneshot;

use crate::config::{Config, RuntimeMode};

/// The listen backlog of every listener socket (tokio's own default).
const BACKLOG: i32 = 1024;

/// Worker threads: the largest `workers` of any listener, or one per core.
pub fn worker_threads(config: &Config) -> usize {
    match config.workers() {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The runtime `portcullis run` blocks on: the control thread alone in per-core mode, every
/// worker thread in work-stealing mode.
pub fn control_runtime(config: &Config) -> io::Result<Runtime> {
    match config.runtime.mode {
        RuntimeMode::PerCore => Builder::new_current_thread()
            .enable_all()
            .thread_name("portcullis-control")
            .build(),
        RuntimeMode::WorkStealing => Builder::new_multi_thread()
            .enable_all()
            .worker_threads(worker_threads(config))
            .build(),
    }
}

/// The per-core runtimes, one thread each; dropping this stops them (their tasks are
/// dropped, which closes what they still held).
pub(super) struct Cores {
    handles: Vec<Handle>,
    /// Dropped to stop the threads.
    stop: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Cores {
    pub(super) fn start(n: usize) -> io::Result<Cores> {
        let mut cores = Cores {
            handles: Vec::with_capacity(n),
            stop: Vec::with_capacity(n),
            threads: Vec::with_capacity(n),
        };
        for i in 0..n {
            let (stop, stopped) = oneshot::channel::<()>();
            let (started, handle) = std::sync::mpsc::channel();
            let thread = std::thread::Builder::new()
                .name(format!("portcullis-core-{i}"))
                .spawn(move || {
                    let rt = match Builder::new_current_thread().enable_all().build() {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = started.send(Err(e));
                            return;
                        }
                    };
                    crate::upstream::idle::enter_lane(i);
                    let _ = started.send(Ok(rt.handle().clone()));
                    // Serves every task spawned on this core until told to stop.
                    rt.block_on(async move {
                        let _ = stopped.await;
                    });
                })?;
            let handle = handle
                .recv()
                .map_err(|_| io::Error::other("a core thread ended before it started"))??;
            cores.handles.push(handle);
            cores.stop.push(stop);
            cores.threads.push(thread);
        }
        Ok(cores)
    }

    pub(super) fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stop every core thread and wait until they have ended.
    pub(super) async fn stop(mut self) {
        self.stop.clear();
        let threads = std::mem::take(&mut self.threads);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// `count` listening sockets on `address` (the port of the first for all when it is 0),
/// sharing it with `SO_REUSEPORT` when there are several. Non-blocking, for
/// `tokio::net::TcpListener::from_std` on the runtime that will accept on it.
pub(super) fn bind(address: SocketAddr, count: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut sockets = Vec::with_capacity(count);
    let mut at = address;
    for _ in 0..count.max(1) {
        let s = Socket::new(Domain::for_address(at), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        if count > 1 {
            s.set_reuse_port(true)?;
        }
        s.set_nonblocking(true)?;
        s.bind(&at.into())?;
        s.listen(BACKLOG)?;
        let l: std::net::TcpListener = s.into();
        at = l.local_addr()?;
        sockets.push(l);
    }
    Ok(sockets)
}
