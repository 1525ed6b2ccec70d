//! What the persistence tests share.

use crate::engine::{Databases, Value};

/// Every key of every database: (database, key, value, deadline), sorted.
pub(crate) fn contents(databases: &Databases) -> Vec<(usize, Vec<u8>, Value, Option<u64>)> {
    let mut all = Vec::new();
    for (number, cut) in databases.snapshot() {
        cut.for_each(|entry| {
            all.push((number, entry.key.to_vec(), entry.value.clone(), entry.expires_at_ms));
            Ok::<(), std::convert::Infallible>(())
        })
        .expect("nothing flushes the databases of a test meanwhile");
    }
    all.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    all
}
