//! Times on the command line: RFC 3339, a date, or a duration back from now (`24h`, `7d`).

use chrono::{DateTime, NaiveDate, Utc};

/// Parses `--since` / `--until` values, relative to `now`.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let amount: i64 = number.parse().map_err(|_| invalid(text))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(invalid(text)),
    };
    let delta = chrono::Duration::try_seconds(amount.saturating_mul(seconds))
        .ok_or_else(|| invalid(text))?;
    now.checked_sub_signed(delta).ok_or_else(|| invalid(text))
}

fn invalid(text: &str) -> String {
    format!(
        "invalid time '{text}': use RFC 3339 (2024-05-01T12:00:00Z), a date (2024-05-01) or an age (30m, 24h, 7d)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_and_relative_times() {
        let now = DateTime::parse_from_rfc3339("2024-05-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_time("24h", now).unwrap().to_rfc3339(),
            "2024-05-09T12:00:00+00:00"
        );
        assert_eq!(
            parse_time("2024-05-01", now).unwrap().to_rfc3339(),
            "2024-05-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_time("2024-05-01T01:00:00+01:00", now)
                .unwrap()
                .to_rfc3339(),
            "2024-05-01T00:00:00+00:00"
        );
        assert!(parse_time("soon", now).is_err());
        assert!(parse_time("99999999999999d", now).is_err());
    }
}
