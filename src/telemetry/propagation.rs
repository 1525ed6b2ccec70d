//! Trace context across the operator-to-store hop, as a W3C Trace Context `traceparent`
//! (`00-<trace id>-<parent span id>-<flags>`): the operator writes its current span's, the
//! store reads the one a client sent with `CLIENT TRACEPARENT` (see
//! `server/command/connection.rs`). OpenTelemetry's own propagator encodes and decodes; it is
//! lenient about the shape (it takes short or padded ids), so the store checks that first.

use std::collections::HashMap;
use std::ops::Range;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACEPARENT: &str = "traceparent";

/// The `traceparent` of the current span; `None` when there is none to continue (no span, or
/// spans are not exported).
pub fn current_traceparent() -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The span context a `traceparent` names, marked remote; `None` when it is malformed (bad
/// version, length, hex, or an all-zero id), which the specification says to ignore.
pub fn parse_traceparent(traceparent: &[u8]) -> Option<SpanContext> {
    if !well_formed(traceparent) {
        return None;
    }
    let text = std::str::from_utf8(traceparent).ok()?;
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), text.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// The shape the specification requires: lowercase hex fields of 2, 32, 16 and 2 digits
/// joined by `-`; only a version after `00` may append fields (after another `-`). The
/// propagator refuses the rest: version `ff`, all-zero ids.
fn well_formed(traceparent: &[u8]) -> bool {
    let hex = |range: Range<usize>| {
        traceparent.get(range).is_some_and(|field| field.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    };
    let dash = |at: usize| traceparent.get(at) == Some(&b'-');
    let fields = hex(0..2) && dash(2) && hex(3..35) && dash(35) && hex(36..52) && dash(52) && hex(53..55);
    fields && (traceparent.len() == 55 || (!traceparent.starts_with(b"00") && dash(55)))
}

/// The OpenTelemetry context of the current span, to link to from work it causes later;
/// `None` when the current span is not exported.
pub fn current_span_context() -> Option<SpanContext> {
    let span_context = tracing::Span::current().context().span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceFlags;

    use super::*;

    const VALID: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_valid_traceparent_names_a_remote_sampled_parent() {
        let parent = parse_traceparent(VALID.as_bytes()).unwrap();
        assert_eq!(parent.trace_id().to_string(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(parent.span_id().to_string(), "b7ad6b7169203331");
        assert!(parent.is_remote() && parent.is_sampled());
        let unsampled = parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap();
        assert_eq!(unsampled.trace_flags(), TraceFlags::NOT_SAMPLED);
        // A later version may append fields, which this version ignores.
        let later = parse_traceparent(b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future").unwrap();
        assert_eq!(later.span_id(), parent.span_id());
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for malformed in [
            "",
            "garbage",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
            " 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-+1",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01extra",
        ] {
            assert_eq!(parse_traceparent(malformed.as_bytes()), None, "{malformed:?}");
        }
        assert_eq!(parse_traceparent(b"00-\xff"), None);
    }

    #[test]
    fn without_an_exported_span_there_is_no_context() {
        assert_eq!(current_traceparent(), None);
        assert_eq!(current_span_context(), None);
    }
}
