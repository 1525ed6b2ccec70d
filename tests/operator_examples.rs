//! Every example under manifests/examples is a store the API server accepts (the CRD's CEL
//! rules, evaluated here as the API server does) and the operator can run (it renders), and
//! every Secret an example refers to is defined beside it. The strict schema check of the same
//! files is scripts/check-crd.sh's job (validate-crs.py).

use std::path::Path;

use kube::core::crd::CustomResourceExt;
use serde_json::Value;

use cstore::operator::crd::ConcurrentStore;
use cstore::operator::resources::{Desired, Settings};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples");

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn every_example_is_accepted_and_renders() {
    let crd = ConcurrentStore::crd();
    let schema = serde_json::to_value(&crd.spec.versions[0].schema.as_ref().unwrap().open_api_v3_schema).unwrap();
    let validator = kube::core::cel::Validator::new();
    let settings = Settings { default_image: "cstore:example".to_owned() };
    let mut stores = 0;

    let mut paths: Vec<_> = std::fs::read_dir(EXAMPLES).unwrap().map(|entry| entry.unwrap().path()).collect();
    paths.sort();
    for path in paths.iter().filter(|path| path.extension().is_some_and(|ext| ext == "yaml")) {
        let documents = documents(path);
        let secrets: Vec<&Value> = documents.iter().filter(|doc| doc["kind"] == "Secret").collect();
        for document in documents.iter().filter(|doc| doc["kind"] == "ConcurrentStore") {
            let name = format!("{}: {}", path.display(), document["metadata"]["name"]);
            if let Err(errors) = validator.validate(&schema, document, None) {
                panic!("{name} breaks a CEL rule: {errors:?}");
            }
            let mut store: ConcurrentStore =
                serde_json::from_value(document.clone()).unwrap_or_else(|error| panic!("{name}: {error}"));
            store.metadata.namespace = Some("examples".into());
            store.metadata.uid = Some("00000000-0000-0000-0000-000000000000".into());
            Desired::render(&store, &settings).unwrap_or_else(|error| panic!("{name}: {error}"));
            if let Some(auth) = &store.spec.auth {
                let secret_ref = &auth.secret_ref;
                let defined = secrets.iter().any(|secret| {
                    secret["metadata"]["name"] == secret_ref.name.as_str()
                        && secret["stringData"].get(&secret_ref.key).is_some()
                });
                assert!(defined, "{name} needs Secret {}/{} in the same file", secret_ref.name, secret_ref.key);
            }
            stores += 1;
        }
    }
    assert!(stores >= 6, "a store per strategy, one with auth, one with tracing: found {stores}");
}
