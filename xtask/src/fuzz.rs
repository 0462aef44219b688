//! cargo-fuzz targets: listing them, replaying their seeds in `cargo xtask test`, and
//! `cargo xtask fuzz <target>`.
//!
//! Layout: targets are `fuzz/fuzz_targets/<target>.rs`; committed seeds are in
//! `fuzz/seeds/<target>/`; the working corpus libFuzzer grows is `fuzz/corpus/<target>/`
//! (gitignored). The corpus is passed first, so new inputs land there and never among the
//! seeds. Builds go to `target/fuzz` (cargo-fuzz's `--target-dir`), beside the main build.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use crate::cmd::{Cmd, Failure, Result};
use crate::workspace::Workspace;

/// Seconds each target runs in `cargo xtask test`, unless [`SECONDS_ENV`] says otherwise.
const DEFAULT_REPLAY_SECONDS: u64 = 20;
/// Seconds `cargo xtask fuzz <target>` runs without `--seconds`.
pub(crate) const DEFAULT_RUN_SECONDS: u64 = 60;
/// Overrides [`DEFAULT_REPLAY_SECONDS`].
pub(crate) const SECONDS_ENV: &str = "PYO3_AIO_FUZZ_SECONDS";

const STEP: &str = "fuzz";

/// The fuzz target names, from `fuzz/fuzz_targets/*.rs`, sorted.
pub(crate) fn targets(ws: &Workspace) -> Vec<String> {
    let Ok(entries) = fs::read_dir(ws.path("fuzz/fuzz_targets")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.extension().is_some_and(|ext| ext == "rs"))
        .filter_map(|path| Some(path.file_stem()?.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

fn targets_or_fail(ws: &Workspace) -> Result<Vec<String>> {
    let targets = targets(ws);
    if targets.is_empty() {
        return Err(Failure::new(
            "no fuzz targets found in fuzz/fuzz_targets/ (expected one <target>.rs per concern)",
        ));
    }
    Ok(targets)
}

/// The `fuzz` step of `cargo xtask test`: every target, bounded in time, from its seeds.
pub(crate) fn replay_all(ws: &Workspace) -> Result {
    let targets = targets_or_fail(ws)?;
    let seconds = match std::env::var(SECONDS_ENV) {
        Ok(value) => {
            parse_seconds(&value).map_err(|e| Failure::new(format!("{SECONDS_ENV}: {e}")))?
        }
        Err(_) => DEFAULT_REPLAY_SECONDS,
    };
    ensure_cargo_fuzz()?;
    for target in &targets {
        run_target(ws, target, seconds)?;
    }
    Ok(())
}

/// `cargo xtask fuzz --list`.
pub(crate) fn list(ws: &Workspace) -> Result {
    for target in targets_or_fail(ws)? {
        println!("{target}");
    }
    Ok(())
}

/// `cargo xtask fuzz <target> [--seconds N]`.
pub(crate) fn run_one(ws: &Workspace, target: &str, seconds: u64) -> Result {
    let targets = targets_or_fail(ws)?;
    if !targets.iter().any(|t| t == target) {
        return Err(Failure::with_code(
            format!(
                "unknown fuzz target `{target}`; the targets are: {}",
                targets.join(", ")
            ),
            2,
        ));
    }
    ensure_cargo_fuzz()?;
    run_target(ws, target, seconds)
}

/// A whole number of seconds, at least 1.
pub(crate) fn parse_seconds(value: &str) -> std::result::Result<u64, String> {
    match value.trim().parse::<u64>() {
        Ok(0) => Err("expected at least 1 second, got 0".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number of seconds, got `{value}`")),
    }
}

/// Install cargo-fuzz if `cargo +nightly fuzz` does not answer, saying so.
fn ensure_cargo_fuzz() -> Result {
    let version = Cmd::new("cargo").args(["+nightly", "fuzz", "--version"]);
    if let Some(found) = version.probe(STEP) {
        println!("    {found}");
        return Ok(());
    }
    println!(
        "==> {STEP}: cargo-fuzz is not installed: installing it with `cargo install cargo-fuzz`"
    );
    Cmd::new("cargo")
        .args(["install", "cargo-fuzz"])
        .run(STEP)?;
    match version.probe(STEP) {
        Some(found) => {
            println!("    {found}");
            Ok(())
        }
        None => Err(Failure::new(
            "`cargo +nightly fuzz --version` still fails after installing cargo-fuzz: \
             is the nightly toolchain installed? (`rustup toolchain install nightly`)",
        )),
    }
}

/// Fuzz `target` for `seconds` from its corpus and seeds, echoing libFuzzer's output and
/// then its final stats line.
fn run_target(ws: &Workspace, target: &str, seconds: u64) -> Result {
    let seeds = ws.path("fuzz/seeds").join(target);
    if !seeds.is_dir() {
        return Err(Failure::new(format!(
            "fuzz/seeds/{target}/ is missing: commit at least one seed input for `{target}` there"
        )));
    }
    let corpus = ws.path("fuzz/corpus").join(target);
    fs::create_dir_all(&corpus)
        .map_err(|e| Failure::new(format!("could not create {}: {e}", corpus.display())))?;

    let cmd = Cmd::new("cargo")
        .args(["+nightly", "fuzz", "run", "--fuzz-dir"])
        .arg(ws.path("fuzz"))
        .arg("--target-dir")
        .arg(ws.target().join("fuzz"))
        .arg(target)
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"));
    cmd.announce(STEP);

    // libFuzzer reports on stderr; pass it through line by line and keep the closing stats.
    let mut child = cmd
        .command()
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| cmd.spawn_failure(&e))?;
    let mut stats = FinalStats::default();
    if let Some(stderr) = child.stderr.take() {
        let mut out = std::io::stderr().lock();
        for line in BufReader::new(stderr).split(b'\n').map_while(|l| l.ok()) {
            // Echoing is best effort: a closed stderr must not stop the fuzzer.
            let _ = out.write_all(&line);
            let _ = out.write_all(b"\n");
            stats.observe(&String::from_utf8_lossy(&line));
        }
    }
    let status = child.wait().map_err(|e| cmd.spawn_failure(&e))?;
    stats.print(target, status.success());
    cmd.check(status).map_err(|failure| {
        Failure::with_code(
            format!(
                "{}\n  fuzz target `{target}` failed; any crashing input is in \
                 fuzz/artifacts/{target}/ (reproduce with the command printed above)",
                failure.message
            ),
            failure.code,
        )
    })
}

/// The lines libFuzzer closes a run with: `#N DONE cov: ... exec/s: ...` and
/// `Done N runs in S second(s)`.
#[derive(Default)]
struct FinalStats {
    done: Option<String>,
    runs: Option<String>,
}

impl FinalStats {
    fn observe(&mut self, line: &str) {
        let line = line.trim();
        if line.starts_with('#') && line.contains("DONE") {
            self.done = Some(line.to_owned());
        } else if line.starts_with("Done ") && line.contains(" runs in ") {
            self.runs = Some(line.to_owned());
        }
    }

    /// Print what was seen; after a crash there is usually nothing, and that is not news.
    fn print(&self, target: &str, succeeded: bool) {
        match (&self.done, &self.runs) {
            (None, None) if succeeded => {
                println!("==> {STEP}: {target}: libFuzzer printed no final stats line");
            }
            (None, None) => {}
            (done, runs) => {
                for line in [done, runs].into_iter().flatten() {
                    println!("==> {STEP}: {target} final stats: {line}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_stats_lines_are_recognised() {
        let mut stats = FinalStats::default();
        stats.observe("#1024\tNEW    cov: 10 ft: 11 corp: 2/3b");
        stats.observe(
            "#52344\tDONE   cov: 80 ft: 120 corp: 20/400b lim: 4096 exec/s: 2617 rss: 60Mb",
        );
        stats.observe("Done 52344 runs in 21 second(s)");
        assert!(stats.done.as_deref().unwrap().contains("exec/s: 2617"));
        assert_eq!(
            stats.runs.as_deref(),
            Some("Done 52344 runs in 21 second(s)")
        );
    }

    #[test]
    fn seconds_must_be_positive_integers() {
        assert_eq!(parse_seconds("20"), Ok(20));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("1.5").is_err());
    }
}
