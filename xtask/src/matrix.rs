//! `cargo xtask matrix`: the pytest suite on every CPython from 3.9 to 3.13 that pyenv has,
//! on asyncio's default loop and on uvloop.
//!
//! For each minor version, the latest patch `pyenv versions --bare` lists:
//! 1. a venv at `target/matrix/venv-<version>`, made with that interpreter, with maturin,
//!    pytest, pytest-timeout and uvloop (each installed on its own, so a missing wheel is
//!    named);
//! 2. every extension `cargo xtask test` builds (`pytests/` and the custom-executor module)
//!    built into it with `maturin develop --release`, `PYO3_PYTHON` set to the
//!    venv's python and one target directory for every version, `target/matrix/target`
//!    (PyO3 rebuilds itself and its dependents for each interpreter; the rest is shared),
//!    with `-D warnings` added to `RUSTFLAGS`, so code only an old or a new Python compiles
//!    (and the bridge without a runtime feature, which the custom-executor module uses) is
//!    held to the same lint bar as the rest;
//! 3. `python -m pytest pytests -q -p no:randomly` with a small reporting plugin (written to
//!    the venv's site-packages, source in `matrix_report.py`) that records one line per
//!    test: outcome, framework (asyncio's loop, or trio), runtime, node id and the first
//!    line of the error, in `target/matrix/results-<version>.tsv`.
//!
//! Every version runs even when an earlier one fails; the tables at the end (Markdown, for
//! docs/RELIABILITY.md) split the counts by framework, and the trio tests by runtime, and
//! the command fails if any version failed. A release build per interpreter makes this
//! slow, so `cargo xtask test` runs it for 3.12 and 3.13 only (its `newer-pythons` step).

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cmd::{Cmd, Failure, Result};
use crate::workspace::Workspace;

/// The oldest and newest CPython minor versions (3.x) the matrix runs.
const MINORS: std::ops::RangeInclusive<u32> = 9..=13;

/// The packages each venv needs, and how to tell one is there: a module to import, or a
/// program in the venv's `bin/` that answers `--version`.
const PACKAGES: &[(&str, Installed)] = &[
    ("maturin", Installed::Binary("maturin")),
    ("pytest", Installed::Module("pytest")),
    ("pytest-timeout", Installed::Module("pytest_timeout")),
    ("uvloop", Installed::Module("uvloop")),
    ("ipython", Installed::Module("IPython")),
    ("trio", Installed::Module("trio")),
    ("anyio", Installed::Module("anyio")),
    ("pytest-trio", Installed::Module("pytest_trio")),
    ("sniffio", Installed::Module("sniffio")),
];

