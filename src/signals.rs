//! SIGTERM and SIGINT become a flag that long waits and step boundaries poll,
//! so that an interrupted run unwinds normally: the transaction rolls back,
//! temp files are removed, the lock is released. Installing handlers also
//! makes the signals work when the job is PID 1 in a container, where the
//! kernel ignores signals that have no handler.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

/// The number of the first termination signal received, or 0.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

/// Register the handlers. Called once, from `main`.
pub fn install() -> std::io::Result<()> {
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_usize(signal, &RECEIVED, signal as usize)?;
    }
    Ok(())
}

/// The signal that asked us to stop, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        n => i32::try_from(n).ok(),
    }
}

/// `Err` once a termination signal has arrived; call between steps.
pub(crate) fn check() -> Result<(), Interrupted> {
    match received() {
        Some(signal) => Err(Interrupted { signal }),
        None => Ok(()),
    }
}

/// Sleep, waking early when a termination signal arrives: a pending signal
/// is seen within `SLICE`, which keeps the shutdown well under a second.
pub(crate) fn sleep(duration: Duration) -> Result<(), Interrupted> {
    const SLICE: Duration = Duration::from_millis(20);
    let deadline = Instant::now() + duration;
    loop {
        check()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        std::thread::sleep(left.min(SLICE));
    }
}

/// Block until a termination signal arrives; return its number.
pub fn wait() -> i32 {
    const SLICE: std::time::Duration = std::time::Duration::from_millis(50);
    loop {
        if let Some(signal) = received() {
            return signal;
        }
        std::thread::sleep(SLICE);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("interrupted by {}; what was not yet committed was rolled back", signal_name(*.signal))]
pub struct Interrupted {
    pub signal: i32,
}

pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGTERM => "SIGTERM",
        SIGINT => "SIGINT",
        _ => "a signal",
    }
}
