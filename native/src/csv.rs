//! Records and fields of a CSV member (spec 1.3): twins of `transforms.csv_records`.

use crate::{bytes_of, i64s, le_bytes};
use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const QUOTE: u8 = b'"';
const LF: u8 = b'\n';
const CR: u8 = b'\r';
const SEMI: u8 = b';';

/// Twin of `_record_ends`: the offset just past each line feed that ends a record (an even
/// count of quotes before it), as int64.
#[pyfunction]
fn record_ends<'py>(py: Python<'py>, buffer: PyBuffer<u8>) -> Bound<'py, PyBytes> {
    let data = bytes_of(&buffer);
    let ends = py.allow_threads(|| {
        let mut ends: Vec<i64> = Vec::with_capacity(data.len() / 64);
        let mut quoted = false;
        for index in memchr::memchr2_iter(QUOTE, LF, data) {
            if data[index] == QUOTE {
                quoted = !quoted;
            } else if !quoted {
                ends.push(index as i64 + 1);
            }
        }
        ends
    });
    PyBytes::new(py, &le_bytes(&ends, |value| value.to_le_bytes()))
}

/// Twin of `RecordSplitter._batch`'s line count: for each record start (all of `starts` but
/// the last), the line feeds before it (int64); and the line feeds of the whole batch.
#[pyfunction]
fn line_feeds_before<'py>(
    py: Python<'py>,
    buffer: PyBuffer<u8>,
    starts: PyBuffer<u8>,
) -> (Bound<'py, PyBytes>, i64) {
    let (data, starts) = (bytes_of(&buffer), bytes_of(&starts));
    let (before, total) = py.allow_threads(|| {
        let starts: Vec<i64> = i64s(starts).collect();
        let mut before = Vec::with_capacity(starts.len().saturating_sub(1));
        let mut count = 0i64;
        let mut position = 0usize;
        for &start in &starts[..starts.len().saturating_sub(1)] {
            let start = start as usize;
            count += memchr::memchr_iter(LF, &data[position..start]).count() as i64;
            position = start;
            before.push(count);
        }
        count += memchr::memchr_iter(LF, &data[position..]).count() as i64;
        (before, count)
    });
    (PyBytes::new(py, &le_bytes(&before, |value| value.to_le_bytes())), total)
}

/// Twin of `BatchParser.parse`'s first checks: per record (int8) 1 when it is not UTF-8, else
/// 2 when its count of `;` outside quotes is not `columns - 1`, else 0. Quotes are counted
/// from the batch's start, as the reference does.
#[pyfunction]
fn record_codes<'py>(
    py: Python<'py>,
    buffer: PyBuffer<u8>,
    starts: PyBuffer<u8>,
    columns: usize,
) -> Bound<'py, PyBytes> {
    let (data, starts) = (bytes_of(&buffer), bytes_of(&starts));
    let codes = py.allow_threads(|| {
        let starts: Vec<usize> = i64s(starts).map(|start| start as usize).collect();
        let mut codes = Vec::with_capacity(starts.len().saturating_sub(1));
        let mut quoted = false;
        for bounds in starts.windows(2) {
            let record = &data[bounds[0]..bounds[1]];
            let delimiters = if !quoted && memchr::memchr(QUOTE, record).is_none() {
                memchr::memchr_iter(SEMI, record).count()
            } else {
                let mut delimiters = 0usize;
                for index in memchr::memchr2_iter(QUOTE, SEMI, record) {
                    if record[index] == QUOTE {
                        quoted = !quoted;
                    } else if !quoted {
                        delimiters += 1;
                    }
                }
                delimiters
            };
            codes.push(if std::str::from_utf8(record).is_err() {
                1i8
            } else if delimiters + 1 != columns {
                2
            } else {
                0
            });
        }
        codes
    });
    PyBytes::new(py, &le_bytes(&codes, |value| value.to_le_bytes()))
}

/// One column being built: Arrow string offsets (int32) and data.
struct Column {
    offsets: Vec<i32>,
    data: Vec<u8>,
}

