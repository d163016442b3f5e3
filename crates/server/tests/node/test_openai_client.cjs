// The tuneup server driven by the official `openai` package for Node (what TypeScript/JavaScript services use).
//
// Run by the Rust test `node::openai_node_sdk` against a server it starts. Environment: TUNEUP_BASE_URL (…/v1),
// TUNEUP_MODEL_ID, TUNEUP_EXPECT_TOOL_CALLS=1 when the served model really calls tools (Qwen2.5-Coder); NODE_PATH
// points at the node_modules holding `openai`. Prints 'N passed, N failed' and exits non-zero on any failure.
const assert = require("node:assert/strict");
const OpenAI = require("openai").default;

const MODEL = process.env.TUNEUP_MODEL_ID;
const EXPECT_TOOLS = process.env.TUNEUP_EXPECT_TOOL_CALLS === "1";
const client = new OpenAI({ baseURL: process.env.TUNEUP_BASE_URL, apiKey: "not-needed", maxRetries: 0, timeout: 300_000 });

const WEATHER = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Get the current weather for a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const tests = {
  async chat() {
    const r = await client.chat.completions.create({
      model: MODEL, messages: [{ role: "user", content: "Name three primes." }], max_tokens: 16, temperature: 0,
    });
    assert.equal(r.object, "chat.completion");
    assert.equal(typeof r.choices[0].message.content, "string");
    assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0);
  },

  async stream_with_usage() {
    const stream = await client.chat.completions.create({
      model: MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 12, temperature: 0, stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    assert.ok(usage && usage.completion_tokens > 0, "usage in the last chunk");
    const full = await client.chat.completions.create({
      model: MODEL, messages: [{ role: "user", content: "Hi" }], max_tokens: 12, temperature: 0,
    });
    assert.equal(text, full.choices[0].message.content);
  },

  async forced_tool_call() {
    const r = await client.chat.completions.create({
      model: MODEL, messages: [{ role: "user", content: "서울 날씨 어때?" }], tools: [WEATHER],
      tool_choice: { type: "function", function: { name: "get_weather" } }, max_tokens: 64, temperature: 0,
    });
    const choice = r.choices[0];
    if (EXPECT_TOOLS || choice.finish_reason !== "length") {
      assert.equal(choice.finish_reason, "tool_calls");
      const call = choice.message.tool_calls[0];
      assert.equal(call.function.name, "get_weather");
      assert.equal(typeof JSON.parse(call.function.arguments).city, "string");
    }
  },

  async json_schema() {
    const r = await client.chat.completions.create({
      model: MODEL, messages: [{ role: "user", content: "Give a city and its country." }], max_tokens: 64, temperature: 0,
      response_format: {
        type: "json_schema",
        json_schema: {
          name: "place", strict: true,
          schema: { type: "object", properties: { city: { type: "string" }, country: { type: "string" } },
                    required: ["city", "country"], additionalProperties: false },
        },
      },
    });
    const choice = r.choices[0];
    if (EXPECT_TOOLS || choice.finish_reason === "stop") {
      const v = JSON.parse(choice.message.content);
      assert.deepEqual(Object.keys(v).sort(), ["city", "country"]);
    }
  },

  async errors_are_typed() {
    await assert.rejects(
      client.chat.completions.create({ model: "no-such-model", messages: [{ role: "user", content: "x" }] }),
      (e) => e instanceof OpenAI.NotFoundError && e.code === "model_not_found",
    );
    await assert.rejects(
      client.chat.completions.create({ model: MODEL, messages: [] }),
      (e) => e instanceof OpenAI.BadRequestError && e.param === "messages",
    );
  },

  async models() {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.ok(ids.includes(MODEL), ids.join(","));
  },
};

(async () => {
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of Object.entries(tests)) {
    try {
      await fn();
      passed += 1;
      console.log(`ok   ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name}: ${e.stack || e}`);
    }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
