//! Checks a GGUF file's header before candle parses it.
//!
//! candle's reader trusts several header fields: an alignment of 0 divides by zero, tensor dimensions whose
//! product overflows `usize` panic (or wrap, in release builds) when a tensor is read, and metadata arrays are
//! materialised as `Value`s of 32 bytes per element. [`check_header`] walks the header bytes once, without
//! allocating per value, and rejects anything that would make candle panic, abort or allocate far beyond
//! the file's size: unknown value types, lengths beyond the end of the file, more array elements than any
//! model carries, more than 4 dimensions, dimension products that overflow, tensors whose data lies outside
//! the file, empty tensors, and an alignment that is not a power of two. It follows the checks of llama.cpp's `gguf.cpp`.

use std::collections::HashSet;

use candle_core::quantized::GgmlDType;

use crate::error::ggml_type_name;

/// At most this many tensors (llama.cpp's largest models have a few thousand).
pub const MAX_TENSORS: u64 = 1 << 20;
/// At most this many metadata entries.
pub const MAX_METADATA_ENTRIES: u64 = 1 << 20;
/// At most this many array elements in all metadata together (a 262k vocabulary with scores, types and
/// merges is about 1.3 million); each becomes a 32-byte value in memory.
pub const MAX_METADATA_ELEMENTS: u64 = 1 << 23;
/// Arrays of arrays nest at most this deep.
const MAX_NESTING: usize = 16;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: u32 = 4;

/// What is wrong with a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderProblem {
    /// A structural problem, described.
    Invalid(String),
    /// A tensor uses a ggml type that candle cannot read.
    UnsupportedType {
        /// The tensor.
        tensor: String,
        /// ggml's type id.
        type_id: u32,
    },
}

fn invalid(message: impl Into<String>) -> HeaderProblem {
    HeaderProblem::Invalid(message.into())
}

/// Block size (elements) and block bytes of the ggml types candle reads.
fn block_layout(type_id: u32) -> Option<(u64, u64)> {
    let dtype = match type_id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        30 => GgmlDType::BF16,
        _ => return None,
    };
    Some((dtype.block_size() as u64, dtype.type_size() as u64))
}

/// GGUF metadata value types (`gguf_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueType {
    Fixed(u64),
    String,
    Array,
}

fn value_type(id: u32) -> Option<ValueType> {
    Some(match id {
        0 | 1 | 7 => ValueType::Fixed(1),
        2 | 3 => ValueType::Fixed(2),
        4..=6 => ValueType::Fixed(4),
        10..=12 => ValueType::Fixed(8),
        8 => ValueType::String,
        9 => ValueType::Array,
        _ => return None,
    })
}

