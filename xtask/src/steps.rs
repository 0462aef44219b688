//! `cargo xtask test`: every check CI runs, in order, stopping at the first failure.

use std::time::{Duration, Instant};

use crate::cmd::{Cmd, Failure, Result, format_duration, with_flags};
use crate::workspace::Workspace;
use crate::{fuzz, python, tidy};

/// One check of `cargo xtask test`.
pub(crate) struct Step {
    /// The name `--skip` takes and banners show.
    pub(crate) name: &'static str,
    /// What it runs, for `cargo xtask help`.
    pub(crate) about: &'static str,
    run: fn(&Workspace) -> Result,
}

/// The steps, in the order they run: cheap checks first so a typo fails in seconds.
pub(crate) const STEPS: &[Step] = &[
    Step {
        name: "fmt",
        about: "cargo fmt --all -- --check",
        run: fmt,
    },
    Step {
        name: "tidy",
        about: "no issue numbers in comments, line caps per file (xtask/src/tidy.rs)",
        run: tidy::run,
    },
    Step {
        name: "clippy",
        about: "cargo clippy --workspace --all-targets --all-features -- -D warnings",
        run: clippy,
    },
    Step {
        name: "versions",
        about: "cargo check the bridge and pytests against each CPython 3.9-3.13 pyenv has, -D warnings (target/versions)",
        run: crate::matrix::check_versions,
    },
    Step {
        name: "doc",
        about: "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --all-features --no-deps",
        run: doc,
    },
    Step {
        name: "venv",
        about: "create target/venv (maturin, pytest, uvloop): examples/app's tests run on uvloop",
        run: venv,
    },
    Step {
        name: "test",
        about: "cargo test --workspace --all-features (also UI tests, examples/app's programs)",
        run: test,
    },
    Step {
        name: "no-std",
        about: "cargo build -p pyo3-aio-core --no-default-features",
        run: no_std,
    },
    Step {
        name: "loom",
        about: "RUSTFLAGS='--cfg loom' cargo test -p pyo3-aio-loom-tests --release (target/loom)",
        run: loom,
    },
    Step {
        name: "fuzz",
        about: "replay seeds and fuzz each target briefly (PYO3_AIO_FUZZ_SECONDS, default 20)",
        run: fuzz::replay_all,
    },
    Step {
        name: "python",
        about: "build the modules into target/venv; pytest pytests/, examples/custom-executor/tests/",
        run: python::test_suite,
    },
    Step {
        name: "examples",
        about: "build examples/extension and examples/custom-executor into target/venv, run their demo.py",
        run: examples,
    },
    Step {
        name: "newer-pythons",
        about: "the pytest suite on CPython 3.12 and 3.13 too, as `cargo xtask matrix 3.12 3.13` runs it (target/matrix)",
        run: newer_pythons,
    },
];

fn fmt(_: &Workspace) -> Result {
    Cmd::new("cargo")
        .args(["fmt", "--all", "--", "--check"])
        .run("fmt")?;
    Ok(())
}

fn clippy(_: &Workspace) -> Result {
    Cmd::new("cargo")
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ])
        .run("clippy")?;
    Ok(())
}

fn doc(_: &Workspace) -> Result {
    Cmd::new("cargo")
        .args(["doc", "--workspace", "--all-features", "--no-deps"])
        .env("RUSTDOCFLAGS", with_flags("RUSTDOCFLAGS", "-D warnings"))
        .run("doc")?;
    Ok(())
}

/// Before `test`: examples/app's tests run a program on uvloop, found in this venv.
fn venv(ws: &Workspace) -> Result {
    python::Venv::ensure(ws, "venv").map(drop)
}

fn test(_: &Workspace) -> Result {
    Cmd::new("cargo")
        .args(["test", "--workspace", "--all-features"])
        .run("test")?;
    Ok(())
}

/// The suite on the CPythons whose asyncio differs most from the 3.11 the other steps use:
/// 3.12 starts a task eagerly where asked and 3.13 changed task names and `Task` internals,
/// and tests that pass on 3.11 have failed there. The full matrix (3.9-3.13) is
/// `cargo xtask matrix`; these two are the ones worth their minutes on every run.
fn newer_pythons(ws: &Workspace) -> Result {
    crate::matrix::run(ws, &["3.12".to_owned(), "3.13".to_owned()])
}

