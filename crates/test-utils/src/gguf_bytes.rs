//! GGUF files written byte by byte, so tests can craft headers no writer would produce: an alignment of 0,
//! dimensions whose product overflows, a `block_count` of 2^40, lengths beyond the end of the file.

/// GGUF metadata value type ids (`gguf_type`).
pub mod value_type {
    /// `uint32`.
    pub const U32: u32 = 4;
    /// `float32`.
    pub const F32: u32 = 6;
    /// `string`.
    pub const STRING: u32 = 8;
    /// `array`.
    pub const ARRAY: u32 = 9;
    /// `uint64`.
    pub const U64: u32 = 10;
}

/// ggml type id of `F32` tensors.
pub const GGML_F32: u32 = 0;

/// A GGUF (version 3) file under construction: metadata and tensor records are appended as raw bytes.
#[derive(Debug, Clone, Default)]
pub struct GgufBytes {
    kv_count: u64,
    kv: Vec<u8>,
    tensor_count: u64,
    tensors: Vec<u8>,
    /// Counts written into the header instead of the real ones, when set.
    pub declared_counts: Option<(u64, u64)>,
}

fn string_bytes(s: &[u8]) -> Vec<u8> {
    let mut b = (s.len() as u64).to_le_bytes().to_vec();
    b.extend(s);
    b
}

impl GgufBytes {
    /// An empty file (no metadata, no tensors).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a metadata entry whose value (after the type id) is `value`, as raw bytes.
    pub fn raw_kv(mut self, key: &str, type_id: u32, value: &[u8]) -> Self {
        self.kv.extend(string_bytes(key.as_bytes()));
        self.kv.extend(type_id.to_le_bytes());
        self.kv.extend(value);
        self.kv_count += 1;
        self
    }

    /// Appends a `uint32` entry.
    pub fn u32(self, key: &str, v: u32) -> Self {
        self.raw_kv(key, value_type::U32, &v.to_le_bytes())
    }

    /// Appends a `uint64` entry.
    pub fn u64(self, key: &str, v: u64) -> Self {
        self.raw_kv(key, value_type::U64, &v.to_le_bytes())
    }

    /// Appends a `float32` entry.
    pub fn f32(self, key: &str, v: f32) -> Self {
        self.raw_kv(key, value_type::F32, &v.to_le_bytes())
    }

    /// Appends a `string` entry.
    pub fn string(self, key: &str, v: &str) -> Self {
        self.raw_kv(key, value_type::STRING, &string_bytes(v.as_bytes()))
    }

    /// Appends a string array entry.
    pub fn strings(self, key: &str, items: &[&str]) -> Self {
        let mut b = value_type::STRING.to_le_bytes().to_vec();
        b.extend((items.len() as u64).to_le_bytes());
        for s in items {
            b.extend(string_bytes(s.as_bytes()));
        }
        self.raw_kv(key, value_type::ARRAY, &b)
    }

    /// Appends a tensor record: `dims` innermost first (GGUF order), ggml `type_id`, data `offset`.
    pub fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Self {
        self.tensors.extend(string_bytes(name.as_bytes()));
        self.tensors.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            self.tensors.extend(d.to_le_bytes());
        }
        self.tensors.extend(type_id.to_le_bytes());
        self.tensors.extend(offset.to_le_bytes());
        self.tensor_count += 1;
        self
    }

    /// The file: header, padding to 32 bytes, then `data`.
    pub fn build(&self, data: &[u8]) -> Vec<u8> {
        let (tensors, kvs) = self
            .declared_counts
            .unwrap_or((self.tensor_count, self.kv_count));
        let mut b = b"GGUF".to_vec();
        b.extend(3u32.to_le_bytes());
        b.extend(tensors.to_le_bytes());
        b.extend(kvs.to_le_bytes());
        b.extend(&self.kv);
        b.extend(&self.tensors);
        b.resize(b.len().div_ceil(32) * 32, 0);
        b.extend(data);
        b
    }
}

/// A complete, loadable llama model of one layer (hidden 8, 2 heads, vocabulary 16, F32, a SentencePiece
/// vocabulary of single letters), with the metadata
/// entries in `overrides` replacing (by key) the model's own; each value is `(type id, raw bytes)`.
pub fn tiny_llama_bytes(overrides: &[(&str, u32, Vec<u8>)]) -> Vec<u8> {
    let (hidden, ffn, vocab) = (8u64, 16u64, 16u64);
    let mut md: Vec<(String, u32, Vec<u8>)> = vec![
        (
            "general.architecture".into(),
            value_type::STRING,
            string_bytes(b"llama"),
        ),
        (
            "llama.block_count".into(),
            value_type::U32,
            1u32.to_le_bytes().to_vec(),
        ),
        (
            "llama.context_length".into(),
            value_type::U32,
            64u32.to_le_bytes().to_vec(),
        ),
        (
            "llama.embedding_length".into(),
            value_type::U32,
            (hidden as u32).to_le_bytes().to_vec(),
        ),
        (
            "llama.feed_forward_length".into(),
            value_type::U32,
            (ffn as u32).to_le_bytes().to_vec(),
        ),
        (
            "llama.attention.head_count".into(),
            value_type::U32,
            2u32.to_le_bytes().to_vec(),
        ),
    ];
    for (key, t, v) in overrides {
        md.retain(|(k, _, _)| k != key);
        md.push((key.to_string(), *t, v.clone()));
    }
    let mut g = GgufBytes::new()
        .string("tokenizer.ggml.model", "llama")
        .strings(
            "tokenizer.ggml.tokens",
            &[
                "<unk>", "<s>", "</s>", "▁", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k",
                "l",
            ],
        );
    for (k, t, v) in &md {
        g = g.raw_kv(k, *t, v);
    }
    let tensors: Vec<(&str, Vec<u64>)> = vec![
        ("token_embd.weight", vec![hidden, vocab]),
        ("output_norm.weight", vec![hidden]),
        ("blk.0.attn_norm.weight", vec![hidden]),
        ("blk.0.ffn_norm.weight", vec![hidden]),
        ("blk.0.attn_q.weight", vec![hidden, hidden]),
        ("blk.0.attn_k.weight", vec![hidden, hidden]),
        ("blk.0.attn_v.weight", vec![hidden, hidden]),
        ("blk.0.attn_output.weight", vec![hidden, hidden]),
        ("blk.0.ffn_gate.weight", vec![hidden, ffn]),
        ("blk.0.ffn_up.weight", vec![hidden, ffn]),
        ("blk.0.ffn_down.weight", vec![ffn, hidden]),
    ];
    let mut data = Vec::new();
    for (name, dims) in &tensors {
        let offset = data.len() as u64;
        g = g.tensor(name, dims, GGML_F32, offset);
        let n: u64 = dims.iter().product();
        for i in 0..n {
            data.extend((0.01 * (i % 7) as f32 + 0.5).to_le_bytes());
        }
        data.resize(data.len().div_ceil(32) * 32, 0);
    }
    g.build(&data)
}
