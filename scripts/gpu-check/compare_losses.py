"""Side by side: the losses two `tuneup train` runs wrote to metrics.jsonl."""
import json, sys
def read(d):
    rows = [json.loads(l) for l in open(f"{d}/metrics.jsonl")]
    return [(r.get("step"), r.get("loss"), r.get("val_loss")) for r in rows]
a, b = read(sys.argv[1]), read(sys.argv[2])
worst = 0.0
for (s, l1, v1), (_, l2, v2) in zip(a, b):
    for x, y in ((l1, l2), (v1, v2)):
        if x is not None and y is not None:
            worst = max(worst, abs(x - y) / max(abs(x), 1e-9))
    print(f"step {s}: loss {l1} | {l2}   val {v1} | {v2}")
print(f"largest relative difference: {worst:.2e}")
