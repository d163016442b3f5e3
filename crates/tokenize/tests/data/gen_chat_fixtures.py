"""Renders chat templates with transformers (5.24) the way apply_chat_template does, with
strftime_now fixed at 2024-07-26 12:34:56, into the fixture format of
tests/data/chat_templates/*.json.

Usage: python gen_chat_fixtures.py TEMPLATES_DIR OUT_DIR QWEN_FIXTURE_JSON
"""
import json, glob, os, sys, datetime as dt
import transformers.utils.chat_template_utils as ctu
from transformers.utils.chat_template_utils import render_jinja_template, _normalize_chat_messages

class FixedDT(dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return dt.datetime(2024, 7, 26, 12, 34, 56)
ctu.datetime = FixedDT

base = json.load(open(sys.argv[3]))  # fixtures/chat_templates/qwen2.5-coder-0.5b.json: its cases are reused
cases = [{"name": c["name"], "messages": c["messages"], "tools": c["tools"], "add_generation_prompt": c["add_generation_prompt"]} for c in base["cases"]]
cases.append({"name": "reasoning", "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4", "reasoning_content": "simple math"}, {"role": "user", "content": "and 3+3?"}], "tools": None, "add_generation_prompt": True})
cases.append({"name": "multimodal_list", "messages": [{"role": "user", "content": [{"type": "text", "text": "describe"}, {"type": "text", "text": "this"}]}], "tools": None, "add_generation_prompt": True})
cases.append({"name": "only_system", "messages": [{"role": "system", "content": "Be brief."}], "tools": None, "add_generation_prompt": False})
cases.append({"name": "floats_bools", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": {"a": 1.5, "b": True, "c": None, "d": [1e20, 0.0001, -0.0], "e": "é\u2028<>&"}}}]}, {"role": "tool", "tool_call_id": "call_1", "content": "ok"}], "tools": base["cases"][5]["tools"], "add_generation_prompt": True})

tdir = sys.argv[1]  # a folder of *.jinja chat templates (e.g. llama.cpp/models/templates)
for path in sorted(glob.glob(tdir + '/*.jinja')):
    name = os.path.basename(path)[:-6]
    template = open(path).read()
    out_cases = []
    for c in cases:
        msgs = _normalize_chat_messages(json.loads(json.dumps(c["messages"])))
        try:
            r, _ = render_jinja_template(conversations=[msgs], tools=c["tools"], chat_template=template,
                                         add_generation_prompt=c["add_generation_prompt"], bos_token="<s>", eos_token="</s>")
            r = r[0]; err = None
        except Exception as e:
            r = None; err = f"{type(e).__name__}: {e}"
        out_cases.append(dict(c, rendered=r, error=err))
    ok = sum(1 for c in out_cases if c["rendered"] is not None)
    json.dump({"template": template, "bos_token": "<s>", "eos_token": "</s>", "now_unix": 1721997296, "cases": out_cases},
              open(os.path.join(sys.argv[2], name + '.json'), 'w'), ensure_ascii=False)
    print(name, ok, "/", len(out_cases))
