//! A test harness for Rust tests that need the Python main thread.
//!
//! Put tests in an integration-test file declared with `harness = false`, mark each with
//! `#[pyo3_aio::tokio::test]` (or the async-std / smol one), and call [`main`] from the
//! file's `main`. `cargo test` then runs them on the main thread, each on a fresh event
//! loop, with libtest's filtering (`cargo test -- name`, `--exact`, `--skip`, `--list`) and
//! report format.
//!
//! ```no_run
//! // tests/python.rs, with `[[test]] name = "python" harness = false` in Cargo.toml
//! use pyo3::prelude::*;
//!
//! #[pyo3_aio::tokio::test]
//! async fn sleeps_in_python() -> PyResult<()> {
//!     let sleep = Python::attach(|py| {
//!         pyo3_aio::into_future(py.import("asyncio")?.call_method1("sleep", (0.01,))?)
//!     })?;
//!     sleep.await?;
//!     Ok(())
//! }
//!
//! fn main() {
//!     pyo3_aio::testing::main()
//! }
//! ```
//! (`no_run`: a harness owns the process's `main`.)

use std::io::Write;
use std::time::Instant;

pub use inventory;
use pyo3::prelude::*;

/// One test registered by a `#[test]` attribute.
pub struct Test {
    /// `module::path::name`.
    name: &'static str,
    /// Runs the test to completion on a fresh event loop.
    run: fn(Python<'_>) -> PyResult<()>,
}

impl Test {
    /// The test `name` (`module::path::name`), run by `run` to completion on a fresh event
    /// loop. `const`, so that a `#[test]` expansion can register it with
    /// `inventory::submit!`.
    pub const fn new(name: &'static str, run: fn(Python<'_>) -> PyResult<()>) -> Self {
        Self { name, run }
    }

    /// `module::path::name`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

inventory::collect!(Test);

struct Filters {
    patterns: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
}

impl Filters {
    fn from_args(args: impl Iterator<Item = String>) -> Self {
        let mut filters = Filters {
            patterns: Vec::new(),
            skip: Vec::new(),
            exact: false,
            list: false,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--exact" => filters.exact = true,
                "--list" => filters.list = true,
                "--skip" => filters.skip.extend(args.next()),
                // libtest options that take a value; accepted and ignored.
                "--test-threads" | "--format" | "--color" | "-Z" | "--logfile" => {
                    args.next();
                }
                option if option.starts_with('-') => {}
                pattern => filters.patterns.push(pattern.to_owned()),
            }
        }
        filters
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |pattern: &String| {
            if self.exact {
                name == pattern
            } else {
                name.contains(pattern.as_str())
            }
        };
        (self.patterns.is_empty() || self.patterns.iter().any(matches))
            && !self.skip.iter().any(|skip| name.contains(skip.as_str()))
    }
}

/// Runs every registered test that the command line selects, prints a libtest-style
/// report, and exits with status 101 if any failed.
pub fn main() {
    let filters = Filters::from_args(std::env::args().skip(1));
    let mut tests: Vec<&Test> = inventory::iter::<Test>.into_iter().collect();
    tests.sort_by_key(|test| test.name);
    let total = tests.len();
    tests.retain(|test| filters.selects(test.name));
    let filtered_out = total - tests.len();

    if filters.list {
        for test in &tests {
            println!("{}: test", test.name);
        }
        return;
    }

    Python::initialize();
    println!(
        "\nrunning {} test{}",
        tests.len(),
        if tests.len() == 1 { "" } else { "s" }
    );
    let started = Instant::now();
    let mut failures = Vec::new();
    for test in &tests {
        print!("test {} ... ", test.name);
        let _ = std::io::stdout().flush();
        let outcome = Python::attach(|py| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (test.run)(py)))
                .map(|result| result.map_err(|error| describe(py, &error)))
                .unwrap_or_else(|_| Err("the test panicked outside its future".to_owned()))
        });
        match outcome {
            Ok(()) => println!("ok"),
            Err(message) => {
                println!("FAILED");
                failures.push((test.name, message));
            }
        }
    }
    let passed = tests.len() - failures.len();
    if !failures.is_empty() {
        println!("\nfailures:\n");
        for (name, message) in &failures {
            println!("---- {name} ----\n{message}\n");
        }
        println!("failures:");
        for (name, _) in &failures {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s\n",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(status) = exit_status(failures.len()) {
        std::process::exit(status);
    }
}

/// The status to exit with after `failed` failures: none (return from `main`, status 0)
/// when every test passed, else libtest's 101.
fn exit_status(failed: usize) -> Option<i32> {
    (failed > 0).then_some(101)
}

/// The exception with its traceback, as Python would print it.
fn describe(py: Python<'_>, error: &PyErr) -> String {
    let formatted = py.import("traceback").and_then(|traceback| {
        traceback
            .call_method1(
                "format_exception",
                (error.get_type(py), error.value(py), error.traceback(py)),
            )?
            .try_iter()?
            .map(|line| line.and_then(|line| line.extract::<String>()))
            .collect::<PyResult<String>>()
    });
    formatted.unwrap_or_else(|_| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::{Filters, exit_status};

    fn filters(args: &[&str]) -> Filters {
        Filters::from_args(args.iter().map(|arg| (*arg).to_owned()))
    }

    #[test]
    fn no_arguments_select_everything() {
        let all = filters(&[]);
        assert!(!all.exact && !all.list);
        assert!(all.selects("module::test"));
        assert!(all.selects(""));
    }

    #[test]
    fn patterns_select_by_substring_any_of_them() {
        let some = filters(&["alpha", "beta"]);
        assert!(some.selects("tests::alpha_one"));
        assert!(some.selects("tests::beta"));
        assert!(!some.selects("tests::gamma"));
    }

    #[test]
    fn exact_selects_only_the_whole_name() {
        let exact = filters(&["--exact", "tests::alpha"]);
        assert!(exact.exact);
        assert!(exact.selects("tests::alpha"));
        assert!(!exact.selects("tests::alpha_one"));
        assert!(!exact.selects("alpha"));
    }

    #[test]
    fn skip_removes_by_substring_even_with_exact() {
        let skip = filters(&["--skip", "slow", "tests"]);
        assert_eq!(skip.skip, ["slow"]);
        assert_eq!(skip.patterns, ["tests"]);
        assert!(skip.selects("tests::fast"));
        assert!(!skip.selects("tests::slow_one"));

        let exact = filters(&["--exact", "tests::slow", "--skip", "slow"]);
        assert!(!exact.selects("tests::slow"));

        // A trailing --skip without its value is ignored.
        let dangling = filters(&["--skip"]);
        assert!(dangling.skip.is_empty());
        assert!(dangling.selects("anything"));
    }

    #[test]
    fn list_and_ignored_options() {
        let list = filters(&[
            "--list",
            "--test-threads",
            "4",
            "--format",
            "terse",
            "--color",
            "never",
            "-Z",
            "unstable-options",
            "--logfile",
            "out.txt",
            "--nocapture",
            "-q",
            "name",
        ]);
        assert!(list.list);
        assert!(!list.exact);
        // The values of the ignored options are not taken for patterns.
        assert_eq!(list.patterns, ["name"]);
        assert!(list.skip.is_empty());
    }

    #[test]
    fn exit_status_is_101_after_any_failure() {
        assert_eq!(exit_status(0), None);
        assert_eq!(exit_status(1), Some(101));
        assert_eq!(exit_status(7), Some(101));
    }
}
