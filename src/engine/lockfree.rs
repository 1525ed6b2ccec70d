//! The `LockFree` shard: papaya maps. Reads never take a lock and never wait for writers;
//! a read-modify-write is one `compute`, which papaya retries until it wins, so the closure
//! it runs must be pure (the engine's closures are).
//!
//! **One map per slot.** Papaya has no positional access: no way to resume an iteration, to
//! start one anywhere but at the beginning, or to pick the n-th key without walking n keys.
//! With one map per shard, every SCAN call had to walk the whole shard (twice), KEYS did so
//! once per call (quadratic in the shard), and RANDOMKEY and each `allkeys-random` eviction
//! walked to a random position of it. So the shard keeps one map per slot of SCAN's order it
//! owns (`scan.rs`; 4096 / shards of them, so every store holds 4096 maps, as Dragonfly
//! splits its table into segments), and a walk or a draw touches one small map at a time:
//! - SCAN visits the slots' maps in order, each with the rank window below: one call costs
//!   O(COUNT + the keys of the slots it enters), which is O(COUNT + keys / 4096); a slot
//!   whose remaining keys fit in COUNT is visited in one pass, so KEYS (COUNT 1024) walks
//!   each key about once while slots hold up to 1024 keys (4 million keys per store), and
//!   no call ever walks a whole shard;
//! - RANDOMKEY and eviction draw a slot, then a key among the first [`SAMPLE_WINDOW`] of its
//!   map: a constant cost, uniform over the keys of the drawn slot while slots hold up to
//!   [`SAMPLE_WINDOW`] keys (a million keys per store); beyond that, keys past a slot's
//!   window wait until keys before them go (eviction removes those). Slots are drawn
//!   uniformly, so a key of a sparser slot is likelier, as with Redis's buckets.
//!
//! What it costs: finding a key's map needs its routing hash, which the engine computes for
//! routing anyway and passes in (a one-shard store computes it now, where the locked kinds
//! skip it); each map owns a small table and a per-CPU length counter (about 64 + 128 ×
//! CPUs bytes before its first key: 0.4 MB per store on 2 CPUs, 8.6 MB on 16); all maps of a
//! shard share one reclamation collector, so threads register once per shard, not per map.
//! A resize copies one slot's table, not the shard's, so the stall of a blocking resize
//! shrinks by the same factor. `benches/walks.rs` measures the walks against the shard size.

use std::sync::Arc;

use papaya::{Compute, Operation};

use super::compact::CompactBytes;
use super::entry::{Entry, Footprint, Write};
use super::scan::{RANK_BITS, scan_order, slot_of};
use super::shard::{KeyHasher, Router, Shard};
use rand::RngExt;

type SlotMap = papaya::HashMap<CompactBytes, Entry, KeyHasher>;

/// Keys of a slot's map RANDOMKEY chooses among: bounds the walk to a random position.
const SAMPLE_WINDOW: usize = 256;
/// Random slots RANDOMKEY tries before it walks the slots from a random one: a sparse shard
/// (fewer keys than slots) still answers with a key it holds, at a cost bounded by its slots.
const SLOT_DRAWS: usize = 8;
const RANK_MASK: u64 = (1 << RANK_BITS) - 1;

pub(crate) struct LockFreeShard {
    /// One map per slot this shard owns, in slot order.
    slots: Box<[SlotMap]>,
}

impl LockFreeShard {
    /// The map that holds the key whose routing hash is `route`: a shard's slots are a
    /// contiguous, aligned range of the slot space, so the low bits of the slot say which.
    fn map_of(&self, route: u64) -> &SlotMap {
        &self.slots[slot_of(route) as usize & (self.slots.len() - 1)]
    }
}

impl LockFreeShard {
    /// A random key among the first [`SAMPLE_WINDOW`] of slot `slot`'s map, if it has any.
    fn sample(&self, slot: usize, rng: &mut impl rand::Rng) -> Option<CompactBytes> {
        let map = self.slots[slot].pin();
        let len = map.len().min(SAMPLE_WINDOW);
        if len == 0 {
            return None;
        }
        let target = rng.random_range(0..len);
        // `len` is a hint: a map that shrank meanwhile yields its first key.
        map.iter().nth(target).or_else(|| map.iter().next()).map(|(key, _)| key.clone())
    }
}

impl Shard for LockFreeShard {
    const BY_SLOT: bool = true;

    fn with_capacity(capacity: usize, slots: usize) -> Self {
        let collector = Arc::new(seize::Collector::new());
        let slots = (0..slots.max(1))
            .map(|_| {
                // Blocking resizes: papaya's incremental mode is advanced by `insert` but not by
                // `compute`, which is every write here, so a growing map stayed half-migrated
                // and each read searched two tables (9x slower gets, docs/BENCHMARKS.md). A
                // resize now copies the table at once: one slower write instead of slower reads
                // forever.
                papaya::HashMap::builder()
                    .hasher(KeyHasher::default())
                    .resize_mode(papaya::ResizeMode::Blocking)
                    .capacity(capacity.div_ceil(slots.max(1)))
                    .shared_collector(Arc::clone(&collector))
                    .build()
            })
            .collect();
        LockFreeShard { slots }
    }

