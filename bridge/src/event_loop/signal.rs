//! The wake signal: how a producer wakes the loop (an eventfd or pipe the loop reads, a
//! `call_soon_threadsafe`, or a `call_soon` on the loop's own thread), and the descriptors.

use std::os::fd::AsRawFd;
use std::os::fd::FromRawFd;
use std::os::fd::OwnedFd;
use std::os::fd::RawFd;

use pyo3::prelude::*;

use crate::event_loop::LoopShared;
use crate::event_loop::gil_held;
use crate::event_loop::inline_drain::INLINE_DRAIN;

pub(crate) enum Wakeup {
    /// An eventfd (or a pipe) the loop reads through `add_reader`.
    Fd(SignalFd),
    /// `loop.call_soon_threadsafe` and the drain callback, for loops without `add_reader`.
    Threadsafe {
        call_soon_threadsafe: Py<PyAny>,
        drain: Py<PyAny>,
    },
}

impl LoopShared {
    pub(crate) fn signal(&self) {
        if self.signal_from_loop_thread() {
            return;
        }
        match self.wakeup.get() {
            Some(Wakeup::Fd(fd)) => {
                let one: u64 = 1;
                // SAFETY: the descriptor is owned by this LoopShared, which is alive (we are
                // borrowing it); the buffer is 8 valid bytes.
                let written = unsafe {
                    libc::write(
                        fd.write_fd(),
                        (&one as *const u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                // EAGAIN means the counter/pipe is already full, so the loop is already
                // going to wake up; nothing else can be done without a Python thread.
                let _ = written;
            }
            Some(Wakeup::Threadsafe {
                call_soon_threadsafe,
                drain,
            }) => {
                let _ = Python::try_attach(|py| {
                    // A RuntimeError here means the loop is closed: nothing to wake.
                    let _ = call_soon_threadsafe.call1(py, (drain.clone_ref(py),));
                });
            }
            None => {}
        }
    }

    /// Empties the eventfd/pipe, so the loop's reader stops firing. The reader callback
    /// does this before draining: a push after the clear signals again.
    pub(crate) fn clear_fd(&self) {
        if let Some(Wakeup::Fd(fd)) = self.wakeup.get() {
            let mut buffer = [0u8; 64];
            // SAFETY: the descriptor is open for as long as `self` lives; the buffer is
            // writable. Non-blocking: an empty eventfd/pipe returns EAGAIN at once.
            let _ = unsafe { libc::read(fd.read_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
        }
    }

    /// On the loop's own thread with the GIL held (a Python task completed what a Rust
    /// future waits for), `loop.call_soon(drain)` wakes the loop for its next iteration
    /// without an eventfd write, a read and an extra trip through the selector.
    fn signal_from_loop_thread(&self) -> bool {
        let Some(thread) = self.loop_thread.get() else {
            return false;
        };
        if !self.on_loop_thread() || !gil_held() {
            return false;
        }
        if INLINE_DRAIN.with(|inline| inline.take_signal(self)) {
            return true;
        }
        // A framework woken through the descriptor alone: it is written as from elsewhere.
        let Some((event_loop, drain)) = &thread.call_soon else {
            return false;
        };
        // SAFETY: PyGILState_Check just said this thread holds the GIL.
        let py = unsafe { Python::assume_attached() };
        let Ok(event_loop) = event_loop.bind(py).call0() else {
            return false;
        };
        !event_loop.is_none()
            && event_loop
                .call_method1(pyo3::intern!(py, "call_soon"), (drain.bind(py),))
                .is_ok()
    }
}

/// The descriptors of a wake signal, closed when dropped: one eventfd that is both read and
/// written, or (where there is no eventfd) a pipe.
pub(crate) enum SignalFd {
    Event(OwnedFd),
    #[cfg_attr(
        any(target_os = "linux", target_os = "android"),
        allow(dead_code, reason = "only where there is no eventfd")
    )]
    Pipe(Pipe),
}

impl SignalFd {
    /// A non-blocking, close-on-exec eventfd, or a pipe where there is none.
    pub(crate) fn open() -> std::io::Result<Self> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: plain syscall with constant flags.
            let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` was just opened and nothing else owns it.
            Ok(SignalFd::Event(unsafe { OwnedFd::from_raw_fd(fd) }))
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            nonblocking_pipe().map(SignalFd::Pipe)
        }
    }

    /// The descriptor the loop reads (`add_reader`).
    pub(crate) fn read_fd(&self) -> RawFd {
        match self {
            SignalFd::Event(fd) => fd.as_raw_fd(),
            SignalFd::Pipe(pipe) => pipe.read.as_raw_fd(),
        }
    }

    /// The descriptor producers write.
    pub(crate) fn write_fd(&self) -> RawFd {
        match self {
            SignalFd::Event(fd) => fd.as_raw_fd(),
            SignalFd::Pipe(pipe) => pipe.write.as_raw_fd(),
        }
    }
}

/// Both ends of a pipe, non-blocking and close-on-exec; closed when dropped.
pub(crate) struct Pipe {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
}

/// Opens a [`Pipe`].
pub(crate) fn nonblocking_pipe() -> std::io::Result<Pipe> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe() just opened both descriptors and nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in fds {
        // SAFETY: `fd` is open (owned by `read` or `write` above); fcntl only sets flags.
        unsafe {
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok(Pipe { read, write })
}