enum Installed {
    Module(&'static str),
    Binary(&'static str),
}

/// The reporting plugin's module name (`-p` takes it) and its source.
const PLUGIN: &str = "pyo3_aio_matrix_report";
const PLUGIN_SOURCE: &str = include_str!("matrix_report.py");

/// `cargo xtask matrix [3.N]...`: every version in range, or only the minors named.
pub(crate) fn run(ws: &Workspace, args: &[String]) -> Result {
    let mut only = Vec::new();
    for arg in args {
        if arg == "-h" || arg == "--help" {
            print!("{}", crate::usage());
            return Ok(());
        }
        let minor = arg
            .strip_prefix("3.")
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|m| MINORS.contains(m))
            .ok_or_else(|| {
                Failure::with_code(
                    format!(
                        "unexpected argument `{arg}` to `matrix`: expected a version 3.{}..3.{} such as `3.12`\n  (see `cargo xtask help`)",
                        MINORS.start(),
                        MINORS.end()
                    ),
                    2,
                )
            })?;
        only.push(minor);
    }
    let mut versions = discover()?;
    if !only.is_empty() {
        versions.retain(|v| only.contains(&v.minor));
        if versions.is_empty() {
            return Err(Failure::new(format!(
                "pyenv has none of the versions asked for ({})",
                args.join(", ")
            )));
        }
    }
    println!(
        "==> matrix: {}",
        versions
            .iter()
            .map(Version::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let dir = ws.target().join("matrix");
    fs::create_dir_all(&dir)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    let started = Instant::now();
    let runs: Vec<VersionRun> = versions
        .iter()
        .map(|version| run_version(ws, &dir, version))
        .collect();
    let total = started.elapsed();
    print!("{}", report(&runs, total));
    let failed: Vec<String> = runs
        .iter()
        .filter(|run| !run.passed())
        .map(|run| run.version.to_string())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(format!(
            "the suite failed on {}: see the failures above (results in {})",
            failed.join(", "),
            dir.display()
        )))
    }
}

/// `cargo xtask test`'s `versions` step: the bridge and the test module type-check against
/// every CPython 3.9..3.13 pyenv has, with `-D warnings` as the matrix builds them, so code
/// behind one version's `cfg` cannot break unseen between two runs of the matrix (which
/// also runs the suite, and takes far longer). One target directory for all versions: only
/// what depends on the interpreter is checked again.
pub(crate) fn check_versions(ws: &Workspace) -> Result {
    let target = ws.target().join("versions");
    for version in discover()? {
        let python = crate::python::pyenv_python(&version.to_string(), "versions")
            .ok_or_else(|| Failure::new(format!("`pyenv prefix {version}` failed")))?;
        Cmd::new("cargo")
            .args(["check", "--lib", "--all-features"])
            .args(["-p", "pyo3-aio", "-p", "pyo3-aio-pytests"])
            .env("PYO3_PYTHON", python)
            .env("CARGO_TARGET_DIR", &target)
            .env(
                "RUSTFLAGS",
                crate::cmd::with_flags("RUSTFLAGS", "-D warnings"),
            )
            .run("versions")?;
    }
    Ok(())
}

/// A CPython release, `3.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    major: u32,
    minor: u32,
    patch: u32,
}

