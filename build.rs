//! Build metadata for `--version` and `portcullis_build_info`: the git revision
//! (`git rev-parse --short HEAD`, or `unknown` when git or the checkout is missing, as in
//! the Docker build) and the cargo profile. No network.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

fn main() {
    let revision = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=PORTCULLIS_GIT_REVISION={revision}");
    println!("cargo:rustc-env=PORTCULLIS_BUILD_PROFILE={profile}");
    // A new commit moves HEAD (or the branch it names, logged in logs/HEAD); a worktree's
    // git dir is not ./.git, so ask git where it is.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        for f in ["HEAD", "logs/HEAD"] {
            let p = std::path::Path::new(&dir).join(f);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
