//! The order of a large collection: by scan position (a hash of the bytes), then by bytes.
//!
//! HSCAN and SSCAN must return every element that stays in the collection for the whole
//! walk, while elements come and go, with an integer cursor. In hash order that is simple:
//! the cursor is the position of the next element to visit; an element present throughout
//! is either behind the cursor (visited) or ahead of it (still to come), whatever is inserted
//! or removed meanwhile. A walk step never stops inside a group of equal positions, so
//! (rare) collisions repeat elements at worst, never skip one.
//!
//! The position is computed on each comparison rather than stored, which keeps an element
//! at one 24-byte handle. Positions are keyed with a seed drawn at process start, so that
//! nobody can choose elements that collide; they are odd, so that 0 stays free for "walk
//! done".

use std::cmp::Ordering;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use equivalent::{Comparable, Equivalent};

use super::compact::CompactBytes;

static POSITIONS: LazyLock<foldhash::quality::FixedState> =
    LazyLock::new(|| foldhash::quality::FixedState::with_seed(rand::random()));

/// The scan position of an element: never 0.
pub(crate) fn position(bytes: &[u8]) -> u64 {
    POSITIONS.hash_one(bytes) | 1
}

/// An element of a large hash or set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member(pub(crate) CompactBytes);

impl Member {
    fn key(&self) -> (u64, &[u8]) {
        (position(&self.0), &self.0)
    }
}

impl Ord for Member {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for Member {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Looks a member up by its bytes.
pub(crate) struct Named<'a>(pub(crate) &'a [u8]);

impl Equivalent<Member> for Named<'_> {
    fn equivalent(&self, member: &Member) -> bool {
        self.0 == &member.0[..]
    }
}

impl Comparable<Member> for Named<'_> {
    fn compare(&self, member: &Member) -> Ordering {
        (position(self.0), self.0).cmp(&member.key())
    }
}

/// The first member at or after a scan position: a cursor.
pub(crate) struct From(pub(crate) u64);

impl Equivalent<Member> for From {
    fn equivalent(&self, _: &Member) -> bool {
        false
    }
}

impl Comparable<Member> for From {
    fn compare(&self, member: &Member) -> Ordering {
        // Before every member at its position, so that a range from here includes them.
        match self.0.cmp(&position(&member.0)) {
            Ordering::Equal => Ordering::Less,
            other => other,
        }
    }
}

/// Walks `members` (in scan order, starting at the cursor's position) and visits whole
/// position groups until at least `count` members were visited. Returns the next cursor:
/// the position of the first member not visited, or 0 at the end.
pub(crate) fn walk<'a, T: 'a>(
    members: impl Iterator<Item = (&'a Member, T)>,
    count: usize,
    mut visit: impl FnMut(&'a Member, T),
) -> u64 {
    let mut last = 0;
    for (visited, (member, item)) in members.enumerate() {
        let at = position(&member.0);
        if visited >= count.max(1) && at != last {
            return at;
        }
        visit(member, item);
        last = at;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_walk_sees_every_member_present_throughout() {
        let mut set: imbl::OrdSet<Member> = (0..1000).map(|i| Member(CompactBytes::from(format!("m{i}")))).collect();
        let mut cursor = 0;
        let mut seen = std::collections::HashSet::new();
        let mut round = 0;
        loop {
            cursor = walk(set.range(From(cursor)..).map(|m| (m, ())), 10, |m, ()| {
                seen.insert(m.0.clone());
            });
            // Churn between steps: new members come, and ones never meant to last go.
            set.insert(Member(CompactBytes::from(format!("new{round}"))));
            set.remove(&Member(CompactBytes::from(format!("new{}", round / 2))));
            round += 1;
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            assert!(seen.contains(&CompactBytes::from(format!("m{i}"))), "m{i} was skipped");
        }
    }

    #[test]
    fn lookups_by_name_find_members() {
        let set: imbl::OrdSet<Member> = (0..100).map(|i| Member(CompactBytes::from(format!("m{i}")))).collect();
        assert!(set.contains(&Named(b"m42")));
        assert!(!set.contains(&Named(b"m420")));
    }
}
