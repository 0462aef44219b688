//! The example programs (pyo3-asyncio's README, one per runtime, and the uvloop one) run
//! to completion, print what they show, and exit 0.

mod common;

fn run_ok(path: &str, expected_lines: &[&str]) {
    let outcome = common::run(path, &[]);
    let transcript = outcome.transcript();
    assert_eq!(
        outcome.status.code(),
        Some(0),
        "{} failed\n{transcript}",
        common::display_name(path)
    );
    for line in expected_lines {
        assert!(
            outcome.stdout.lines().any(|printed| printed == *line),
            "{} did not print {line:?}\n{transcript}",
            common::display_name(path)
        );
    }
}

#[test]
fn tokio_program() {
    run_ok(
        env!("CARGO_BIN_EXE_app_tokio"),
        &[
            "tokio: sleeping for 0.1s in asyncio.sleep",
            "tokio: app_helpers.py_sleep says \"slept 0.05s in Python\"",
            "tokio: app_helpers.add_later(40, 2) = 42",
        ],
    );
}

#[test]
fn tokio_current_thread_program() {
    run_ok(
        env!("CARGO_BIN_EXE_app_tokio_current_thread"),
        &[
            "tokio (current_thread): a spawned task ran on the same thread",
            "tokio (current_thread): app_helpers.py_sleep says \"slept 0.05s in Python\"",
        ],
    );
}

#[test]
fn async_std_program() {
    run_ok(
        env!("CARGO_BIN_EXE_app_async_std"),
        &[
            "async-std: sleeping for 0.1s in asyncio.sleep",
            "async-std: app_helpers.add_later(40, 2) = 42",
        ],
    );
}

#[test]
fn smol_program() {
    run_ok(
        env!("CARGO_BIN_EXE_app_smol"),
        &[
            "smol: sleeping for 0.1s in asyncio.sleep",
            "smol: app_helpers.add_later(40, 2) = 42",
        ],
    );
}

/// Needs uvloop from the project venv: fails (never skips) when it is missing.
#[test]
fn uvloop_program_runs_on_a_uvloop_loop() {
    let site_packages = match common::venv_site_packages() {
        Ok(dir) => dir,
        Err(problem) => panic!("the uvloop program needs uvloop from the project venv: {problem}"),
    };
    let probe = common::run(env!("CARGO_BIN_EXE_app_uvloop"), &[]);
    assert!(
        !probe.stderr.contains("No module named 'uvloop'"),
        "uvloop is not importable from {} (the venv's site-packages, put on PYTHONPATH): \
         install it there (`cargo xtask test` does), or check that the venv's Python version \
         matches the libpython the program links\n{}",
        site_packages.display(),
        probe.transcript()
    );
    run_ok(
        env!("CARGO_BIN_EXE_app_uvloop"),
        &[
            "uvloop: get_current_loop() is a uvloop.Loop",
            "uvloop: inside a coroutine, asyncio.get_running_loop() is a uvloop.Loop",
        ],
    );
}

/// Needs trio from the project venv: fails (never skips) when it is missing.
#[test]
fn trio_program_runs_in_a_trio_run() {
    if let Err(problem) = common::venv_site_packages() {
        panic!("the trio program needs trio from the project venv: {problem}");
    }
    run_ok(
        env!("CARGO_BIN_EXE_app_trio"),
        &[
            "trio: get_current_loop() is the run's TrioToken",
            "trio: app_helpers.trio_sleep says \"slept 0.05s in trio\"",
        ],
    );
}

/// `#[test(framework = "trio")]` runs each such test in a trio run (trio from the venv).
#[test]
fn trio_tests_run_in_trio_runs() {
    if let Err(problem) = common::venv_site_packages() {
        panic!("the trio tests need trio from the project venv: {problem}");
    }
    run_ok(
        env!("CARGO_BIN_EXE_fixture_trio_tests"),
        &[
            "test fixture_trio_tests::async_std_on_asyncio ... ok",
            "test fixture_trio_tests::smol_under_trio ... ok",
            "test fixture_trio_tests::tokio_under_trio ... ok",
        ],
    );
}
