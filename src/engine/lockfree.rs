//! The `LockFree` shard: a papaya map. Reads never take a lock and never wait for writers;
//! a read-modify-write is one `compute`, which papaya retries until it wins, so the closure
//! it runs must be pure (the engine's closures are).

use papaya::{Compute, Operation};

use super::compact::CompactBytes;
use super::entry::{Entry, Footprint, Write};
use super::scan::{OFFSET_BITS, scan_order};
use super::shard::{KeyHasher, Router, Shard};
use rand::RngExt;

pub(crate) struct LockFreeShard {
    map: papaya::HashMap<CompactBytes, Entry, KeyHasher>,
}

impl Shard for LockFreeShard {
    fn with_capacity(capacity: usize) -> Self {
        // Blocking resizes: papaya's incremental mode is advanced by `insert` but not by
        // `compute`, which is every write here, so a growing map stayed half-migrated and
        // each read searched two tables (9x slower gets, docs/BENCHMARKS.md). A resize
        // now copies the table at once: one slower write instead of slower reads forever.
        let map = papaya::HashMap::builder()
            .hasher(KeyHasher::default())
            .resize_mode(papaya::ResizeMode::Blocking)
            .capacity(capacity)
            .build();
        LockFreeShard { map }
    }

    fn read<R>(&self, key: &[u8], f: impl FnOnce(Option<&Entry>) -> R) -> R {
        f(self.map.pin().get(key))
    }

    fn update<R>(&self, key: &[u8], mut f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R {
        let map = self.map.pin();
        // papaya memoizes transitions: after a lost race it may apply an insert computed in
        // an earlier run, without running the closure again. So the reply must be taken from
        // the run that computed the transition that took effect: the run that saw no entry
        // for an insert, the latest run that saw an entry for an update or a removal.
        let mut saw_absent = None;
        let mut saw_present = None;
        // `compute` takes an owned key; keys up to 20 bytes are built inline, without allocating.
        let outcome = map.compute(CompactBytes::from(key), |current| {
            let (write, reply) = f(current.map(|(_, entry)| entry));
            let operation = match write {
                Write::Put(entry) => Operation::Insert(entry),
                Write::Remove if current.is_some() => Operation::Remove,
                Write::Remove | Write::Keep => return Operation::Abort(reply),
            };
            *(if current.is_some() { &mut saw_present } else { &mut saw_absent }) = Some(reply);
            operation
        });
        let reply = match outcome {
            Compute::Inserted(..) => saw_absent,
            Compute::Updated { .. } | Compute::Removed(..) => saw_present,
            Compute::Aborted(reply) => Some(reply),
        };
        reply.expect("papaya applies only transitions its closure computed")
    }

    /// Papaya has no stable position to resume from, so a walk is ordered by the high bits
    /// of each key's order hash instead (keyed, and used for nothing else: see `scan.rs`): one call selects the `count` smallest hash values at or
    /// above `position` (one lock-free pass), then visits every key up to that boundary
    /// (a second pass) and resumes after it. A key present throughout has a fixed hash, so
    /// the call whose window holds it sees it. Cost: O(shard size) per call, no lock ever.
    fn scan(&self, position: u64, count: usize, order: &Router, mut visit: impl FnMut(&CompactBytes, &Entry)) -> u64 {
        let map = self.map.pin();
        let count = count.max(1);
        // A client chooses COUNT: never reserve more than the shard holds.
        let mut smallest = std::collections::BinaryHeap::with_capacity(count.min(map.len()).saturating_add(1));
        for (key, _) in map.iter() {
            let rank = scan_order(order, key);
            if rank >= position {
                smallest.push(rank);
                if smallest.len() > count {
                    smallest.pop();
                }
            }
        }
        let boundary = match smallest.peek() {
            Some(&largest) if smallest.len() == count => largest,
            // Fewer than `count` keys remain: this call finishes the shard.
            _ => u64::MAX,
        };
        for (key, entry) in map.iter() {
            let rank = scan_order(order, key);
            if rank >= position && rank <= boundary {
                visit(key, entry);
            }
        }
        if boundary >= (1 << OFFSET_BITS) - 1 { 0 } else { boundary + 1 }
    }

    /// One pass of one iterator over the table, batch by batch: papaya leaves a tombstone for
    /// each removal, so restarting the iteration per batch would rescan them all (quadratic).
    /// With no inserts the table never resizes, so the pass sees every key; the pinned guard
    /// delays freeing the removed entries until the pass ends. A pass that yields nothing
    /// means the shard is empty (papaya's `len` is only a hint under concurrency).
    fn drain_keys(&self, size: usize, mut each: impl FnMut(&[CompactBytes])) {
        let size = size.max(1);
        loop {
            let map = self.map.pin();
            let mut batch = Vec::with_capacity(size);
            let mut yielded = false;
            for (key, _) in map.iter() {
                yielded = true;
                batch.push(key.clone());
                if batch.len() == size {
                    each(&batch);
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                each(&batch);
            }
            if !yielded {
                return;
            }
        }
    }

    fn random_key(&self, rng: &mut impl rand::Rng) -> Option<CompactBytes> {
        let map = self.map.pin();
        let len = map.len();
        if len == 0 {
            return None;
        }
        // No random access into papaya: walk to a random position (O(shard size)).
        let target = rng.random_range(0..len);
        map.iter().nth(target).or_else(|| map.iter().next()).map(|(key, _)| key.clone())
    }

    fn clear(&self) -> Footprint {
        let map = self.map.pin();
        let mut removed = Footprint::default();
        for (key, _) in map.iter() {
            if let Some(entry) = map.remove(key) {
                removed += Footprint::of(key, entry);
            }
        }
        removed
    }

    fn lock_wait_ns(&self) -> u64 {
        0
    }
}
