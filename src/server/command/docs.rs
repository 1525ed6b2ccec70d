//! COMMAND DOCS argument specifications, derived from each command's syntax line (the
//! notation of Redis's documentation: `key [NX|XX] [EX seconds|PX milliseconds] key ...`),
//! so that the table states a command's syntax once and redis-cli can show hints from it.
//!
//! Notation: a lower-case word is an argument, an upper-case word a literal token, an
//! upper-case word followed by a lower-case one a token with its value (`EX seconds`),
//! `[...]` an optional part, `(...)` a required group, `a|b` alternatives, `...` repetition
//! of what precedes it.

use crate::server::reply::ReplyWriter;

/// One argument as COMMAND DOCS reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arg {
    name: String,
    kind: &'static str,
    token: Option<String>,
    optional: bool,
    multiple: bool,
    children: Vec<Arg>,
}

impl Arg {
    /// An argument the client supplies, introduced by `token` if given (`EX seconds`).
    fn leaf(name: &str, token: Option<&str>) -> Arg {
        let kind = match name {
            "key" => "key",
            "pattern" => "pattern",
            "unix-time-seconds" | "unix-time-milliseconds" => "unix-time",
            "seconds" | "milliseconds" | "decrement" | "offset" | "start" | "end" | "count" | "cursor" | "index"
            | "protover" => "integer",
            "increment" => "double",
            _ => "string",
        };
        Arg {
            name: name.to_owned(),
            kind,
            token: token.map(str::to_owned),
            optional: false,
            multiple: false,
            children: Vec::new(),
        }
    }

    /// A literal word such as `NX`.
    fn pure_token(word: &str) -> Arg {
        Arg { kind: "pure-token", ..Arg::leaf(&word.to_ascii_lowercase(), Some(word)) }
    }

    fn group(kind: &'static str, children: Vec<Arg>) -> Arg {
        let name = if kind == "oneof" { "choice" } else { "block" };
        Arg { name: name.to_owned(), kind, token: None, optional: false, multiple: false, children }
    }

    /// Writes this argument as a COMMAND DOCS map.
    pub(crate) fn write(&self, out: &mut ReplyWriter<'_>) {
        let flags: Vec<&str> = [("optional", self.optional), ("multiple", self.multiple)]
            .into_iter()
            .filter_map(|(flag, set)| set.then_some(flag))
            .collect();
        let fields = 2
            + usize::from(self.token.is_some())
            + usize::from(!flags.is_empty())
            + usize::from(!self.children.is_empty());
        out.map(fields);
        out.bulk(b"name");
        out.bulk(self.name.as_bytes());
        out.bulk(b"type");
        out.bulk(self.kind.as_bytes());
        if let Some(token) = &self.token {
            out.bulk(b"token");
            out.bulk(token.as_bytes());
        }
        if !flags.is_empty() {
            out.bulk(b"flags");
            out.array(flags.len());
            flags.iter().for_each(|flag| out.simple(flag));
        }
        if !self.children.is_empty() {
            out.bulk(b"arguments");
            out.array(self.children.len());
            self.children.iter().for_each(|child| child.write(out));
        }
    }
}

