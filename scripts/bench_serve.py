"""Load benchmark for an OpenAI-compatible server: N concurrent streaming chat clients.

Measures aggregate generated tokens/s, time to first token and request latency (p50/p95) and errors, the same
way for any server — `tuneup serve` and llama.cpp's `llama-server` on the same GGUF:

    python scripts/bench_serve.py --base-url http://127.0.0.1:8080/v1 --model qwen2.5-coder-0.5b \
        --clients 8 --requests 32 --max-tokens 128 [--json out.json]

Each client sends its requests one after another (streaming, temperature 0, `max_tokens` fixed and
`ignore_eos`-free prompts that ask for long answers), so at most `--clients` requests run at once. Tokens are
counted from the server's `usage` (stream_options.include_usage) — not from chunks — so servers that send several
tokens per chunk are counted right. Needs the `openai` package.

Soak mode: `--duration 600 --clients 64 --server-pid PID` keeps 64 streams going for ten minutes instead of a fixed
number of requests, counts 429 answers (the server's admission control) apart from failures, and samples the
server's resident memory (VmRSS) every 5 s:

    python scripts/bench_serve.py --base-url http://127.0.0.1:8080/v1 --model smollm2-135m \
        --clients 64 --duration 600 --max-tokens 64 --server-pid "$(pgrep -f 'tuneup serve')"
"""

import argparse
import asyncio
import json
import statistics
import time

import openai

PROMPTS = [
    "Write a detailed explanation of how a hash map works, with an example in Python.",
    "List twenty SQL interview questions with a one-line answer each.",
    "Explain the difference between processes and threads, with examples.",
    "Write a Kotlin data class for an order with five fields and explain each field.",
    "Describe how HTTP caching works, covering every header involved.",
    "Write a step-by-step guide to setting up PostgreSQL replication.",
    "Explain recursion to a beginner with three code examples.",
    "Compare REST and gRPC in a long, structured answer.",
]


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    f = int(k)
    c = min(f + 1, len(xs) - 1)
    return xs[f] + (xs[c] - xs[f]) * (k - f)


async def one(client, model, prompt, max_tokens, stats):
    t0 = time.perf_counter()
    ttft = None
    tokens = 0
    try:
        stream = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0,
            stream=True, stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and ttft is None:
                ttft = time.perf_counter() - t0
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
    except openai.RateLimitError:  # the server's admission control: counted apart
        stats["rejected"] += 1
        await asyncio.sleep(0.5)
        return
    except Exception as e:  # counted, not fatal
        stats["errors"].append(repr(e)[:200])
        return
    stats["latency"].append(time.perf_counter() - t0)
    stats["ttft"].append(ttft if ttft is not None else time.perf_counter() - t0)
    stats["tokens"] += tokens


async def client_loop(client, model, ids, max_tokens, stats, deadline=None):
    if deadline is None:
        for i in ids:
            await one(client, model, PROMPTS[i % len(PROMPTS)], max_tokens, stats)
        return
    i = ids[0] if ids else 0
    while time.perf_counter() < deadline:
        await one(client, model, PROMPTS[i % len(PROMPTS)], max_tokens, stats)
        i += 1


def rss_mb(pid):
    """The process's resident memory in MB (Linux), or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def sample_rss(pid, samples, stop):
    while not stop.is_set():
        samples.append(rss_mb(pid))
        try:
            await asyncio.wait_for(stop.wait(), 5)
        except asyncio.TimeoutError:
            pass


async def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--api-key", default="unused")
    p.add_argument("--label", default="")
    p.add_argument("--json", help="append the result as one JSON line to this file")
    p.add_argument("--duration", type=float, help="soak: keep every client busy this many seconds")
    p.add_argument("--server-pid", type=int, help="sample this process's resident memory every 5 s")
    a = p.parse_args()
    client = openai.AsyncOpenAI(base_url=a.base_url, api_key=a.api_key, max_retries=0, timeout=3600)
    # Warm-up: one request alone.
    await one(client, a.model, PROMPTS[0], 8, {"errors": [], "latency": [], "ttft": [], "tokens": 0, "rejected": 0})
    stats = {"errors": [], "latency": [], "ttft": [], "tokens": 0, "rejected": 0}
    ids = [list(range(c, a.requests, a.clients)) or ([c] if a.duration else []) for c in range(a.clients)]
    rss, stop = [], asyncio.Event()
    sampler = asyncio.create_task(sample_rss(a.server_pid, rss, stop)) if a.server_pid else None
    t0 = time.perf_counter()
    deadline = t0 + a.duration if a.duration else None
    await asyncio.gather(*(client_loop(client, a.model, i, a.max_tokens, stats, deadline) for i in ids))
    wall = time.perf_counter() - t0
    if sampler:
        stop.set()
        await sampler
    rss = [r for r in rss if r is not None]
    out = {
        "label": a.label, "clients": a.clients, "requests": a.requests, "max_tokens": a.max_tokens,
        "wall_s": round(wall, 2), "generated_tokens": stats["tokens"],
        "aggregate_tok_s": round(stats["tokens"] / wall, 2),
        "ttft_p50_s": round(pct(stats["ttft"], 50), 3), "ttft_p95_s": round(pct(stats["ttft"], 95), 3),
        "latency_p50_s": round(pct(stats["latency"], 50), 3), "latency_p95_s": round(pct(stats["latency"], 95), 3),
        "completed": len(stats["latency"]), "rejected_429": stats["rejected"],
        "errors": len(stats["errors"]), "first_error": stats["errors"][0] if stats["errors"] else None,
    }
    if rss:
        out.update(rss_mb_first=round(rss[0]), rss_mb_max=round(max(rss)), rss_mb_last=round(rss[-1]),
                   rss_mb_every_5s=[round(r) for r in rss])
    print(json.dumps(out))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
