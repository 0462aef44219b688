//! Per-call options of the conversions.

/// Where a converted future that is still pending after its first poll lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Home {
    /// Decided by the inline first poll (the default): a future left pending on Python
    /// work of its own loop (an [`into_future`](crate::into_future) of a coroutine it
    /// started there) stays on the loop thread, like [`Home::LoopThread`], so every
    /// round trip to Python is a plain call with no thread hop; any other pending future
    /// goes to the runtime, like [`Home::Runtime`]. The choice is made once: a future that
    /// awaits Python first and then does heavy synchronous work should ask for
    /// [`Home::Runtime`]. With [`FirstPoll::Deferred`] there is no first poll to decide
    /// from, and the future goes to the runtime.
    #[default]
    Auto,
    /// On the runtime's worker threads: parallel, polled without the GIL. Best for futures
    /// that do CPU work or mostly wait on Rust I/O.
    Runtime,
    /// On the event loop's thread, re-polled when woken: no thread hop. Best for futures
    /// that mostly await Python or finish quickly. (`!Send` futures always live here.)
    LoopThread,
}

/// Whether the first poll happens inline, on the loop thread, when first awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FirstPoll {
    /// Poll once inline while holding the GIL: a future that is ready at once costs no
    /// thread hop. The default.
    #[default]
    Inline,
    /// Hand the future to its home without polling it: use this when the future does
    /// heavy synchronous work before its first `.await`, which would otherwise run on the
    /// loop thread with the GIL held.
    Deferred,
}

/// Per-call options of `future_into_py_with`.
///
/// ```
/// use pyo3_aio::{FirstPoll, Home, Options};
///
/// let options = Options::default().home(Home::LoopThread).first_poll(FirstPoll::Deferred);
/// assert_eq!(options, Options { home: Home::LoopThread, first_poll: FirstPoll::Deferred });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Where the future lives while pending.
    pub home: Home,
    /// Whether it is polled inline when first awaited.
    pub first_poll: FirstPoll,
}

impl Options {
    /// Sets [`Options::home`].
    pub fn home(mut self, home: Home) -> Self {
        self.home = home;
        self
    }

    /// Sets [`Options::first_poll`].
    pub fn first_poll(mut self, first_poll: FirstPoll) -> Self {
        self.first_poll = first_poll;
        self
    }
}

/// Options of the stream conversions.
///
/// ```
/// let options = pyo3_aio::StreamOptions::default().capacity(8).inline(false);
/// assert_eq!((options.capacity, options.inline), (8, false));
/// assert_eq!(
///     pyo3_aio::StreamOptions::default().capacity,
///     pyo3_aio::StreamOptions::DEFAULT_CAPACITY
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamOptions {
    /// The most items buffered between the two sides (at least 1).
    pub capacity: usize,
    /// `stream_into_py` of a `Send` stream: whether `__anext__` may poll the stream itself,
    /// on the loop thread with the GIL held, when the buffer is empty and the runtime is
    /// not polling it (default `true`). Items that are ready then cost no thread hop; the
    /// runtime still does all the waiting. Turn it off for a stream that does heavy
    /// synchronous work per item, as [`FirstPoll::Deferred`](crate::FirstPoll) does for
    /// futures.
    pub inline: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            capacity: Self::DEFAULT_CAPACITY,
            inline: true,
        }
    }
}

impl StreamOptions {
    /// How many items a stream's producer may run ahead of its consumer by default.
    pub const DEFAULT_CAPACITY: usize = 64;

    /// Sets [`StreamOptions::capacity`] (values below 1 count as 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Sets [`StreamOptions::inline`].
    pub fn inline(mut self, inline: bool) -> Self {
        self.inline = inline;
        self
    }
}
