//! The record rules of spec 1.3 that the reference checks with regular expressions and numpy
//! arithmetic (`transforms.rules`): one pass per column, no allocation per value.

use crate::{bools, le_bytes, strings, StringArg, Strings};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

fn per_value<'py, T: Send>(
    py: Python<'py>,
    column: &StringArg,
    check: impl Fn(&[u8]) -> T + Send + Sync,
) -> Vec<T> {
    let values: Strings = strings(column);
    py.allow_threads(|| (0..values.len()).map(|row| check(values.value(row))).collect())
}

/// Twin of `not_matching("^[set]{least,most}$")`: 1 where the value is not `least` to `most`
/// bytes all in `allowed` (a 256-byte table, non-zero for an allowed byte).
#[pyfunction]
fn outside_charset<'py>(
    py: Python<'py>,
    column: StringArg,
    allowed: [u8; 256],
    least: usize,
    most: usize,
) -> Bound<'py, PyBytes> {
    let bad = per_value(py, &column, |value| {
        value.len() < least || value.len() > most || value.iter().any(|&byte| allowed[byte as usize] == 0)
    });
    PyBytes::new(py, &bools(bad))
}

fn digits(value: &[u8]) -> bool {
    value.iter().all(u8::is_ascii_digit)
}

/// Twin of `not_matching(contract.DECIMAL_PATTERN)`: `^-?[0-9]{1,16}(\.[0-9]{1,2})?$`.
#[pyfunction]
fn not_decimal<'py>(py: Python<'py>, column: StringArg) -> Bound<'py, PyBytes> {
    let bad = per_value(py, &column, |value| {
        let unsigned = value.strip_prefix(b"-").unwrap_or(value);
        let (whole, fraction) = match unsigned.iter().position(|&byte| byte == b'.') {
            Some(dot) => (&unsigned[..dot], Some(&unsigned[dot + 1..])),
            None => (unsigned, None),
        };
        let whole_ok = (1..=16).contains(&whole.len()) && digits(whole);
        let fraction_ok = fraction.map_or(true, |part| (1..=2).contains(&part.len()) && digits(part));
        !(whole_ok && fraction_ok)
    });
    PyBytes::new(py, &bools(bad))
}

/// Twin of `longer_than(most)` (`pc.utf8_length`): 1 where the value has more than `most`
/// characters (the values are valid UTF-8: bytes that do not continue a character count).
#[pyfunction]
fn longer_than<'py>(py: Python<'py>, column: StringArg, most: usize) -> Bound<'py, PyBytes> {
    let bad = per_value(py, &column, |value| {
        value.len() > most && value.iter().filter(|&&byte| byte & 0xC0 != 0x80).count() > most
    });
    PyBytes::new(py, &bools(bad))
}

fn number(text: &[u8]) -> i64 {
    text.iter().fold(0, |value, &digit| value * 10 + i64::from(digit - b'0'))
}

fn shaped(text: &[u8], shape: &[u8]) -> bool {
    text.len() == shape.len()
        && text.iter().zip(shape).all(|(&byte, &want)| match want {
            b'9' => byte.is_ascii_digit(),
            _ => byte == want,
        })
}

/// Days since 1970-01-01 of YYYY-MM-DD, when it is a real (proleptic Gregorian) date.
fn real_date(text: &[u8]) -> Option<i64> {
    if !shaped(text, b"9999-99-99") {
        return None;
    }
    let (year, month, day) = (number(&text[0..4]), number(&text[5..7]), number(&text[8..10]));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let most = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=most).contains(&day) {
        return None;
    }
    // H. Hinnant's days_from_civil, as the reference's `_epoch_days`
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146097 + day_of_era - 719468)
}

/// Twin of `parse_date`: days since the epoch (int32) and whether each value is a real date.
#[pyfunction]
fn parse_date<'py>(py: Python<'py>, column: StringArg) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
    let parsed = per_value(py, &column, real_date);
    let days = le_bytes(&parsed, |value| (value.unwrap_or(0) as i32).to_le_bytes());
    let valid = bools(parsed.iter().map(Option::is_some).collect());
    (PyBytes::new(py, &days), PyBytes::new(py, &valid))
}

/// Microseconds since the epoch of an ISO 8601 timestamp with offset (`_TIMESTAMP_SHAPE`).
fn timestamp(text: &[u8]) -> Option<i64> {
    if text.len() < 20 || !shaped(&text[..19], b"9999-99-99T99:99:99") {
        return None;
    }
    let days = real_date(&text[..10])?;
    let (hour, minute, second) = (number(&text[11..13]), number(&text[14..16]), number(&text[17..19]));
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    let mut micros = 0i64;
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|byte| byte.is_ascii_digit()).count();
        if !(1..=6).contains(&count) {
            return None;
        }
        micros = number(&fraction[..count]) * 10i64.pow(6 - count as u32);
        rest = &fraction[count..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), ..] if shaped(&rest[1..], b"99:99") => {
            let (hours, minutes) = (number(&rest[1..3]), number(&rest[4..6]));
            if hours > 14 || minutes > 59 {
                return None;
            }
            (hours * 3600 + minutes * 60) * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    let seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset;
    Some(seconds * 1_000_000 + micros)
}

/// Twin of `parse_timestamp`: microseconds since the epoch, UTC (int64), and whether each
/// value is an ISO 8601 timestamp with offset.
#[pyfunction]
fn parse_timestamp<'py>(
    py: Python<'py>,
    column: StringArg,
) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
    let parsed = per_value(py, &column, timestamp);
    let micros = le_bytes(&parsed, |value| value.unwrap_or(0).to_le_bytes());
    let valid = bools(parsed.iter().map(Option::is_some).collect());
    (PyBytes::new(py, &micros), PyBytes::new(py, &valid))
}

/// Twin of `bad_iban`: 1 where a present value is not `^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$` or
/// fails ISO 13616's check (the first four characters moved to the end, letters read as two
/// digits, the number's remainder by 97 must be 1).
#[pyfunction]
fn bad_iban<'py>(py: Python<'py>, column: StringArg) -> Bound<'py, PyBytes> {
    let bad = per_value(py, &column, |value| {
        if value.is_empty() {
            return false;
        }
        let shaped = (15..=34).contains(&value.len())
            && value[..2].iter().all(u8::is_ascii_uppercase)
            && digits(&value[2..4])
            && value[4..].iter().all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit());
        if !shaped {
            return true;
        }
        let remainder = value[4..].iter().chain(&value[..4]).fold(0u32, |rest, &byte| {
            if byte.is_ascii_uppercase() {
                (rest * 100 + u32::from(byte - 55)) % 97
            } else {
                (rest * 10 + u32::from(byte - b'0')) % 97
            }
        });
        remainder != 1
    });
    PyBytes::new(py, &bools(bad))
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(outside_charset, module)?)?;
    module.add_function(wrap_pyfunction!(not_decimal, module)?)?;
    module.add_function(wrap_pyfunction!(longer_than, module)?)?;
    module.add_function(wrap_pyfunction!(parse_date, module)?)?;
    module.add_function(wrap_pyfunction!(parse_timestamp, module)?)?;
    module.add_function(wrap_pyfunction!(bad_iban, module)?)?;
    Ok(())
}
