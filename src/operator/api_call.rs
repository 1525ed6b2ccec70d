//! A span around each request the operator sends to the API server, so a reconcile's trace
//! shows every read and write it made and which one failed.

use std::future::Future;

use tracing::Instrument as _;
use tracing::field::Empty;

/// Runs `call` (one API request: `verb` on the `kind` object `name`) inside its own span,
/// recording a failure as the span's error.
pub async fn traced<T>(
    verb: &'static str,
    kind: &str,
    name: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    let span = tracing::info_span!(
        "api call",
        otel.name = format!("{verb} {kind}"),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        k8s.verb = verb,
        k8s.kind = kind,
        k8s.name = name,
        http.response.status_code = Empty,
    );
    let result = call.instrument(span.clone()).await;
    if let Err(error) = &result {
        if let kube::Error::Api(status) = error {
            span.record("http.response.status_code", status.code);
        }
        span.record("otel.status_code", "ERROR");
        span.record("otel.status_description", error.to_string());
    }
    result
}
