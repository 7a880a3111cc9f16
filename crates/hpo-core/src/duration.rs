//! Durations a user writes (`"90s"`, `"10m"`, `"2h 30m"`): one parser for every setting and
//! flag, with an upper bound so no timer or deadline computed from one can overflow.

use std::time::Duration;

/// The longest duration hpo accepts: 100 years. Longer ones are an error, not "forever":
/// leave the setting out for no limit.
pub const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000); // humantime's 100 years

/// A duration that could not be read; the message says what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a duration at all.
    #[error("`{text}` is not a duration like \"90s\" or \"10m\": {reason}")]
    Syntax {
        /// What was written.
        text: String,
        /// The parser's reason.
        reason: String,
    },
    /// Longer than [`MAX_DURATION`].
    #[error("`{0}` is longer than hpo can wait (at most 100 years); leave it out for no limit")]
    TooLong(String),
}

/// Parses a duration like `"5s"`, `"10m"` or `"1h 30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let d = humantime::parse_duration(text)
        .map_err(|e| DurationError::Syntax { text: text.to_owned(), reason: e.to_string() })?;
    if d > MAX_DURATION {
        return Err(DurationError::TooLong(text.to_owned()));
    }
    Ok(d)
}

/// Serde helpers for a `Duration` written as text (`#[serde(with = "hpo_core::duration_text")]`).
pub mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration as humantime text (`"1h 30m"`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// Reads a duration with [`super::parse_duration`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// The same for an optional duration (`#[serde(default, with = "hpo_core::optional_duration_text")]`).
pub mod optional_duration_text {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    /// Writes the duration as humantime text, or nothing.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration_text::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Reads a duration with [`super::parse_duration`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration_text::deserialize(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_the_too_long_ones_are_refused() {
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("100years").map(|d| d <= MAX_DURATION), Ok(true));
        for text in ["18446744073709551615s", "101years", "99999999999999d"] {
            let e = parse_duration(text).unwrap_err().to_string();
            assert!(e.contains("at most 100 years") || e.contains("not a duration"), "{text}: {e}");
        }
        assert!(parse_duration("ten minutes").unwrap_err().to_string().contains("not a duration like"));
    }
}
