"""Embedding-throughput anchor: sentence-transformers on PyTorch CPU, the same texts and batch size as
`tuneup rag bench`. Prints one line in the same shape.

    python scripts/bench_embed_st.py MODEL_DIR FILE [-n 1000] [--batch-size 32] [--threads 2] [-r 2]
"""

import argparse
import json
import time

import torch
from sentence_transformers import SentenceTransformer


def texts_of(path: str, n: int) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if isinstance(record, dict):
                title, text = record.get("title") or "", record.get("text") or ""
                out.append(f"{title}\n\n{text}" if title else text)
            else:
                out.append(line.rstrip("\n"))
            if len(out) == n:
                break
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model_dir")
    p.add_argument("file")
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("-r", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = SentenceTransformer(a.model_dir, device="cpu")
    texts = texts_of(a.file, a.n)
    tokens = sum(min(len(model.tokenizer(t)["input_ids"]), model.max_seq_length) for t in texts)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(max(a.r, 1)):
            start = time.perf_counter()
            model.encode(texts, batch_size=a.batch_size, convert_to_numpy=True)
            best = min(best, time.perf_counter() - start)
    print(
        f"sentence-transformers {torch.__version__}: {len(texts)} texts, {tokens} tokens, batch {a.batch_size}, "
        f"threads {torch.get_num_threads()}: {best:.3f}s = {len(texts) / best:.1f} texts/s, {tokens / best:.0f} tokens/s"
    )


if __name__ == "__main__":
    main()