/// A cursor over the header bytes; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Version 1 files use 32-bit lengths and dimensions.
    v1: bool,
    /// Array elements seen so far.
    elements: u64,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], HeaderProblem> {
        if n > self.remaining() {
            return Err(invalid(format!(
                "{what} needs {n} bytes at offset {}, but the file ends after {} more",
                self.pos,
                self.remaining()
            )));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn u32(&mut self, what: &str) -> Result<u32, HeaderProblem> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, HeaderProblem> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length or count: 32 bits in version 1, 64 bits after.
    fn length(&mut self, what: &str) -> Result<u64, HeaderProblem> {
        if self.v1 {
            self.u32(what).map(u64::from)
        } else {
            self.u64(what)
        }
    }

    fn string(&mut self, what: &str) -> Result<&'a [u8], HeaderProblem> {
        let len = self.length(what)?;
        self.take(len, what)
    }

    fn value(
        &mut self,
        type_id: u32,
        key: &str,
        depth: usize,
    ) -> Result<Option<u64>, HeaderProblem> {
        let Some(kind) = value_type(type_id) else {
            return Err(invalid(format!(
                "metadata key '{key}' has unknown value type {type_id}"
            )));
        };
        match kind {
            ValueType::Fixed(size) => {
                let b = self.take(size, &format!("metadata key '{key}'"))?;
                // Integers are kept for `general.alignment`.
                Ok(match type_id {
                    0 => Some(u64::from(b[0])),
                    2 => Some(u64::from(u16::from_le_bytes([b[0], b[1]]))),
                    4 => Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
                    _ => None,
                })
            }
            ValueType::String => {
                self.string(&format!("string of metadata key '{key}'"))?;
                Ok(None)
            }
            ValueType::Array => {
                if depth >= MAX_NESTING {
                    return Err(invalid(format!(
                        "metadata key '{key}' nests arrays more than {MAX_NESTING} deep"
                    )));
                }
                let elem_type = self.u32(&format!("array type of metadata key '{key}'"))?;
                let len = self.length(&format!("array length of metadata key '{key}'"))?;
                self.elements = self.elements.saturating_add(len);
                if self.elements > MAX_METADATA_ELEMENTS {
                    return Err(invalid(format!(
                        "metadata key '{key}' is an array of {len} elements; all arrays together may hold at most \
                         {MAX_METADATA_ELEMENTS}"
                    )));
                }
                match value_type(elem_type) {
                    Some(ValueType::Fixed(size)) => {
                        let bytes = len.saturating_mul(size);
                        self.take(
                            bytes,
                            &format!("array of metadata key '{key}' ({len} elements)"),
                        )?;
                    }
                    Some(_) => {
                        for _ in 0..len {
                            self.value(elem_type, key, depth + 1)?;
                        }
                    }
                    None => {
                        return Err(invalid(format!(
                            "metadata key '{key}' is an array of unknown value type {elem_type}"
                        )))
                    }
                }
                Ok(None)
            }
        }
    }
}

/// One tensor's data range, relative to the start of the data section.
struct TensorExtent {
    name: String,
    offset: u64,
    bytes: u64,
}

