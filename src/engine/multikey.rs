//! The commands that change several keys as one: RENAME, RENAMENX, COPY, MOVE, MSETNX, SMOVE and
//! the STORE forms of the set algebra. Each is a
//! few single-key steps; what makes it one change is that the caller holds the store
//! exclusively while they run (`transaction.rs`), as the server does for these commands.
//! Without that, each step is still linearizable, but a concurrent reader may see a state
//! between them.

use std::sync::Arc;

use super::entry::{Entry, NEVER, Write};
use super::ops::{SetCondition, SetExpiry, SetOptions, StoreError};
use super::set::Set;
use super::store::Store;
use super::value::Value;

/// The options that store `value` with the deadline it had (`None`: none).
fn keeping(deadline: Option<u64>) -> SetOptions {
    SetOptions { expiry: deadline.map_or(SetExpiry::Clear, SetExpiry::At), ..SetOptions::default() }
}

impl Store {
    /// RENAME (`only_if_absent`: RENAMENX): moves `from`'s value and deadline to `to`. Returns
    /// whether it moved (RENAMENX does not overwrite an existing `to`).
    pub fn rename(&self, from: &[u8], to: &[u8], only_if_absent: bool) -> Result<bool, StoreError> {
        let (value, deadline) = self.get_with_deadline(from).ok_or(StoreError::NoSuchKey)?;
        if from == to {
            // Redis: RENAME of a key to itself succeeds, RENAMENX finds the target taken.
            return Ok(!only_if_absent);
        }
        if only_if_absent && self.exists(to) {
            return Ok(false);
        }
        self.put(to, value, keeping(deadline));
        self.delete(from);
        Ok(true)
    }

    /// COPY: stores `from`'s value and deadline under `to` too, unless `to` exists and not
    /// `replace`. Returns whether it copied.
    pub fn copy(&self, from: &[u8], to: &[u8], replace: bool) -> bool {
        self.copy_to(from, self, to, replace)
    }

    /// COPY ... DB: [`Store::copy`] into `target`, another database (or this one).
    pub fn copy_to(&self, from: &[u8], target: &Store, to: &[u8], replace: bool) -> bool {
        let Some((value, deadline)) = self.get_with_deadline(from) else { return false };
        let condition = if replace { SetCondition::Always } else { SetCondition::IfAbsent };
        target.put(to, value, SetOptions { condition, ..keeping(deadline) })
    }

    /// MOVE: moves `key`, with its deadline, to database `target` unless it exists there.
    /// Returns whether it moved.
    pub fn move_to(&self, key: &[u8], target: &Store) -> bool {
        if !self.copy_to(key, target, key, false) {
            return false;
        }
        self.delete(key);
        true
    }

    /// MSETNX: stores every pair if none of the keys exists; returns whether it did.
    pub fn set_all_if_none_exist(&self, pairs: &[(&[u8], &[u8])]) -> bool {
        if pairs.iter().any(|(key, _)| self.exists(key)) {
            return false;
        }
        for (key, value) in pairs {
            self.put(key, Value::from(*value), SetOptions::default());
        }
        true
    }

    /// SMOVE: moves `member` from the set `from` to the set `to`; whether it was in `from`.
    /// As Redis: a missing `from` answers 0 before `to`'s type is looked at.
    pub fn smove(&self, from: &[u8], to: &[u8], member: &[u8]) -> Result<bool, StoreError> {
        let Some(source) = self.set_value(from)? else { return Ok(false) };
        self.set_value(to)?;
        if !source.contains(member) {
            return Ok(false);
        }
        if from != to {
            self.srem(from, &[member])?;
            self.sadd(to, &[member])?;
        }
        Ok(true)
    }

    /// SINTERSTORE, SUNIONSTORE, SDIFFSTORE: `key` becomes `set`, whatever it held (with no
    /// deadline), or goes when `set` is empty. Returns the set's size.
    pub fn replace_with_set(&self, key: &[u8], set: Set) -> usize {
        let len = set.len();
        let entry = (!set.is_empty()).then(|| Entry::new(Value::Set(Arc::new(set)), NEVER));
        self.update(key, |_| (entry.clone().map_or(Write::Remove, Write::Put), ()));
        len
    }
}
