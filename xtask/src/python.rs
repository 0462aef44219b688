//! The Python side: a virtualenv at `target/venv` with maturin, pytest, uvloop and trio, the
//! extension modules built into it, the pytest suites ([`PY_SUITES`]), and the examples
//! with a `demo.py` ([`EXTENSION_EXAMPLE`], [`CUSTOM_EXECUTOR_EXAMPLE`]).
//!
//! [`Venv`] is shared by `cargo xtask test` and `cargo xtask demo`. Every extension module is
//! built the same way (`maturin develop --release` into `<root>/target`), so the two commands
//! and the two modules share one compiled copy of each dependency.

use std::path::{Path, PathBuf};

use crate::cmd::{Cmd, Failure, Result};
use crate::workspace::{Workspace, files_named};

/// Python extension crates (directories with a pyproject.toml, relative to the root) that are
/// built into the venv with `maturin develop --release` before pytest runs.
pub(crate) const PY_EXTENSIONS: &[&str] = &["pytests", "examples/custom-executor/module"];

/// The directories pytest runs, one pytest run each (each has its own pytest.ini and
/// conftest.py); each must collect tests.
const PY_SUITES: &[&str] = &["pytests", "examples/custom-executor/tests"];

/// An example to show: a maturin crate built into the venv, and a `demo.py` that exits
/// non-zero when a result is wrong.
pub(crate) struct Example {
    /// The extension crate (with its pyproject.toml), relative to the root.
    pub(crate) crate_dir: &'static str,
    /// The script run with the venv's python, relative to the root.
    pub(crate) demo: &'static str,
}

/// pyo3-asyncio's README examples as an extension module, on tokio, async-std and smol.
pub(crate) const EXTENSION_EXAMPLE: Example = Example {
    crate_dir: "examples/extension",
    demo: "examples/extension/demo.py",
};

/// An extension module whose futures run on minipool, an executor written on pyo3-aio-core
/// alone, through `pyo3_aio::generic`.
pub(crate) const CUSTOM_EXECUTOR_EXAMPLE: Example = Example {
    crate_dir: "examples/custom-executor/module",
    demo: "examples/custom-executor/demo.py",
};

/// A package the venv must have, and how to tell it is there.
struct Requirement {
    /// The name `pip install` takes.
    package: &'static str,
    probe: Probe,
}

enum Probe {
    /// `python -c "import <module>"` succeeds.
    Import(&'static str),
    /// `<venv>/bin/<name> --version` succeeds.
    Binary(&'static str),
}

/// What the venv holds. New test dependencies go here.
const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        package: "maturin",
        probe: Probe::Binary("maturin"),
    },
    Requirement {
        package: "pytest",
        probe: Probe::Import("pytest"),
    },
    Requirement {
        package: "pytest-timeout",
        probe: Probe::Import("pytest_timeout"),
    },
    Requirement {
        package: "uvloop",
        probe: Probe::Import("uvloop"),
    },
    Requirement {
        // A third asyncio loop (written in Rust) for the differential suite.
        package: "rloop",
        probe: Probe::Import("rloop"),
    },
    Requirement {
        // The bridge under trio (pytests/test_trio.py, examples/app's app_trio).
        package: "trio",
        probe: Probe::Import("trio"),
    },
    Requirement {
        // The bridge under anyio on both backends (pytests/test_anyio.py).
        package: "anyio",
        probe: Probe::Import("anyio"),
    },
    Requirement {
        // trio tests as pytest functions (`@pytest.mark.trio`).
        package: "pytest-trio",
        probe: Probe::Import("pytest_trio"),
    },
    Requirement {
        // Which async library runs (examples/app's trio helper asks it).
        package: "sniffio",
        probe: Probe::Import("sniffio"),
    },
    Requirement {
        package: "atheris",
        probe: Probe::Import("atheris"),
    },
    Requirement {
        // The blocking-call test inside an IPython session with a running loop.
        package: "ipython",
        probe: Probe::Import("IPython"),
    },
];

/// The Python-side fuzzer of the test module's public functions (atheris).
const FUZZ_SCRIPT: &str = "pytests/fuzz/fuzz_bridge.py";
/// Its committed seed inputs.
const FUZZ_SEEDS: &str = "pytests/fuzz/seeds";

/// How long the `python` step of `cargo xtask test` runs the Python-side fuzzer, in seconds
/// (`cargo xtask stress` runs it for minutes). A time, not a count of inputs: 2000 inputs
/// took well under a second and never grew past the seeds' size.
const BOUNDED_FUZZ_SECONDS: u32 = 60;

