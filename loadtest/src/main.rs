//! `loadtest run URL …` and `loadtest pki DIR`.
//!
//! Exit status: 0 passed; 1 the run could not be made, or every request failed; 99 a
//! threshold (`--max-error-rate`, `--max-p99`) was crossed, as k6 does.

use std::process::ExitCode;

use clap::Parser;
use loadtest::args::{Cli, Cmd};
use loadtest::verdict::{Thresholds, Verdict, THRESHOLD_EXIT};

fn main() -> ExitCode {
    let cli = Cli::parse();
    loadtest::init_crypto();
    let result = match cli.cmd {
        Cmd::Pki(a) => loadtest::pki::generate(
            &a.dir,
            &loadtest::pki::PkiSpec {
                clients: a.clients,
                revoked: a.revoked,
                server_names: a.server_names,
            },
        )
        .map(|()| Verdict::Pass),
        Cmd::Run(a) => run(*a),
    };
    match result {
        Ok(Verdict::Pass) => ExitCode::SUCCESS,
        Ok(Verdict::AllFailed(why)) => {
            eprintln!("loadtest: {why}");
            ExitCode::FAILURE
        }
        Ok(Verdict::Crossed(lines)) => {
            for l in lines {
                eprintln!("loadtest: {l}");
            }
            ExitCode::from(THRESHOLD_EXIT)
        }
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: loadtest::args::RunArgs) -> anyhow::Result<Verdict> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()?;
    let report = rt.block_on(loadtest::run::run(&a))?;
    print!("{}", report.text());
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if let Some(path) = &a.hdr {
        loadtest::hdrlog::write(path, &report)?;
    }
    if let Some(path) = &a.html {
        loadtest::html::write(path, &report)?;
    }
    let thresholds = Thresholds {
        max_error_rate: a.max_error_rate,
        max_p99: a.max_p99,
    };
    Ok(loadtest::verdict::judge(&report, &thresholds))
}
