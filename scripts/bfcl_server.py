"""Score a running OpenAI-compatible server (`tuneup serve`) with the official BFCL harness.

The Berkeley Function Calling Leaderboard's own code (`pip install bfcl-eval`) asks the server in
function-calling mode (OpenAI `tools`; the answer must come back as `tool_calls`) and checks the calls with
its AST checker. The served model is added to bfcl's model registry as an OpenAI-compatible FC model
(`OpenAICompletionsHandler`, the handler bfcl uses for OpenAI's chat completions API), so nothing in the
harness is changed.

    python scripts/bfcl_server.py --base-url http://127.0.0.1:8080/v1 --model qwen2.5-coder-0.5b \
        --category simple_python --project /tmp/bfcl-run

Results and scores are written under --project (bfcl's BFCL_PROJECT_ROOT): result/…, score/….
"""

import argparse
import json
import os
import sys
from pathlib import Path


def run_cli(argv):
    from bfcl_eval.__main__ import cli

    sys.argv = ["bfcl"] + argv
    try:
        cli()
    except SystemExit as e:
        if e.code not in (0, None):
            raise


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", required=True, help="the server's OpenAI base URL, ending in /v1")
    p.add_argument("--model", required=True, help="the model id the server serves")
    p.add_argument("--category", default="simple_python", help="bfcl test category (default simple_python)")
    p.add_argument("--project", default="bfcl-run", help="folder for bfcl's results and scores")
    p.add_argument("--api-key", default=os.environ.get("TUNEUP_API_KEY", "unused"))
    p.add_argument("--threads", type=int, default=4, help="concurrent requests (the server batches them)")
    p.add_argument("--overwrite", action="store_true", help="regenerate answers already in --project (default: resume)")
    args = p.parse_args()

    project = Path(args.project).resolve()
    project.mkdir(parents=True, exist_ok=True)
    os.environ["BFCL_PROJECT_ROOT"] = str(project)
    os.environ["OPENAI_BASE_URL"] = args.base_url
    os.environ["OPENAI_API_KEY"] = args.api_key

    from bfcl_eval.constants.model_config import MODEL_CONFIG_MAPPING, ModelConfig
    from bfcl_eval.model_handler.api_inference.openai_completion import OpenAICompletionsHandler

    key = f"tuneup-{args.model.replace('/', '_')}-FC"
    MODEL_CONFIG_MAPPING[key] = ModelConfig(
        model_name=args.model,
        display_name=f"{args.model} (FC, tuneup serve)",
        url="https://example.invalid/tuneup",
        org="tuneup",
        license="Apache-2.0",
        model_handler=OpenAICompletionsHandler,
        input_price=None,
        output_price=None,
        is_fc_model=True,
        underscore_to_dot=True,
    )
    run_cli(["generate", "--model", key, "--test-category", args.category,
             "--num-threads", str(args.threads), "--temperature", "0"]
            + (["--allow-overwrite"] if args.overwrite else []))
    run_cli(["evaluate", "--model", key, "--test-category", args.category])
    for f in sorted((project / "score").rglob("*.json")):
        if key.replace("/", "_") in str(f) and args.category in f.name:
            first = f.read_text().splitlines()[0]
            summary = json.loads(first)
            print(f"{args.category}: accuracy {summary.get('accuracy')} "
                  f"({summary.get('correct_count')}/{summary.get('total_count')}) — {f}")


if __name__ == "__main__":
    main()