    fn read<R>(&self, key: &[u8], route: u64, f: impl FnOnce(Option<&Entry>) -> R) -> R {
        f(self.map_of(route).pin().get(key))
    }

    fn update<R>(&self, key: &[u8], route: u64, mut f: impl FnMut(Option<&Entry>) -> (Write, R)) -> R {
        let map = self.map_of(route).pin();
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

    /// Papaya has no stable position to resume from, so inside a slot's map a walk is
    /// ordered by the high bits of each key's order hash instead (keyed, and used for nothing
    /// else: see `scan.rs`), and the position names the slot above that rank. In a slot whose
    /// remaining keys fit in the budget, one pass visits them all; otherwise one pass selects
    /// the budget's smallest ranks at or above the position, a second visits every key up to
    /// that boundary, and the walk resumes after it. A key present throughout has a fixed
    /// slot and rank, so the call whose window holds it sees it. No lock ever.
    fn scan(&self, position: u64, count: usize, order: &Router, mut visit: impl FnMut(&CompactBytes, &Entry)) -> u64 {
        let mut slot = usize::try_from(position >> RANK_BITS).unwrap_or(usize::MAX);
        let mut from = position & RANK_MASK;
        let mut budget = count.max(1);
        while let Some(map) = self.slots.get(slot) {
            let map = map.pin();
            let mut visited = 0;
            let boundary = if map.len() <= budget {
                RANK_MASK
            } else {
                // A client chooses COUNT; here it is below the slot's size.
                let mut smallest = std::collections::BinaryHeap::with_capacity(budget + 1);
                for (key, _) in map.iter() {
                    let rank = scan_order(order, key);
                    if rank >= from {
                        smallest.push(rank);
                        if smallest.len() > budget {
                            smallest.pop();
                        }
                    }
                }
                match smallest.peek() {
                    Some(&largest) if smallest.len() == budget => largest,
                    // Fewer keys remain than `len` said (it is a hint): this call finishes the slot.
                    _ => RANK_MASK,
                }
            };
            for (key, entry) in map.iter() {
                // Rank 0 starts the slot: the common case needs no hash.
                if from == 0 && boundary == RANK_MASK || (from..=boundary).contains(&scan_order(order, key)) {
                    visit(key, entry);
                    visited += 1;
                }
            }
            if boundary < RANK_MASK {
                return ((slot as u64) << RANK_BITS) | (boundary + 1);
            }
            (slot, from) = (slot + 1, 0);
            budget = budget.saturating_sub(visited);
            if budget == 0 {
                break;
            }
        }
        // A position inside the shard is never 0: slot 0 resumes at a rank above 0.
        if slot < self.slots.len() { (slot as u64) << RANK_BITS } else { 0 }
    }

    /// Walks the slots' maps, pinning each only while its keys are collected, and hands the
    /// keys over in batches of `size`. Holding guards across a whole pass of removals (a
    /// million keys in a one-shard store) kept every removed entry alive until the pass
    /// ended, and then one thread freed them all at once: a client request stalled for over
    /// 100 ms (docs/BENCHMARKS.md, "Live migration"). Now removed entries are reclaimed a few
    /// at a time. Nothing inserts into a drained shard, so a pass that finds no key means the
    /// shard is empty (papaya's `len` is only a hint under concurrency).
    fn drain_keys(&self, size: usize, mut each: impl FnMut(&[CompactBytes])) {
        let size = size.max(1);
        loop {
            let mut found = false;
            let mut batch = Vec::with_capacity(size);
            for map in &self.slots {
                batch.extend(map.pin().keys().cloned());
                if batch.len() >= size {
                    found = true;
                    batch.chunks(size).for_each(&mut each);
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                found = true;
                each(&batch);
            }
            if !found {
                return;
            }
        }
    }

    /// A key of a random slot's map, among the first [`SAMPLE_WINDOW`] of it (see the module
    /// documentation): bounded by a constant, never by the shard's size.
    fn random_key(&self, rng: &mut impl rand::Rng) -> Option<CompactBytes> {
        let slots = self.slots.len();
        for _ in 0..SLOT_DRAWS {
            let slot = rng.random_range(0..slots);
            if let Some(key) = self.sample(slot, rng) {
                return Some(key);
            }
        }
        let start = rng.random_range(0..slots);
        (0..slots).find_map(|i| self.sample((start + i) % slots, rng))
    }

    fn clear(&self) -> Footprint {
        let mut removed = Footprint::default();
        for map in &self.slots {
            let map = map.pin();
            for (key, _) in map.iter() {
                if let Some(entry) = map.remove(key) {
                    removed += Footprint::of(key, entry);
                }
            }
        }
        removed
    }

    fn lock_wait_ns(&self) -> u64 {
        0
    }
}
