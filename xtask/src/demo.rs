//! `cargo xtask demo`: run what can be shown today, then say plainly what cannot yet.

use crate::cmd::Result;
use crate::fuzz;
use crate::python;
use crate::workspace::{Workspace, files_named};

/// One thing the demo runs.
struct DemoStep {
    name: &'static str,
    run: fn(&Workspace) -> Result,
}

/// What `cargo xtask demo` runs, in order.
// The applications issue appends "application" (`cargo run -p <app example>`: a Rust program
// embedding Python) and drops the "Not yet" lines from `summary`.
const DEMO_STEPS: &[DemoStep] = &[DemoStep {
    name: "extension",
    run: extension,
}];

/// Runs every demo step, stopping at the first failure; the summary is printed either way.
pub(crate) fn run(ws: &Workspace) -> Result {
    let mut outcome = Ok(());
    for step in DEMO_STEPS {
        println!("==> demo: {}", step.name);
        outcome = (step.run)(ws);
        if outcome.is_err() {
            break;
        }
    }
    summary(ws);
    outcome
}

/// pyo3-asyncio's README examples as a maturin extension module, awaited from Python on
/// asyncio's default loop and on uvloop (examples/extension/demo.py).
fn extension(ws: &Workspace) -> Result {
    python::run_extension_example(ws, "demo")
}

fn summary(ws: &Workspace) {
    let members = ws.members();
    let fuzz_targets = fuzz::targets(ws);
    let loom_models = files_named(&ws.path("loom-tests/tests"), &|n| n.ends_with(".rs"));
    let pytest_files = files_named(&ws.path("pytests"), &|n| {
        n.starts_with("test_") && n.ends_with(".py")
    });
    let list = |items: &[String]| {
        if items.is_empty() {
            "none yet".to_owned()
        } else {
            items.join(", ")
        }
    };

    println!();
    println!("==> demo: what exists");
    println!("    workspace crates: {}", list(&members));
    println!("    fuzz targets:     {}", list(&fuzz_targets));
    println!(
        "    loom files:       {} in loom-tests/tests/",
        loom_models.len()
    );
    println!("    pytest files:     {} in pytests/", pytest_files.len());
    println!();
    println!("    Not yet: the Rust-application demo (a Rust program that embeds Python, gives");
    println!("    it the main thread with #[pyo3_aio::tokio::main] and awaits Python coroutines)");
    println!("    arrives with the applications issue.");
}
