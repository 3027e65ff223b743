//! `loadtest run URL …` and `loadtest pki DIR`.

use std::process::ExitCode;

use clap::Parser;
use loadtest::args::{Cli, Cmd};

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
        ),
        Cmd::Run(a) => run(*a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: loadtest::args::RunArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()?;
    let report = rt.block_on(loadtest::run::run(&a))?;
    print!("{}", report.text());
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
