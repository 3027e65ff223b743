//! The real binary as a child process: `portcullis run`, its addresses read from its log.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A gateway process: kill it with `child.kill()` (SIGKILL).
pub struct Spawned {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin listener, when the config has one.
    pub admin: Option<SocketAddr>,
}

/// Start the binary; return it and the listener address it logged.
pub fn spawn(config: &std::path::Path) -> (Child, SocketAddr) {
    let s = spawn_gateway(config);
    (s.child, s.addr)
}

/// Start the binary; wait for its first listener (the admin listener logs before it).
pub fn spawn_gateway(config: &std::path::Path) -> Spawned {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("run")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        // Read to the end, even once nobody listens: a closed pipe would fail the
        // gateway's later writes to stderr.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut admin = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let Some((message, address)) = message_and_address(&line) else {
            continue;
        };
        match message.as_str() {
            "admin listener up" => admin = address.parse().ok(),
            "listening" => {
                return Spawned {
                    child,
                    addr: address.parse().unwrap(),
                    admin,
                }
            }
            _ => {}
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the gateway did not start");
}

/// The message and `address` field of a log line: JSON when stderr is a pipe (`[log]
/// format`'s default), else text.
fn message_and_address(line: &str) -> Option<(String, String)> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        let message = v["message"].as_str()?.to_owned();
        return Some((message, v["address"].as_str()?.to_owned()));
    }
    let line = strip_ansi(line);
    let (head, a) = line.split_once("address=")?;
    let a = a.split_whitespace().next()?.trim_matches('"').to_owned();
    let message = if head.contains("admin listener up") {
        "admin listener up"
    } else if head.contains("listening") {
        "listening"
    } else {
        return None;
    };
    Some((message.to_owned(), a))
}

/// The log line without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
