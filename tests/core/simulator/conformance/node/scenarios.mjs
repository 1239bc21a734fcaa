// The official TypeScript SDK driving the simulator. Usage: node scenarios.mjs BASE_URL
// Prints one JSON object: {scenario: "ok" | "error message"}; the pytest side asserts every one is ok.
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";

const baseURL = process.argv[2];
const client = new Anthropic({ baseURL, apiKey: "sim", maxRetries: 0 });
const MODEL = "claude-sonnet-5";
const SEARCH = [{ type: "web_search_20250305", name: "web_search" }];
const WEATHER = {
  name: "get_weather",
  description: "Lookup the weather for a given city",
  input_schema: {
    type: "object",
    properties: { location: { type: "string" }, units: { type: "string", enum: ["c", "f"] } },
    required: ["location", "units"],
    additionalProperties: false,
  },
};
const ask = (text, extra = {}) => ({
  model: MODEL,
  max_tokens: 2048,
  messages: [{ role: "user", content: text }],
  ...extra,
});

const scenarios = {
  async web_search_streamed_and_not() {
    const params = ask("Research sodium-ion batteries for grid storage", { tools: SEARCH });
    const created = await client.messages.create(params);
    const streamed = await client.messages.stream(params).finalMessage();
    const sorted = (v) =>
      Array.isArray(v) ? v.map(sorted)
      : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sorted(v[k])]))
      : v;
    const same = (m) => JSON.stringify(sorted([m.id, m.model, m.content, m.stop_reason, m.usage]));
    assert.equal(same(streamed), same(created)); // stop_details is omitted from a stream's message_delta
    assert.equal(created.model, MODEL);
    const kinds = created.content.map((b) => b.type);
    assert.ok(kinds.includes("server_tool_use") && kinds.includes("web_search_tool_result"), kinds.join());
    assert.ok(created.usage.server_tool_use.web_search_requests >= 1);
    assert.ok(created.content.some((b) => b.type === "text" && (b.citations ?? []).length > 0));
  },

  async pause_turn_continuation() {
    const params = ask("Research geothermal heating [sim:pause_turn]", { tools: SEARCH });
    const paused = await client.messages.stream(params).finalMessage();
    assert.equal(paused.stop_reason, "pause_turn");
    const pending = paused.content.at(-1);
    assert.equal(pending.type, "server_tool_use");
    // The SDK's own response objects go back as the assistant turn, as its docs show.
    params.messages.push({ role: "assistant", content: paused.content });
    const resumed = await client.messages.create(params);
    assert.notEqual(resumed.stop_reason, "pause_turn");
    assert.equal(resumed.content[0].type, "web_search_tool_result");
    assert.equal(resumed.content[0].tool_use_id, pending.id);
  },

  async forced_client_tool_and_its_result() {
    const params = ask("Weather in Lisbon?", { tools: [WEATHER], tool_choice: { type: "tool", name: "get_weather" } });
    const deltas = [];
    const stream = client.messages.stream(params).on("inputJson", (partial) => deltas.push(partial));
    const message = await stream.finalMessage();
    assert.equal(message.stop_reason, "tool_use");
    const call = message.content[0];
    assert.equal(call.type, "tool_use");
    assert.ok(deltas.length > 0, "input_json_delta events");
    assert.deepEqual(Object.keys(call.input).sort(), ["location", "units"]);
    assert.ok(["c", "f"].includes(call.input.units));
    params.messages.push({ role: "assistant", content: message.content });
    params.messages.push({ role: "user", content: [{ type: "tool_result", tool_use_id: call.id, content: "Sunny, 21C" }] });
    delete params.tool_choice;
    const answer = await client.messages.create(params);
    assert.equal(answer.stop_reason, "end_turn");
    assert.match(answer.content[0].text, /Sunny, 21C/);
  },

  async structured_output() {
    const schema = {
      type: "object",
      properties: { city: { type: "string" }, days: { type: "array", items: { type: "integer", minimum: 0 } } },
      required: ["city", "days"],
      additionalProperties: false,
    };
    const message = await client.messages.create(
      ask("Forecast for Paris", { output_config: { format: { type: "json_schema", schema } } }),
    );
    const value = JSON.parse(message.content[0].text);
    assert.equal(typeof value.city, "string");
    assert.ok(Array.isArray(value.days) && value.days.every((d) => Number.isInteger(d) && d >= 0));
  },

  async count_tokens() {
    const english = await client.messages.countTokens({ model: MODEL, messages: [{ role: "user", content: "word ".repeat(400) }] });
    const chinese = await client.messages.countTokens({ model: MODEL, messages: [{ role: "user", content: "电池储能".repeat(500) }] });
    assert.ok(english.input_tokens >= 400 && english.input_tokens < 700, String(english.input_tokens));
    assert.ok(chinese.input_tokens > 3 * english.input_tokens, String(chinese.input_tokens));
    const sent = await client.messages.create({ ...ask("word ".repeat(400)), max_tokens: 50 });
    assert.equal(sent.usage.input_tokens, english.input_tokens);
  },

  async rate_limit_with_retry_after() {
    const params = ask("Research tidal power [sim:fault=rate_limit]", { tools: SEARCH });
    let caught;
    try {
      await client.messages.create(params);
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof Anthropic.RateLimitError, String(caught));
    assert.equal(caught.status, 429);
    assert.ok(Number(caught.headers.get("retry-after")) > 0);
    const retrying = new Anthropic({ baseURL, apiKey: "sim", maxRetries: 2 });
    const started = Date.now();
    const fine = await retrying.messages.create(ask("Research wave power [sim:fault=rate_limit]", { tools: SEARCH }));
    assert.equal(fine.type, "message");
    assert.ok(Date.now() - started >= 150, "the retry waited for retry-after");
  },

  async mid_stream_error() {
    const stream = client.messages.stream(ask("Research hydrogen storage [sim:fault=stream_error]", { tools: SEARCH }));
    let caught;
    try {
      await stream.finalMessage();
    } catch (error) {
      caught = error;
    }
    assert.ok(caught, "the stream raised");
    assert.match(String(caught.message ?? caught), /overloaded/i);
  },

  async invalid_requests() {
    for (const [params, status] of [
      [ask("hi", { model: "claude-imaginary-9" }), 404],
      [ask("hi", { model: "claude-haiku-4-5", max_tokens: 64_001 }), 400],
      [ask("hi", { tool_choice: { type: "any" } }), 400],
    ]) {
      let caught;
      try {
        await client.messages.stream(params).finalMessage();
      } catch (error) {
        caught = error;
      }
      assert.equal(caught?.status, status, JSON.stringify(params));
    }
  },
};

const results = {};
for (const [name, run] of Object.entries(scenarios)) {
  try {
    await run();
    results[name] = "ok";
  } catch (error) {
    results[name] = String(error?.stack ?? error);
  }
}
console.log(JSON.stringify(results));
