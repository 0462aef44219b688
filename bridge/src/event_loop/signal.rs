//! The wake signal: how a producer wakes the loop (an eventfd or pipe the loop reads, a
//! `call_soon_threadsafe`, or a `call_soon` on the loop's own thread), and the descriptors.

use pyo3::prelude::*;

use crate::event_loop::LoopShared;
use crate::event_loop::gil_held;
use crate::event_loop::inline_drain::INLINE_DRAIN;

pub(crate) enum Wakeup {
    /// An eventfd (or the write end of a pipe) the loop reads through `add_reader`.
    Fd {
        write: libc::c_int,
        read: libc::c_int,
    },
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
            Some(Wakeup::Fd { write, .. }) => {
                let one: u64 = 1;
                // SAFETY: `write` is an open descriptor owned by this LoopShared, which is
                // alive (we are borrowing it); the buffer is 8 valid bytes.
                let written = unsafe {
                    libc::write(
                        *write,
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
        if let Some(Wakeup::Fd { read, .. }) = self.wakeup.get() {
            let mut buffer = [0u8; 64];
            // SAFETY: `read` is open for as long as `self` lives; the buffer is writable.
            // Non-blocking: an empty eventfd/pipe returns EAGAIN at once.
            let _ = unsafe { libc::read(*read, buffer.as_mut_ptr().cast(), buffer.len()) };
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

pub(crate) fn open_signal_fd() -> std::io::Result<(libc::c_int, libc::c_int)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // SAFETY: plain syscall with constant flags.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((fd, fd))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (read, write) = nonblocking_pipe()?;
        Ok((write, read))
    }
}

/// A pipe whose both ends are non-blocking and close-on-exec: `(read, write)`.
pub(crate) fn nonblocking_pipe() -> std::io::Result<(libc::c_int, libc::c_int)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe() writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for fd in fds {
        // SAFETY: `fd` was just opened by pipe().
        unsafe {
            libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK);
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
    Ok((fds[0], fds[1]))
}

/// Closes both ends of a signal fd or pipe (one descriptor when they are the same).
pub(crate) fn close_fds(write: libc::c_int, read: libc::c_int) {
    // SAFETY: callers pass descriptors they opened (`open_signal_fd`, `nonblocking_pipe`)
    // and that nothing will use any more.
    unsafe {
        libc::close(write);
        if read != write {
            libc::close(read);
        }
    }
}
