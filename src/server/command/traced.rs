//! The span of a sampled command. Only sampled commands get here (see `execute`), so this
//! may allocate and read the clock freely.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt as _};
use tracing::field::Empty;
use tracing::span::EnteredSpan;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::{CommandError, CommandSpec};
use crate::engine::thread_lock_wait_ns;
use crate::server::reply::ReplyWriter;
use crate::server::state::ServerState;

/// A command being traced: its span is entered until [`CommandTrace::finish`].
pub(super) struct CommandTrace {
    span: EnteredSpan,
    reply_start: usize,
    lock_wait_start: u64,
}

impl CommandTrace {
    /// Starts the span, as a child of `parent` (a client's `CLIENT TRACEPARENT`) when given.
    pub(super) fn start(
        state: &ServerState,
        spec: &CommandSpec,
        request: &[&[u8]],
        db: usize,
        out: &ReplyWriter<'_>,
        parent: Option<SpanContext>,
    ) -> Self {
        let keys = key_positions(spec, request.len());
        let shard =
            keys.clone().next().zip(state.databases.existing(db)).map(|(first, store)| store.shard_of(request[first]));
        let request_bytes: usize = request.iter().map(|arg| arg.len()).sum();
        let span = tracing::info_span!(
            "command",
            otel.name = spec.name.to_ascii_uppercase(),
            otel.kind = "server",
            otel.status_code = Empty,
            otel.status_description = Empty,
            db.system.name = "redis",
            db.operation.name = spec.name,
            db.namespace = db,
            cstore.keys = keys.count(),
            cstore.shard = shard,
            cstore.request_bytes = request_bytes,
            cstore.reply_bytes = Empty,
            cstore.lock_wait_ns = Empty,
            cstore.outcome = Empty,
        );
        if let Some(parent) = parent {
            // Fails only for a span already started or not exported; this one is neither (it
            // exists because spans are exported, and is entered just below).
            let _ = span.set_parent(Context::new().with_remote_span_context(parent));
        }
        CommandTrace { span: span.entered(), reply_start: out.buffered(), lock_wait_start: thread_lock_wait_ns() }
    }

    pub(super) fn finish(self, result: &Result<(), CommandError>, outcome: &'static str, out: &ReplyWriter<'_>) {
        let span = &self.span;
        span.record("cstore.reply_bytes", out.buffered().saturating_sub(self.reply_start));
        span.record("cstore.lock_wait_ns", thread_lock_wait_ns().saturating_sub(self.lock_wait_start));
        span.record("cstore.outcome", outcome);
        if let Err(error) = result {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_description", error.to_string());
        }
    }
}

/// Indices in `request` (0 is the command name) of the keys the command names, following
/// the command table's first/last/step positions.
fn key_positions(spec: &CommandSpec, request_len: usize) -> impl Iterator<Item = usize> + Clone {
    let first = usize::try_from(spec.first_key).unwrap_or(0);
    let last = match spec.last_key {
        negative if negative < 0 => request_len.checked_add_signed(negative as isize).unwrap_or(0),
        positive => usize::try_from(positive).unwrap_or(0),
    };
    let step = usize::try_from(spec.key_step).unwrap_or(1).max(1);
    let range = if first == 0 { 0..0 } else { first..last.min(request_len.saturating_sub(1)) + 1 };
    range.step_by(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::command::lookup;

    fn keys(name: &str, request_len: usize) -> Vec<usize> {
        key_positions(lookup(name.as_bytes()).unwrap().1, request_len).collect()
    }

    #[test]
    fn keys_follow_the_command_table() {
        assert_eq!(keys("get", 2), [1]);
        assert_eq!(keys("set", 5), [1]);
        assert_eq!(keys("mget", 4), [1, 2, 3]);
        assert_eq!(keys("mset", 5), [1, 3]);
        assert_eq!(keys("del", 3), [1, 2]);
        assert_eq!(keys("ping", 1), Vec::<usize>::new());
    }
}
