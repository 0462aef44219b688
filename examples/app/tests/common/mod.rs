//! Starting the example programs from tests: with the venv's site-packages on
//! `PYTHONPATH`, Ctrl-C at its default disposition, output captured, and a deadline that
//! guards the suite against a hang (not a speed assertion).

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any program may take before the test calls it hung.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The venv `cargo xtask` creates (with uvloop): `PYO3_AIO_VENV`, else `<root>/target/venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("PYO3_AIO_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv"),
    }
}

/// The venv's site-packages, as its own python reports it: embedded Python does not find
/// a venv by itself, so programs that import from it need this on `PYTHONPATH`.
pub fn venv_site_packages() -> Result<PathBuf, String> {
    let venv = venv_dir();
    let python = venv.join("bin/python");
    if !python.exists() {
        return Err(format!(
            "no virtualenv at {}: `cargo xtask test` creates it (with uvloop) before the Rust \
             tests run; or set PYO3_AIO_VENV to a venv that has uvloop",
            venv.display()
        ));
    }
    let output = Command::new(&python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ])
        .output()
        .map_err(|error| format!("cannot run {}: {error}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed to report its site-packages: {}",
            python.display(),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
    ))
}

/// A command for the example program at `path` (from `env!("CARGO_BIN_EXE_<name>")`).
///
/// The venv's site-packages go first on `PYTHONPATH` when there is a venv. SIGINT is reset
/// to its default in the child: a shell without job control starts background jobs with
/// it ignored, and an ignored SIGINT is inherited across `exec`, which would make the
/// Ctrl-C test hang for reasons that have nothing to do with the program.
pub fn program(path: &str) -> Command {
    let mut command = Command::new(path);
    if let Ok(site_packages) = venv_site_packages() {
        let mut paths = vec![site_packages];
        if let Some(existing) = std::env::var_os("PYTHONPATH") {
            paths.extend(std::env::split_paths(&existing));
        }
        command.env(
            "PYTHONPATH",
            std::env::join_paths(paths).expect("paths without separators"),
        );
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: signal() is async-signal-safe, so it may run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    command
}

/// How a program ended.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Everything the program printed, for failure messages.
    pub fn transcript(&self) -> String {
        format!(
            "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A started program whose stdout is read line by line as it comes.
pub struct Running {
    child: Child,
    name: String,
    lines: Receiver<String>,
    stdout: Vec<String>,
    stdout_reader: JoinHandle<()>,
    stderr_reader: Option<JoinHandle<String>>,
}

impl Running {
    /// Starts `command`; `name` is for messages.
    pub fn start(mut command: Command, name: &str) -> Self {
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (sender, lines) = channel();
        let stdout_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Self {
            child,
            name: name.to_owned(),
            lines,
            stdout: Vec::new(),
            stdout_reader,
            stderr_reader: Some(stderr_reader),
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        libc::pid_t::try_from(self.child.id()).expect("pids fit pid_t")
    }

    /// Waits for a stdout line equal to `wanted`; panics with the output so far if the
    /// program ends or the deadline passes first.
    pub fn wait_for_line(&mut self, wanted: &str) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line == wanted;
                    self.stdout.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    let outcome = self.finish_now();
                    panic!(
                        "{} did not print {wanted:?} within {DEADLINE:?}\n{}",
                        self.name,
                        outcome.transcript()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let outcome = self.finish_now();
                    panic!(
                        "{} ended before printing {wanted:?}\n{}",
                        self.name,
                        outcome.transcript()
                    );
                }
            }
        }
    }

    /// Sends `signal` to the program.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill() has no memory-safety preconditions; the pid is our own child,
        // not yet reaped, so it cannot name another process.
        let sent = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(
            sent,
            0,
            "kill({}, {signal}) failed: {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Waits for the program to exit; past the deadline it is killed and the test fails
    /// with everything it printed.
    pub fn wait(mut self) -> Outcome {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.child.try_wait().expect("try_wait on our child") {
                Some(_) => return self.finish_now(),
                None if Instant::now() >= deadline => {
                    let _ = self.child.kill();
                    let outcome = self.finish_now();
                    panic!(
                        "{} did not exit within {DEADLINE:?}: it hangs\n{}",
                        self.name,
                        outcome.transcript()
                    );
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Reaps the child and collects its output (the child has exited or been killed).
    fn finish_now(&mut self) -> Outcome {
        let status = self.child.wait().expect("wait on our child");
        let readers_done = Instant::now() + Duration::from_secs(5);
        while !self.stdout_reader.is_finished() && Instant::now() < readers_done {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stdout.extend(self.lines.try_iter());
        let mut stdout = self.stdout.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        let stderr = self
            .stderr_reader
            .take()
            .and_then(|reader| reader.join().ok())
            .unwrap_or_default();
        Outcome {
            status,
            stdout,
            stderr,
        }
    }
}

/// Runs the program at `path` to completion (within [`DEADLINE`]).
pub fn run(path: &str, args: &[&str]) -> Outcome {
    let mut command = program(path);
    command.args(args);
    Running::start(command, &display_name(path)).wait()
}

/// The program's file name, for messages.
pub fn display_name(path: &str) -> String {
    Path::new(path).file_name().map_or_else(
        || path.to_owned(),
        |name| name.to_string_lossy().into_owned(),
    )
}
