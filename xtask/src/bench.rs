//! `cargo xtask bench [--quick] [--only KEYS] [--python X.Y]`: the side-by-side benchmarks of
//! `bench/` and the core's criterion benches.
//!
//! 1. the venv at `target/venv` (maturin, pytest, uvloop), as for `cargo xtask test`; with
//!    `--python X.Y`, one of that pyenv version at `target/bench-pyX.Y/venv` (maturin and
//!    uvloop from PyPI), whose modules build in `target/bench-pyX.Y/target`;
//! 2. both benchmark modules built into it with `maturin develop --release`, sharing one
//!    target directory, `target/bench` (each has its own workspace and lockfile: one of them
//!    pulls pyo3-async-runtimes from crates.io);
//! 3. `bench/driver.py`: every scenario, every contender, both loops; tables to stdout and
//!    to `bench/RESULTS.md` (`--quick`: a smoke run with small sizes, written to
//!    `target/bench/RESULTS-quick.md` so the kept results are not overwritten);
//! 4. `cargo bench -p pyo3-aio-core --bench core` with a short measurement time, whose
//!    medians the driver then appends to the same Markdown file;
//! 5. `bench/trio_driver.py`: the trio column (pyo3-aio under `trio.run` against plain
//!    trio), appended to the same file (with `--only`, only when the keys name `trio`).
//!
//! Nothing here judges the figures: the tables say which targets are met.

use std::path::{Path, PathBuf};

use crate::cmd::{Cmd, Failure, Result};
use crate::python::Venv;
use crate::workspace::Workspace;

const STEP: &str = "bench";

/// The extension modules the driver imports, relative to the root.
const MODULES: &[&str] = &["bench/pyo3_aio_bench", "bench/par_bench"];

const DRIVER: &str = "bench/driver.py";

const TRIO_DRIVER: &str = "bench/trio_driver.py";

/// What `cargo xtask bench` was asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    quick: bool,
    only: Option<String>,
    /// A pyenv version (`3.12`) to run on instead of target/venv's Python.
    python: Option<String>,
}

impl Options {
    /// Parses the arguments after `bench`.
    pub(crate) fn parse(args: &[String]) -> std::result::Result<Self, String> {
        let mut options = Self::default();
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => options.quick = true,
                "--only" => {
                    let keys = args
                        .next()
                        .ok_or("`--only` needs scenario keys, e.g. `--only 1,3,6a`")?;
                    options.only = Some(keys.clone());
                }
                "--python" => {
                    let version = args
                        .next()
                        .ok_or("`--python` needs a pyenv version, e.g. `--python 3.12`")?;
                    options.python = Some(version.clone());
                }
                other => match other.strip_prefix("--only=") {
                    Some(keys) => options.only = Some(keys.to_owned()),
                    None => return Err(format!("unexpected argument `{other}` to `bench`")),
                },
            }
        }
        Ok(options)
    }

    /// The driver's own arguments.
    fn driver_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.quick {
            args.push("--quick".to_owned());
        }
        if let Some(keys) = &self.only {
            args.push("--only".to_owned());
            args.push(keys.clone());
        }
        args
    }

    /// Whether the trio column runs: always, except when `--only` names no `trio`.
    fn runs_trio(&self) -> bool {
        self.only
            .as_deref()
            .is_none_or(|keys| keys.split(',').any(|key| key.trim() == "trio"))
    }

    /// How this run is named in RESULTS.md.
    fn command_line(&self) -> String {
        let mut line = String::from("cargo xtask bench");
        for arg in self.driver_args() {
            line.push(' ');
            line.push_str(&arg);
        }
        if let Some(version) = &self.python {
            line.push_str(" --python ");
            line.push_str(version);
        }
        line
    }

    /// Criterion's own options: short, so the whole command stays within minutes.
    fn criterion_args(&self) -> [&'static str; 5] {
        let (warm_up, measure) = if self.quick {
            ("0.2", "0.5")
        } else {
            ("0.5", "2")
        };
        [
            "--warm-up-time",
            warm_up,
            "--measurement-time",
            measure,
            "--noplot",
        ]
    }
}

