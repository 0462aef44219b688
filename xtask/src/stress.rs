//! `cargo xtask stress`: the reliability suite (docs/RELIABILITY.md) at full size.
//!
//! `cargo xtask test` runs the same tests bounded (the `python` step: pytest's default
//! sizes, and a short run of the Python-side fuzzer). Here:
//! 1. pytests/test_stress_*.py and test_faults_*.py with `PYO3_AIO_STRESS=full`: 100,000
//!    cancellations per runtime and loop, a million conversions of each kind with RSS and
//!    reference counts checked, loops in several threads, shutdowns, stopped loops. Each
//!    test appends its figures as a JSON line to `target/stress/report.jsonl`;
//! 2. the atheris fuzzer of the Python-facing functions (`pytests/fuzz/fuzz_bridge.py`)
//!    for `--fuzz-seconds` (default 300);
//! 3. a summary of the figures.

use std::time::Instant;

use crate::cmd::{Failure, Result};
use crate::python::{PY_EXTENSIONS, Venv, fuzz_script};
use crate::workspace::{Workspace, files_named};

const STEP: &str = "stress";
const DEFAULT_FUZZ_SECONDS: u64 = 300;

/// `cargo xtask stress [--fuzz-seconds N]`.
pub(crate) fn run(ws: &Workspace, args: &[String]) -> Result {
    let fuzz_seconds = parse(args)?;
    let started = Instant::now();
    let mut tests = files_named(&ws.path("pytests"), &|name| {
        (name.starts_with("test_stress_") || name.starts_with("test_faults_"))
            && name.ends_with(".py")
    });
    tests.sort();
    if tests.is_empty() {
        return Err(Failure::new(
            "pytests/ has no test_stress_*.py or test_faults_*.py: nothing to stress",
        ));
    }
    let venv = Venv::ensure(ws, STEP)?;
    for dir in PY_EXTENSIONS {
        venv.develop(ws, STEP, &ws.path(dir))?;
    }
    let out = ws.target().join("stress");
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", out.display())))?;
    let report = out.join("report.jsonl");
    // A fresh report per run: the figures printed at the end are this run's.
    std::fs::write(&report, "")
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", report.display())))?;
    venv.cmd("python")
        .args(["-m", "pytest", "-q"])
        .args(&tests)
        .env("PYO3_AIO_STRESS", "full")
        .env("PYO3_AIO_STRESS_REPORT", &report)
        .run(STEP)?;
    fuzz_script(
        ws,
        &venv,
        STEP,
        &[format!("-max_total_time={fuzz_seconds}")],
    )?;
    let figures = std::fs::read_to_string(&report).unwrap_or_default();
    println!("\n==> stress figures ({}):", report.display());
    for line in figures.lines() {
        println!("    {line}");
    }
    println!(
        "==> cargo xtask stress: everything passed in {:.0?}",
        started.elapsed()
    );
    Ok(())
}

fn parse(args: &[String]) -> Result<u64> {
    let mut seconds = DEFAULT_FUZZ_SECONDS;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--fuzz-seconds" => args.next().cloned(),
            other => match other.strip_prefix("--fuzz-seconds=") {
                Some(value) => Some(value.to_owned()),
                None => {
                    return Err(Failure::with_code(
                        format!(
                            "unexpected argument `{other}` to `stress`\n  (see `cargo xtask help`)"
                        ),
                        2,
                    ));
                }
            },
        };
        seconds = value
            .as_deref()
            .and_then(|v| v.parse().ok())
            .filter(|&s: &u64| s > 0)
            .ok_or_else(|| {
                Failure::with_code(
                    "`--fuzz-seconds` needs a whole number of seconds above 0".to_owned(),
                    2,
                )
            })?;
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_seconds_parse() {
        assert_eq!(parse(&[]).unwrap(), DEFAULT_FUZZ_SECONDS);
        assert_eq!(parse(&["--fuzz-seconds".into(), "30".into()]).unwrap(), 30);
        assert_eq!(parse(&["--fuzz-seconds=7".into()]).unwrap(), 7);
        assert_eq!(parse(&["--fuzz-seconds=0".into()]).unwrap_err().code, 2);
        assert_eq!(parse(&["--bogus".into()]).unwrap_err().code, 2);
    }
}