/// Checks the header of the GGUF file `bytes` (the whole file).
pub fn check_header(bytes: &[u8]) -> Result<(), HeaderProblem> {
    let mut c = Cursor {
        bytes,
        pos: 0,
        v1: false,
        elements: 0,
    };
    let magic = c.take(4, "the magic number")?;
    if magic != b"GGUF" {
        return Err(invalid(format!(
            "the file does not start with GGUF (found {magic:02x?})"
        )));
    }
    let version = c.u32("the version")?;
    if !(1..=3).contains(&version) {
        return Err(invalid(format!(
            "GGUF version {version} is not supported (1 to 3 are)"
        )));
    }
    c.v1 = version == 1;
    let tensor_count = c.length("the tensor count")?;
    let kv_count = c.length("the metadata count")?;
    if tensor_count > MAX_TENSORS {
        return Err(invalid(format!(
            "the header declares {tensor_count} tensors (at most {MAX_TENSORS} are accepted)"
        )));
    }
    if kv_count > MAX_METADATA_ENTRIES {
        return Err(invalid(format!(
            "the header declares {kv_count} metadata entries (at most {MAX_METADATA_ENTRIES} are accepted)"
        )));
    }
    let mut alignment = 32u64;
    for _ in 0..kv_count {
        let key = c.string("a metadata key")?;
        let key = String::from_utf8_lossy(key).into_owned();
        let type_id = c.u32(&format!("the value type of metadata key '{key}'"))?;
        let value = c.value(type_id, &key, 0)?;
        if key == "general.alignment" {
            alignment = match value {
                Some(a) if a > 0 && a.is_power_of_two() => a,
                Some(a) => {
                    return Err(invalid(format!(
                        "general.alignment is {a}; it must be a power of two"
                    )))
                }
                None => {
                    return Err(invalid(
                        "general.alignment must be an unsigned integer of 8, 16 or 32 bits",
                    ))
                }
            };
        }
    }
    let mut names = HashSet::new();
    let mut extents = Vec::new();
    for _ in 0..tensor_count {
        let name = String::from_utf8_lossy(c.string("a tensor name")?).into_owned();
        let n_dims = c.u32(&format!("the dimension count of tensor '{name}'"))?;
        if n_dims > MAX_DIMS {
            return Err(invalid(format!(
                "tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})"
            )));
        }
        let mut elements = 1u64;
        let mut dims = Vec::new();
        for _ in 0..n_dims {
            let d = c.length(&format!("a dimension of tensor '{name}'"))?;
            dims.push(d);
            if d == 0 {
                // candle reads an empty tensor through a dangling, misaligned pointer.
                return Err(invalid(format!(
                    "tensor '{name}' has a dimension of 0 ({dims:?})"
                )));
            }
            elements = elements
                .checked_mul(d)
                .filter(|&e| e <= i64::MAX as u64 && usize::try_from(e).is_ok())
                .ok_or_else(|| {
                    invalid(format!(
                        "tensor '{name}' has dimensions {dims:?} whose product overflows"
                    ))
                })?;
        }
        let type_id = c.u32(&format!("the type of tensor '{name}'"))?;
        let offset = c.u64(&format!("the data offset of tensor '{name}'"))?;
        let Some((block, block_bytes)) = block_layout(type_id) else {
            return Err(HeaderProblem::UnsupportedType {
                tensor: name,
                type_id,
            });
        };
        if !elements.is_multiple_of(block) || dims.first().is_some_and(|d| !d.is_multiple_of(block))
        {
            return Err(invalid(format!(
                "tensor '{name}' has dimensions {dims:?}, but its type {} stores rows in blocks of {block}",
                ggml_type_name(type_id)
            )));
        }
        let size = (elements / block)
            .checked_mul(block_bytes)
            .ok_or_else(|| invalid(format!("the size of tensor '{name}' overflows")))?;
        if !offset.is_multiple_of(alignment) {
            return Err(invalid(format!(
                "tensor '{name}' starts at data offset {offset}, not a multiple of the alignment {alignment}"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(format!("tensor '{name}' is declared twice")));
        }
        extents.push(TensorExtent {
            name,
            offset,
            bytes: size,
        });
    }
    let header_end = c.pos as u64;
    let data_start = header_end.div_ceil(alignment) * alignment;
    let file_len = bytes.len() as u64;
    for t in extents {
        let end = data_start
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(t.bytes));
        match end {
            Some(end) if end <= file_len => {}
            _ => {
                return Err(invalid(format!(
                    "tensor '{}' needs {} bytes at data offset {} (file offset {}), past the end of the \
                     {file_len}-byte file",
                    t.name,
                    t.bytes,
                    t.offset,
                    data_start.saturating_add(t.offset)
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u32, tensors: u64, kvs: u64) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend(version.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b
    }

    #[test]
    fn an_empty_file_and_foreign_magic_are_refused() {
        assert!(check_header(b"").is_err());
        assert!(check_header(b"GGML\x03\0\0\0").is_err());
        assert_eq!(check_header(&header(3, 0, 0)), Ok(()));
        assert!(check_header(&header(4, 0, 0)).is_err());
    }

    #[test]
    fn counts_beyond_the_caps_are_refused_before_reading_on() {
        let err = check_header(&header(3, u64::MAX, 0)).unwrap_err();
        assert!(format!("{err:?}").contains("tensors"), "{err:?}");
        let err = check_header(&header(3, 0, 1 << 40)).unwrap_err();
        assert!(format!("{err:?}").contains("metadata entries"), "{err:?}");
    }

    #[test]
    fn fixed_size_arrays_are_skipped_without_reading_each_element() {
        let mut b = header(3, 0, 1);
        b.extend(3u64.to_le_bytes());
        b.extend(b"arr");
        b.extend(9u32.to_le_bytes());
        b.extend(4u32.to_le_bytes());
        b.extend(2u64.to_le_bytes());
        b.extend([0u8; 8]);
        assert_eq!(check_header(&b), Ok(()));
        b.pop();
        assert!(check_header(&b).is_err());
    }
}