impl Version {
    /// `3.12.1`; anything else (`system`, `3.13.0t`, `pypy3.10-7.3.12`, `3.12.1/envs/x`) is
    /// not a plain CPython release.
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('.');
        let mut number = || parts.next()?.parse::<u32>().ok();
        let version = Self {
            major: number()?,
            minor: number()?,
            patch: number()?,
        };
        parts.next().is_none().then_some(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The latest patch of each 3.x in [`MINORS`] that pyenv has, oldest first.
fn discover() -> Result<Vec<Version>> {
    let listing = Cmd::new(crate::python::pyenv())
        .args(["versions", "--bare"])
        .probe("matrix")
        .ok_or_else(|| {
            Failure::new(
                "`pyenv versions --bare` failed: the matrix needs pyenv with CPython 3.9..3.13 installed (`pyenv install 3.12`)",
            )
        })?;
    let versions = latest_per_minor(&listing);
    if versions.is_empty() {
        return Err(Failure::new(format!(
            "pyenv has no CPython 3.{}..3.{} (it lists: {}); install one with `pyenv install 3.12`",
            MINORS.start(),
            MINORS.end(),
            listing.split_whitespace().collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(versions)
}

fn latest_per_minor(listing: &str) -> Vec<Version> {
    let mut latest: BTreeMap<u32, Version> = BTreeMap::new();
    for version in listing.lines().filter_map(Version::parse) {
        if version.major == 3 && MINORS.contains(&version.minor) {
            let entry = latest.entry(version.minor).or_insert(version);
            *entry = (*entry).max(version);
        }
    }
    latest.into_values().collect()
}

/// What happened to one version.
struct VersionRun {
    version: Version,
    /// Why the suite could not run (venv, pip, build), if it could not.
    setup_error: Option<String>,
    /// pytest's exit status, when it ran and did not exit 0.
    pytest_error: Option<String>,
    results: Vec<TestResult>,
    build_time: Duration,
    test_time: Duration,
}

impl VersionRun {
    fn passed(&self) -> bool {
        self.setup_error.is_none()
            && self.pytest_error.is_none()
            && !self.results.is_empty()
            && self.results.iter().all(|r| !r.outcome.is_failure())
    }
}

/// One line of the plugin's results file.
struct TestResult {
    outcome: Outcome,
    /// What the test runs on: an asyncio loop (`asyncio`, `uvloop`), `trio`, or `-` for
    /// neither (see `matrix_report.py`).
    framework: String,
    /// The `runtime` parameter, or `-` for a test without one.
    runtime: String,
    node_id: String,
    message: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    /// Expected failures: tests marked `harness.known_bug`.
    XFailed,
    Skipped,
}

impl Outcome {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            // A non-strict xfail that passed: the test's own assertions held.
            "passed" | "xpassed" => Self::Passed,
            "failed" | "error" => Self::Failed,
            "xfailed" => Self::XFailed,
            "skipped" => Self::Skipped,
            _ => return None,
        })
    }

    fn is_failure(self) -> bool {
        self == Self::Failed
    }
}

fn parse_results(text: &str) -> Vec<TestResult> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(5, '\t');
            Some(TestResult {
                outcome: Outcome::parse(fields.next()?)?,
                framework: fields.next()?.to_owned(),
                runtime: fields.next()?.to_owned(),
                node_id: fields.next()?.to_owned(),
                message: fields.next().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

fn run_version(ws: &Workspace, dir: &Path, version: &Version) -> VersionRun {
    let step = format!("matrix {version}");
    let mut run = VersionRun {
        version: *version,
        setup_error: None,
        pytest_error: None,
        results: Vec::new(),
        build_time: Duration::ZERO,
        test_time: Duration::ZERO,
    };
    let started = Instant::now();
    let venv = match prepare(ws, dir, version, &step) {
        Ok(venv) => venv,
        Err(message) => {
            run.setup_error = Some(message);
            run.build_time = started.elapsed();
            return run;
        }
    };
    run.build_time = started.elapsed();

    let results_file = dir.join(format!("results-{version}.tsv"));
    // A stale file from an earlier run must not pass for this run's results.
    let _ = fs::remove_file(&results_file);
    let started = Instant::now();
    let pytest = venv
        .cmd("python")
        .args([
            "-m",
            "pytest",
            "pytests",
            "-q",
            "-p",
            "no:randomly",
            "-p",
            PLUGIN,
        ])
        .arg(format!("--matrix-results={}", results_file.display()));
    if let Err(failure) = pytest.run(&step) {
        run.pytest_error = Some(failure.message);
    }
    run.test_time = started.elapsed();
    run.results = fs::read_to_string(&results_file)
        .map(|text| parse_results(&text))
        .unwrap_or_default();
    run
}

/// The venv with its packages and the plugin, and the test module built into it; `Err`
/// says which of these failed.
fn prepare(
    ws: &Workspace,
    dir: &Path,
    version: &Version,
    step: &str,
) -> std::result::Result<MatrixVenv, String> {
    let python = crate::python::pyenv_python(&version.to_string(), step)
        .ok_or_else(|| format!("`pyenv prefix {version}` failed"))?;
    let venv = MatrixVenv {
        dir: dir.join(format!("venv-{version}")),
    };
    if !venv.python().exists() {
        Cmd::new(python)
            .args(["-m", "venv"])
            .arg(&venv.dir)
            .run(step)
            .map_err(|f| format!("creating the venv failed: {}", f.message))?;
    }
    let mut missing = Vec::new();
    for (package, installed) in PACKAGES {
        if venv.has(installed, step) {
            continue;
        }
        let installed_now = venv
            .cmd("python")
            .args(["-m", "pip", "install", "--quiet", package])
            .run(step)
            .is_ok()
            && venv.has(installed, step);
        if !installed_now {
            missing.push(*package);
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "pip could not install {} (see pip's output above)",
            missing.join(", ")
        ));
    }
    let site_packages = venv
        .cmd("python")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .probe(step)
        .ok_or_else(|| "the venv's python could not report its site-packages".to_owned())?;
    let plugin = Path::new(&site_packages).join(format!("{PLUGIN}.py"));
    fs::write(&plugin, PLUGIN_SOURCE)
        .map_err(|e| format!("cannot write {}: {e}", plugin.display()))?;
    // Every extension `cargo xtask test` builds: the suite imports more than one. Warnings
    // are errors: code under `cfg` for an old or a new Python is compiled only here (clippy
    // sees the default interpreter's, with every feature). The flags are the same for every
    // version, so only PyO3 and its dependents rebuild per interpreter.
    for crate_dir in crate::python::PY_EXTENSIONS {
        venv.cmd("maturin")
            .args(["develop", "--release"])
            .env("PYO3_PYTHON", venv.python())
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .env(
                "RUSTFLAGS",
                crate::cmd::with_flags("RUSTFLAGS", "-D warnings"),
            )
            .dir(ws.path(crate_dir))
            .run(step)
            .map_err(|f| format!("building {crate_dir}/ failed: {}", f.message))?;
    }
    Ok(venv)
}

/// A venv of the matrix, `target/matrix/venv-<version>`.
struct MatrixVenv {
    dir: PathBuf,
}

impl MatrixVenv {
    fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    /// A program in the venv, with `VIRTUAL_ENV` set so that maturin installs into it.
    fn cmd(&self, program: &str) -> Cmd {
        Cmd::new(self.dir.join("bin").join(program)).env("VIRTUAL_ENV", &self.dir)
    }

    fn has(&self, installed: &Installed, step: &str) -> bool {
        match installed {
            Installed::Module(module) => Cmd::new(self.python())
                .args(["-c", &format!("import {module}")])
                .probe(step)
                .is_some(),
            Installed::Binary(name) => Cmd::new(self.dir.join("bin").join(name))
                .arg("--version")
                .probe(step)
                .is_some(),
        }
    }
}

/// The Markdown tables (one row per version and framework; the trio tests, one row per
/// version and runtime), the failures, the skips and the timings.
fn report(runs: &[VersionRun], total: Duration) -> String {
    let mut text = String::from("\n==> matrix: results\n");
    text.push_str(&table(runs, "framework", |_| true, |r| &r.framework));
    text.push_str(
        "\n(framework `none`: tests on no asyncio loop and not under trio, and collection \
         errors)\n\ntrio, per runtime:\n",
    );
    text.push_str(&table(
        runs,
        "runtime",
        |r| r.framework == "trio",
        |r| &r.runtime,
    ));
    text.push_str("\n(runtime `none`: tests without the runtime parameter)\n");

    let failures: Vec<String> = runs
        .iter()
        .flat_map(|run| {
            let pytest = run
                .pytest_error
                .iter()
                .map(move |e| format!("{}: {e}", run.version));
            let tests = run
                .results
                .iter()
                .filter(|r| r.outcome.is_failure())
                .map(move |r| format!("{}: {} -- {}", run.version, r.node_id, r.message));
            pytest.chain(tests)
        })
        .collect();
    if !failures.is_empty() {
        text.push_str("\nfailures:\n");
        for failure in failures {
            text.push_str(&format!("    {failure}\n"));
        }
    }

    // Why tests were skipped (an API the Python lacks, usually), counted per version.
    let mut skips: BTreeMap<(Version, &str), usize> = BTreeMap::new();
    for run in runs {
        for result in &run.results {
            if result.outcome == Outcome::Skipped {
                *skips.entry((run.version, &result.message)).or_default() += 1;
            }
        }
    }
    if !skips.is_empty() {
        text.push_str("\nskipped:\n");
        for ((version, reason), count) in skips {
            text.push_str(&format!("    {version}: {count} x {reason}\n"));
        }
    }

    text.push_str("\ntime:\n");
    for run in runs {
        text.push_str(&format!(
            "    {:<8} setup and build {:>5.0?}, pytest {:>5.0?}\n",
            run.version.to_string(),
            run.build_time,
            run.test_time
        ));
    }
    text.push_str(&format!("    total {total:.0?}\n"));
    text
}

/// One Markdown table of the results `select` picks, a row per version and `key` value
/// (`-` last, shown as `none`).
fn table(
    runs: &[VersionRun],
    column: &str,
    select: impl Fn(&TestResult) -> bool,
    key: impl Fn(&TestResult) -> &str,
) -> String {
    let mut text = format!(
        "\n| CPython | {column} | passed | failed | xfailed | skipped | result |\n\
         |---|---|---:|---:|---:|---:|---|\n"
    );
    for run in runs {
        if let Some(error) = &run.setup_error {
            text.push_str(&format!(
                "| {} | all | - | - | - | - | not run: {error} |\n",
                run.version
            ));
            continue;
        }
        let mut groups: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
        for result in run.results.iter().filter(|r| select(r)) {
            let counts = groups.entry(key(result)).or_default();
            let column = match result.outcome {
                Outcome::Passed => 0,
                Outcome::Failed => 1,
                Outcome::XFailed => 2,
                Outcome::Skipped => 3,
            };
            counts[column] += 1;
        }
        if groups.is_empty() {
            text.push_str(&format!(
                "| {} | all | - | - | - | - | FAIL: no results ({}) |\n",
                run.version,
                run.pytest_error
                    .as_deref()
                    .unwrap_or("pytest reported nothing")
            ));
            continue;
        }
        let none = groups.remove("-");
        let rows = groups
            .into_iter()
            .chain(none.map(|counts| ("none", counts)));
        for (name, [passed, failed, xfailed, skipped]) in rows {
            let result = if failed > 0 {
                "FAIL"
            } else if run.pytest_error.is_some() {
                "FAIL (pytest exit)"
            } else {
                "pass"
            };
            text.push_str(&format!(
                "| {} | {name} | {passed} | {failed} | {xfailed} | {skipped} | {result} |\n",
                run.version
            ));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_patch_per_minor_in_range() {
        let listing = "system\n2.7.18\n3.8.18\n3.9.17\n3.9.18\n3.10.13\n3.12.1/envs/x\n\
                       3.12.1\n3.13.0t\n3.13.0\n3.14.0\npypy3.10-7.3.12\n";
        let found: Vec<String> = latest_per_minor(listing)
            .iter()
            .map(Version::to_string)
            .collect();
        assert_eq!(found, ["3.9.18", "3.10.13", "3.12.1", "3.13.0"]);
    }

    #[test]
    fn results_lines_parse() {
        let results = parse_results(
            "passed\tasyncio\ttokio\tpytests/a.py::t[asyncio-tokio]\t\n\
             error\t-\t-\tpytests/b.py\tSyntaxError: x\n\
             junk\n",
        );
        assert_eq!(results.len(), 2);
        assert!(results[1].outcome.is_failure());
        assert_eq!(results[0].runtime, "tokio");
        assert_eq!(results[1].framework, "-");
        assert_eq!(results[1].message, "SyntaxError: x");
    }

    #[test]
    fn trio_tests_are_counted_per_runtime() {
        let run = VersionRun {
            version: Version {
                major: 3,
                minor: 12,
                patch: 1,
            },
            setup_error: None,
            pytest_error: None,
            results: parse_results(
                "passed\ttrio\ttokio\tt.py::a[trio-tokio]\t\n\
                 passed\ttrio\tsmol\tt.py::a[trio-smol]\t\n\
                 failed\ttrio\tsmol\tt.py::b[smol]\tcall: boom\n\
                 skipped\ttrio\t-\tt.py::c\twhy\n\
                 passed\tuvloop\ttokio\tt.py::a[uvloop-tokio]\t\n",
            ),
            build_time: Duration::ZERO,
            test_time: Duration::ZERO,
        };
        let text = report(&[run], Duration::ZERO);
        let (frameworks, per_runtime) = text.split_once("trio, per runtime:").unwrap();
        assert!(frameworks.contains("| 3.12.1 | trio | 2 | 1 | 0 | 1 | FAIL |"));
        assert!(frameworks.contains("| 3.12.1 | uvloop | 1 | 0 | 0 | 0 | pass |"));
        assert!(per_runtime.contains("| 3.12.1 | smol | 1 | 1 | 0 | 0 | FAIL |"));
        assert!(per_runtime.contains("| 3.12.1 | tokio | 1 | 0 | 0 | 0 | pass |"));
        assert!(per_runtime.contains("| 3.12.1 | none | 0 | 0 | 0 | 1 | pass |"));
        assert!(!per_runtime.contains("uvloop"));
    }
}
