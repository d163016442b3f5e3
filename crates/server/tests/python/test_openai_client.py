"""The tuneup server driven by the official `openai` Python SDK (and LangChain's ChatOpenAI when installed).

Run by the Rust test `python::openai_python_sdk` against a server it starts. Environment:
TUNEUP_BASE_URL (…/v1), TUNEUP_MODEL_ID, TUNEUP_EXPECT_TOOL_CALLS=1 when the served model really calls
tools (Qwen2.5-Coder), so the tool tests check the call and not only the shapes.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""

import json
import os
import sys
import traceback

import openai

BASE = os.environ["TUNEUP_BASE_URL"]
MODEL = os.environ["TUNEUP_MODEL_ID"]
EXPECT_TOOLS = os.environ.get("TUNEUP_EXPECT_TOOL_CALLS") == "1"
EMBEDDING_MODEL = os.environ.get("TUNEUP_EMBEDDING_MODEL")
client = openai.OpenAI(base_url=BASE, api_key="not-needed", max_retries=0, timeout=300)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name, e.g. Seoul"}},
            "required": ["city"],
        },
    },
}
WEATHER_Q = [{"role": "user", "content": "서울 날씨 어때?"}]


def test_chat():
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name three primes."}],
        max_tokens=24,
        temperature=0,
    )
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    CHAT_ANSWER.append(r.choices[0].message.content)


CHAT_ANSWER = []


def test_stream_with_usage():
    if not CHAT_ANSWER:
        test_chat()
    full = CHAT_ANSWER[0]
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name three primes."}],
            max_tokens=24,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full, (text, full)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert any(c.choices and c.choices[0].finish_reason for c in chunks)


def check_weather_call(calls):
    assert calls, "expected a tool call"
    assert calls[0].function.name == "get_weather"
    args = json.loads(calls[0].function.arguments)
    assert "seoul" in json.dumps(args, ensure_ascii=False).lower() or "서울" in json.dumps(args, ensure_ascii=False), args


def test_tools():
    r = client.chat.completions.create(model=MODEL, messages=WEATHER_Q, tools=[WEATHER], temperature=0, max_tokens=64)
    msg = r.choices[0].message
    if EXPECT_TOOLS:
        check_weather_call(msg.tool_calls)
        assert r.choices[0].finish_reason == "tool_calls"
        call = msg.tool_calls[0]
        assert call.id.startswith("call_") and call.type == "function"
        # Send the result back: the model answers in text.
        follow = client.chat.completions.create(
            model=MODEL,
            messages=WEATHER_Q
            + [
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": "Seoul", "temperature_c": 3, "sky": "clear"})},
            ],
            tools=[WEATHER],
            temperature=0,
            max_tokens=32,
        )
        assert follow.choices[0].message.content, follow
    else:
        assert msg.content is not None or msg.tool_calls


def test_tools_streaming():
    stream = client.chat.completions.create(
        model=MODEL, messages=WEATHER_Q, tools=[WEATHER], temperature=0, max_tokens=64, stream=True
    )
    calls = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        for tc in d.tool_calls or []:
            entry = calls.setdefault(tc.index, {"name": "", "arguments": ""})
            if tc.function.name:
                entry["name"] += tc.function.name
            entry["arguments"] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    if EXPECT_TOOLS:
        assert finish == "tool_calls", finish
        assert calls[0]["name"] == "get_weather"
        json.loads(calls[0]["arguments"])


def test_json_object():
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give the capital of France as JSON with key 'capital'."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=48,
    )
    content = r.choices[0].message.content
    # Grammar-constrained: a finished answer is always one JSON object.
    if EXPECT_TOOLS or r.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(content), dict), content


def test_json_schema_parse():
    """The SDK's structured-output helper: a pydantic model becomes a strict json_schema; the
    grammar-constrained answer always parses into it."""
    from pydantic import BaseModel

    class Capital(BaseModel):
        country: str
        capital: str

    parse = getattr(client.chat.completions, "parse", None) or client.beta.chat.completions.parse
    r = parse(
        model=MODEL,
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        response_format=Capital,
        temperature=0,
        max_tokens=64,
    )
    choice = r.choices[0]
    if choice.finish_reason == "stop" or EXPECT_TOOLS:
        assert choice.finish_reason == "stop", choice
        parsed = choice.message.parsed
        assert isinstance(parsed, Capital), choice.message
        if EXPECT_TOOLS:
            assert "paris" in parsed.capital.lower(), parsed


def test_named_tool_choice_forces_the_call():
    r = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "오늘 점심 뭐 먹지?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=64,
    )
    choice = r.choices[0]
    if choice.finish_reason != "length" or EXPECT_TOOLS:
        assert choice.finish_reason == "tool_calls", choice
        assert len(choice.message.tool_calls) == 1
        call = choice.message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments)["city"], str)


def test_errors():
    try:
        client.chat.completions.create(model="no-such-model", messages=WEATHER_Q)
        raise AssertionError("expected NotFoundError")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body
    try:
        client.chat.completions.create(model=MODEL, messages=WEATHER_Q, n=2)
        raise AssertionError("expected BadRequestError")
    except openai.BadRequestError as e:
        assert e.body["param"] == "n", e.body


def test_models_and_completions():
    assert [m.id for m in client.models.list()] == [MODEL] + ([EMBEDDING_MODEL] if EMBEDDING_MODEL else [])
    r = client.completions.create(model=MODEL, prompt="def fibonacci(n):", max_tokens=8, temperature=0)
    assert isinstance(r.choices[0].text, str) and r.usage.completion_tokens <= 8


def test_embeddings():
    if not EMBEDDING_MODEL:
        print("skip embeddings: the server has no embedding model")
        return
    texts = ["How do I reset my password?", "Forgot my login credentials", "Best pizza in Naples"]
    r = client.embeddings.create(model=EMBEDDING_MODEL, input=texts)
    assert [d.index for d in r.data] == [0, 1, 2]
    vectors = [d.embedding for d in r.data]
    assert all(len(v) == 384 for v in vectors)
    cos = lambda a, b: sum(x * y for x, y in zip(a, b))  # unit vectors
    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]) + 0.2, (cos(vectors[0], vectors[1]), cos(vectors[0], vectors[2]))
    assert r.usage.prompt_tokens > 0
    # The SDK asks for base64 by default when numpy is missing; both must decode to the same vector.
    b = client.embeddings.create(model=EMBEDDING_MODEL, input=texts[0], encoding_format="base64")
    import base64
    import struct
    raw = b.data[0].embedding
    decoded = raw if isinstance(raw, list) else list(struct.unpack("<384f", base64.b64decode(raw)))
    assert max(abs(x - y) for x, y in zip(decoded, vectors[0])) < 1e-6
    try:
        client.embeddings.create(model=EMBEDDING_MODEL, input=[])
        raise AssertionError("an empty input must be refused")
    except openai.BadRequestError as e:
        assert e.status_code == 400


def test_langchain():
    try:
        from langchain_openai import ChatOpenAI
        from langchain_core.tools import tool
    except ImportError:
        print("skip langchain: langchain-openai is not installed")
        return
    llm = ChatOpenAI(model=MODEL, base_url=BASE, api_key="not-needed", temperature=0, max_tokens=64, max_retries=0)
    assert isinstance(llm.invoke("Say hi.").content, str)

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return "clear, 3°C"

    msg = llm.bind_tools([get_weather]).invoke("서울 날씨 어때?")
    if EXPECT_TOOLS:
        assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather", msg
        assert isinstance(msg.tool_calls[0]["args"], dict)


def main():
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print(f"ok   {name}")
        except Exception:  # noqa: BLE001 - report every failure
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
