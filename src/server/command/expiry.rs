//! Turning a client's expire argument into an absolute deadline, with Redis's overflow and
//! range rules.

use super::CommandError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    Seconds,
    Milliseconds,
}

/// Whether the client gave a duration from now or a Unix time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    FromNow,
    UnixTime,
}

/// An expire argument as found in the request, before it is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExpireArg {
    pub(crate) value: i64,
    pub(crate) unit: Unit,
    pub(crate) base: Base,
}

impl ExpireArg {
    /// The absolute deadline in ms since the Unix epoch.
    ///
    /// SET, SETEX, GETEX refuse non-positive values (`allow_past = false`); EXPIRE and
    /// friends accept them and the key is deleted. Overflow is an error in both.
    pub(crate) fn deadline(self, now_ms: u64, allow_past: bool, command: &'static str) -> Result<u64, CommandError> {
        let invalid = CommandError::InvalidExpire(command);
        if !allow_past && self.value <= 0 {
            return Err(invalid);
        }
        let millis = match self.unit {
            Unit::Seconds => self.value.checked_mul(1000).ok_or(invalid.clone())?,
            Unit::Milliseconds => self.value,
        };
        let deadline = match self.base {
            Base::UnixTime => millis,
            Base::FromNow => millis.checked_add(i64::try_from(now_ms).unwrap_or(i64::MAX)).ok_or(invalid)?,
        };
        // Deadlines before the epoch are simply in the past.
        Ok(u64::try_from(deadline).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn arg(value: i64, unit: Unit, base: Base) -> ExpireArg {
        ExpireArg { value, unit, base }
    }

    #[test]
    fn relative_and_absolute_deadlines() {
        assert_eq!(arg(10, Unit::Seconds, Base::FromNow).deadline(NOW, false, "set"), Ok(NOW + 10_000));
        assert_eq!(arg(10, Unit::Milliseconds, Base::FromNow).deadline(NOW, false, "set"), Ok(NOW + 10));
        assert_eq!(arg(5, Unit::Seconds, Base::UnixTime).deadline(NOW, false, "set"), Ok(5_000));
        assert_eq!(arg(-5, Unit::Seconds, Base::FromNow).deadline(NOW, true, "expire"), Ok(NOW - 5_000));
        assert_eq!(arg(-5, Unit::Seconds, Base::UnixTime).deadline(NOW, true, "expireat"), Ok(0));
    }

    #[test]
    fn refusals_name_the_command() {
        let refused = |a: ExpireArg, allow_past| a.deadline(NOW, allow_past, "set").unwrap_err().to_string();
        assert_eq!(refused(arg(0, Unit::Seconds, Base::FromNow), false), "ERR invalid expire time in 'set' command");
        assert_eq!(
            refused(arg(-1, Unit::Milliseconds, Base::UnixTime), false),
            "ERR invalid expire time in 'set' command"
        );
        assert!(arg(i64::MAX, Unit::Seconds, Base::FromNow).deadline(NOW, true, "set").is_err());
        assert!(arg(i64::MAX, Unit::Milliseconds, Base::FromNow).deadline(NOW, true, "set").is_err());
    }
}
