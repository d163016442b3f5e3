"""Regenerates tiny-spm.gguf and tiny-spm-llamacpp.json (reference data for
tests/llamacpp_spm.rs).

tiny-spm.gguf is a vocabulary-only GGUF ("llama" SentencePiece tokenizer, 1200 pieces,
byte fallback, user-defined <tool> and <|im_end|>) trained with sentencepiece on a small
corpus; tiny-spm-llamacpp.json holds llama.cpp's own tokenization of random texts with
it. Needs: pip install sentencepiece gguf numpy, and llama-cpp-python (its llama.cpp is
the reference). Usage: python make_tiny_spm.py CORPUS.txt
"""
import json
import random
import sys

import gguf
import llama_cpp
import numpy as np
import sentencepiece as spm

corpus = sys.argv[1]
spm.SentencePieceTrainer.train(
    input=corpus, model_prefix="tiny", vocab_size=1200, model_type="bpe", byte_fallback=True,
    user_defined_symbols=["<tool>", "<|im_end|>"], character_coverage=0.9995, split_digits=True,
    allow_whitespace_only_pieces=True, remove_extra_whitespaces=False,
    normalization_rule_name="identity")
sp = spm.SentencePieceProcessor(model_file="tiny.model")
toks, scores, types = [], [], []
for i in range(sp.get_piece_size()):
    toks.append(sp.id_to_piece(i))
    scores.append(sp.get_score(i))
    t = 1
    if sp.is_unknown(i):
        t = 2
    elif sp.is_control(i):
        t = 3
    elif sp.is_unused(i):
        t = 5
    elif sp.is_byte(i):
        t = 6
    elif toks[-1] in ("<tool>", "<|im_end|>"):
        t = 4
    types.append(t)

w = gguf.GGUFWriter("tiny-spm.gguf", "llama")
w.add_context_length(128); w.add_embedding_length(4); w.add_block_count(1)
w.add_feed_forward_length(8); w.add_head_count(1); w.add_head_count_kv(1)
w.add_layer_norm_rms_eps(1e-5); w.add_rope_dimension_count(4)
w.add_tokenizer_model("llama"); w.add_token_list(toks); w.add_token_scores(scores)
w.add_token_types(types); w.add_bos_token_id(sp.bos_id()); w.add_eos_token_id(sp.eos_id())
w.add_unk_token_id(sp.unk_id()); w.add_add_bos_token(True); w.add_name("tiny-spm")
w.add_tensor("token_embd.weight", np.zeros((len(toks), 4), dtype=np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()

random.seed(7)
pools = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", " \t\n\r", "가나다라마바사아자차카타파하한국어서울날씨",
    "日本語中文文本", "😀🦀", "éèêëàâ", "fn let mut pub struct impl self ",
]
specials = ["<s>", "</s>", "<unk>", "<tool>", "<|im_end|>", "<|im", "▁"]


def rand_text():
    out = []
    for _ in range(random.randint(0, 30)):
        r = random.random()
        if r < 0.06:
            out.append(random.choice(specials))
        elif r < 0.15:
            out.append(" " * random.randint(1, 4))
        else:
            p = random.choice(pools)
            out.append("".join(random.choice(p) for _ in range(random.randint(1, 8))))
    return "".join(out)


fixed = ["Hello world", " Hello", "Hello ", "  two  spaces  ", "\n\n",
         "fn main() {\n    let x = 1;\n}\n", "안녕하세요! 서울 날씨 어때?", "<s>hi</s>",
         "<tool>{\"a\": 1}</tool>", "a<|im_end|>b", "▁▁x", "", "1234567", "😀🦀 emoji",
         "tab\tsep", "<unk>"]
texts = fixed + [rand_text() for _ in range(260)]
llm = llama_cpp.Llama(model_path="tiny-spm.gguf", vocab_only=True, verbose=False)
cases = []
for t in texts:
    for add, parse in [(False, True), (True, True), (False, False)]:
        ids = llm.tokenize(t.encode(), add_bos=add, special=parse)
        cases.append({"text": t, "add_special": add, "parse_special": parse, "ids": ids})
vocab = llama_cpp.llama_model_get_vocab(llm.model)
eog = [i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)]
out = {"source": "llama.cpp (llama-cpp-python 0.3.36, llama.cpp 0c1e57098) tokenizing with tiny-spm.gguf",
       "eog_ids": eog, "cases": cases}
json.dump(out, open("tiny-spm-llamacpp.json", "w"), ensure_ascii=False, separators=(",", ":"))
