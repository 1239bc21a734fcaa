// The TypeScript SDK's message-thread helpers driving the simulator.
// Usage: node threads.mjs BASE_URL SHORT_EXPIRY_BASE_URL EXPIRY_SECONDS
// (the second simulator's threads expire after EXPIRY_SECONDS). Prints {scenario: "ok" | "error"}.
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";
import { betaTool } from "@anthropic-ai/sdk/helpers/beta/json-schema";

const [baseURL, shortURL, expirySeconds] = process.argv.slice(2);
const MODEL = "claude-sonnet-5";
const SEARCH = [{ type: "web_search_20250305", name: "web_search" }];
const user = (text) => ({ role: "user", content: text });

// What the simulator served since `from`: [status, "create" | "continue" | null] per Messages request.
async function served(url, from = 0) {
  const stats = await (await fetch(`${url}/_simulator/stats`)).json();
  return stats.recent.filter((r) => r.path === "/v1/messages").slice(from).map((r) => [r.status, r.thread]);
}

const scenarios = {
  async thread_create_and_continues() {
    const client = new Anthropic({ baseURL, apiKey: "sim", maxRetries: 0 });
    const from = (await served(baseURL)).length;
    const thread = client.beta.messages.thread({
      model: MODEL, max_tokens: 2048, system: "You are a research assistant.", tools: SEARCH,
    });
    const first = await thread.send(user("Research sodium-ion batteries for grid storage"));
    await thread.send(user("Go deeper on their costs"));
    const third = await thread.stream(user("And the outlook?")).finalMessage();
    assert.equal(thread.previousMessageId, third.id);
    assert.notEqual(first.id, third.id);
    assert.deepEqual(await served(baseURL, from), [[200, "create"], [200, "continue"], [200, "continue"]]);
    assert.equal(thread.messages.length, 6);
  },

  async thread_expired_is_replayed() {
    const client = new Anthropic({ baseURL: shortURL, apiKey: "sim", maxRetries: 0 });
    const from = (await served(shortURL)).length;
    const thread = client.beta.messages.thread({ model: MODEL, max_tokens: 1024 });
    await thread.send(user("Explain tidal power"));
    await new Promise((resolve) => setTimeout(resolve, Number(expirySeconds) * 1000 + 300));
    const reply = await thread.send(user("And its costs?"));
    assert.equal(reply.stop_reason, "end_turn");
    assert.deepEqual(await served(shortURL, from), [[200, "create"], [404, "continue"], [200, "create"]]);
  },

  async thread_already_continued_is_replayed() {
    const client = new Anthropic({ baseURL, apiKey: "sim", maxRetries: 0 });
    const from = (await served(baseURL)).length;
    const thread = client.beta.messages.thread({ model: MODEL, max_tokens: 1024 });
    const first = await thread.send(user("Explain tidal power"));
    await client.beta.messages.create({
      model: MODEL, max_tokens: 256, messages: [user("A side question")],
      thread: { type: "continue", previous_message_id: first.id }, betas: ["message-threads-2026-08-12"],
    });
    const reply = await thread.send(user("And its costs?"));
    assert.equal(reply.stop_reason, "end_turn");
    assert.deepEqual(await served(baseURL, from), [[200, "create"], [200, "continue"], [400, "continue"], [200, "create"]]);
  },

  async tool_runner_threads_by_default() {
    const client = new Anthropic({ baseURL, apiKey: "sim", maxRetries: 0 });
    const from = (await served(baseURL)).length;
    const calls = [];
    const weather = betaTool({
      name: "get_weather",
      description: "Get the current weather in a city",
      inputSchema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      run: async ({ city }) => { calls.push(city); return `Sunny in ${city}`; },
    });
    const final = await client.beta.messages.toolRunner({
      model: MODEL, max_tokens: 1024, tools: [weather],
      messages: [user("What is the weather in Paris? Use the get_weather tool.")],
    });
    assert.equal(final.stop_reason, "end_turn");
    assert.ok(calls.length >= 1);
    assert.deepEqual(await served(baseURL, from), [[200, "create"], [200, "continue"]]);
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
