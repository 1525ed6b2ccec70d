//! The `save` setting: "seconds changes" pairs, as Redis's `save 3600 1 300 100 60 10000`
//! ("" saves never), and the check Redis's `serverCron` makes against them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// After a failed save, the rules try again only after this many seconds (Redis's
/// `CONFIG_BGSAVE_RETRY_DELAY`), so a full disk is not hammered.
pub const RETRY_DELAY_SECS: u64 = 5;

/// Save when at least `changes` writes happened and more than `seconds` passed since the
/// last successful save.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaveRule {
    pub seconds: u64,
    pub changes: u64,
}

/// Every rule; empty means no automatic saves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SaveRules(Vec<SaveRule>);

/// What the rules look at, all in seconds since the epoch except `dirty`.
#[derive(Clone, Copy, Debug)]
pub struct SaveClock {
    pub now: u64,
    /// Writes since the last successful save.
    pub dirty: u64,
    pub last_success: u64,
    pub last_attempt: u64,
    pub last_failed: bool,
}

impl SaveRules {
    /// Redis 7's default: after an hour if anything changed, five minutes if 100 keys did,
    /// a minute if 10000 did.
    pub fn redis_default() -> Self {
        "3600 1 300 100 60 10000".parse().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn rules(&self) -> &[SaveRule] {
        &self.0
    }

    /// The first rule that calls for a save now, as `serverCron` decides.
    pub fn due(&self, clock: SaveClock) -> Option<SaveRule> {
        let may_retry = !clock.last_failed || clock.now.saturating_sub(clock.last_attempt) > RETRY_DELAY_SECS;
        let since = clock.now.saturating_sub(clock.last_success);
        self.0.iter().copied().find(|rule| may_retry && clock.dirty >= rule.changes && since > rule.seconds)
    }
}

/// Redis's wording for a malformed `save` value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid save parameters")]
pub struct InvalidSaveRules;

impl FromStr for SaveRules {
    type Err = InvalidSaveRules;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let numbers = text.split_whitespace().map(str::parse::<u64>).collect::<Result<Vec<_>, _>>();
        let numbers = numbers.map_err(|_| InvalidSaveRules)?;
        if !numbers.len().is_multiple_of(2) {
            return Err(InvalidSaveRules);
        }
        Ok(SaveRules(numbers.chunks_exact(2).map(|pair| SaveRule { seconds: pair[0], changes: pair[1] }).collect()))
    }
}

impl fmt::Display for SaveRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.0.iter().enumerate() {
            let separator = if i == 0 { "" } else { " " };
            write!(f, "{separator}{} {}", rule.seconds, rule.changes)?;
        }
        Ok(())
    }
}

impl TryFrom<String> for SaveRules {
    type Error = InvalidSaveRules;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<SaveRules> for String {
    fn from(rules: SaveRules) -> Self {
        rules.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_redis_syntax() {
        let rules = SaveRules::redis_default();
        assert_eq!(rules.rules().len(), 3);
        assert_eq!(rules.rules()[1], SaveRule { seconds: 300, changes: 100 });
        assert_eq!(rules.to_string(), "3600 1 300 100 60 10000");
        assert_eq!("  900   1 ".parse::<SaveRules>().unwrap().to_string(), "900 1");
        assert!("".parse::<SaveRules>().unwrap().is_empty());
        for bad in ["3600", "3600 1 300", "a 1", "-1 1", "1.5 2"] {
            assert_eq!(bad.parse::<SaveRules>(), Err(InvalidSaveRules), "{bad:?}");
        }
    }

    #[test]
    fn due_follows_server_cron() {
        let rules: SaveRules = "60 10 3600 1".parse().unwrap();
        let clock = SaveClock { now: 1000, dirty: 10, last_success: 939, last_attempt: 939, last_failed: false };
        assert_eq!(rules.due(clock), Some(SaveRule { seconds: 60, changes: 10 }));
        // Strictly more than the seconds, at least the changes.
        assert_eq!(rules.due(SaveClock { last_success: 940, ..clock }), None);
        assert_eq!(rules.due(SaveClock { dirty: 9, ..clock }), None);
        assert_eq!(rules.due(SaveClock { dirty: 1, now: 3601, last_success: 0, ..clock }).unwrap().seconds, 3600);
        // After a failure, not again within the retry delay.
        let failed = SaveClock { last_failed: true, last_attempt: 996, ..clock };
        assert_eq!(rules.due(failed), None);
        assert!(rules.due(SaveClock { last_attempt: 994, ..failed }).is_some());
        assert_eq!(SaveRules::default().due(clock), None);
    }
}
