//! Operator reports. Dates are UTC calendar days, converted with the civil-calendar algorithm
//! (days since 1970-01-01 ↔ year-month-day), exact for any date.

/// `YYYY-MM-DD` for a count of days since the unix epoch.
pub fn date_of_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since the unix epoch for `YYYY-MM-DD`, if it is a real date.
pub fn day_of_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (date_of_day(days) == format!("{year:04}-{month:02}-{day:02}")).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_dates_convert_both_ways() {
        assert_eq!(date_of_day(0), "1970-01-01");
        assert_eq!(date_of_day(20_778), "2026-11-21");
        assert_eq!(day_of_date("2026-11-21"), Some(20_778));
        assert_eq!(day_of_date("2024-02-29"), Some(19_782));
        assert_eq!(day_of_date("2025-02-29"), None);
        assert_eq!(day_of_date("2026-13-01"), None);
        assert_eq!(day_of_date("yesterday"), None);
    }
}
