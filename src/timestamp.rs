//! Epoch seconds, the only timestamp form the application reads, and the
//! repair of the ISO text that the old generator wrote instead.

use std::time::SystemTime;

use rusqlite::types::Value;

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The instant a stored timestamp means, whatever form it was stored in.
pub fn epoch_seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(i) => Some(*i),
        Value::Real(f) if f.is_finite() => Some(f.trunc() as i64),
        Value::Text(text) => text.trim().parse().ok().or_else(|| parse_iso8601(text)),
        _ => None,
    }
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|±HH[:]MM]`. Python's
/// `datetime.isoformat()` has no zone; it is read as UTC.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = match text.find(['T', ' ']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let seconds_of_day = match time {
        Some(time) => parse_time(time)?,
        None => 0,
    };
    Some(days_from_civil(year, month, day) * 86_400 + seconds_of_day)
}

fn parse_time(time: &str) -> Option<i64> {
    let (clock, offset) = split_offset(time)?;
    let mut parts = clock.splitn(3, ':');
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let second: i64 = match parts.next() {
        Some(s) => s.split('.').next()?.parse().ok()?,
        None => 0,
    };
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(hour * 3600 + minute * 60 + second - offset)
}

/// The clock part and the zone offset in seconds east of UTC.
fn split_offset(time: &str) -> Option<(&str, i64)> {
    if let Some(clock) = time.strip_suffix('Z') {
        return Some((clock, 0));
    }
    let Some(i) = time.rfind(['+', '-']) else {
        return Some((time, 0));
    };
    let sign = if time[i..].starts_with('-') { -1 } else { 1 };
    let zone: String = time[i + 1..].chars().filter(|c| *c != ':').collect();
    if zone.len() != 4 {
        return None;
    }
    let hours: i64 = zone[..2].parse().ok()?;
    let minutes: i64 = zone[2..].parse().ok()?;
    Some((&time[..i], sign * (hours * 3600 + minutes * 60)))
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_isoformat_is_read_as_utc() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00"), Some(0));
        assert_eq!(
            parse_iso8601("2024-05-01T12:34:56.789012"),
            Some(1_714_566_896)
        );
        assert_eq!(parse_iso8601("2024-05-01 12:34:56"), Some(1_714_566_896));
        assert_eq!(parse_iso8601("2000-02-29"), Some(951_782_400));
    }

    #[test]
    fn zones_are_applied() {
        assert_eq!(
            parse_iso8601("2024-05-01T14:34:56+02:00"),
            Some(1_714_566_896)
        );
        assert_eq!(parse_iso8601("2024-05-01T12:34:56Z"), Some(1_714_566_896));
        assert_eq!(
            parse_iso8601("2024-05-01T07:34:56-0500"),
            Some(1_714_566_896)
        );
    }

    #[test]
    fn garbage_is_not_a_time() {
        assert_eq!(parse_iso8601("yesterday"), None);
        assert_eq!(parse_iso8601("2024-13-01"), None);
        assert_eq!(parse_iso8601("2024-05-01T25:00"), None);
    }

    #[test]
    fn stored_forms_are_all_understood() {
        assert_eq!(epoch_seconds(&Value::Integer(5)), Some(5));
        assert_eq!(epoch_seconds(&Value::Real(5.9)), Some(5));
        assert_eq!(epoch_seconds(&Value::Text("17".into())), Some(17));
        assert_eq!(
            epoch_seconds(&Value::Text("1970-01-02".into())),
            Some(86_400)
        );
        assert_eq!(epoch_seconds(&Value::Null), None);
    }
}