/// The largest input the fuzzer makes, in bytes: room for awaitables nested three deep with
/// their values. Without it libFuzzer caps inputs at the largest seed (15 bytes).
const FUZZ_MAX_LEN: u32 = 512;

/// One input that runs longer than this (seconds) is a finding: a hang, not slowness.
const FUZZ_INPUT_TIMEOUT: u32 = 60;

const STEP: &str = "python";

/// The project's virtualenv, `<root>/target/venv`.
pub(crate) struct Venv {
    dir: PathBuf,
}

impl Venv {
    /// The venv, created with `python3 -m venv` if absent, with every requirement installed.
    pub(crate) fn ensure(ws: &Workspace, step: &str) -> Result<Self> {
        let venv = Self {
            dir: ws.target().join("venv"),
        };
        if !venv.python().exists() {
            Cmd::new("python3")
                .args(["-m", "venv"])
                .arg(&venv.dir)
                .run(step)?;
        }
        if !venv.has_requirements(step) {
            let packages = REQUIREMENTS.iter().map(|r| r.package);
            Cmd::new(venv.python())
                .args(["-m", "pip", "install", "--quiet"])
                .args(packages)
                .run(step)
                .map_err(|e| {
                    Failure::with_code(
                        format!(
                            "{}\n  if the venv itself is broken, delete it (`rm -rf {}`) and rerun",
                            e.message,
                            venv.dir.display()
                        ),
                        e.code,
                    )
                })?;
            if !venv.has_requirements(step) {
                return Err(Failure::new(format!(
                    "the venv at {} still lacks one of {} after pip install",
                    venv.dir.display(),
                    REQUIREMENTS
                        .iter()
                        .map(|r| r.package)
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
        Ok(venv)
    }

    /// The venv's site-packages, as its python reports it. Programs that embed Python do
    /// not see a venv by themselves: they need this on `PYTHONPATH` to import uvloop.
    pub(crate) fn site_packages(&self, step: &str) -> Result<PathBuf> {
        Cmd::new(self.python())
            .args([
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ])
            .probe(step)
            .map(PathBuf::from)
            .ok_or_else(|| {
                Failure::new(format!(
                    "{} could not report its site-packages directory",
                    self.python().display()
                ))
            })
    }

    /// `<venv>/bin/python`.
    pub(crate) fn python(&self) -> PathBuf {
        self.bin("python")
    }

    /// The venv's directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<venv>/bin/<name>`.
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// A command for a program in the venv, with `VIRTUAL_ENV` set so that maturin installs
    /// into this venv.
    pub(crate) fn cmd(&self, program: &str) -> Cmd {
        Cmd::new(self.bin(program)).env("VIRTUAL_ENV", &self.dir)
    }

    /// Build and install the extension crate in `crate_dir` into the venv
    /// (`maturin develop --release`), sharing the workspace's target directory.
    pub(crate) fn develop(&self, ws: &Workspace, step: &str, crate_dir: &Path) -> Result {
        if !crate_dir.join("pyproject.toml").is_file() {
            return Err(Failure::new(format!(
                "{} has no pyproject.toml: an extension module needs one (build-backend maturin)",
                crate_dir.display()
            )));
        }
        self.cmd("maturin")
            .args(["develop", "--release"])
            .env("CARGO_TARGET_DIR", ws.target())
            .dir(crate_dir)
            .run(step)
    }

    fn has_requirements(&self, step: &str) -> bool {
        let modules: Vec<&str> = REQUIREMENTS
            .iter()
            .filter_map(|r| match r.probe {
                Probe::Import(module) => Some(module),
                Probe::Binary(_) => None,
            })
            .collect();
        let imports_ok = modules.is_empty()
            || Cmd::new(self.python())
                .arg("-c")
                .arg(format!("import {}", modules.join(", ")))
                .probe(step)
                .is_some();
        imports_ok
            && REQUIREMENTS.iter().all(|r| match r.probe {
                Probe::Binary(name) => Cmd::new(self.bin(name))
                    .arg("--version")
                    .probe(step)
                    .is_some(),
                Probe::Import(_) => true,
            })
    }
}

/// The `python` step of `cargo xtask test`: build [`PY_EXTENSIONS`], run pytest on each of
/// [`PY_SUITES`] (a suite that collects no tests fails), then a bounded run of the
/// Python-side fuzzer.
pub(crate) fn test_suite(ws: &Workspace) -> Result {
    for suite in PY_SUITES {
        let tests = files_named(&ws.path(suite), &|name| {
            name.starts_with("test_") && name.ends_with(".py")
        });
        if tests.is_empty() {
            return Err(Failure::new(format!(
                "{suite}/ has no test_*.py: the Python suite must exist and test something"
            )));
        }
    }
    let venv = Venv::ensure(ws, STEP)?;
    for dir in PY_EXTENSIONS {
        venv.develop(ws, STEP, &ws.path(dir))?;
    }
    for suite in PY_SUITES {
        let pytest = venv.cmd("python").args(["-m", "pytest", suite, "-q"]);
        pytest.run(STEP).map_err(|failure| {
            // pytest's 5 means it collected nothing: a suite that tests nothing is not a pass.
            if failure.code == 5 {
                Failure::with_code(
                    format!(
                        "{}: pytest collected no tests (exit code 5) from {suite}/",
                        failure.message
                    ),
                    5,
                )
            } else {
                failure
            }
        })?;
    }
    fuzz_script(
        ws,
        &venv,
        STEP,
        &[format!("-max_total_time={BOUNDED_FUZZ_SECONDS}")],
    )
}

/// The number of `test_*.py` files of every pytest suite.
pub(crate) fn test_file_count(ws: &Workspace) -> usize {
    PY_SUITES
        .iter()
        .map(|suite| {
            files_named(&ws.path(suite), &|name| {
                name.starts_with("test_") && name.ends_with(".py")
            })
            .len()
        })
        .sum()
}

/// Runs the Python-side fuzzer (atheris) with libFuzzer-style `args` over its committed
/// seeds (`pytests/fuzz/seeds`), with inputs up to [`FUZZ_MAX_LEN`] bytes and a hang
/// after [`FUZZ_INPUT_TIMEOUT`] seconds counting as a finding; the inputs it finds go to
/// `target/pyfuzz/corpus` and a finding's input to `target/pyfuzz/`, outside the
/// repository. It exits non-zero on a finding, after printing the input.
pub(crate) fn fuzz_script(ws: &Workspace, venv: &Venv, step: &str, args: &[String]) -> Result {
    let script = ws.path(FUZZ_SCRIPT);
    if !script.is_file() {
        return Err(Failure::new(format!("{FUZZ_SCRIPT} is missing")));
    }
    let corpus = ws.target().join("pyfuzz").join("corpus");
    std::fs::create_dir_all(&corpus)
        .map_err(|e| Failure::new(format!("cannot create {}: {e}", corpus.display())))?;
    // libFuzzer takes the prefix as a string: the directory needs its trailing separator.
    let artifacts = format!("{}/", ws.target().join("pyfuzz").display());
    venv.cmd("python")
        .arg(&script)
        .arg(format!("-max_len={FUZZ_MAX_LEN}"))
        .arg(format!("-timeout={FUZZ_INPUT_TIMEOUT}"))
        .arg(format!("-artifact_prefix={artifacts}"))
        .args(args)
        .arg(&corpus)
        .arg(ws.path(FUZZ_SEEDS))
        .dir(ws.path("pytests"))
        .run(step)
}

/// Build an example's extension crate into the venv and run its `demo.py` with the venv's
/// python. `cargo xtask demo` shows this; the `examples` step of `cargo xtask test` runs it
/// as an end-to-end check, since a `demo.py` fails when a result is wrong.
pub(crate) fn run_example(ws: &Workspace, step: &str, example: &Example) -> Result {
    let venv = Venv::ensure(ws, step)?;
    venv.develop(ws, step, &ws.path(example.crate_dir))?;
    venv.cmd("python")
        .arg(ws.path(example.demo))
        .run(step)
        .map_err(|failure| {
            Failure::with_code(
                format!("{}: see its FAIL lines or traceback above", failure.message),
                failure.code,
            )
        })
}

/// The pyenv program: on the `PATH`, else where its installer puts it (`$PYENV_ROOT/bin`,
/// `~/.pyenv/bin`), since a non-interactive shell (CI's) may not have run the lines of a
/// shell profile that add it to the `PATH`.
pub(crate) fn pyenv() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join("pyenv"));
    let installed = [
        std::env::var_os("PYENV_ROOT").map(PathBuf::from),
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")),
    ]
    .into_iter()
    .flatten()
    .map(|root| root.join("bin").join("pyenv"));
    on_path
        .chain(installed)
        .find(|program| program.is_file())
        .unwrap_or_else(|| PathBuf::from("pyenv"))
}

/// The `python3` pyenv installed for `version` (`3.12.1`, or a prefix pyenv resolves such
/// as `3.12`), if pyenv knows it.
pub(crate) fn pyenv_python(version: &str, step: &str) -> Option<PathBuf> {
    let prefix = Cmd::new(pyenv()).args(["prefix", version]).probe(step)?;
    Some(Path::new(&prefix).join("bin").join("python3"))
}
