//! A cursor over one request's arguments, with Redis's error wording for each way an
//! argument can be wrong.

use super::CommandError;
use crate::engine::{Float, parse_float, parse_integer};

pub(crate) struct Args<'a> {
    items: &'a [&'a [u8]],
    next: usize,
}

impl<'a> Args<'a> {
    /// The arguments after the command name (and subcommand, if the caller skipped it).
    pub(crate) fn new(items: &'a [&'a [u8]]) -> Self {
        Args { items, next: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.items.len() - self.next
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The rest of the arguments, consuming them.
    pub(crate) fn rest(&mut self) -> &'a [&'a [u8]] {
        let rest = &self.items[self.next..];
        self.next = self.items.len();
        rest
    }

    /// The next argument; a missing one is a syntax error (arity is checked before a
    /// handler runs, so this only happens inside optional clauses).
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], CommandError> {
        let item = *self.items.get(self.next).ok_or(CommandError::Syntax)?;
        self.next += 1;
        Ok(item)
    }

    pub(crate) fn integer(&mut self) -> Result<i64, CommandError> {
        parse_integer(self.bytes()?).ok_or(CommandError::NotInteger)
    }

    pub(crate) fn float(&mut self) -> Result<Float, CommandError> {
        parse_float(self.bytes()?).ok_or(CommandError::NotFloat)
    }

    /// The next argument upper-cased, for matching options; None at the end.
    pub(crate) fn option(&mut self) -> Option<OptionName> {
        let item = self.items.get(self.next)?;
        self.next += 1;
        Some(OptionName::new(item))
    }

    /// Fails with a syntax error if arguments are left over.
    pub(crate) fn finish(&self) -> Result<(), CommandError> {
        if self.is_empty() { Ok(()) } else { Err(CommandError::Syntax) }
    }
}

/// An option keyword, upper-cased into a small inline buffer (longer ones never match).
pub(crate) struct OptionName {
    buf: [u8; 16],
    len: usize,
}

impl OptionName {
    fn new(raw: &[u8]) -> Self {
        let mut buf = [0; 16];
        if raw.len() > buf.len() {
            // No keyword is this long; an empty name matches none.
            return OptionName { buf, len: 0 };
        }
        for (slot, byte) in buf.iter_mut().zip(raw) {
            *slot = byte.to_ascii_uppercase();
        }
        OptionName { buf, len: raw.len() }
    }

    /// The upper-cased keyword, or "" when it is too long to be any keyword.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items<'a>(words: &[&'a str]) -> Vec<&'a [u8]> {
        words.iter().map(|w| w.as_bytes()).collect()
    }

    #[test]
    fn cursor_reads_typed_arguments() {
        let items = items(&["42", "1.5", "nx", "rest1", "rest2"]);
        let mut args = Args::new(&items);
        assert_eq!(args.integer(), Ok(42));
        assert_eq!(args.float().map(Float::value), Ok(1.5));
        assert_eq!(args.option().map(|o| o.as_str().to_owned()), Some("NX".to_owned()));
        assert_eq!(args.remaining(), 2);
        assert!(args.finish().is_err());
        assert_eq!(args.rest().len(), 2);
        assert!(args.finish().is_ok());
        assert_eq!(args.bytes(), Err(CommandError::Syntax));
    }

    #[test]
    fn bad_numbers_use_redis_errors() {
        let items = items(&["x", "y"]);
        let mut args = Args::new(&items);
        assert_eq!(args.integer(), Err(CommandError::NotInteger));
        assert_eq!(args.float().map(Float::value), Err(CommandError::NotFloat));
    }

    #[test]
    fn long_option_names_never_match() {
        let long = items(&["a-very-long-option-name-indeed"]);
        assert_eq!(Args::new(&long).option().map(|o| o.as_str().to_owned()), Some(String::new()));
    }
}
