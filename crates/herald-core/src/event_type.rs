//! Event type names and subscription filters.
//!
//! An event type is 1 to 128 characters of `[A-Za-z0-9._:/-]`. A filter is
//! `*` (everything), an exact type, or a prefix followed by `.*`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Maximum length of an event type in characters.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// Why an event type or filter was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    /// The value is empty.
    #[error("event type must not be empty")]
    Empty,
    /// The value is longer than 128 characters.
    #[error("event type must be at most 128 characters")]
    TooLong,
    /// The value contains a character outside `[A-Za-z0-9._:/-]`.
    #[error(
        "event type contains invalid character {0:?}; allowed are letters, digits and . _ : / -"
    )]
    InvalidChar(char),
}

/// A validated event type name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventType(String);

fn allowed_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
}

fn check_type(s: &str) -> Result<(), EventTypeError> {
    if s.is_empty() {
        return Err(EventTypeError::Empty);
    }
    if let Some(c) = s.chars().find(|&c| !allowed_char(c)) {
        return Err(EventTypeError::InvalidChar(c));
    }
    // Every allowed char is ASCII, so bytes == chars here.
    if s.len() > MAX_EVENT_TYPE_LEN {
        return Err(EventTypeError::TooLong);
    }
    Ok(())
}

impl EventType {
    /// Validates an event type name.
    pub fn parse(s: &str) -> Result<EventType, EventTypeError> {
        check_type(s)?;
        Ok(EventType(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EventType {
    type Error = EventTypeError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        check_type(&s)?;
        Ok(EventType(s))
    }
}

impl From<EventType> for String {
    fn from(t: EventType) -> String {
        t.0
    }
}

/// Whether `event_type` passes a subscription's filters. An empty list or a
/// `*` entry matches everything; `prefix.*` matches types starting with
/// `prefix.`; any other entry must match exactly.
pub fn filter_matches(filters: &[String], event_type: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|f| {
            if f == "*" {
                return true;
            }
            match f.strip_suffix('*') {
                Some(prefix) if prefix.ends_with('.') => {
                    event_type.len() > prefix.len() && event_type.starts_with(prefix)
                }
                _ => f == event_type,
            }
        })
}

/// Whether an operational event (`endpoint.failing`, `delivery.failed`, …) passes a subscription's
/// filters. Only a filter that names it does (exactly or by prefix): the match-everything forms (`*`, an
/// empty list) mean "all of my events", not Herald's alerts about the endpoints.
pub fn filter_names(filters: &[String], event_type: &str) -> bool {
    let named: Vec<String> = filters.iter().filter(|f| *f != "*").cloned().collect();
    !named.is_empty() && filter_matches(&named, event_type)
}

/// Validates a filter: `*`, a valid event type, or a valid event type
/// followed by `.*`.
pub fn validate_filter(s: &str) -> Result<(), EventTypeError> {
    if s == "*" {
        return Ok(());
    }
    check_type(s.strip_suffix(".*").unwrap_or(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cases() {
        let max = "a".repeat(128);
        let over = "a".repeat(129);
        let cases: &[(&str, Result<(), EventTypeError>)] = &[
            ("invoice.paid", Ok(())),
            ("user:created/v2", Ok(())),
            ("A-b_c.D", Ok(())),
            ("x", Ok(())),
            (&max, Ok(())),
            ("", Err(EventTypeError::Empty)),
            (&over, Err(EventTypeError::TooLong)),
            ("has space", Err(EventTypeError::InvalidChar(' '))),
            ("wild.*", Err(EventTypeError::InvalidChar('*'))),
            ("caf\u{e9}", Err(EventTypeError::InvalidChar('\u{e9}'))),
        ];
        for (input, want) in cases {
            let got = EventType::parse(input);
            let unit = got.as_ref().map(|_| ()).map_err(Clone::clone);
            assert_eq!(unit, *want, "{input}");
            if let Ok(t) = got {
                assert_eq!(t.as_str(), *input);
            }
        }
        let t: EventType = serde_json::from_str("\"a.b\"").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"a.b\"");
        assert!(serde_json::from_str::<EventType>("\"a b\"").is_err());
    }

    #[test]
    fn matching() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], "anything", true),
            (&["*"], "invoice.paid", true),
            (&["invoice.paid"], "invoice.paid", true),
            (&["invoice.paid"], "invoice.paid.late", false),
            (&["invoice.*"], "invoice.paid", true),
            (&["invoice.*"], "invoice.paid.late", true),
            (&["invoice.*"], "invoicex", false),
            (&["invoice.*"], "invoice", false),
            (&["invoice.*"], "invoice.", false),
            (&["invoice.*"], "invoices.paid", false),
            (&["user.created", "invoice.*"], "user.created", true),
            (&["user.created", "invoice.*"], "user.deleted", false),
            (&["a.b.*"], "a.b.c", true),
            (&["a.b.*"], "a.bc", false),
        ];
        for (filters, ty, want) in cases {
            assert_eq!(filter_matches(&f(filters), ty), *want, "{filters:?} {ty}");
        }
    }

    #[test]
    fn filter_validation() {
        let cases: &[(&str, bool)] = &[
            ("*", true),
            ("invoice.*", true),
            ("invoice.paid", true),
            ("a:b/c-d_e.*", true),
            ("", false),
            (".*", false),
            ("*.*", false),
            ("invoice*", false),
            ("invoice.**", false),
            ("in voice.*", false),
        ];
        for (input, ok) in cases {
            assert_eq!(validate_filter(input).is_ok(), *ok, "{input}");
        }
    }

    #[test]
    fn operational_events_go_only_where_they_are_named() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(!filter_names(&f(&[]), "endpoint.failing"));
        assert!(!filter_names(&f(&["*"]), "endpoint.failing"));
        assert!(filter_names(&f(&["*", "endpoint.*"]), "endpoint.failing"));
        assert!(filter_names(&f(&["delivery.failed"]), "delivery.failed"));
        assert!(!filter_names(&f(&["order.*"]), "endpoint.failing"));
    }
}
