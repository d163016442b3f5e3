#!/usr/bin/env python3
"""The anchor for `tuneup bench train`: Hugging Face transformers + PEFT LoRA
training on PyTorch (CPU, or CUDA with --device cuda), same model, same shapes.

  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
  python scripts/bench_train_peft.py MODEL.gguf --batch 4 --seq 256 --rank 16 --steps 5 --threads 2

Loads the GGUF through transformers (dequantized to float32), or an HF folder, attaches LoRA
(r, alpha = 2r, dropout 0.05) to q,k,v,o,gate,up,down, and trains with AdamW
on fixed token batches (loss on every token). Prints one JSON line: tokens/s
over the timed steps (after one warm-up step) and peak resident memory (on
CUDA also the peak of PyTorch's GPU allocations).
"""
import argparse
import json
import os
import resource
import threading
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM


def resident_mib():
    """This process's resident memory now, MiB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ResidentPeak:
    """Samples resident memory every 5 ms while training: the peak of the
    training steps alone, which the process peak (loading the GGUF
    dequantizes every tensor through temporaries) can exceed."""

    def __init__(self):
        self.peak = resident_mib()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, resident_mib())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", help="a GGUF file or a Hugging Face model folder")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if os.path.isdir(args.model):
        model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32)
    else:
        folder, name = os.path.split(os.path.abspath(args.model))
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model = model.to(args.device)
    cfg = LoraConfig(
        r=args.rank,
        lora_alpha=2 * args.rank,
        lora_dropout=0.05,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, cfg)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.config.vocab_size
    ids = torch.randint(10, min(vocab, 4000), (args.batch, args.seq), device=args.device)
    cuda = args.device == "cuda"
    times = []
    with ResidentPeak() as sampler:
        for step in range(args.steps + 1):
            t = time.perf_counter()
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            if cuda:
                torch.cuda.synchronize()
            if step > 0:
                times.append(time.perf_counter() - t)
    tokens = args.batch * args.seq
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "framework": f"torch {torch.__version__} + peft",
        "tokens_per_s": tokens * len(times) / sum(times),
        "step_s": sum(times) / len(times),
        "peak_rss_mib": peak_mib,
        "training_peak_rss_mib": sampler.peak,
        "batch": args.batch, "seq": args.seq, "rank": args.rank, "threads": args.threads,
        "loss": float(out.loss),
        "device": args.device,
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }))


if __name__ == "__main__":
    main()
