//! The operator's traces, received by a real OTLP receiver (tests/common/otlp.rs): one trace
//! per reconcile whose root span carries the store, generation, outcome and duration, with a
//! child span per API request; a failed request marks both as errors; the reconcile
//! duration metric carries the trace id as its exemplar; and a live change sends the store
//! the reconcile's trace context (CLIENT TRACEPARENT) before its CONFIG SET.
//!
//! One test in this binary: it installs the process-wide tracing subscriber.

#[path = "operator_common/mod.rs"]
mod operator_common;
#[path = "common/otlp.rs"]
mod otlp;

use std::time::Duration;

use cstore::engine::Strategy;
use cstore::operator::crd::ConcurrentStoreSpec;
use cstore::server::config::LogFormat;
use cstore::telemetry::{self, OtlpArgs, Process, Sampling};
use opentelemetry::KeyValue;
use otlp::{OtlpReceiver, ReceivedSpan, dump};
use serde_json::json;

use operator_common::fake_store::FakeStore;
use operator_common::{Cluster, NAMESPACE, new_store};

const PATIENCE: Duration = Duration::from_secs(30);
/// OTLP's SpanKind values.
const INTERNAL: i32 = 1;
const CLIENT: i32 = 3;

fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|span| span.parent_span_id == parent.span_id).collect()
}