/// Parses a syntax line into arguments. The table's lines are static and tested, so a
/// malformed line is a programming error caught by the tests, not a runtime condition.
pub(crate) fn parse_syntax(syntax: &str) -> Vec<Arg> {
    let spaced =
        syntax.replace('[', " [ ").replace(']', " ] ").replace('(', " ( ").replace(')', " ) ").replace('|', " | ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut position = 0;
    let alternatives = parse_alternatives(&tokens, &mut position);
    alternatives.into_iter().next().unwrap_or_default()
}

/// `seq ('|' seq)*`, up to a closing bracket or the end.
fn parse_alternatives(tokens: &[&str], position: &mut usize) -> Vec<Vec<Arg>> {
    let mut alternatives = vec![parse_sequence(tokens, position)];
    while tokens.get(*position) == Some(&"|") {
        *position += 1;
        alternatives.push(parse_sequence(tokens, position));
    }
    alternatives
}

fn parse_sequence(tokens: &[&str], position: &mut usize) -> Vec<Arg> {
    let mut sequence: Vec<Arg> = Vec::new();
    while let Some(&token) = tokens.get(*position) {
        *position += 1;
        let arg = match token {
            "|" | "]" | ")" => {
                *position -= 1;
                break;
            }
            "..." => {
                if let Some(last) = sequence.last_mut() {
                    last.multiple = true;
                }
                continue;
            }
            "[" | "(" => {
                let alternatives = parse_alternatives(tokens, position);
                *position += 1; // the closing bracket
                let mut arg = collapse(alternatives);
                arg.optional = token == "[";
                arg
            }
            word if word.chars().any(|c| c.is_ascii_uppercase()) => match tokens.get(*position) {
                Some(value) if value.chars().all(|c| !c.is_ascii_uppercase()) && is_word(value) => {
                    *position += 1;
                    Arg::leaf(value, Some(word))
                }
                _ => Arg::pure_token(word),
            },
            word => Arg::leaf(word, None),
        };
        sequence.push(arg);
    }
    sequence
}

fn is_word(token: &str) -> bool {
    !matches!(token, "[" | "]" | "(" | ")" | "|" | "...")
}

/// A bracketed part as one argument: a single argument, a block, or a choice.
fn collapse(mut alternatives: Vec<Vec<Arg>>) -> Arg {
    if alternatives.len() == 1 {
        let mut sequence = alternatives.remove(0);
        return if sequence.len() == 1 { sequence.remove(0) } else { Arg::group("block", sequence) };
    }
    let choices = alternatives
        .into_iter()
        .map(|mut sequence| if sequence.len() == 1 { sequence.remove(0) } else { Arg::group("block", sequence) })
        .collect();
    Arg::group("oneof", choices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::command::COMMANDS;

    #[test]
    fn set_syntax_becomes_redis_style_arguments() {
        let args = parse_syntax("key value [NX|XX] [GET] [EX seconds|PX milliseconds|KEEPTTL]");
        let names: Vec<(&str, &str)> = args.iter().map(|a| (a.name.as_str(), a.kind)).collect();
        assert_eq!(
            names,
            [("key", "key"), ("value", "string"), ("choice", "oneof"), ("get", "pure-token"), ("choice", "oneof")]
        );
        assert!(args[2].optional && args[3].optional);
        let expiry = &args[4].children;
        assert_eq!(expiry[0], Arg::leaf("seconds", Some("EX")));
        assert_eq!(expiry[0].kind, "integer");
        assert_eq!(expiry[2].kind, "pure-token");
    }

    #[test]
    fn repetition_and_required_groups() {
        let args = parse_syntax("(key value) ...");
        assert_eq!(args.len(), 1);
        assert_eq!((args[0].kind, args[0].multiple, args[0].optional), ("block", true, false));
        assert_eq!(args[0].children.len(), 2);
        let args = parse_syntax("key ...");
        assert!(args[0].multiple);
    }

    #[test]
    fn nested_optional_parts() {
        let args = parse_syntax("[protover [AUTH username password] [SETNAME clientname]]");
        assert_eq!(args.len(), 1);
        assert!(args[0].optional);
        assert_eq!(args[0].kind, "block");
        assert_eq!(args[0].children[1].kind, "block");
        assert_eq!(args[0].children[2], Arg { optional: true, ..Arg::leaf("clientname", Some("SETNAME")) });
    }

    #[test]
    fn every_table_syntax_uses_each_token() {
        for spec in COMMANDS.iter() {
            let args = parse_syntax(spec.syntax);
            let words = spec
                .syntax
                .split(|c: char| c.is_whitespace() || "[]()|".contains(c))
                .filter(|w| !w.is_empty() && *w != "...")
                .count();
            assert_eq!(count_words(&args), words, "{}: {:?}", spec.name, spec.syntax);
        }
    }

    /// How many syntax words the parsed arguments account for (a token with its value is two).
    fn count_words(args: &[Arg]) -> usize {
        args.iter()
            .map(|arg| match arg.kind {
                "oneof" | "block" => count_words(&arg.children),
                "pure-token" => 1,
                _ => 1 + usize::from(arg.token.is_some()),
            })
            .sum()
    }
}
