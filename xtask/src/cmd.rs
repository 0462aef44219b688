//! Running external commands: each is printed as a shell line before it runs, and a non-zero
//! exit becomes a [`Failure`] that carries the command's exit code up to `cargo xtask`'s own.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

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

    /// Announce, run with inherited stdio, and fail unless it exits 0.
    pub(crate) fn run(&self, step: &str) -> Result {
        self.announce(step);
        let status = self
            .command()
            .status()
            .map_err(|e| self.spawn_failure(&e))?;
        self.check(status)
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
        let mut kept = String::new();
        if let Some(stdout) = child.stdout.take() {
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
        let status = child.wait().map_err(|e| self.spawn_failure(&e))?;
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
    fn failure_keeps_exit_code() {
        let cmd = Cmd::new("sh").args(["-c", "exit 5"]);
        let failure = cmd.run("test").unwrap_err();
        assert_eq!(failure.code, 5);
    }
}
