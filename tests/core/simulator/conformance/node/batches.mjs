// The official TypeScript SDK's Message Batches calls driving the simulator.
// Usage: node batches.mjs BASE_URL SLOW_BASE_URL EXPIRING_BASE_URL
//   BASE_URL: batches end about a second after creation; SLOW_BASE_URL: they take a minute (time to
//   cancel or try to delete one in progress); EXPIRING_BASE_URL: they expire before they end.
// Prints one JSON object: {scenario: "ok" | "error message"}; the pytest side asserts every one is ok.
import assert from "node:assert/strict";
import Anthropic from "@anthropic-ai/sdk";

const client = new Anthropic({ baseURL: process.argv[2], apiKey: "sim", maxRetries: 0 });
const slow = new Anthropic({ baseURL: process.argv[3], apiKey: "sim", maxRetries: 0 });
const expiring = new Anthropic({ baseURL: process.argv[4], apiKey: "sim", maxRetries: 0 });
const SEARCH = [{ type: "web_search_20250305", name: "web_search" }];
const entry = (custom_id, text = "Research sodium-ion batteries", extra = {}) => ({
  custom_id,
  params: { model: "claude-sonnet-5", max_tokens: 2048, messages: [{ role: "user", content: text }], tools: SEARCH, ...extra },
});
const WITHIN_MS = 30_000;

// What the engine does: poll the batch until it has ended (with a ceiling), then read its results.
async function ended(api, id) {
  const deadline = Date.now() + WITHIN_MS;
  for (;;) {
    const batch = await api.messages.batches.retrieve(id);
    if (batch.processing_status === "ended") return batch;
    if (Date.now() > deadline) throw new Error(`batch ${id} still ${batch.processing_status}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function resultsOf(api, id) {
  const byId = {};
  for await (const line of await api.messages.batches.results(id)) byId[line.custom_id] = line.result;
  return byId;
}

async function status(promise) {
  try {
    await promise;
  } catch (error) {
    return error.status;
  }
  return 200;
}

const scenarios = {
  async create_retrieve_results() {
    const created = await client.messages.batches.create({
      requests: [entry("a"), entry("b", "Research tidal power"), entry("bad", "hi", { messages: [] })],
    });
    assert.ok(created.id.startsWith("msgbatch_"));
    assert.equal(created.processing_status, "in_progress");
    assert.equal(created.request_counts.processing, 3);
    assert.equal(created.results_url, null);
    const batch = await ended(client, created.id);
    assert.deepEqual(batch.request_counts, { processing: 0, succeeded: 2, errored: 1, canceled: 0, expired: 0 });
    assert.ok(batch.results_url.endsWith(`/v1/messages/batches/${created.id}/results`));
    assert.ok(new Date(batch.ended_at) >= new Date(batch.created_at));
    const results = await resultsOf(client, created.id);
    assert.deepEqual(Object.keys(results).sort(), ["a", "b", "bad"]);
    for (const id of ["a", "b"]) {
      const { type, message } = results[id];
      assert.equal(type, "succeeded");
      assert.equal(message.stop_reason, "end_turn");
      assert.equal(message.usage.service_tier, "batch");
      assert.ok(message.usage.server_tool_use.web_search_requests >= 1);
      assert.ok(message.content.some((b) => b.type === "text" && (b.citations ?? []).length > 0));
    }
    assert.equal(results.bad.type, "errored");
    assert.equal(results.bad.error.type, "error");
    assert.equal(results.bad.error.error.type, "invalid_request_error");
  },

  async list_with_paging() {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await client.messages.batches.create({ requests: [entry(`l${i}`)] })).id);
    const newestFirst = [...ids].reverse();
    const page = await client.messages.batches.list({ limit: 2 });
    assert.deepEqual(page.data.map((b) => b.id), newestFirst.slice(0, 2));
    assert.equal(page.has_more, true);
    assert.equal(page.first_id, newestFirst[0]);
    assert.equal(page.last_id, newestFirst[1]);
    assert.ok(page.hasNextPage());
    const next = await page.getNextPage();
    assert.equal(next.data[0].id, newestFirst[2]);
    const seen = [];
    for await (const batch of client.messages.batches.list({ limit: 2 })) seen.push(batch.id);
    assert.deepEqual(seen.slice(0, 3), newestFirst); // auto-paging, most recent first
    const before = await client.messages.batches.list({ limit: 5, before_id: newestFirst[2] });
    assert.deepEqual(before.data.map((b) => b.id), newestFirst.slice(0, 2));
  },

  async cancel_then_canceled_results() {
    const created = await slow.messages.batches.create({ requests: [entry("c1"), entry("c2")] });
    const canceling = await slow.messages.batches.cancel(created.id);
    assert.equal(canceling.processing_status, "canceling");
    assert.ok(canceling.cancel_initiated_at);
    const batch = await ended(slow, created.id);
    assert.equal(batch.request_counts.canceled, 2);
    const results = await resultsOf(slow, created.id);
    assert.deepEqual([results.c1.type, results.c2.type], ["canceled", "canceled"]);
  },

  async expired_results() {
    const created = await expiring.messages.batches.create({ requests: [entry("e1"), entry("e2")] });
    const batch = await ended(expiring, created.id);
    assert.equal(batch.request_counts.expired, 2);
    assert.ok(new Date(batch.ended_at) >= new Date(new Date(batch.expires_at).getTime() - 50));
    const results = await resultsOf(expiring, created.id);
    assert.deepEqual([results.e1.type, results.e2.type], ["expired", "expired"]);
  },

  async delete_only_once_ended() {
    const created = await slow.messages.batches.create({ requests: [entry("d1")] });
    assert.equal(await status(slow.messages.batches.delete(created.id)), 400); // still in progress
    await slow.messages.batches.cancel(created.id);
    await ended(slow, created.id);
    const deleted = await slow.messages.batches.delete(created.id);
    assert.deepEqual(deleted, { id: created.id, type: "message_batch_deleted" });
    assert.equal(await status(slow.messages.batches.retrieve(created.id)), 404);
  },

  async invalid_batches() {
    const cases = [
      [{ requests: [] }, 400],
      [{ requests: [entry("has space")] }, 400],
      [{ requests: [entry("x".repeat(65))] }, 400],
      [{ requests: [entry("same"), entry("same")] }, 400],
      [{ requests: [{ custom_id: "no-params" }] }, 400],
    ];
    for (const [body, expected] of cases) {
      assert.equal(await status(client.messages.batches.create(body)), expected, JSON.stringify(body).slice(0, 80));
    }
    assert.equal(await status(client.messages.batches.retrieve("msgbatch_01NoSuchBatch")), 404);
    assert.equal(await status(client.messages.batches.cancel("msgbatch_01NoSuchBatch")), 404);
  },
};

const outcomes = {};
for (const [name, run] of Object.entries(scenarios)) {
  try {
    await run();
    outcomes[name] = "ok";
  } catch (error) {
    outcomes[name] = String(error?.stack ?? error);
  }
}
console.log(JSON.stringify(outcomes));
