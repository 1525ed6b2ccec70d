//! The commands that change several keys as one: RENAME, RENAMENX, COPY and MSETNX. Each is a
//! few single-key steps; what makes it one change is that the caller holds the store
//! exclusively while they run (`transaction.rs`), as the server does for these commands.
//! Without that, each step is still linearizable, but a concurrent reader may see a state
//! between them.

use super::ops::{SetCondition, SetExpiry, SetOptions, StoreError};
use super::store::Store;

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
        self.set(to, value, keeping(deadline));
        self.delete(from);
        Ok(true)
    }

    /// COPY: stores `from`'s value and deadline under `to` too, unless `to` exists and not
    /// `replace`. Returns whether it copied.
    pub fn copy(&self, from: &[u8], to: &[u8], replace: bool) -> bool {
        let Some((value, deadline)) = self.get_with_deadline(from) else { return false };
        let condition = if replace { SetCondition::Always } else { SetCondition::IfAbsent };
        self.set(to, value, SetOptions { condition, ..keeping(deadline) }).written
    }

    /// MSETNX: stores every pair if none of the keys exists; returns whether it did.
    pub fn set_all_if_none_exist(&self, pairs: &[(&[u8], &[u8])]) -> bool {
        if pairs.iter().any(|(key, _)| self.exists(key)) {
            return false;
        }
        for (key, value) in pairs {
            self.set(key, *value, SetOptions::default());
        }
        true
    }
}