/// `cargo xtask bench`.
pub(crate) fn run(ws: &Workspace, options: &Options) -> Result {
    let (python, venv_dir, target) = match &options.python {
        None => {
            let venv = Venv::ensure(ws, STEP)?;
            (
                venv.python(),
                venv.dir().to_path_buf(),
                ws.target().join("bench"),
            )
        }
        Some(version) => {
            let dir = ws.target().join(format!("bench-py{version}"));
            let venv = version_venv(&dir, version)?;
            (venv.join("bin").join("python"), venv, dir.join("target"))
        }
    };
    let bin = venv_dir.join("bin");
    for module in MODULES {
        let dir = ws.path(module);
        if !dir.join("pyproject.toml").is_file() {
            return Err(Failure::new(format!(
                "{} has no pyproject.toml: the benchmark modules are maturin crates",
                dir.display()
            )));
        }
        Cmd::new(bin.join("maturin"))
            .args(["develop", "--release"])
            .env("VIRTUAL_ENV", &venv_dir)
            .env("PYO3_PYTHON", &python)
            .env("CARGO_TARGET_DIR", &target)
            .dir(dir)
            .run(STEP)?;
    }
    let target = ws.target().join("bench");
    let venv_python = |program: &Path| Cmd::new(program).env("VIRTUAL_ENV", &venv_dir);

    let output = if options.quick {
        target.join("RESULTS-quick.md")
    } else {
        ws.path("bench/RESULTS.md")
    };
    venv_python(&python)
        .arg(ws.path(DRIVER))
        .args(options.driver_args())
        .arg("--output")
        .arg(&output)
        .env("PYO3_AIO_BENCH_COMMAND", options.command_line())
        .run(STEP)?;

    Cmd::new("cargo")
        .args(["bench", "-p", "pyo3-aio-core", "--bench", "core", "--"])
        .args(options.criterion_args())
        .run(STEP)?;
    venv_python(&python)
        .arg(ws.path(DRIVER))
        .arg("--append-criterion")
        .arg(ws.target().join("criterion"))
        .arg("--output")
        .arg(&output)
        .run(STEP)?;

    if options.runs_trio() {
        let mut trio = venv_python(&python).arg(ws.path(TRIO_DRIVER));
        if options.quick {
            trio = trio.arg("--quick");
        }
        trio.arg("--output").arg(&output).run(STEP)?;
    }

    println!("==> {STEP}: the tables are in {}", output.display());
    Ok(())
}

/// A venv of pyenv's `version` at `dir/venv`, with maturin, uvloop and trio (from PyPI).
fn version_venv(dir: &Path, version: &str) -> Result<PathBuf> {
    let venv = dir.join("venv");
    let python = venv.join("bin").join("python");
    if !python.exists() {
        let interpreter = crate::python::pyenv_python(version, STEP)
            .ok_or_else(|| Failure::new(format!("`pyenv prefix {version}` failed")))?;
        Cmd::new(interpreter)
            .args(["-m", "venv"])
            .arg(&venv)
            .run(STEP)?;
    }
    for (package, module) in [
        ("maturin", "maturin"),
        ("uvloop", "uvloop"),
        ("trio", "trio"),
    ] {
        let present = Cmd::new(&python)
            .args(["-c", &format!("import {module}")])
            .probe(STEP)
            .is_some();
        if !present {
            Cmd::new(&python)
                .args(["-m", "pip", "install", "--quiet", package])
                .run(STEP)?;
        }
    }
    Ok(venv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_quick_and_only() {
        let options = Options::parse(&args(&["--quick", "--only", "1,3"])).unwrap();
        assert!(options.quick);
        assert_eq!(options.only.as_deref(), Some("1,3"));
        assert_eq!(
            options.command_line(),
            "cargo xtask bench --quick --only 1,3"
        );
        let options = Options::parse(&args(&["--only=6a"])).unwrap();
        assert_eq!(options.driver_args(), ["--only", "6a"]);
        assert!(!options.runs_trio());
        assert!(
            Options::parse(&args(&["--only", "1,trio"]))
                .unwrap()
                .runs_trio()
        );
        assert!(Options::default().runs_trio());
    }

    #[test]
    fn parses_python() {
        let options = Options::parse(&args(&["--python", "3.12", "--only", "3"])).unwrap();
        assert_eq!(options.python.as_deref(), Some("3.12"));
        assert_eq!(options.driver_args(), ["--only", "3"]);
        assert_eq!(
            options.command_line(),
            "cargo xtask bench --only 3 --python 3.12"
        );
        assert!(Options::parse(&args(&["--python"])).is_err());
    }

    #[test]
    fn rejects_unknown_arguments() {
        let error = Options::parse(&args(&["--fast"])).unwrap_err();
        assert_eq!(error, "unexpected argument `--fast` to `bench`");
        assert!(Options::parse(&args(&["--only"])).is_err());
    }
}
