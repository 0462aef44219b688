//! `cargo xtask demo`: run what can be shown today, then say plainly what cannot yet.

use crate::cmd::{Cmd, Result};
use crate::fuzz;
use crate::workspace::{Workspace, files_named};

/// One thing the demo runs.
struct DemoStep {
    name: &'static str,
    run: fn(&Workspace) -> Result,
}

/// What `cargo xtask demo` runs, in order.
// Later issues append here:
// - the bridge issue: "extension": `python::Venv::ensure`, `Venv::develop` on
//   examples/extension (maturin into target/venv), then run examples/extension/demo.py with
//   the venv's python;
// - the applications issue: "application": `cargo run -p <app example>`.
// Once both exist, drop the "not yet" lines from `summary`.
const DEMO_STEPS: &[DemoStep] = &[DemoStep {
    name: "build",
    run: build_workspace,
}];

pub(crate) fn run(ws: &Workspace) -> Result {
    for step in DEMO_STEPS {
        println!("==> demo: {}", step.name);
        (step.run)(ws)?;
    }
    summary(ws);
    Ok(())
}

fn build_workspace(_: &Workspace) -> Result {
    Cmd::new("cargo").args(["build", "--workspace"]).run("demo")
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
    println!("    crates built: {}", list(&members));
    println!("    fuzz targets: {}", list(&fuzz_targets));
    println!(
        "    loom files:   {} in loom-tests/tests/",
        loom_models.len()
    );
    println!("    pytest files: {} in pytests/", pytest_files.len());
    println!();
    println!("    Not yet: the extension-module demo (a maturin module awaited from Python)");
    println!("    arrives with the bridge issue, and the Rust-application demo (Python");
    println!("    coroutines awaited from a Rust runtime) with the applications issue.");
    println!("    Until then this demo only builds the crates.");
}
