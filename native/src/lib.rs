//! The compiled kernels of the per-record hot path, each the twin of a Python reference
//! (named in its doc comment) that `tests/test_kernels.py` holds it equal to.
//!
//! Every kernel reads Arrow or numpy buffers in place (the buffer protocol), releases the GIL
//! while it works, and gives back flat little-endian arrays as `bytes`, which the Python side
//! wraps without a copy (`transforms.kernels`).

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

mod avro;
mod csv;
mod rules;

/// The bytes of a C-contiguous buffer, borrowed for as long as the buffer is held.
pub(crate) fn bytes_of(buffer: &PyBuffer<u8>) -> &[u8] {
    if buffer.len_bytes() == 0 {
        return &[];
    }
    // SAFETY: the buffer stays exported (and so alive and unmoved) while `buffer` lives, and
    // PyBuffer<u8> checked that its items are bytes; callers never write through it
    unsafe { std::slice::from_raw_parts(buffer.buf_ptr() as *const u8, buffer.len_bytes()) }
}

/// A string (or binary) Arrow array: its offsets buffer, data buffer, offset and length.
pub(crate) struct Strings<'a> {
    offsets: &'a [u8],
    data: &'a [u8],
    offset: usize,
    len: usize,
}

impl<'a> Strings<'a> {
    pub(crate) fn new(offsets: &'a [u8], data: &'a [u8], offset: usize, len: usize) -> Self {
        Strings { offsets, data, offset, len }
    }

    fn at(&self, index: usize) -> usize {
        let at = 4 * (self.offset + index);
        i32::from_le_bytes(self.offsets[at..at + 4].try_into().unwrap()) as usize
    }

    pub(crate) fn value(&self, index: usize) -> &'a [u8] {
        &self.data[self.at(index)..self.at(index + 1)]
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// An Arrow string array as Python passes it: (offsets, data, offset, length).
pub(crate) type StringArg = (PyBuffer<u8>, PyBuffer<u8>, usize, usize);

pub(crate) fn strings(arg: &StringArg) -> Strings<'_> {
    Strings::new(bytes_of(&arg.0), bytes_of(&arg.1), arg.2, arg.3)
}

pub(crate) fn i64s(raw: &[u8]) -> impl Iterator<Item = i64> + '_ {
    raw.chunks_exact(8).map(|word| i64::from_le_bytes(word.try_into().unwrap()))
}

pub(crate) fn le_bytes<const N: usize, T>(values: &[T], each: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * N);
    for value in values {
        out.extend_from_slice(&each(value));
    }
    out
}

pub(crate) fn bools(values: Vec<bool>) -> Vec<u8> {
    values.into_iter().map(u8::from).collect()
}

/// A hasher that passes a key already hashed through (the keys are SipHash values).
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys")
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Twin of `transforms.keys.KeyIndex`: the keys seen so far in one vacation, as 64-bit
/// SipHash values of their parts (each part length-prefixed, so ("ab", "c") is not ("a", "bc")).
#[pyclass(module = "cre_native")]
#[derive(Default)]
struct KeyIndex {
    seen: HashSet<u64, BuildHasherDefault<Identity>>,
}

#[pymethods]
impl KeyIndex {
    #[new]
    fn new() -> Self {
        KeyIndex::default()
    }

    /// Per record, whether its key was seen before (a key with an empty part never is):
    /// one byte per record, 1 for a duplicate.
    fn mark<'py>(&mut self, py: Python<'py>, columns: Vec<StringArg>) -> Bound<'py, PyBytes> {
        let parts: Vec<Strings> = columns.iter().map(strings).collect();
        let seen = &mut self.seen;
        let marks = py.allow_threads(|| {
            let rows = parts.first().map_or(0, |part| part.len());
            let mut marks = vec![0u8; rows];
            for (row, mark) in marks.iter_mut().enumerate() {
                if parts.iter().any(|part| part.value(row).is_empty()) {
                    continue;
                }
                // SipHash with fixed keys: the same hash for the same key in every process
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                for part in &parts {
                    let value = part.value(row);
                    hasher.write_u64(value.len() as u64);
                    hasher.write(value);
                }
                *mark = u8::from(!seen.insert(hasher.finish()));
            }
            marks
        });
        PyBytes::new(py, &marks)
    }

    fn __len__(&self) -> usize {
        self.seen.len()
    }
}

#[pymodule]
fn cre_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<KeyIndex>()?;
    csv::register(module)?;
    rules::register(module)?;
    avro::register(module)?;
    Ok(())
}
