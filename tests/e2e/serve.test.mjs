// End-to-end: `tpserve serve` (CPU, TP=2, the embedded tiny chat model)
// started as a user would, driven with the official OpenAI SDK.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startServe, metric, waitFor } from './serve_helpers.mjs';

let server;
let client;
const MODEL = 'tiny-qwen2-chat';

before(async () => {
  server = await startServe(['--tensor-parallel-size', '2', '--max-num-seqs', '64']);
  client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  if (server) {
    server.proc.kill('SIGTERM');
    await server.exited;
  }
});

test('models lists the served model', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
});

test('chat, non-streaming, greedy is deterministic and counts tokens', async () => {
  const req = {
    model: MODEL,
    messages: [{ role: 'user', content: '你好，帮我介绍一下什么是大语言模型。' }],
    max_tokens: 12,
    temperature: 0,
    ignore_eos: true,
  };
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.object, 'chat.completion');
  assert.equal(a.choices[0].message.role, 'assistant');
  assert.equal(typeof a.choices[0].message.content, 'string');
  assert.equal(a.choices[0].finish_reason, 'length');
  assert.equal(a.usage.completion_tokens, 12);
  assert.equal(a.usage.total_tokens, a.usage.prompt_tokens + 12);
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

test('chat, streaming, with usage chunk', async () => {
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Hi' }],
    max_tokens: 10,
    temperature: 0.9,
    top_p: 0.7,
    top_k: 20,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.role) role = choice.delta.role;
      if (choice.delta.content) text += choice.delta.content;
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(finish, 'length');
  assert.ok(usage, 'usage chunk present');
  assert.equal(usage.completion_tokens, 10);
  assert.equal(typeof text, 'string');
});

test('completions, streaming and not', async () => {
  const full = await client.completions.create({
    model: MODEL, prompt: 'The capital of France is', max_tokens: 6, temperature: 0, ignore_eos: true,
  });
  assert.equal(full.object, 'text_completion');
  assert.equal(full.usage.completion_tokens, 6);
  const stream = await client.completions.create({
    model: MODEL, prompt: 'The capital of France is', max_tokens: 6, temperature: 0, ignore_eos: true,
    stream: true,
  });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, full.choices[0].text, 'streamed text equals the non-streamed text');
});

test('64 concurrent streaming clients all finish with the right token counts', async () => {
  const N = 64;
  const runs = Array.from({ length: N }, async (_, i) => {
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: `client ${i}: count to ten` }],
      max_tokens: 16,
      temperature: 1.0,
      seed: i,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) if (c.finish_reason) finish = c.finish_reason;
    }
    return { usage, finish };
  });
  const results = await Promise.all(runs);
  for (const r of results) {
    assert.equal(r.finish, 'length');
    assert.equal(r.usage.completion_tokens, 16);
  }
});

test('a client that disconnects mid-stream frees its KV blocks', async () => {
  const controller = new AbortController();
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'Write a very long story.' }],
    max_tokens: 3000,
    ignore_eos: true,
    stream: true,
  }, { signal: controller.signal });
  // The SDK ends the iteration quietly on abort (no exception), so count the
  // chunks and check the request really was running before the hang-up.
  let chunks = 0;
  let runningBeforeAbort = null;
  try {
    for await (const chunk of stream) {
      if (chunk.choices[0]?.delta?.content !== undefined) chunks += 1;
      if (chunks === 5) {
        await waitFor(async () => (await metric(server.port, 'tpserve:router_num_requests_running')) >= 1,
          5000, 'the router to report the request as running');
        runningBeforeAbort = await metric(server.port, 'tpserve:router_num_requests_running');
        controller.abort();
        break;
      }
    }
  } catch (err) {
    if (err.name !== 'APIUserAbortError' && err.name !== 'AbortError') throw err;
  }
  assert.equal(chunks, 5, 'the stream was cut after 5 chunks, far short of max_tokens');
  assert.ok(runningBeforeAbort >= 1);
  await waitFor(async () => (await metric(server.port, 'tpserve:router_num_requests_running')) === 0 &&
    (await metric(server.port, 'tpserve:router_kv_cache_usage_perc')) === 0, 10000,
    'the router to free the aborted request (running 0, KV usage 0)');
});
