//! Tensor names: one logical name per weight, spelled the way each checkpoint
//! format spells it (GGUF `blk.0.attn_q.weight`, HF
//! `model.layers.0.self_attn.q_proj.weight`).

/// A weight inside one decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerWeight {
    /// Norm before attention.
    AttnNorm,
    /// Query projection.
    Q,
    /// Key projection.
    K,
    /// Value projection.
    V,
    /// Fused query/key/value projection (Phi-3).
    Qkv,
    /// Attention output projection.
    O,
    /// Norm before the feed-forward block.
    FfnNorm,
    /// Gate projection.
    Gate,
    /// Up projection.
    Up,
    /// Fused gate/up projection (Phi-3).
    GateUp,
    /// Down projection.
    Down,
}

/// A logical weight of a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightName {
    /// Token embeddings.
    TokenEmbedding,
    /// Final norm.
    OutputNorm,
    /// Output (language-model head) projection.
    Output,
    /// A weight of layer `i`.
    Layer(usize, LayerWeight),
}

impl WeightName {
    /// The HF module path (no `.weight` suffix): the name PEFT adapters use.
    pub fn hf_module(&self) -> String {
        use LayerWeight::*;
        match self {
            Self::TokenEmbedding => "model.embed_tokens".into(),
            Self::OutputNorm => "model.norm".into(),
            Self::Output => "lm_head".into(),
            Self::Layer(i, w) => {
                let leaf = match w {
                    AttnNorm => "input_layernorm",
                    Q => "self_attn.q_proj",
                    K => "self_attn.k_proj",
                    V => "self_attn.v_proj",
                    Qkv => "self_attn.qkv_proj",
                    O => "self_attn.o_proj",
                    FfnNorm => "post_attention_layernorm",
                    Gate => "mlp.gate_proj",
                    Up => "mlp.up_proj",
                    GateUp => "mlp.gate_up_proj",
                    Down => "mlp.down_proj",
                };
                format!("model.layers.{i}.{leaf}")
            }
        }
    }

    /// The GGUF tensor name prefix (no `.weight` suffix).
    pub fn gguf_prefix(&self) -> String {
        use LayerWeight::*;
        match self {
            Self::TokenEmbedding => "token_embd".into(),
            Self::OutputNorm => "output_norm".into(),
            Self::Output => "output".into(),
            Self::Layer(i, w) => {
                let leaf = match w {
                    AttnNorm => "attn_norm",
                    Q => "attn_q",
                    K => "attn_k",
                    V => "attn_v",
                    Qkv => "attn_qkv",
                    O => "attn_output",
                    FfnNorm => "ffn_norm",
                    Gate => "ffn_gate",
                    Up | GateUp => "ffn_up",
                    Down => "ffn_down",
                };
                format!("blk.{i}.{leaf}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_both_conventions() {
        let n = WeightName::Layer(3, LayerWeight::O);
        assert_eq!(n.hf_module(), "model.layers.3.self_attn.o_proj");
        assert_eq!(n.gguf_prefix(), "blk.3.attn_output");
        assert_eq!(WeightName::Output.gguf_prefix(), "output");
    }
}
