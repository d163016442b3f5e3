#!/usr/bin/env python3
"""Loads an HF model folder written by `tuneup train --method full` or
`tuneup merge --format safetensors` with Python transformers and prints the
greedy answer to the CLI test question (compare with `tuneup chat -m FOLDER`).

  python scripts/check_hf_folder.py FOLDER
"""
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
d = sys.argv[1]
tok = AutoTokenizer.from_pretrained(d)
m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32)
msgs = [{"role": "system", "content": "Answer with one SQLite query."}, {"role": "user", "content": "How many books are there?"}]
ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
if not torch.is_tensor(ids): ids = ids["input_ids"]
out = m.generate(ids, max_new_tokens=16, do_sample=False)
print(repr(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)))
