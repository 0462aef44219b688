//! `cargo xtask`: the developer tasks of pyo3-aio, with nothing but std so it builds in
//! seconds.
//!
//! - `cargo xtask test` runs every check CI runs (`.ci/run` is exactly this), in order,
//!   stopping at the first failure.
//! - `cargo xtask tidy` checks the house rules no compiler checks (also a step of `test`).
//! - `cargo xtask fuzz <target> [--seconds N]` fuzzes one target; `--list` lists them.
//! - `cargo xtask demo` shows what the project can do so far.
//! - `cargo xtask bench [--quick]` runs the side-by-side benchmarks (bench/) and the core's
//!   criterion benches.
//! - `cargo xtask stress` runs the reliability suite at full size (`test` runs it bounded).
//! - `cargo xtask matrix` runs the pytest suite on every CPython 3.9-3.13 pyenv has.
//!
//! Every command is printed before it runs, as a line that can be pasted into a shell from
//! the workspace root.

mod bench;
mod cmd;
mod cycles;
mod demo;
mod fuzz;
mod matrix;
mod python;
mod steps;
mod stress;
mod tidy;
mod workspace;

use std::process::ExitCode;

use cmd::{Failure, Result};
use workspace::Workspace;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ws = Workspace::locate();
    // Every command runs from the root unless it says otherwise, wherever cargo was started.
    if let Err(e) = std::env::set_current_dir(ws.root()) {
        eprintln!("error: cannot enter {}: {e}", ws.root().display());
        return ExitCode::FAILURE;
    }
    match dispatch(&ws, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn dispatch(ws: &Workspace, args: &[String]) -> Result {
    let Some((command, rest)) = args.split_first() else {
        print!("{}", usage());
        return Ok(());
    };
    match command.as_str() {
        "help" | "-h" | "--help" => {
            print!("{}", usage());
            Ok(())
        }
        "test" => test(ws, rest),
        "tidy" => {
            no_arguments("tidy", rest)?;
            tidy::run(ws)
        }
        "fuzz" => fuzz(ws, rest),
        "demo" => {
            no_arguments("demo", rest)?;
            demo::run(ws)
        }
        "bench" => bench::run(ws, &bench::Options::parse(rest).map_err(usage_error)?),
        "matrix" => matrix::run(ws, rest),
        "stress" => stress::run(ws, rest),
        other => Err(usage_error(format!("unknown command `{other}`"))),
    }
}

/// `cargo xtask test [--skip STEP]...`
fn test(ws: &Workspace, args: &[String]) -> Result {
    let mut skip: Vec<&'static str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let name = match arg.as_str() {
            "--skip" => args
                .next()
                .ok_or_else(|| usage_error("`--skip` needs a step name".to_owned()))?
                .as_str(),
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(());
            }
            other => match other.strip_prefix("--skip=") {
                Some(name) => name,
                None => {
                    return Err(usage_error(format!(
                        "unexpected argument `{other}` to `test`"
                    )));
                }
            },
        };
        let step = steps::find(name).ok_or_else(|| {
            usage_error(format!(
                "unknown step `{name}` for --skip; the steps are: {}",
                steps::STEPS
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        if !skip.contains(&step.name) {
            skip.push(step.name);
        }
    }
    cmd::budget(test_budget()?);
    steps::run_all(ws, &skip)
}

/// How long `cargo xtask test` may take in all: [`cmd::BUDGET_ENV`] minutes, default 60
/// (CI kills the run at 90 without a word; this fails first, naming the step).
fn test_budget() -> Result<std::time::Duration> {
    let minutes = match std::env::var(cmd::BUDGET_ENV) {
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&m| m > 0)
            .ok_or_else(|| {
                usage_error(format!(
                    "{} must be a whole number of minutes, got `{value}`",
                    cmd::BUDGET_ENV
                ))
            })?,
        Err(_) => 60,
    };
    Ok(std::time::Duration::from_secs(minutes * 60))
}

/// `cargo xtask fuzz <target> [--seconds N]` or `cargo xtask fuzz --list`.
fn fuzz(ws: &Workspace, args: &[String]) -> Result {
    let mut target = None;
    let mut seconds = None;
    let mut list = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--list" => list = true,
            "--seconds" => {
                let value = args
                    .next()
                    .ok_or_else(|| usage_error("`--seconds` needs a number".to_owned()))?;
                seconds = Some(fuzz::parse_seconds(value).map_err(usage_error)?);
            }
            "-h" | "--help" => {
                print!("{}", usage());
                return Ok(());
            }
            other => {
                if let Some(value) = other.strip_prefix("--seconds=") {
                    seconds = Some(fuzz::parse_seconds(value).map_err(usage_error)?);
                } else if other.starts_with('-') || target.is_some() {
                    return Err(usage_error(format!(
                        "unexpected argument `{other}` to `fuzz`"
                    )));
                } else {
                    target = Some(other.to_owned());
                }
            }
        }
    }
    match (list, target) {
        (true, None) if seconds.is_none() => fuzz::list(ws),
        (true, _) => Err(usage_error("`--list` takes no other arguments".to_owned())),
        (false, Some(target)) => {
            fuzz::run_one(ws, &target, seconds.unwrap_or(fuzz::DEFAULT_RUN_SECONDS))
        }
        (false, None) => Err(usage_error(
            "`fuzz` needs a target name (see `cargo xtask fuzz --list`)".to_owned(),
        )),
    }
}

