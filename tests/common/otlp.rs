//! A real OTLP trace receiver for tests, built from the protocol's own definitions
//! (opentelemetry-proto): a gRPC `TraceService` and an HTTP `/v1/traces` endpoint taking
//! protobuf `ExportTraceServiceRequest`s, both on ports the OS picks, on a runtime of their
//! own so synchronous tests can use them. Everything received is kept, flattened into spans.
#![allow(dead_code)] // The tests and the benchmark's sink each use a subset.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;
use tokio_stream::wrappers::TcpListenerStream;

/// One span as received, with its resource's attributes.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// The spans this one links to: (trace id, span id).
    pub links: Vec<(String, String)>,
    pub attributes: BTreeMap<String, String>,
    pub resource: BTreeMap<String, String>,
    /// OTLP's SpanKind: 1 internal, 2 server, 3 client.
    pub kind: i32,
    /// 0 unset, 1 ok, 2 error (OTLP's StatusCode).
    pub status_code: i32,
    pub status_message: String,
    /// Which transport brought it: "grpc" or "http".
    pub transport: &'static str,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// What arrived: every span when kept, and how many in any case.
#[derive(Default)]
struct Store {
    keep: bool,
    count: AtomicU64,
    spans: Mutex<Vec<ReceivedSpan>>,
}

type Received = Arc<Store>;

/// A running receiver; stops when dropped (its runtime goes with it).
pub struct OtlpReceiver {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    received: Received,
    _runtime: tokio::runtime::Runtime,
}

impl OtlpReceiver {
    /// A receiver that keeps every span it receives.
    pub fn start() -> OtlpReceiver {
        Self::start_keeping(true)
    }

    /// A receiver that keeps every span when `keep`, else only counts them (for benchmarks,
    /// where millions arrive).
    pub fn start_keeping(keep: bool) -> OtlpReceiver {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let received: Received = Arc::new(Store { keep, ..Store::default() });
        let (grpc_addr, http_addr) = runtime.block_on(async {
            let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addresses = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
            let service = TraceServiceServer::new(GrpcCollector { received: Arc::clone(&received) });
            tokio::spawn(
                tonic::transport::Server::builder()
                    .add_service(service)
                    .serve_with_incoming(TcpListenerStream::new(grpc)),
            );
            let into = Arc::clone(&received);
            let app = axum::Router::new().route(
                "/v1/traces",
                axum::routing::post(move |body: Bytes| {
                    let into = Arc::clone(&into);
                    async move {
                        match ExportTraceServiceRequest::decode(body) {
                            Ok(request) => {
                                record(&into, request, "http");
                                (StatusCode::OK, ExportTraceServiceResponse::default().encode_to_vec())
                            }
                            Err(_) => (StatusCode::BAD_REQUEST, Vec::new()),
                        }
                    }
                }),
            );
            tokio::spawn(async move { axum::serve(http, app).await });
            addresses
        });
        OtlpReceiver { grpc_addr, http_addr, received, _runtime: runtime }
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().unwrap().clone()
    }

    /// Spans received so far, kept or not.
    pub fn count(&self) -> u64 {
        self.received.count.load(Ordering::Relaxed)
    }

    /// Waits until the spans received satisfy `done`, then returns them all; panics with
    /// what was received after `limit`.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + limit;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "the spans expected did not arrive; received:\n{}", dump(&spans));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The spans as readable lines: one per span, with its parent, attributes and resource.
pub fn dump(spans: &[ReceivedSpan]) -> String {
    let mut out = String::new();
    for span in spans {
        out.push_str(&format!(
            "[{}] {:?} kind={} trace={} span={} parent={} links={:?} status={} {:?}\n    attributes: {:?}\n    resource: {:?}\n",
            span.transport,
            span.name,
            span.kind,
            span.trace_id,
            span.span_id,
            if span.parent_span_id.is_empty() { "-" } else { &span.parent_span_id },
            span.links,
            span.status_code,
            span.status_message,
            span.attributes,
            span.resource
        ));
    }
    out
}

struct GrpcCollector {
    received: Received,
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        record(&self.received, request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn record(into: &Received, request: ExportTraceServiceRequest, transport: &'static str) {
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                let status = span.status.unwrap_or_default();
                spans.push(ReceivedSpan {
                    kind: span.kind,
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    links: span.links.iter().map(|link| (hex(&link.trace_id), hex(&link.span_id))).collect(),
                    attributes: attributes(&span.attributes),
                    resource: resource.clone(),
                    status_code: status.code,
                    status_message: status.message,
                    transport,
                });
            }
        }
    }
    into.count.fetch_add(spans.len() as u64, Ordering::Relaxed);
    if into.keep {
        into.spans.lock().unwrap().extend(spans);
    }
}

fn attributes(pairs: &[KeyValue]) -> BTreeMap<String, String> {
    let text = |value: &Value| match value {
        Value::StringValue(s) => s.clone(),
        Value::BoolValue(b) => b.to_string(),
        Value::IntValue(i) => i.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    };
    pairs.iter().filter_map(|pair| Some((pair.key.clone(), text(pair.value.as_ref()?.value.as_ref()?)))).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
