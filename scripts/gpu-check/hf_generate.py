"""Greedy continuation with transformers on the GPU (f32), the reference for tuneup's --gpu output."""
import sys, time, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path, prompt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).cuda().eval()
ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids.cuda()
with torch.no_grad():
    model.generate(ids, max_new_tokens=4, do_sample=False)
    torch.cuda.synchronize(); t = time.perf_counter()
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    torch.cuda.synchronize(); dt = time.perf_counter() - t
print(tok.decode(out[0, ids.shape[1]:]), end="")
print(f"\nHF greedy decode: {n / dt:.1f} tok/s", file=sys.stderr)
