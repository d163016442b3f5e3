"""Random-weight models with the real configs and tokenizers (no weights can travel).

  python make_random_model.py CONFIG_DIR OUT_DIR
"""
import os, shutil, sys, torch
from transformers import AutoConfig, AutoModelForCausalLM
src, dst = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
cfg = AutoConfig.from_pretrained(src)
model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
model.save_pretrained(dst, safe_serialization=True)
for f in os.listdir(src):
    if f != "config.json":
        shutil.copy(os.path.join(src, f), dst)
print("random", dst, sum(p.numel() for p in model.parameters()) / 1e6, "M parameters")