fn no_arguments(command: &str, args: &[String]) -> Result {
    match args.first() {
        None => Ok(()),
        Some(arg) => Err(usage_error(format!(
            "unexpected argument `{arg}`: `{command}` takes none"
        ))),
    }
}

/// A command-line mistake: exit code 2, with a pointer to the help.
fn usage_error(message: String) -> Failure {
    Failure::with_code(format!("{message}\n  (see `cargo xtask help`)"), 2)
}

fn usage() -> String {
    let mut text = String::from(
        "cargo xtask: developer tasks for pyo3-aio

USAGE:
    cargo xtask <COMMAND> [OPTIONS]

COMMANDS:
    test [--skip STEP]...          every check CI runs, in order, stopping at the first
                                   failure; --skip (repeatable) is for local iteration only
    tidy                           no issue numbers in code comments; at most {source_cap} lines
                                   per source file, {test_cap} per test file (xtask/src/tidy.rs)
    fuzz <TARGET> [--seconds N]    fuzz one target for N seconds (default 60)
    fuzz --list                    list the fuzz targets (fuzz/fuzz_targets/*.rs)
    demo                           build examples/extension and examples/custom-executor into
                                   target/venv and run their demo.py (default loop and uvloop),
                                   then build and run the Rust programs of examples/app, then
                                   list what exists
    bench [--quick] [--only KEYS] [--python X.Y]
                                   build bench/'s modules into target/venv (--python: a venv of
                                   that pyenv version), run bench/driver.py
                                   (every scenario against pyo3-async-runtimes and plain
                                   asyncio, default loop and uvloop; tables to bench/RESULTS.md,
                                   --quick: small sizes, to target/bench/RESULTS-quick.md),
                                   then the core's criterion benches, then bench/trio_driver.py
                                   (pyo3-aio under trio against plain trio; with --only, only
                                   when KEYS name `trio`)
    matrix [3.N]...                pytests/ on each CPython 3.9-3.13 pyenv has (or those named),
                                   built with -D warnings; counts per framework (default loop,
                                   uvloop, trio) and trio's per runtime; venvs and builds in
                                   target/matrix
    stress [--fuzz-seconds N]      the reliability suite at full size: pytests' stress and
                                   fault tests with PYO3_AIO_STRESS=full (figures to
                                   target/stress/report.jsonl), then the Python-side fuzzer
                                   for N seconds (default 300)
    help                           this text

STEPS OF `cargo xtask test` (names for --skip):
",
    )
    .replace("{source_cap}", &tidy::SOURCE_CAP.to_string())
    .replace("{test_cap}", &tidy::TEST_CAP.to_string());
    let width = steps::STEPS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for step in steps::STEPS {
        text.push_str(&format!("    {:<width$}  {}\n", step.name, step.about));
    }
    text.push_str(&format!(
        "
ENVIRONMENT:
    {}   seconds per fuzz target in `test` (default 20)
    LOOM_MAX_PREEMPTIONS    loom's preemption bound in `test` (default 3)
    {}  `test` fails, killing the running step, past this (default 60)

FUZZ LAYOUT:
    seeds (committed) fuzz/seeds/<target>/, corpus (gitignored) fuzz/corpus/<target>/,
    crashing inputs fuzz/artifacts/<target>/, builds target/fuzz/
",
        fuzz::SECONDS_ENV,
        cmd::BUDGET_ENV
    ));
    text
}
