//! How a `#[main]` program ends: a Python exception prints its traceback and exits 1; a
//! `main` that returns while tasks still hold Python objects exits 0 without a crash or
//! hang; a loop factory that cannot be loaded, or returns something that is not an event
//! loop, stops the program at start-up with an error naming it.

mod common;

use common::Outcome;

fn assert_clean_stderr(outcome: &Outcome) {
    for alarm in [
        "panicked",
        "Fatal Python error",
        "Segmentation fault",
        "core dumped",
    ] {
        assert!(
            !outcome.stderr.contains(alarm),
            "unexpected {alarm:?} on stderr\n{}",
            outcome.transcript()
        );
    }
}

#[test]
fn python_exception_in_main_prints_traceback_and_exits_1() {
    let outcome = common::run(env!("CARGO_BIN_EXE_fixture_raises"), &[]);
    let transcript = outcome.transcript();
    assert_eq!(outcome.status.code(), Some(1), "{transcript}");
    assert!(
        outcome
            .stderr
            .contains("Traceback (most recent call last):"),
        "the traceback is printed\n{transcript}"
    );
    assert!(
        outcome.stderr.contains("app_helpers.py") && outcome.stderr.contains("in fail"),
        "the traceback reaches into the Python coroutine that raised\n{transcript}"
    );
    assert!(
        outcome
            .stderr
            .contains("ValueError: raised in app_helpers.fail"),
        "the exception itself is printed\n{transcript}"
    );
    assert!(!outcome.stdout.contains("unreachable"), "{transcript}");
    assert_clean_stderr(&outcome);
}

#[test]
fn main_returning_while_tasks_hold_python_objects_exits_0() {
    // Several rounds: a crash at exit would be a race with the tasks still running.
    for _ in 0..5 {
        let outcome = common::run(env!("CARGO_BIN_EXE_fixture_task_outlives_main"), &[]);
        let transcript = outcome.transcript();
        assert_eq!(outcome.status.code(), Some(0), "{transcript}");
        assert!(
            outcome
                .stdout
                .contains("main returns while two tasks still hold Python objects"),
            "{transcript}"
        );
        assert_clean_stderr(&outcome);
    }
}

#[test]
fn unimportable_loop_factory_is_named_at_start_up() {
    let outcome = common::run(env!("CARGO_BIN_EXE_fixture_missing_loop_factory"), &[]);
    let transcript = outcome.transcript();
    assert_ne!(outcome.status.code(), Some(0), "{transcript}");
    assert!(
        outcome.status.code().is_some(),
        "an exit, not a crash\n{transcript}"
    );
    assert!(
        outcome
            .stderr
            .contains("cannot load the event loop factory 'nonexistent_mod.factory'"),
        "the error names the factory that was given\n{transcript}"
    );
    assert!(
        outcome.stderr.contains("No module named 'nonexistent_mod'"),
        "and says why it could not be loaded\n{transcript}"
    );
    assert!(
        !outcome.stdout.contains("unreachable"),
        "main must not run\n{transcript}"
    );
    assert_clean_stderr(&outcome);
}

#[test]
fn loop_factory_returning_a_non_loop_is_named_at_start_up() {
    let outcome = common::run(env!("CARGO_BIN_EXE_fixture_factory_not_a_loop"), &[]);
    let transcript = outcome.transcript();
    assert_ne!(outcome.status.code(), Some(0), "{transcript}");
    assert!(
        outcome.status.code().is_some(),
        "an exit, not a crash\n{transcript}"
    );
    assert!(
        outcome.stderr.contains(
            "TypeError: the event loop factory 'time.time' returned 'float', which is not an \
             asyncio event loop"
        ),
        "the error names the factory and what it returned\n{transcript}"
    );
    assert!(
        !outcome.stdout.contains("unreachable"),
        "main must not run\n{transcript}"
    );
    assert_clean_stderr(&outcome);
}

#[test]
fn rust_loop_factory_returning_a_non_loop_fails_at_start_up() {
    let outcome = common::run(env!("CARGO_BIN_EXE_fixture_rust_factory_not_a_loop"), &[]);
    let transcript = outcome.transcript();
    assert_ne!(outcome.status.code(), Some(0), "{transcript}");
    assert!(
        outcome.status.code().is_some(),
        "an exit, not a crash\n{transcript}"
    );
    assert!(
        outcome
            .stderr
            .contains("returned 'int', which is not an asyncio event loop"),
        "the error says what the factory returned\n{transcript}"
    );
    assert!(
        !outcome.stdout.contains("unreachable"),
        "main must not run\n{transcript}"
    );
    assert_clean_stderr(&outcome);
}
