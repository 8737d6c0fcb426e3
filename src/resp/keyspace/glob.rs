//! Redis's glob patterns (`SCAN ... MATCH`, as Redis's `stringmatchlen`): `*` any run
//! of bytes, `?` any one byte, `[abc]`, `[^abc]` and `[a-z]` one byte of (or not of) a
//! set, `\x` the byte `x` itself; bytes, not characters, and case-sensitive.
//!
//! It owns the parse of a pattern and the match of a key, pure. Matching never
//! backtracks more than to the last `*` (every other token matches exactly one byte),
//! so a match costs at most key length × pattern tokens steps, whatever the pattern:
//! no pattern can make it exponential.

use crate::limits;

/// One token of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Byte(u8),
    /// A set of byte ranges (inclusive), or its complement.
    Set {
        negated: bool,
        ranges: Vec<(u8, u8)>,
    },
}

impl Token {
    fn matches(&self, byte: u8) -> bool {
        match self {
            Token::Star | Token::Any => true,
            Token::Byte(expected) => *expected == byte,
            Token::Set { negated, ranges } => {
                let inside = ranges
                    .iter()
                    .any(|(low, high)| (*low..=*high).contains(&byte));
                inside != *negated
            }
        }
    }
}

/// A parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    tokens: Vec<Token>,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the MATCH pattern is longer than {} bytes",
    limits::RESP_SCAN_PATTERN_BYTES_MAX
)]
pub struct PatternTooLong;

impl Glob {
    pub fn new(pattern: &[u8]) -> Result<Glob, PatternTooLong> {
        if pattern.len() > limits::RESP_SCAN_PATTERN_BYTES_MAX {
            return Err(PatternTooLong);
        }
        let mut tokens = Vec::new();
        let mut rest = pattern;
        while let Some((&byte, tail)) = rest.split_first() {
            rest = tail;
            let token = match byte {
                b'*' => Token::Star,
                b'?' => Token::Any,
                b'\\' => match rest.split_first() {
                    Some((&escaped, tail)) => {
                        rest = tail;
                        Token::Byte(escaped)
                    }
                    // A trailing backslash is itself, as in Redis.
                    None => Token::Byte(b'\\'),
                },
                b'[' => {
                    let (set, tail) = set(rest);
                    rest = tail;
                    set
                }
                other => Token::Byte(other),
            };
            // Runs of `*` match what one does.
            if !(token == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(token);
            }
        }
        Ok(Glob { tokens })
    }

    /// Whether the pattern matches all of `key`.
    pub fn matches(&self, key: &[u8]) -> bool {
        let tokens = &self.tokens;
        let (mut at_token, mut at_key) = (0usize, 0usize);
        // The last `*` seen and the key position it was tried up to: the only
        // backtrack point.
        let mut star: Option<(usize, usize)> = None;
        while at_key < key.len() {
            match tokens.get(at_token) {
                Some(Token::Star) => {
                    star = Some((at_token, at_key));
                    at_token += 1;
                }
                Some(token) if token.matches(key[at_key]) => {
                    at_token += 1;
                    at_key += 1;
                }
                _ => match star {
                    Some((star_token, star_key)) => {
                        star = Some((star_token, star_key + 1));
                        at_token = star_token + 1;
                        at_key = star_key + 1;
                    }
                    None => return false,
                },
            }
        }
        tokens[at_token.min(tokens.len())..]
            .iter()
            .all(|token| *token == Token::Star)
    }
}

/// The set after a `[` and the pattern after its `]` (an unclosed set runs to the end
/// of the pattern, as in Redis).
fn set(mut rest: &[u8]) -> (Token, &[u8]) {
    let negated = rest.first() == Some(&b'^');
    if negated {
        rest = &rest[1..];
    }
    let mut ranges = Vec::new();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        let low = match byte {
            b']' => break,
            b'\\' => match rest.split_first() {
                Some((&escaped, tail)) => {
                    rest = tail;
                    escaped
                }
                None => b'\\',
            },
            other => other,
        };
        // `a-z`: a range (either way round, as in Redis), unless `-` ends the set.
        if let [b'-', high, tail @ ..] = rest {
            if *high != b']' {
                let high = *high;
                rest = tail;
                ranges.push((low.min(high), low.max(high)));
                continue;
            }
        }
        ranges.push((low, low));
    }
    (Token::Set { negated, ranges }, rest)
}

#[cfg(test)]
mod tests;
