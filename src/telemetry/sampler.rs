//! Head sampling for work that happens too often to trace every time (store commands, expiry
//! sweeps): the decision is taken before a span exists, so unsampled work pays one relaxed
//! load and a comparison, and at ratio 0 nothing else.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::SpanContext;
use rand::RngExt;

/// Set once the OpenTelemetry layer is installed: without it a span would be built for nothing.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub(super) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether to trace one unit of work when a fraction `ratio` (0 to 1) of them is traced.
#[inline]
pub fn sample(ratio: f64) -> bool {
    if ratio <= 0.0 || !EXPORTING.load(Ordering::Relaxed) {
        return false;
    }
    ratio >= 1.0 || rand::rng().random::<f64>() < ratio
}

/// Whether to trace work that a caller asked to have traced within its own trace, as the
/// child of `parent`: the caller's sampling decision (the sampled flag) replaces the ratio, as
/// in OpenTelemetry's parent-based samplers, so a sampled reconcile's change is traced in full
/// by a store that samples none of its other commands.
pub fn sample_child_of(parent: &SpanContext) -> bool {
    parent.is_sampled() && EXPORTING.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_zero_never_samples_and_one_always_does() {
        set_exporting();
        assert!((0..1000).all(|_| !sample(0.0)));
        assert!((0..1000).all(|_| sample(1.0)));
        let kept = (0..100_000).filter(|_| sample(0.1)).count();
        // 0.1 of 100,000 has a standard deviation near 95: 10 deviations either side.
        assert!((9_000..=11_000).contains(&kept), "{kept}");
    }
}
