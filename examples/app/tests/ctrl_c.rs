//! Ctrl-C while a `#[main]` program awaits: it ends the way `asyncio.run` does, with
//! `KeyboardInterrupt` and exit status 130, and the pending Rust future is dropped first.

mod common;

use common::Running;

/// Starts `fixture_wait_forever <mode>`, sends SIGINT once it is waiting, and checks the
/// exit status, the traceback, and that `main`'s future printed its drop line.
fn interrupt(mode: &str, dropped: &str) {
    let path = env!("CARGO_BIN_EXE_fixture_wait_forever");
    let mut command = common::program(path);
    command.arg(mode);
    let mut program = Running::start(command, &format!("fixture_wait_forever {mode}"));
    program.wait_for_line("ready");
    program.signal(libc::SIGINT);
    let outcome = program.wait();
    let transcript = outcome.transcript();
    assert_eq!(
        outcome.status.code(),
        Some(130),
        "Ctrl-C gives exit status 130\n{transcript}"
    );
    assert!(
        outcome.stderr.contains("KeyboardInterrupt"),
        "Ctrl-C shows the KeyboardInterrupt\n{transcript}"
    );
    assert!(
        outcome.stdout.contains(&format!("dropped: {dropped}")),
        "the pending future of main must be dropped before the program exits (no drop line: \
         the program exited while the runtime was still dropping it)\n{transcript}"
    );
    assert!(
        !outcome.stdout.contains("unreachable"),
        "the wait must not end normally\n{transcript}"
    );
}

#[test]
fn ctrl_c_drops_a_pending_rust_future_and_exits_130() {
    // Ten rounds: the drop happens on a runtime worker while the main thread shuts the
    // loop down, so a run that does not wait for it loses the race now and then.
    for _ in 0..10 {
        interrupt("rust", "the never-ending Rust future");
    }
}

#[test]
fn ctrl_c_while_awaiting_python_drops_the_future_and_exits_130() {
    for _ in 0..10 {
        interrupt("python", "the future awaiting asyncio.sleep(3600)");
    }
}