fn no_std(_: &Workspace) -> Result {
    Cmd::new("cargo")
        .args(["build", "-p", "pyo3-aio-core", "--no-default-features"])
        .run("no-std")?;
    Ok(())
}

fn loom(ws: &Workspace) -> Result {
    let models = LoomModels::count(ws)?;
    // Preemption bound 3 finishes in minutes; a developer may raise it for a deeper search.
    let preemptions = std::env::var("LOOM_MAX_PREEMPTIONS").unwrap_or_else(|_| "3".to_owned());
    let stdout = Cmd::new("cargo")
        .args(["test", "-p", "pyo3-aio-loom-tests", "--release"])
        .env("RUSTFLAGS", with_flags("RUSTFLAGS", "--cfg loom"))
        .env("LOOM_MAX_PREEMPTIONS", preemptions)
        // Its own target dir: `--cfg loom` in RUSTFLAGS would otherwise rebuild the main one.
        .env("CARGO_TARGET_DIR", ws.target().join("loom"))
        .run_keeping_stdout("loom")?;
    models.check_ran(passed_tests(&stdout))
}

/// The loom models the source holds: every file in `loom-tests/tests/` starts with
/// `#![cfg(loom)]`, so a build that lost `--cfg loom` compiles them all away and cargo
/// reports success with nothing run. Counting the `#[test]`s in the source and comparing
/// with what passed turns that into a failure.
#[derive(Debug, PartialEq, Eq)]
struct LoomModels {
    /// `#[test]` functions in `loom-tests/tests/*.rs`.
    tests: usize,
    /// Of those, the `#[ignore]`d ones (planted bugs, run in a child process by others).
    ignored: usize,
}

impl LoomModels {
    fn count(ws: &Workspace) -> Result<Self> {
        let dir = ws.path("loom-tests/tests");
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Failure::new(format!("cannot list {}: {e}", dir.display())))?;
        let mut models = Self::in_source("");
        for path in entries.flatten().map(|entry| entry.path()) {
            if path.extension().is_some_and(|ext| ext == "rs") {
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
                let file = Self::in_source(&source);
                models.tests += file.tests;
                models.ignored += file.ignored;
            }
        }
        if models.tests == 0 {
            return Err(Failure::new(format!(
                "no #[test] found in {}/*.rs: the loom models are missing",
                dir.display()
            )));
        }
        Ok(models)
    }

    /// The attributes on lines of their own, as rustfmt leaves them.
    fn in_source(source: &str) -> Self {
        let lines = || source.lines().map(str::trim);
        Self {
            tests: lines().filter(|line| *line == "#[test]").count(),
            ignored: lines().filter(|line| line.starts_with("#[ignore")).count(),
        }
    }

    /// `Ok` if at least every model that is not ignored passed.
    fn check_ran(&self, passed: usize) -> Result {
        let expected = self.tests - self.ignored;
        if passed >= expected {
            println!("==> loom: {passed} models passed of the {expected} in loom-tests/tests/");
            return Ok(());
        }
        Err(Failure::new(format!(
            "only {passed} loom tests passed, but loom-tests/tests/*.rs has {} #[test]s of which \
             {expected} should run ({} are #[ignore]d): the models were compiled out or \
             filtered. Does `--cfg loom` reach rustc? (CARGO_ENCODED_RUSTFLAGS or a \
             `build.rustflags` setting overrides RUSTFLAGS.)",
            self.tests, self.ignored
        )))
    }
}

/// The sum of `N passed` over the `test result:` lines cargo test printed.
fn passed_tests(stdout: &str) -> usize {
    stdout
        .lines()
        .filter_map(|line| line.trim().strip_prefix("test result:"))
        .flat_map(|summary| summary.split(';'))
        .filter_map(|part| part.trim().strip_suffix(" passed"))
        .filter_map(|count| count.rsplit(' ').next()?.parse::<usize>().ok())
        .sum()
}

fn examples(ws: &Workspace) -> Result {
    python::run_example(ws, "examples", &python::EXTENSION_EXAMPLE)?;
    python::run_example(ws, "examples", &python::CUSTOM_EXECUTOR_EXAMPLE)
}

