"""Inputs of the GPU check that can travel: each default model's config.json
and tokenizer (read from its GGUF by transformers; the weights stay behind and
are made random on the GPU machine), and a small chat training set.

  python scripts/gpu-check/make_inputs.py OUT_DIR SMOLLM2.gguf QWEN.gguf SPIDER_TRAIN.jsonl

Needs transformers and gguf.
"""
import json
import os
import sys

from transformers import AutoConfig, AutoTokenizer


def main():
    out, smollm2, qwen, spider = sys.argv[1:5]
    for name, path in (("smollm2", smollm2), ("qwen05", qwen)):
        folder, file = os.path.split(os.path.abspath(path))
        AutoConfig.from_pretrained(folder, gguf_file=file).save_pretrained(f"{out}/{name}")
        AutoTokenizer.from_pretrained(folder, gguf_file=file).save_pretrained(f"{out}/{name}")
    rows = [json.loads(line) for line in open(spider)][:400]

    def chat(r):
        return {"messages": [
            {"role": "system", "content": f"Write SQLite SQL for the database {r['db_id']}."},
            {"role": "user", "content": r["question"]},
            {"role": "assistant", "content": r["query"]},
        ]}

    for file, part in (("train.jsonl", rows[:340]), ("val.jsonl", rows[340:])):
        with open(f"{out}/{file}", "w") as f:
            f.writelines(json.dumps(chat(r)) + "\n" for r in part)


if __name__ == "__main__":
    main()
