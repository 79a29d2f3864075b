//! Avro binary records (spec 1.11) of a whole block at once: twin of
//! `io_connectors.avro_blocks.AvroBlockEncoder`, fed the Arrow buffers of its columns.

use crate::{bytes_of, Strings};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// How one field is written, as `transforms.kernels.avro_field` describes it.
enum Encoding<'a> {
    /// bytes already encoded, the same in every row (a constant field)
    Constant(&'a [u8]),
    /// a string or bytes: its length as a long, then its bytes
    Text(Strings<'a>),
    /// a long from int64 values, or from int32 values (dates, enum indexes)
    Long64(&'a [u8], usize),
    Long32(&'a [u8], usize),
    /// the low `size` bytes, big-endian, of decimal128 values (Avro decimal on fixed)
    Fixed(&'a [u8], usize, usize),
}

struct Field<'a> {
    encoding: Encoding<'a>,
    /// for a `["null", T]` union: the validity bitmap and the array's offset
    validity: Option<(&'a [u8], usize)>,
    nullable: bool,
}

fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut encoded = ((value << 1) ^ (value >> 63)) as u64;
    while encoded >= 0x80 {
        out.push((encoded as u8) | 0x80);
        encoded >>= 7;
    }
    out.push(encoded as u8);
}

fn word<const N: usize>(raw: &[u8], index: usize) -> [u8; N] {
    raw[index * N..index * N + N].try_into().unwrap()
}

impl Field<'_> {
    fn write(&self, out: &mut Vec<u8>, row: usize) {
        if self.nullable {
            let valid = self.validity.map_or(true, |(bitmap, offset)| {
                let bit = offset + row;
                bitmap[bit / 8] >> (bit % 8) & 1 == 1
            });
            write_long(out, i64::from(valid));
            if !valid {
                return;
            }
        }
        match &self.encoding {
            Encoding::Constant(bytes) => out.extend_from_slice(bytes),
            Encoding::Text(values) => {
                let value = values.value(row);
                write_long(out, value.len() as i64);
                out.extend_from_slice(value);
            }
            Encoding::Long64(raw, offset) => write_long(out, i64::from_le_bytes(word(raw, offset + row))),
            Encoding::Long32(raw, offset) => {
                write_long(out, i64::from(i32::from_le_bytes(word(raw, offset + row))))
            }
            Encoding::Fixed(raw, offset, size) => {
                let low = i64::from_le_bytes(word::<16>(raw, offset + row)[..8].try_into().unwrap());
                out.extend_from_slice(&low.to_be_bytes()[8 - size..]);
            }
        }
    }
}

/// One field as Python describes it: (kind, nullable, validity bitmap or None, offset,
/// first buffer, second buffer, size). Kinds: "constant" (first: the encoded bytes), "text"
/// (offsets, data), "long64", "long32" (values), "fixed" (decimal128 values; size: bytes kept).
type FieldArg = (String, bool, Option<PyBuffer<u8>>, usize, PyBuffer<u8>, Option<PyBuffer<u8>>, usize);

fn field<'a>(arg: &'a FieldArg, rows: usize) -> PyResult<Field<'a>> {
    let (kind, nullable, validity, offset, first, second, size) = arg;
    let first = bytes_of(first);
    let encoding = match kind.as_str() {
        "constant" => Encoding::Constant(first),
        "text" => Encoding::Text(Strings::new(first, second.as_ref().map_or(&[], bytes_of), *offset, rows)),
        "long64" => Encoding::Long64(first, *offset),
        "long32" => Encoding::Long32(first, *offset),
        "fixed" if (1..=8).contains(size) => Encoding::Fixed(first, *offset, *size),
        _ => return Err(PyValueError::new_err(format!("no encoding {kind:?} of size {size}"))),
    };
    Ok(Field { encoding, validity: validity.as_ref().map(|bitmap| (bytes_of(bitmap), *offset)), nullable: *nullable })
}

/// The Avro binary records of `rows` rows, row after row, field after field.
#[pyfunction]
fn encode_block<'py>(py: Python<'py>, fields: Vec<FieldArg>, rows: usize) -> PyResult<Bound<'py, PyBytes>> {
    let fields = fields.iter().map(|arg| field(arg, rows)).collect::<PyResult<Vec<_>>>()?;
    let block = py.allow_threads(|| {
        let mut out = Vec::with_capacity(rows * 96);
        for row in 0..rows {
            for field in &fields {
                field.write(&mut out, row);
            }
        }
        out
    });
    Ok(PyBytes::new(py, &block))
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(encode_block, module)?)?;
    Ok(())
}
