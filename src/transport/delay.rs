//! Emulated delays accurate below a millisecond: the WAN and intra-region hops the
//! requesting side adds to each request (`client`) and a slow node's late replies
//! (`server`).
//!
//! Tokio's timer ticks in whole milliseconds and rounds a deadline up to the next tick,
//! so a 0.25 ms hop slept on it lasted 1 to 2 ms. Here a delay sleeps on a kernel timer:
//! a Linux `timerfd` (the `tokio-timerfd` crate), which the kernel fires on time to the
//! microsecond and tokio's reactor turns into a wake-up, so no thread spins or polls.
//! Only a delay longer than `PRECISE_SPAN` (a slow node's reply, a fault's added delay)
//! first sleeps its bulk on tokio's timer, so that it holds a file descriptor for its
//! last `PRECISE_SPAN` only.
//!
//! It must never end a delay early (a delay stands for a network's least latency), never
//! spin a core (the sim runs a dozen node processes on two cores), and never cost anything
//! for a zero delay: no clock read, no system call, no runtime needed. At most
//! `PRECISE_DELAYS_MAX` delays hold a kernel timer (a file descriptor) at once, each for
//! `PRECISE_SPAN` at most; a delay that finds none free or cannot make one (out of
//! file descriptors; not Linux) ends on tokio's timer instead: never early, up to a tick
//! or two late, and counted.

use crate::limits::PRECISE_DELAYS_MAX;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest delay slept on a kernel timer alone, and the end of a longer one that the
/// kernel timer carries. Every WAN hop between real regions fits (the farthest pair of
/// `regions/` is 124 ms apart: a 62 ms hop plus jitter), so a hop is one wake-up: on a
/// loaded machine each wake-up may wait for a core, and a hop slept in two steps (tokio's
/// timer, then the kernel's) waited twice, which the sim's p99 showed. A longer delay
/// holds its file descriptor for this long only.
const PRECISE_SPAN: Duration = Duration::from_millis(200);

/// The timer every emulated delay of this process goes through.
static PROCESS_TIMER: DelayTimer = DelayTimer::new(PRECISE_DELAYS_MAX, PRECISE_SPAN);

/// Waits `delay`, never less, usually within tens of microseconds more (the measured
/// figures: `cartwheel measure emulation`). A zero delay returns at once, untouched.
pub(crate) async fn sleep(delay: Duration) {
    PROCESS_TIMER.sleep(delay).await;
}

/// Delays of this process that ended on tokio's timer because no kernel timer was free
/// or could be made.
#[cfg(feature = "tools")]
pub(crate) fn coarse_endings() -> u64 {
    PROCESS_TIMER.coarse_endings.load(Ordering::Relaxed)
}

/// Delays on kernel timers (after tokio's timer for the bulk of a long one), with a bound
/// on the kernel timers held at once. One per process (`PROCESS_TIMER`); tests make
/// their own.
pub(crate) struct DelayTimer {
    /// Delays holding a kernel timer now.
    held: AtomicUsize,
    held_max: usize,
    precise_span: Duration,
    coarse_endings: AtomicU64,
}

impl DelayTimer {
    pub(crate) const fn new(held_max: usize, precise_span: Duration) -> Self {
        DelayTimer {
            held: AtomicUsize::new(0),
            held_max,
            precise_span,
            coarse_endings: AtomicU64::new(0),
        }
    }

    /// Waits `delay`, never less; a zero delay returns at once, untouched.
    pub(crate) async fn sleep(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        let Some(deadline) = Instant::now().checked_add(delay) else {
            // Beyond the clock's range, so never over in practice; tokio caps such a sleep.
            tokio::time::sleep(delay).await;
            return;
        };
        if delay > self.precise_span {
            // `deadline - precise_span` is after now, so this cannot underflow.
            tokio::time::sleep_until((deadline - self.precise_span).into()).await;
        }
        self.finish(deadline).await;
    }

    /// Sleeps until `deadline` on a kernel timer if one may be held and made, else on
    /// tokio's timer.
    async fn finish(&self, deadline: Instant) {
        if Instant::now() >= deadline {
            return;
        }
        if let Some(held) = self.hold() {
            let ended = kernel_sleep_until(deadline).await;
            drop(held);
            if ended.is_ok() {
                return;
            }
        }
        self.coarse_endings.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep_until(deadline.into()).await;
    }

    /// A place among the `held_max` kernel timers, if one is free.
    fn hold(&self) -> Option<Held<'_>> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.held_max).then_some(held + 1)
            })
            .ok()
            .map(|_| Held(&self.held))
    }
}

/// One delay's place among the kernel timers, given back when dropped: a delay abandoned
/// half-way (its request timed out, its future dropped) frees it at once.
struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A one-shot `timerfd` armed for the time left until `deadline` when first polled (so
/// never early: the kernel counts from after that clock read), read through tokio's
/// reactor. Its file descriptor is closed when the future ends or is dropped.
#[cfg(target_os = "linux")]
async fn kernel_sleep_until(deadline: Instant) -> std::io::Result<()> {
    tokio_timerfd::Delay::new(deadline)?.await
}

#[cfg(not(target_os = "linux"))]
async fn kernel_sleep_until(_deadline: Instant) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests;