/// The fields of one record without its line end, or None when it holds anything on which
/// Arrow's CSV parser and Python's csv module may read it differently (a quote inside an
/// unquoted field or after a closing quote, an unclosed quote, a carriage return outside
/// quotes, another count of fields): the caller then parses the batch the reference's way.
fn split_record(record: &[u8], columns: &mut [Column]) -> Option<()> {
    if memchr::memchr3(QUOTE, CR, LF, record).is_none() {
        return split_plain(record, columns);
    }
    let mut position = 0usize;
    let mut field = 0usize;
    loop {
        let column = columns.get_mut(field)?;
        if record.get(position) == Some(&QUOTE) {
            position += 1;
            loop {
                match record.get(position) {
                    None => return None,
                    Some(&QUOTE) if record.get(position + 1) == Some(&QUOTE) => {
                        column.data.push(QUOTE);
                        position += 2;
                    }
                    Some(&QUOTE) => {
                        position += 1;
                        break;
                    }
                    Some(&byte) => {
                        column.data.push(byte);
                        position += 1;
                    }
                }
            }
        } else {
            let start = position;
            while let Some(&byte) = record.get(position) {
                match byte {
                    SEMI => break,
                    QUOTE | CR | LF => return None,
                    _ => position += 1,
                }
            }
            column.data.extend_from_slice(&record[start..position]);
        }
        column.offsets.push(i32::try_from(column.data.len()).ok()?);
        field += 1;
        match record.get(position) {
            None => return (field == columns.len()).then_some(()),
            Some(&SEMI) => position += 1,
            Some(_) => return None,
        }
    }
}

/// `split_record` of a record with no quote and no line break: its fields are what lies
/// between the semicolons.
fn split_plain(record: &[u8], columns: &mut [Column]) -> Option<()> {
    let mut start = 0usize;
    let mut fields = columns.iter_mut();
    for end in memchr::memchr_iter(SEMI, record).chain(std::iter::once(record.len())) {
        let column = fields.next()?;
        column.data.extend_from_slice(&record[start..end]);
        column.offsets.push(i32::try_from(column.data.len()).ok()?);
        start = end + 1;
    }
    fields.next().is_none().then_some(())
}

/// Twin of `BatchParser._fields` (Arrow's CSV parser): the fields of the records `good`
/// (int64 indexes), one (offsets, data) pair per column; None when the batch must be parsed
/// the reference's way (see `split_record`).
#[pyfunction]
fn split_fields<'py>(
    py: Python<'py>,
    buffer: PyBuffer<u8>,
    starts: PyBuffer<u8>,
    good: PyBuffer<u8>,
    columns: usize,
) -> Option<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
    let (data, starts, good) = (bytes_of(&buffer), bytes_of(&starts), bytes_of(&good));
    let built = py.allow_threads(|| {
        let starts: Vec<usize> = i64s(starts).map(|start| start as usize).collect();
        let rows = good.len() / 8;
        let mut built: Vec<Column> = (0..columns)
            .map(|_| {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Column { offsets, data: Vec::with_capacity(data.len() / columns.max(1)) }
            })
            .collect();
        for index in i64s(good) {
            let index = index as usize;
            let mut record = &data[starts[index]..starts[index + 1]];
            if let Some(rest) = record.strip_suffix(b"\n") {
                record = rest.strip_suffix(b"\r").unwrap_or(rest);
            }
            split_record(record, &mut built)?;
        }
        Some(built)
    })?;
    Some(
        built
            .iter()
            .map(|column| {
                let offsets = le_bytes(&column.offsets, |value| value.to_le_bytes());
                (PyBytes::new(py, &offsets), PyBytes::new(py, &column.data))
            })
            .collect(),
    )
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(record_ends, module)?)?;
    module.add_function(wrap_pyfunction!(line_feeds_before, module)?)?;
    module.add_function(wrap_pyfunction!(record_codes, module)?)?;
    module.add_function(wrap_pyfunction!(split_fields, module)?)?;
    Ok(())
}
