//! Timestamps in JSON answers, written as chrono writes them (RFC 3339 in UTC with `Z`, and 0, 3,
//! 6 or 9 digits of fraction, as few as say it exactly) without going through `fmt`: chrono's
//! `Serialize` cost ~2,600 instructions a timestamp, about 5% of a `GET /v1/files/{id}`, and a
//! page of 50 files has 100 of them.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// The longest a timestamp is written here: `2026-12-04T03:49:20.133765123Z`.
pub const TEXT_BYTES: usize = 30;

/// For `#[serde(serialize_with = "crate::timestamps::serialize")]`.
pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buffer = [0u8; TEXT_BYTES];
    match write(at, &mut buffer) {
        Some(len) => serializer.serialize_str(std::str::from_utf8(&buffer[..len]).expect("ASCII digits")),
        // Years before 0 or after 9999: chrono's own form (a sign and more digits).
        None => serde::Serialize::serialize(at, serializer),
    }
}

/// For an optional timestamp (`null` when absent).
pub fn serialize_option<S: Serializer>(at: &Option<DateTime<Utc>>, serializer: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// Writes `at` into `out` and gives its length, or `None` for a year of other than four digits.
fn write(at: &DateTime<Utc>, out: &mut [u8; TEXT_BYTES]) -> Option<usize> {
    let (mut text, nanos) = Text::to_the_second(at, out)?;
    if nanos != 0 {
        text.byte(b'.');
        if nanos % 1_000_000 == 0 {
            text.digits(nanos / 1_000_000, 3);
        } else if nanos % 1_000 == 0 {
            text.digits(nanos / 1_000, 6);
        } else {
            text.digits(nanos, 9);
        }
    }
    text.byte(b'Z');
    Some(text.len)
}

/// `at` with six digits of fraction whatever they are (`2026-12-04T03:49:20.133765Z`), as
/// tracing-subscriber writes its lines' times; `None` for a year of other than four digits.
pub fn write_micros<'a>(at: &DateTime<Utc>, out: &'a mut [u8; TEXT_BYTES]) -> Option<&'a str> {
    let (mut text, nanos) = Text::to_the_second(at, out)?;
    text.byte(b'.');
    text.digits(nanos / 1_000, 6);
    text.byte(b'Z');
    let len = text.len;
    Some(std::str::from_utf8(&out[..len]).expect("ASCII digits and separators"))
}

struct Text<'a> {
    out: &'a mut [u8; TEXT_BYTES],
    len: usize,
}

impl<'a> Text<'a> {
    /// `at` up to its seconds, and the nanoseconds past them.
    fn to_the_second(at: &DateTime<Utc>, out: &'a mut [u8; TEXT_BYTES]) -> Option<(Self, u32)> {
        // In UTC already: each field read of a `DateTime` would add its offset to it again.
        let at = at.naive_utc();
        let year = at.year();
        if !(0..=9999).contains(&year) {
            return None;
        }
        let (mut second, mut nanos) = (at.second(), at.nanosecond());
        // A leap second: chrono keeps it as nanoseconds past 10⁹ in the second before, and writes `:60`.
        if nanos >= 1_000_000_000 {
            second += 1;
            nanos -= 1_000_000_000;
        }
        let mut text = Text { out, len: 0 };
        text.digits(year as u32, 4);
        text.byte(b'-');
        text.digits(at.month(), 2);
        text.byte(b'-');
        text.digits(at.day(), 2);
        text.byte(b'T');
        text.digits(at.hour(), 2);
        text.byte(b':');
        text.digits(at.minute(), 2);
        text.byte(b':');
        text.digits(second, 2);
        Some((text, nanos))
    }

    fn byte(&mut self, byte: u8) {
        self.out[self.len] = byte;
        self.len += 1;
    }

    /// `value`'s last `count` decimal digits, with leading zeros.
    fn digits(&mut self, mut value: u32, count: usize) {
        for place in (self.len..self.len + count).rev() {
            self.out[place] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.len += count;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    #[derive(serde::Serialize)]
    struct Optional(#[serde(serialize_with = "serialize_option")] Option<DateTime<Utc>>);

    fn same_as_chrono(at: DateTime<Utc>) {
        assert_eq!(serde_json::to_string(&Ours(at)).unwrap(), serde_json::to_string(&at).unwrap(), "{at:?}");
    }

    #[test]
    fn writes_what_chrono_writes() {
        let base = Utc.with_ymd_and_hms(2026, 12, 3, 7, 23, 18).unwrap();
        for nanos in [0, 471_000_000, 1_000_000, 999_000_000, 471_123_000, 1_000, 471_123_456, 1, 999_999_999]
        {
            same_as_chrono(base + chrono::Duration::nanoseconds(nanos));
        }
        for (y, mo, d, h, mi, s) in
            [(0, 1, 1, 0, 0, 0), (9999, 12, 31, 23, 59, 59), (1970, 1, 1, 0, 0, 0), (2000, 2, 29, 12, 5, 9)]
        {
            same_as_chrono(Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap());
        }
        // Outside four digits of year, chrono writes its own form.
        same_as_chrono(Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap());
        same_as_chrono(Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap());
        // A leap second.
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        same_as_chrono(Utc.from_utc_datetime(&leap));
    }

    #[test]
    fn an_absent_timestamp_is_null() {
        assert_eq!(serde_json::to_string(&Optional(None)).unwrap(), "null");
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(serde_json::to_string(&Optional(Some(at))).unwrap(), "\"2026-01-02T03:04:05Z\"");
    }
}
