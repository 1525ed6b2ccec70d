//! A linearizability checker in the style of Wing & Gong, with Lowe's memoization.
//!
//! Given a concurrent history (each operation with the instants it was invoked and returned,
//! and the result it observed), the checker searches for a total order of the operations that
//!
//! 1. respects real time: an operation that returned before another was invoked comes first;
//! 2. replayed on the sequential specification, yields exactly the observed results.
//!
//! The search is a depth-first walk over "which operation takes effect next". Two partial
//! linearizations that have placed the same set of operations and reached the same model
//! state have the same future, so each (placed set, state) pair that led nowhere is cached
//! and never explored again (Lowe, "Testing for linearizability", 2017). That turns the
//! factorial search of the original algorithm into one bounded by the number of distinct
//! configurations, which for the short per-key histories we record is tiny.

use std::collections::HashSet;
use std::fmt::{self, Debug, Write as _};
use std::hash::Hash;

/// A sequential object: its state and what one operation does to it.
pub trait SequentialSpec {
    type State: Clone + Eq + Hash + Debug;
    type Op: Debug;
    type Output: PartialEq + Debug;

    /// Every way `op` may take effect on `state`: the state after it and what it returns
    /// (one, for a deterministic operation; an operation that reads a clock may have one per
    /// reading it could have taken, and none when no reading fits).
    fn apply(state: &Self::State, op: &Self::Op) -> Vec<(Self::State, Self::Output)>;
}

/// One completed operation of a concurrent history.
#[derive(Clone, Debug)]
pub struct Operation<Op, Output> {
    /// The thread that ran it, only to make failure reports readable.
    pub thread: usize,
    /// Taken just before the call, from the same monotonic counter as `responded`.
    pub invoked: u64,
    /// Taken just after the call returned.
    pub responded: u64,
    pub op: Op,
    pub output: Output,
}

/// The proof that a history has no linearization: the history itself and how far the
/// search got, ready to print.
#[derive(Debug)]
pub struct NotLinearizable {
    pub report: String,
}

impl fmt::Display for NotLinearizable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report)
    }
}

/// Checks that `history`, starting from `initial`, is linearizable with respect to `S`.
pub fn check<S: SequentialSpec>(
    initial: &S::State,
    history: &[Operation<S::Op, S::Output>],
) -> Result<(), NotLinearizable> {
    let mut search = Search::<S> {
        history,
        dead_ends: HashSet::new(),
        path: Vec::with_capacity(history.len()),
        longest_path: Vec::new(),
    };
    if search.extend(&PlacedSet::empty(history.len()), initial) {
        return Ok(());
    }
    Err(NotLinearizable { report: describe_failure::<S>(initial, history, &search.longest_path) })
}

/// Which operations a partial linearization has already placed.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PlacedSet {
    words: Box<[u64]>,
}

impl PlacedSet {
    fn empty(operations: usize) -> Self {
        PlacedSet { words: vec![0; operations.div_ceil(64)].into_boxed_slice() }
    }

    fn contains(&self, index: usize) -> bool {
        self.words[index / 64] & (1 << (index % 64)) != 0
    }

    fn with(&self, index: usize) -> Self {
        let mut next = self.clone();
        next.words[index / 64] |= 1 << (index % 64);
        next
    }

    fn count(&self) -> usize {
        self.words.iter().map(|word| word.count_ones() as usize).sum()
    }
}

struct Search<'h, S: SequentialSpec> {
    history: &'h [Operation<S::Op, S::Output>],
    /// Configurations already shown to have no completion.
    dead_ends: HashSet<(PlacedSet, S::State)>,
    /// The partial linearization being extended, as indices into `history` and the states
    /// they reached.
    path: Vec<(usize, S::State)>,
    /// The longest partial linearization seen, reported when the search fails.
    longest_path: Vec<(usize, S::State)>,
}

impl<S: SequentialSpec> Search<'_, S> {
    /// Whether the operations not in `placed` can be linearized after the ones that are,
    /// starting from `state`.
    fn extend(&mut self, placed: &PlacedSet, state: &S::State) -> bool {
        if placed.count() == self.history.len() {
            return true;
        }
        let pending = || (0..self.history.len()).filter(|&index| !placed.contains(index));
        // An operation may take effect next only if it was invoked before every pending
        // operation returned; otherwise some pending operation wholly precedes it.
        let earliest_response = pending().map(|index| self.history[index].responded).min().unwrap_or(u64::MAX);
        let candidates: Vec<usize> =
            pending().filter(|&index| self.history[index].invoked < earliest_response).collect();
        let outcomes = candidates.into_iter().flat_map(|index| {
            let operation = &self.history[index];
            S::apply(state, &operation.op)
                .into_iter()
                .filter(|(_, output)| *output == operation.output)
                .map(move |(next_state, _)| (index, next_state))
        });
        for (index, next_state) in outcomes.collect::<Vec<_>>() {
            let configuration = (placed.with(index), next_state);
            if self.dead_ends.contains(&configuration) {
                continue;
            }
            self.path.push((index, configuration.1.clone()));
            if self.path.len() > self.longest_path.len() {
                self.longest_path.clone_from(&self.path);
            }
            if self.extend(&configuration.0, &configuration.1) {
                return true;
            }
            self.path.pop();
            self.dead_ends.insert(configuration);
        }
        false
    }
}

fn describe_failure<S: SequentialSpec>(
    initial: &S::State,
    history: &[Operation<S::Op, S::Output>],
    longest_path: &[(usize, S::State)],
) -> String {
    let mut by_invocation: Vec<usize> = (0..history.len()).collect();
    by_invocation.sort_by_key(|&index| history[index].invoked);
    let mut report = format!("no linearization of these {} operations (initial state {initial:?}):\n", history.len());
    for index in by_invocation {
        let operation = &history[index];
        let _ = writeln!(
            report,
            "  #{index:<3} [{:>5} .. {:>5}] thread {}: {:?} -> {:?}",
            operation.invoked, operation.responded, operation.thread, operation.op, operation.output
        );
    }
    let _ = writeln!(report, "longest linearizable prefix ({} of {} operations):", longest_path.len(), history.len());
    for (index, state) in longest_path {
        let _ = writeln!(report, "  #{index:<3} {:?}  => state {state:?}", history[*index].op);
    }
    report.push_str("  and no pending operation can take effect next with the result it observed\n");
    report
}
