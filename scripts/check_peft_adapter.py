#!/usr/bin/env python3
"""Loads a tuneup-trained adapter with Python `peft` on the same GGUF base
(transformers dequantizes it) and prints the greedy continuation of a chat
prompt, to compare with `tuneup chat --adapter DIR --temperature 0`.

  python scripts/check_peft_adapter.py MODEL.gguf ADAPTER_DIR "How many singers are there?" \
      --system "Answer with one SQLite query."
"""
import argparse
import os

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("adapter")
    ap.add_argument("prompt")
    ap.add_argument("--system")
    ap.add_argument("-n", type=int, default=48)
    args = ap.parse_args()
    folder, name = os.path.split(os.path.abspath(args.gguf))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(base, args.adapter).eval()
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": args.prompt}
    ]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    if not torch.is_tensor(ids):
        ids = ids["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=args.n, do_sample=False)
    print(tok.decode(out[0][ids.shape[1]:], skip_special_tokens=True))


if __name__ == "__main__":
    main()