/// The step named `name`, if there is one.
pub(crate) fn find(name: &str) -> Option<&'static Step> {
    STEPS.iter().find(|step| step.name == name)
}

/// How each step ended, for the summary.
enum Record {
    Passed(Duration),
    Failed(Duration),
    Skipped,
    NotRun,
}

/// Run every step not in `skip`, in order; print the timing summary whether or not one fails.
pub(crate) fn run_all(ws: &Workspace, skip: &[&'static str]) -> Result {
    warn_partial(skip);
    let started = Instant::now();
    let mut records: Vec<(&'static str, Record)> = Vec::new();
    let mut failure = None;
    for step in STEPS {
        let record = if skip.contains(&step.name) {
            println!("==> {}: SKIPPED (--skip {})", step.name, step.name);
            Record::Skipped
        } else if failure.is_some() {
            Record::NotRun
        } else {
            let step_started = Instant::now();
            let outcome = (step.run)(ws);
            let elapsed = step_started.elapsed();
            match outcome {
                Ok(()) => Record::Passed(elapsed),
                Err(err) => {
                    failure = Some(Failure::with_code(
                        format!("step `{}` failed: {}", step.name, err.message),
                        err.code,
                    ));
                    Record::Failed(elapsed)
                }
            }
        };
        records.push((step.name, record));
    }
    print_summary(&records, started.elapsed());
    warn_partial(skip);
    if let Some(failure) = failure {
        return Err(failure);
    }
    let verdict = if skip.is_empty() {
        "all steps passed"
    } else {
        "the steps that ran passed (PARTIAL RUN)"
    };
    println!(
        "==> cargo xtask test: {verdict} in {}",
        format_duration(started.elapsed())
    );
    Ok(())
}

fn print_summary(records: &[(&'static str, Record)], total: Duration) {
    let width = STEPS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    println!();
    println!("==> summary");
    for (name, record) in records {
        let line = match record {
            Record::Passed(d) => format!("ok        {:>8}", format_duration(*d)),
            Record::Failed(d) => format!("FAILED    {:>8}", format_duration(*d)),
            Record::Skipped => "SKIPPED   (--skip)".to_owned(),
            Record::NotRun => "not run   (an earlier step failed)".to_owned(),
        };
        println!("    {name:<width$}  {line}");
    }
    println!(
        "    {:<width$}  total     {:>8}",
        "",
        format_duration(total)
    );
}

fn warn_partial(skip: &[&'static str]) {
    if skip.is_empty() {
        return;
    }
    let banner = "!".repeat(78);
    eprintln!("{banner}");
    eprintln!(
        "!!! WARNING: PARTIAL RUN: skipping {}.",
        skip.iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!("!!! This is not what CI runs: a pass here does not mean CI will pass.");
    eprintln!("{banner}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_names_are_unique() {
        for (i, step) in STEPS.iter().enumerate() {
            assert!(
                STEPS[i + 1..].iter().all(|other| other.name != step.name),
                "duplicate step name {}",
                step.name
            );
        }
    }

    #[test]
    fn loom_models_are_counted_from_their_attributes() {
        let source = "#![cfg(loom)]\n\n#[test]\nfn a() {}\n\n    #[test]\n    \
                      #[ignore = \"fails by design\"]\n    fn b() {}\n// #[test] in a comment\n";
        assert_eq!(
            LoomModels::in_source(source),
            LoomModels {
                tests: 2,
                ignored: 1
            }
        );
    }

    #[test]
    fn passed_counts_add_up_over_test_binaries() {
        let stdout = "running 15 tests\n\
            test result: ok. 15 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.06s\n\
            test result: ok. 4 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.05s\n\
            test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n";
        assert_eq!(passed_tests(stdout), 19);
    }

    #[test]
    fn fewer_loom_models_than_in_the_source_fail() {
        let models = LoomModels {
            tests: 27,
            ignored: 2,
        };
        assert!(models.check_ran(25).is_ok());
        let failure = models.check_ran(0).unwrap_err();
        assert!(
            failure.message.contains("--cfg loom"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
    }
}
