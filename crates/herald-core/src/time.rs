//! RFC 3339 timestamps without a date crate.
//!
//! Conversions between unix milliseconds and civil UTC dates use the
//! days-from-civil / civil-from-days algorithms on the proleptic Gregorian
//! calendar.

const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 }; // March-based month [0, 11]
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Civil date `(year, month, day)` for a number of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
}

fn split(unix_ms: i64) -> Parts {
    let days = unix_ms.div_euclid(MS_PER_DAY);
    let rem = unix_ms.rem_euclid(MS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    Parts {
        year,
        month,
        day,
        hour: rem / 3_600_000,
        minute: rem / 60_000 % 60,
        second: rem / 1000 % 60,
        millis: rem % 1000,
    }
}

/// Formats unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_rfc3339_ms(unix_ms: i64) -> String {
    let p = split(unix_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis
    )
}

/// Formats unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (sub-second part
/// dropped, rounding towards the past).
pub fn format_rfc3339_secs(unix_ms: i64) -> String {
    let p = split(unix_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        p.year, p.month, p.day, p.hour, p.minute, p.second
    )
}

/// Reads exactly `n` ASCII digits starting at `*pos`.
fn digits(b: &[u8], pos: &mut usize, n: usize) -> Option<i64> {
    let slice = b.get(*pos..*pos + n)?;
    let mut v = 0i64;
    for &c in slice {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + i64::from(c - b'0');
    }
    *pos += n;
    Some(v)
}

fn expect(b: &[u8], pos: &mut usize, allowed: &[u8]) -> Option<u8> {
    let c = *b.get(*pos)?;
    if allowed.contains(&c) {
        *pos += 1;
        Some(c)
    } else {
        None
    }
}

/// Parses an RFC 3339 timestamp (or a plain `YYYY-MM-DD` date, taken as
/// midnight UTC) into unix milliseconds. Fractions beyond milliseconds are
/// truncated. Returns `None` for malformed input or out-of-range fields.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut pos = 0;
    let year = digits(b, &mut pos, 4)?;
    expect(b, &mut pos, b"-")?;
    let month = digits(b, &mut pos, 2)? as u32;
    expect(b, &mut pos, b"-")?;
    let day = digits(b, &mut pos, 2)? as u32;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let date_ms = days_from_civil(year, month, day) * MS_PER_DAY;
    if pos == b.len() {
        return Some(date_ms);
    }
    expect(b, &mut pos, b"Tt ")?;
    let hour = digits(b, &mut pos, 2)?;
    expect(b, &mut pos, b":")?;
    let minute = digits(b, &mut pos, 2)?;
    expect(b, &mut pos, b":")?;
    let second = digits(b, &mut pos, 2)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut millis = 0i64;
    if expect(b, &mut pos, b".").is_some() {
        let start = pos;
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            if pos - start < 3 {
                millis = millis * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        let n = pos - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_ms = match expect(b, &mut pos, b"Zz+-")? {
        b'Z' | b'z' => 0,
        sign => {
            let oh = digits(b, &mut pos, 2)?;
            expect(b, &mut pos, b":")?;
            let om = digits(b, &mut pos, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = (oh * 60 + om) * 60_000;
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
    };
    if pos != b.len() {
        return None;
    }
    let time_ms = ((hour * 60 + minute) * 60 + second) * 1000 + millis;
    Some(date_ms + time_ms - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_614_265_330_000),
            "2021-02-25T15:02:10.000Z"
        );
        assert_eq!(
            format_rfc3339_ms(1_614_265_330_123),
            "2021-02-25T15:02:10.123Z"
        );
        assert_eq!(
            format_rfc3339_secs(1_614_265_330_999),
            "2021-02-25T15:02:10Z"
        );
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_rfc3339_ms(253_402_300_799_999),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn parse_cases() {
        let cases: &[(&str, Option<i64>)] = &[
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1970-01-01", Some(0)),
            ("2021-02-25T15:02:10Z", Some(1_614_265_330_000)),
            ("2021-02-25t15:02:10z", Some(1_614_265_330_000)),
            ("2021-02-25 15:02:10Z", Some(1_614_265_330_000)),
            ("2021-02-25T15:02:10.1Z", Some(1_614_265_330_100)),
            ("2021-02-25T15:02:10.123456789Z", Some(1_614_265_330_123)),
            ("2021-02-25T17:02:10+02:00", Some(1_614_265_330_000)),
            ("2021-02-25T10:32:10.5-04:30", Some(1_614_265_330_500)),
            ("2024-02-29T00:00:00Z", Some(1_709_164_800_000)),
            ("2000-02-29", Some(951_782_400_000)),
            ("2023-02-29T00:00:00Z", None),
            ("1900-02-29", None),
            ("2021-13-01T00:00:00Z", None),
            ("2021-00-01T00:00:00Z", None),
            ("2021-04-31T00:00:00Z", None),
            ("2021-02-25T24:00:00Z", None),
            ("2021-02-25T15:60:00Z", None),
            ("2021-02-25T15:02:60Z", None),
            ("2021-02-25T15:02:10", None),
            ("2021-02-25T15:02:10.Z", None),
            ("2021-02-25T15:02:10+24:00", None),
            ("2021-02-25T15:02:10+02:60", None),
            ("2021-02-25T15:02:10+0200", None),
            ("2021-02-25T15:02:10Zx", None),
            ("2021-2-25", None),
            ("", None),
            ("not a date", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_rfc3339(input), *want, "input {input:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(ms in 0i64..=253_402_300_799_999) {
            prop_assert_eq!(parse_rfc3339(&format_rfc3339_ms(ms)), Some(ms));
            prop_assert_eq!(parse_rfc3339(&format_rfc3339_secs(ms)), Some(ms - ms % 1000));
        }
    }
}
