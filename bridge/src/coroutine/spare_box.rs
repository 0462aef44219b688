//! One spare block per thread for the box a converted future lives in: a ready await gives
//! its box's block back when the future is done, and the next conversion made on that
//! thread with the same layout (the same `async fn` awaited in a loop) moves its future
//! into it instead of asking the allocator. A ready await then makes no allocator call;
//! a future that goes pending keeps an ordinary `Box`, freed the ordinary way.

use std::alloc::Layout;
use std::cell::Cell;
use std::pin::Pin;
use std::ptr::NonNull;

/// The thread's spare block and its layout; freed when the thread ends.
struct Spare(Cell<Option<(NonNull<u8>, Layout)>>);

impl Drop for Spare {
    fn drop(&mut self) {
        if let Some((block, layout)) = self.0.take() {
            // SAFETY: the block came from the global allocator with this layout (a `Box`'s)
            // and nothing else refers to it: `recycle` put it here after dropping its value.
            unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
        }
    }
}

thread_local! {
    static SPARE: Spare = const { Spare(Cell::new(None)) };
}

/// `Box::new(value)`, in the thread's spare block when it has `T`'s layout.
pub(crate) fn boxed<T>(value: T) -> Box<T> {
    let layout = Layout::new::<T>();
    let block = SPARE
        .try_with(|spare| match spare.0.take() {
            Some((block, kept)) if kept == layout => Some(block),
            other => {
                spare.0.set(other);
                None
            }
        })
        .ok()
        .flatten();
    match block {
        Some(block) => {
            let block = block.cast::<T>().as_ptr();
            // SAFETY: the block was a `Box<U>`'s with `Layout::new::<U>() == layout`, from the
            // global allocator, and is unused (its value was dropped in `recycle`); so it is
            // valid for writing a `T`, and a `Box<T>` may own and free it (the allocator is
            // given back the same layout).
            unsafe {
                block.write(value);
                Box::from_raw(block)
            }
        }
        None => Box::new(value),
    }
}

/// Drops the value of `boxed` in place and keeps its block as the thread's spare (or frees
/// it, when the thread has one already or is ending).
pub(crate) fn recycle<T>(boxed: Pin<Box<T>>) {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        return;
    }
    // SAFETY: the value is dropped where it is, never moved, as the pin requires.
    let raw = Box::into_raw(unsafe { Pin::into_inner_unchecked(boxed) });
    /// Frees the block if dropping the value unwinds.
    struct FreeOnUnwind(*mut u8, Layout);
    impl Drop for FreeOnUnwind {
        fn drop(&mut self) {
            // SAFETY: the block came from `Box<T>` with this layout; its value is dropped.
            unsafe { std::alloc::dealloc(self.0, self.1) };
        }
    }
    let guard = FreeOnUnwind(raw.cast(), layout);
    // SAFETY: `raw` is a valid, initialised `T` that nothing else refers to.
    unsafe { std::ptr::drop_in_place(raw) };
    std::mem::forget(guard);
    let Some(block) = NonNull::new(raw.cast::<u8>()) else {
        return;
    };
    let kept = SPARE
        .try_with(|spare| match spare.0.take() {
            None => {
                spare.0.set(Some((block, layout)));
                true
            }
            held => {
                spare.0.set(held);
                false
            }
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: as in `FreeOnUnwind`: a `Box<T>`'s block, its value dropped.
        unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::{boxed, recycle};
    use std::pin::Pin;
    use std::rc::Rc;

    #[test]
    fn a_recycled_block_is_reused_for_the_same_layout_only() {
        let first = boxed([1u64; 4]);
        let address = &*first as *const [u64; 4] as usize;
        recycle(Pin::from(first));
        let other_layout = boxed(7u8);
        assert_ne!(&*other_layout as *const u8 as usize, address);
        let second = boxed([2u64; 4]);
        assert_eq!(&*second as *const [u64; 4] as usize, address);
        assert_eq!(*second, [2; 4]);
    }

    #[test]
    fn recycling_drops_the_value_once() {
        let shared = Rc::new(());
        recycle(Box::pin(shared.clone()));
        assert_eq!(Rc::strong_count(&shared), 1);
        let again = boxed(shared.clone());
        assert_eq!(Rc::strong_count(&shared), 2);
        drop(again);
        assert_eq!(Rc::strong_count(&shared), 1);
    }
}
