//! The built-in detectors: what each matches, and the cheap checks that decide whether a text is
//! worth handing to its regular expression at all.
//!
//! A detector is a regular expression that finds candidates and a check that keeps only real
//! ones (a Luhn sum for cards, octets up to 255 for addresses, word boundaries that see through
//! JSON escapes such as `\n`). Boundaries are checked here rather than with `\b` in the regex, so
//! that `\n4111 1111 1111 1111` in a JSON-encoded message still has its card found.

use std::ops::Range;

use regex::Regex;

/// The names of the built-in detectors, as settings name them.
pub const DETECTORS: [&str; 5] = ["email", "phone", "credit_card", "ip_address", "secret"];

/// Facts about a text that rule detectors out cheaply, each found when first asked for: most
/// values hold nothing to redact, and these checks run at memory speed where a regular
/// expression would not.
#[derive(Debug)]
pub struct Profile<'a> {
    bytes: &'a [u8],
    digits: Option<usize>,
}

impl<'a> Profile<'a> {
    pub fn of(text: &'a str) -> Self {
        Profile {
            bytes: text.as_bytes(),
            digits: None,
        }
    }

    /// ASCII digits in the text, counted in blocks whose byte-wide sums vectorize.
    fn digits(&mut self) -> usize {
        *self.digits.get_or_insert_with(|| {
            self.bytes
                .chunks(255)
                .map(|chunk| {
                    let in_chunk: u8 = chunk.iter().fold(0u8, |sum, byte| {
                        sum + u8::from(byte.wrapping_sub(b'0') < 10)
                    });
                    usize::from(in_chunk)
                })
                .sum()
        })
    }

    /// Whether `byte` occurs at least `count` times.
    fn has(&self, byte: u8, count: usize) -> bool {
        memchr::memchr_iter(byte, self.bytes)
            .nth(count - 1)
            .is_some()
    }

    /// Whether `byte` occurs at least `count` times between two bytes that `joins` accepts, as
    /// the dots of an IPv4 address join digits and the colons of an IPv6 one hex digits.
    fn has_joining(&self, byte: u8, count: usize, joins: fn(&u8) -> bool) -> bool {
        memchr::memchr_iter(byte, self.bytes)
            .filter(|&at| {
                at > 0 && joins(&self.bytes[at - 1]) && self.bytes.get(at + 1).is_some_and(joins)
            })
            .nth(count - 1)
            .is_some()
    }
}

/// One built-in detector, compiled.
#[derive(Debug)]
pub struct Detector {
    /// Its name in settings and in its replacement (`[REDACTED:name]`).
    pub name: &'static str,
    /// Finds candidates; [`Detector::check`] keeps the real ones.
    regex: Regex,
    /// Which kind of detector, for its check and its prefilter.
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Email,
    Phone,
    CreditCard,
    Ipv4,
    Ipv6,
    Ipv6Full,
    Secret,
}

// Candidates. Word boundaries are checked in code (`bounded`), see the module comment.
const EMAIL: &str = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}";
// International numbers written with a `+`, and North American ones with separators:
// `+44 20 7946 0958`, `+1-555-123-4567`, `(555) 123-4567`, `555-123-4567`, `555.123.4567`.
// Plain runs of digits are left alone: they are ids, counts and timestamps far more often.
const PHONE: &str = r"\+\d{1,3}(?:[ .\-]?\(\d{1,4}\))?(?:[ .\-]?\d{1,4}){2,5}|(?:\(\d{3}\) ?|\d{3}[.\-])\d{3}[.\-]\d{4}";
// 13 to 19 digits in groups of four (Visa, Mastercard, Discover, …) or 4-6-4/5 (Amex, Diners),
// with single spaces or dashes between groups, starting as issuers' numbers do (2 to 6).
const CREDIT_CARD: &str =
    r"[2-6]\d{3}(?:[ \-]?\d{4}){2}[ \-]?\d{1,7}|3\d{3}[ \-]?\d{6}[ \-]?\d{4,5}";
const IPV4: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
// Compressed (`fe80::1`), whose `::` the regex finds as a literal, and full (eight groups).
const IPV6: &str = r"(?i)[0-9a-f:]*::[0-9a-f:.]*";
const IPV6_FULL: &str = r"(?i)(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}";
// API keys (OpenAI `sk-`, `sk-proj-`, Anthropic `sk-ant-`, Stripe `sk_live_`/`rk_live_`),
// bearer tokens, JWTs, AWS access key ids, GitHub tokens, Google API keys, Slack tokens.
const SECRET: &str = concat!(
    r"sk-[A-Za-z0-9_\-]{20,}",
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
    r"|(?:Bearer|bearer|BEARER)[ \t]+[A-Za-z0-9._~+/=\-]{16,}",
    r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
    r"|(?:AKIA|ASIA)[A-Z0-9]{16}",
    r"|gh[pousr]_[A-Za-z0-9]{36,}",
    r"|github_pat_[A-Za-z0-9_]{22,}",
    r"|AIza[0-9A-Za-z_\-]{35}",
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}",
);