#[test]
fn a_reconcile_is_one_trace_with_a_span_per_api_request() {
    let receiver = OtlpReceiver::start();
    let otlp = OtlpArgs { endpoint: Some(format!("http://{}", receiver.grpc_addr)), ..OtlpArgs::default() };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (exemplars, trace_parents) = runtime.block_on(async {
        let telemetry = telemetry::init(Process {
            default_service_name: "cstore-operator",
            log_format: LogFormat::Text,
            otlp: &otlp,
            attributes: vec![KeyValue::new("deployment.environment.name", "test")],
            sampling: Sampling { ratio: 1.0, parent_based: true },
        })
        .unwrap();
        let spec = ConcurrentStoreSpec { strategy: Strategy::LockFree, shards: 8, replicas: 2, ..Default::default() };
        let cluster = Cluster::with(new_store("orders", spec)).await;
        cluster.reconcile().await.unwrap();
        cluster.fail_deployment_applies(true);
        // A change only new pods can apply, so the Deployment is applied (and fails).
        cluster.patch_spec(json!({"image": "registry.local/cstore:2"})).await;
        cluster.reconcile().await.unwrap_err();
        let exemplars = cluster.context.metrics().encode().unwrap();
        let trace_parents = live_changes().await;
        telemetry.shutdown(Duration::from_secs(5)).await;
        (exemplars, trace_parents)
    });
    let of_orders = |span: &&ReceivedSpan| span.name == "reconcile" && span.attribute("cstore.store") == Some("orders");
    let spans = receiver.wait_for(PATIENCE, |spans| {
        spans.iter().filter(of_orders).count() == 2 && spans.iter().any(|span| span.name == "configure pod")
    });
    println!("{}", dump(&spans));

    let reconciles: Vec<&ReceivedSpan> = spans.iter().filter(of_orders).collect();
    let (created, failed) = (reconciles[0], reconciles[1]);
    assert_ne!(created.trace_id, failed.trace_id, "each reconcile is its own trace");
    for reconcile in &reconciles {
        assert_eq!(reconcile.parent_span_id, "");
        assert_eq!(reconcile.kind, INTERNAL);
        assert_eq!(reconcile.attribute("cstore.store"), Some("orders"));
        assert_eq!(reconcile.attribute("k8s.namespace.name"), Some(NAMESPACE));
        assert!(reconcile.attribute("cstore.duration_ms").unwrap().parse::<f64>().unwrap() > 0.0);
        assert_eq!(reconcile.resource.get("service.name").map(String::as_str), Some("cstore-operator"));
        assert_eq!(reconcile.resource.get("service.version").map(String::as_str), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(reconcile.resource.get("deployment.environment.name").map(String::as_str), Some("test"));
    }
    assert_eq!(created.attribute("cstore.generation"), Some("1"));
    assert_eq!(failed.attribute("cstore.generation"), Some("2"));

    // The first reconcile created every child: a read, then an apply, for each; the list of
    // the store's pods (to send them live settings), the status write and the Events are
    // requests too.
    assert_eq!(created.attribute("cstore.outcome"), Some("Success"));
    assert_eq!(created.status_code, 0);
    let requests: Vec<&str> = children(&spans, created).iter().map(|span| span.name.as_str()).collect();
    for expected in [
        "get ConfigMap",
        "apply ConfigMap",
        "get Deployment",
        "apply Deployment",
        "get Service",
        "apply Service",
        "get PodDisruptionBudget",
        "apply PodDisruptionBudget",
        "list Pod",
        "apply status ConcurrentStore",
        "create Event",
    ] {
        assert!(requests.contains(&expected), "no {expected:?} under the reconcile: {requests:?}");
    }
    for request in children(&spans, created) {
        assert_eq!(request.trace_id, created.trace_id);
        assert_eq!(request.kind, CLIENT, "{request:?}");
    }
    let get_config = children(&spans, created).into_iter().find(|span| span.name == "get ConfigMap").unwrap();
    assert_eq!(get_config.attribute("k8s.name"), Some("orders-config"));
    assert_eq!(get_config.attribute("k8s.kind"), Some("ConfigMap"));
    assert_eq!(get_config.attribute("k8s.verb"), Some("get"));

    // The second failed applying the Deployment: that request and the reconcile are errors.
    assert_eq!(failed.status_code, 2);
    assert_eq!(failed.attribute("cstore.outcome"), Some("ApiError"));
    assert!(failed.status_message.contains("Deployment"), "{failed:?}");
    let failed_apply = children(&spans, failed).into_iter().find(|span| span.name == "apply Deployment").unwrap();
    assert_eq!(failed_apply.status_code, 2);
    assert!(failed_apply.status_message.contains("injected fault"), "{failed_apply:?}");

    // Grafana jumps from a duration bucket to a trace through its exemplar. A bucket keeps
    // its latest exemplar, so the last reconcile's is there, and every one names a reconcile.
    assert!(exemplars.contains(&format!("trace_id=\"{}\"", failed.trace_id)), "{exemplars}");
    for line in exemplars.lines().filter(|line| line.contains(" # {trace_id=")) {
        assert!(reconciles.iter().any(|reconcile| line.contains(&reconcile.trace_id)), "{line}");
    }

    // The live change told the store its trace context: the span of the conversation with the
    // pod, sampled, in the trace of the reconcile that made the change.
    assert_eq!(trace_parents.len(), 1, "one CLIENT TRACEPARENT, for the store that takes it: {trace_parents:?}");
    let [version, trace, parent, flags] = trace_parents[0].split('-').collect::<Vec<_>>()[..] else {
        panic!("not a traceparent: {}", trace_parents[0]);
    };
    assert_eq!((version, flags), ("00", "01"));
    let configure = spans.iter().find(|span| span.span_id == parent).expect("the traceparent names an exported span");
    assert_eq!((configure.name.as_str(), configure.trace_id.as_str()), ("configure pod", trace));
    assert_eq!(configure.attribute("k8s.pod.name"), Some("sessions-0"));
    let reconcile_of_sessions =
        |span: &ReceivedSpan| span.name == "reconcile" && span.attribute("cstore.store") == Some("sessions");
    assert!(spans.iter().any(|span| span.trace_id == trace && reconcile_of_sessions(span)), "{}", dump(&spans));
}

/// Two live changes of a store with one pod: the first while the pod refuses CLIENT
/// TRACEPARENT, as a store from before the command does, which must not stop the change; the
/// second while it takes it. Returns the trace contexts the pod was given.
async fn live_changes() -> Vec<String> {
    let spec = ConcurrentStoreSpec { strategy: Strategy::Mutex, shards: 4, ..Default::default() };
    let cluster = Cluster::with(new_store("sessions", spec)).await;
    cluster.reconcile().await.unwrap();
    cluster.finish_rollout().await;
    let pod = FakeStore::start(Strategy::Mutex, 4).await;
    cluster.add_pod("sessions-0", pod.address).await;

    pod.refuse_trace_parent(true);
    cluster.patch_spec(json!({"shards": 8})).await;
    cluster.reconcile().await.unwrap();
    assert_eq!(pod.configured("shards").as_deref(), Some("8"), "a store without CLIENT TRACEPARENT is reconfigured");
    pod.finish_migration();

    pod.refuse_trace_parent(false);
    cluster.patch_spec(json!({"shards": 16})).await;
    cluster.reconcile().await.unwrap();
    assert_eq!(pod.configured("shards").as_deref(), Some("16"));
    pod.state().trace_parents
}
