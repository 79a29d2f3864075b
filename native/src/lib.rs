//! The compiled kernels of the per-record hot path, each the twin of a Python reference
//! (named in its doc comment) that `tests/test_kernels.py` holds it equal to.
//!
//! Every kernel reads Arrow or numpy buffers in place (the buffer protocol), releases the GIL
//! while it works, and gives back flat little-endian arrays as `bytes`, which the Python side
//! wraps without a copy (`transforms.kernels`).

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::hash::Hasher;

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

/// 64-bit key hashes in an open-addressing table with linear probing: one cache line touched
/// per insert, and the slots of the next keys prefetched while this one is placed, so that a
/// table far larger than the caches costs little more than one that fits.
struct Hashes {
    slots: Vec<u64>, // 0: empty (a hash of 0 is stored as 1)
    len: usize,
}

const PREFETCH_AHEAD: usize = 8;

impl Hashes {
    fn new() -> Self {
        Hashes { slots: vec![0; 1 << 16], len: 0 }
    }

    fn slot(&self, hash: u64) -> usize {
        // the high bits: SipHash's are as good as its low ones, and they index the table
        (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.slots.len().trailing_zeros())) as usize
    }

    fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch is a hint; the address is inside the table
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch(self.slots.as_ptr().add(self.slot(hash)) as *const i8, _MM_HINT_T0);
        }
    }

    /// Whether `hash` is new (and now kept).
    fn insert(&mut self, hash: u64) -> bool {
        let hash = hash.max(1);
        if (self.len + 1) * 10 > self.slots.len() * 7 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut index = self.slot(hash);
        loop {
            match self.slots[index] {
                0 => {
                    self.slots[index] = hash;
                    self.len += 1;
                    return true;
                }
                seen if seen == hash => return false,
                _ => index = (index + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let doubled = vec![0; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.len = 0;
        for hash in old.into_iter().filter(|&hash| hash != 0) {
            self.insert(hash);
        }
    }
}

/// Twin of `transforms.keys.KeyIndex`: the keys seen so far in one vacation, as 64-bit
/// SipHash values of their parts (each part length-prefixed, so ("ab", "c") is not ("a", "bc")).
#[pyclass(module = "cre_native")]
struct KeyIndex {
    seen: Hashes,
}

#[pymethods]
impl KeyIndex {
    #[new]
    fn new() -> Self {
        KeyIndex { seen: Hashes::new() }
    }

    /// Per record, whether its key was seen before (a key with an empty part never is):
    /// one byte per record, 1 for a duplicate.
    fn mark<'py>(&mut self, py: Python<'py>, columns: Vec<StringArg>) -> Bound<'py, PyBytes> {
        let parts: Vec<Strings> = columns.iter().map(strings).collect();
        let seen = &mut self.seen;
        let marks = py.allow_threads(|| {
            let rows = parts.first().map_or(0, |part| part.len());
            let hashes: Vec<Option<u64>> = (0..rows)
                .map(|row| {
                    if parts.iter().any(|part| part.value(row).is_empty()) {
                        return None;
                    }
                    // SipHash with fixed keys: the same hash for the same key in every process
                    let mut hasher = std::collections::hash_map::DefaultHasher::new();
                    for part in &parts {
                        let value = part.value(row);
                        hasher.write_u64(value.len() as u64);
                        hasher.write(value);
                    }
                    Some(hasher.finish())
                })
                .collect();
            let mut marks = vec![0u8; rows];
            for (row, hash) in hashes.iter().enumerate() {
                if let Some(Some(ahead)) = hashes.get(row + PREFETCH_AHEAD) {
                    seen.prefetch(*ahead);
                }
                if let Some(hash) = hash {
                    marks[row] = u8::from(!seen.insert(*hash));
                }
            }
            marks
        });
        PyBytes::new(py, &marks)
    }

    fn __len__(&self) -> usize {
        self.seen.len
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