impl Detector {
    /// The detectors of one name (`ip_address` is three: IPv4, compressed and full IPv6);
    /// `None` for an unknown name.
    pub fn named(name: &str) -> Option<Vec<Detector>> {
        let (name, kinds): (&'static str, &[(Kind, &str)]) = match name {
            "email" => ("email", &[(Kind::Email, EMAIL)]),
            "phone" => ("phone", &[(Kind::Phone, PHONE)]),
            "credit_card" => ("credit_card", &[(Kind::CreditCard, CREDIT_CARD)]),
            "ip_address" => (
                "ip_address",
                &[
                    (Kind::Ipv4, IPV4),
                    (Kind::Ipv6, IPV6),
                    (Kind::Ipv6Full, IPV6_FULL),
                ],
            ),
            "secret" => ("secret", &[(Kind::Secret, SECRET)]),
            _ => return None,
        };
        Some(
            kinds
                .iter()
                .map(|&(kind, pattern)| Detector {
                    name,
                    // The patterns are constants, tested below.
                    regex: Regex::new(pattern).expect("built-in pattern"),
                    kind,
                })
                .collect(),
        )
    }

    /// Whether a text with this profile may hold a match at all.
    pub fn may_match(&self, profile: &mut Profile) -> bool {
        match self.kind {
            Kind::Email => profile.has(b'@', 1),
            Kind::Phone => profile.digits() >= 7,
            Kind::CreditCard => profile.digits() >= 13,
            // The digit count is vectorized and shared with the other detectors; walking the
            // dots of prose one by one is not.
            Kind::Ipv4 => profile.digits() >= 4 && profile.has_joining(b'.', 3, u8::is_ascii_digit),
            Kind::Ipv6 => double_colon().find(profile.bytes).is_some(),
            Kind::Ipv6Full => {
                profile.digits() >= 1 && profile.has_joining(b':', 7, u8::is_ascii_hexdigit)
            }
            Kind::Secret => profile.bytes.len() >= 16,
        }
    }

    /// Appends the ranges of `text` this detector redacts. After a candidate that is no real
    /// match the search goes on from its second character, not its end: a number too long to
    /// be a phone number may end in a card number.
    pub fn find(&self, text: &str, found: &mut Vec<Range<usize>>) {
        let mut from = 0;
        while let Some(candidate) = self.regex.find_at(text, from) {
            match self.check(text, candidate.range()) {
                Some(range) => {
                    from = candidate.end().max(range.end);
                    found.push(range);
                }
                None => {
                    from = candidate.start()
                        + text[candidate.start()..]
                            .chars()
                            .next()
                            .map_or(1, char::len_utf8);
                }
            }
            if from >= text.len() {
                break;
            }
        }
    }

    /// The part of a candidate to redact, if it is a real match.
    fn check(&self, text: &str, range: Range<usize>) -> Option<Range<usize>> {
        let candidate = &text[range.clone()];
        match self.kind {
            Kind::Email => {
                // `\nbob@example.com` inside JSON text: the escape's letter is no part of it.
                let start = if escaped_at(text, range.start) {
                    range.start + 1
                } else {
                    range.start
                };
                (start < range.end && bounded_after(text, range.end)).then_some(start..range.end)
            }
            Kind::Phone => {
                let digits = candidate.bytes().filter(u8::is_ascii_digit).count();
                ((7..=15).contains(&digits) && bounded(text, &range, true)).then_some(range)
            }
            Kind::CreditCard => {
                let ok =
                    bounded(text, &range, true) && !separator_mix(candidate) && luhn(candidate);
                ok.then_some(range)
            }
            Kind::Ipv4 => {
                let octets_ok = candidate
                    .split('.')
                    .all(|octet| octet.parse::<u16>().is_ok_and(|value| value <= 255));
                (octets_ok && bounded(text, &range, true)).then_some(range)
            }
            Kind::Ipv6 | Kind::Ipv6Full => ipv6(text, range),
            Kind::Secret => {
                let needs_boundary = candidate.starts_with("sk")
                    || candidate.starts_with("rk")
                    || candidate.starts_with('B')
                    || candidate.starts_with('b');
                (!needs_boundary || bounded_before(text, range.start)).then_some(range)
            }
        }
    }
}

