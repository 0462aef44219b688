//! Running external commands: each is printed as a shell line before it runs, and a non-zero
//! exit becomes a [`Failure`] that carries the command's exit code up to `cargo xtask`'s own.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Why a task stopped: a message the user can act on and the exit code `cargo xtask` ends with.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// Never 0: a failure must fail the shell that ran us.
    pub(crate) code: u8,
}

impl Failure {
    /// A failure with exit code 1.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self::with_code(message, 1)
    }

    /// A failure with the given exit code (0 is turned into 1).
    pub(crate) fn with_code(message: impl Into<String>, code: u8) -> Self {
        Self {
            message: message.into(),
            code: code.max(1),
        }
    }
}

/// What every task returns.
pub(crate) type Result<T = ()> = std::result::Result<T, Failure>;

/// A command with the environment and directory it needs, printable as the shell line that
/// reproduces it.
pub(crate) struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(String, OsString)>,
    dir: Option<PathBuf>,
}

impl Cmd {
    /// `program` with no arguments, run in the current directory (the workspace root).
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            envs: Vec::new(),
            dir: None,
        }
    }

    pub(crate) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(crate) fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub(crate) fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.envs.push((key.to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Run in `dir` instead of the workspace root.
    pub(crate) fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Print the `==> step: command` banner.
    pub(crate) fn announce(&self, step: &str) {
        println!("==> {step}: {self}");
    }

    /// The `std::process::Command` this describes, for callers that need its output streams.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        command
    }

    /// Announce, run with inherited stdio, and fail unless it exits 0. Under a [`budget`]
    /// the command (and every process it started) is killed when the budget runs out.
    pub(crate) fn run(&self, step: &str) -> Result {
        self.announce(step);
        let child = self.command().spawn().map_err(|e| self.spawn_failure(&e))?;
        let status = self.wait_within_budget(step, child)?;
        self.check(status)
    }

    /// Waits for `child`; past the budget's deadline kills its whole process tree and fails.
    fn wait_within_budget(&self, step: &str, mut child: Child) -> Result<ExitStatus> {
        let Some(budget) = BUDGET.get() else {
            return child.wait().map_err(|e| self.spawn_failure(&e));
        };
        loop {
            if let Some(status) = child.try_wait().map_err(|e| self.spawn_failure(&e))? {
                return Ok(status);
            }
            if Instant::now() >= budget.deadline {
                kill_tree(child.id());
                let _ = child.wait();
                return Err(Failure::new(format!(
                    "OVER BUDGET: `cargo xtask test` may take at most {} ({} to raise it); \
                     step `{step}` was still running `{self}` and was killed with every \
                     process it started",
                    format_duration(budget.total),
                    BUDGET_ENV
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Announce and run like [`run`](Cmd::run), echoing stdout line by line as it comes and
    /// returning it, for steps that read what the command reported.
    pub(crate) fn run_keeping_stdout(&self, step: &str) -> Result<String> {
        self.announce(step);
        let mut child = self
            .command()
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_failure(&e))?;
        let stdout = child.stdout.take();
        // Read on a thread of its own, so that the budget can still kill a silent hang.
        let reader = std::thread::spawn(move || {
            let mut kept = String::new();
            if let Some(stdout) = stdout {
                let mut out = std::io::stdout().lock();
                for line in BufReader::new(stdout).split(b'\n').map_while(|l| l.ok()) {
                    // Echoing is best effort: a closed stdout must not stop the command.
                    let _ = out.write_all(&line);
                    let _ = out.write_all(b"\n");
                    let _ = out.flush();
                    kept.push_str(&String::from_utf8_lossy(&line));
                    kept.push('\n');
                }
            }
            kept
        });
        let status = self.wait_within_budget(step, child)?;
        let kept = reader.join().unwrap_or_default();
        self.check(status)?;
        Ok(kept)
    }

    /// Announce and run with output captured: `Some(stdout)` if it exits 0, `None` if it
    /// fails or cannot start. For "is this installed?" checks, where failing is an answer.
    pub(crate) fn probe(&self, step: &str) -> Option<String> {
        self.announce(step);
        let output = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// `Ok` if `status` is success, else a failure carrying the command's exit code.
    pub(crate) fn check(&self, status: ExitStatus) -> Result {
        if status.success() {
            return Ok(());
        }
        // A signal has no exit code; 1 still fails the caller.
        let code = status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1);
        Err(Failure::with_code(
            format!("`{self}` failed ({status})"),
            code,
        ))
    }

    /// The failure for a command that could not even start (not installed, not executable).
    pub(crate) fn spawn_failure(&self, error: &std::io::Error) -> Failure {
        Failure::new(format!(
            "could not start `{}`: {error}",
            self.program.to_string_lossy()
        ))
    }
}

impl fmt::Display for Cmd {
    /// A shell line: `(cd DIR && ENV=value program args)`, paths under the current directory
    /// (the workspace root) shortened when the command runs there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Inside another directory, relative paths would mislead a reader who copies the line.
        let base = match self.dir {
            Some(_) => None,
            None => std::env::current_dir().ok(),
        };
        let show = |s: &OsStr| quote(&shorten(s, base.as_deref()));
        if let Some(dir) = &self.dir {
            write!(f, "(cd {} && ", show(dir.as_os_str()))?;
        }
        for (key, value) in &self.envs {
            write!(f, "{key}={} ", show(value))?;
        }
        write!(f, "{}", show(&self.program))?;
        for arg in &self.args {
            write!(f, " {}", show(arg))?;
        }
        if self.dir.is_some() {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// The environment variable that sets [`budget`]'s minutes for `cargo xtask test`.
pub(crate) const BUDGET_ENV: &str = "PYO3_AIO_TEST_BUDGET_MINUTES";

struct Budget {
    total: Duration,
    deadline: Instant,
}

static BUDGET: OnceLock<Budget> = OnceLock::new();

/// From now on, every [`Cmd::run`] must end within `total` of this call: a run that hangs
/// fails loudly, naming the step, well before CI's own limit kills everything silently.
pub(crate) fn budget(total: Duration) {
    let _ = BUDGET.set(Budget {
        total,
        deadline: Instant::now() + total,
    });
}

/// SIGKILL to `root` and all its descendants (found through `/proc`), children first seen
/// last so that nothing is re-parented out of reach mid-way.
fn kill_tree(root: u32) {
    let mut tree = vec![root];
    let mut i = 0;
    let parents = process_parents();
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|&&(_, ppid)| ppid == parent)
                .map(|&(pid, _)| pid),
        );
        i += 1;
    }
    // One `kill` for the whole tree: they stop at the same instant.
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(tree.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// `(pid, parent pid)` of every process `/proc` shows.
fn process_parents() -> Vec<(u32, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// `s` relative to `base` when it is a path under it.
fn shorten(s: &OsStr, base: Option<&Path>) -> String {
    let path = Path::new(s);
    match base.and_then(|b| path.strip_prefix(b).ok()) {
        Some(rest) if path.is_absolute() && !rest.as_os_str().is_empty() => {
            rest.to_string_lossy().into_owned()
        }
        _ => s.to_string_lossy().into_owned(),
    }
}

/// Quote for a POSIX shell when needed, so a printed line can be pasted back.
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `12.3s` under a minute, `4m05s` above.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

/// `extra` appended to the flags already in `var`, so a developer's own flags survive.
pub(crate) fn with_flags(var: &str, extra: &str) -> String {
    match std::env::var(var) {
        Ok(existing) if !existing.trim().is_empty() => format!("{existing} {extra}"),
        _ => extra.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_and_shows_env() {
        let cmd = Cmd::new("cargo")
            .args(["test", "-p", "x"])
            .env("RUSTFLAGS", "--cfg loom");
        assert_eq!(cmd.to_string(), "RUSTFLAGS='--cfg loom' cargo test -p x");
    }

    #[test]
    fn display_in_other_dir_keeps_paths() {
        let cmd = Cmd::new("/w/target/venv/bin/maturin")
            .arg("develop")
            .dir("/w/pytests");
        assert_eq!(
            cmd.to_string(),
            "(cd /w/pytests && /w/target/venv/bin/maturin develop)"
        );
    }

    #[test]
    fn kill_tree_reaches_grandchildren() {
        // A shell that starts a sleeping grandchild and prints its pid.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 600 & echo $!; wait"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
            &mut line,
        )
        .expect("reads the pid");
        let grandchild = line.trim().to_owned();
        kill_tree(child.id());
        child.wait().expect("sh is reaped");
        // A killed grandchild is soon gone or a zombie (its parent died; init reaps it).
        let state = || {
            std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                .map(|stat| stat[stat.rfind(')').unwrap() + 2..][..1].to_owned())
                .unwrap_or_else(|_| "gone".to_owned())
        };
        let patience = Instant::now() + Duration::from_secs(10);
        while !matches!(state().as_str(), "gone" | "Z") && Instant::now() < patience {
            std::thread::sleep(Duration::from_millis(10));
        }
        let state = state();
        assert!(
            state == "gone" || state == "Z",
            "grandchild {grandchild} survived: state {state}"
        );
    }

    #[test]
    fn failure_keeps_exit_code() {
        let cmd = Cmd::new("sh").args(["-c", "exit 5"]);
        let failure = cmd.run("test").unwrap_err();
        assert_eq!(failure.code, 5);
    }
}