/// The searcher for `::`, built once: building one for each value cost more than searching.
fn double_colon() -> &'static memchr::memmem::Finder<'static> {
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    FINDER.get_or_init(|| memchr::memmem::Finder::new(b"::"))
}

/// Whether the byte before `at` ends a JSON or C escape (`\n`, `\t`, …) whose letter is at `at`.
fn escaped_at(text: &str, at: usize) -> bool {
    at >= 1 && text.as_bytes()[at - 1] == b'\\'
}

/// Whether `start` begins a word: text start, a byte that is no letter, digit or `_`, or the
/// letter of an escape such as `\n`.
fn bounded_before(text: &str, start: usize) -> bool {
    let bytes = text.as_bytes();
    match start.checked_sub(1).map(|before| bytes[before]) {
        None => true,
        Some(byte) if !(byte.is_ascii_alphanumeric() || byte == b'_') => true,
        Some(letter) => {
            matches!(letter, b'n' | b't' | b'r' | b'b' | b'f') && escaped_at(text, start - 1)
        }
    }
}

/// Whether `end` ends a word.
fn bounded_after(text: &str, end: usize) -> bool {
    text.as_bytes()
        .get(end)
        .is_none_or(|&byte| !(byte.is_ascii_alphanumeric() || byte == b'_'))
}

/// Word boundaries on both sides; for numbers, also not part of a longer number (`1.5`, `-3`,
/// `10:30`, a UUID's groups).
fn bounded(text: &str, range: &Range<usize>, number: bool) -> bool {
    if !(bounded_before(text, range.start) && bounded_after(text, range.end)) {
        return false;
    }
    if !number {
        return true;
    }
    let bytes = text.as_bytes();
    // `-` joins the groups of an identifier (a UUID), `.`, `:` and `/` the parts of a number
    // (a decimal, a time, a date): `mc:5555…` is a label, `10:5555…` a longer number.
    let joins = |separator: Option<&u8>, neighbour: Option<&u8>| match (separator, neighbour) {
        (Some(b'-'), Some(neighbour)) => neighbour.is_ascii_alphanumeric(),
        (Some(b'.' | b':' | b'/'), Some(neighbour)) => neighbour.is_ascii_digit(),
        _ => false,
    };
    let before = range.start.checked_sub(1).and_then(|at| bytes.get(at));
    let two_before = range.start.checked_sub(2).and_then(|at| bytes.get(at));
    !(joins(before, two_before) || joins(bytes.get(range.end), bytes.get(range.end + 1)))
}

/// Whether a card candidate mixes spaces and dashes (never written so; more likely two numbers).
fn separator_mix(candidate: &str) -> bool {
    candidate.contains(' ') && candidate.contains('-')
}

/// The Luhn checksum of the digits of `candidate`, which holds 13 to 19 of them.
pub fn luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(position, &digit)| {
            if position % 2 == 1 {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// An IPv6 address within a candidate of hex digits, colons and dots: what
/// [`std::net::Ipv6Addr`] parses, with at least three groups and a digit (so that `a::b` in
/// code is left alone), between boundaries.
fn ipv6(text: &str, range: Range<usize>) -> Option<Range<usize>> {
    let candidate = &text[range.clone()];
    // A trailing `:` or `.` ends a sentence or a label, it is no part of the address.
    let trimmed = candidate.trim_end_matches(['.']);
    let trimmed = if trimmed.ends_with(':') && !trimmed.ends_with("::") {
        trimmed.trim_end_matches(':')
    } else {
        trimmed
    };
    let end = range.start + trimmed.len();
    let groups = trimmed.split(':').filter(|group| !group.is_empty()).count();
    let parses = trimmed.parse::<std::net::Ipv6Addr>().is_ok();
    let has_digit = trimmed.bytes().any(|byte| byte.is_ascii_digit());
    (parses && groups >= 3 && has_digit && bounded(text, &(range.start..end), false))
        .then_some(range.start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_compiles() {
        for name in DETECTORS {
            assert!(Detector::named(name).is_some_and(|detectors| !detectors.is_empty()));
        }
        assert!(Detector::named("ssn").is_none());
    }

    #[test]
    fn luhn_accepts_test_cards_only() {
        assert!(luhn("4111 1111 1111 1111"));
        assert!(luhn("5500-0000-0000-0004"));
        assert!(luhn("378282246310005"));
        assert!(!luhn("4111 1111 1111 1112"));
        assert!(!luhn("1234"));
    }
}
