// Drives a running tpserve gateway with the official `openai` npm SDK, the
// way existing clients talk to vLLM. Point it at a server with
//   TPSERVE_BASE_URL=http://127.0.0.1:8000/v1 [TPSERVE_API_KEY=...] node --test
// (TPSERVE_MODEL picks the model; default: the first of /v1/models). The
// model may be random-weight, so the tests check shapes and accounting, never
// the generated words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.TPSERVE_BASE_URL;
if (!baseURL) {
  throw new Error('set TPSERVE_BASE_URL (e.g. http://127.0.0.1:8000/v1)');
}
const client = new OpenAI({ baseURL, apiKey: process.env.TPSERVE_API_KEY ?? 'unused', maxRetries: 0 });

async function modelName() {
  if (process.env.TPSERVE_MODEL) return process.env.TPSERVE_MODEL;
  const page = await client.models.list();
  return page.data[0].id;
}

const messages = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'Say hello.' },
];

test('models.list returns the served model', async () => {
  const page = await client.models.list();
  assert.ok(page.data.length >= 1);
  assert.equal(page.data[0].object, 'model');
  assert.equal(typeof page.data[0].id, 'string');
});

test('chat completion (non-streaming) with usage', async () => {
  const model = await modelName();
  const r = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 8);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('chat completion (streaming) with include_usage', async () => {
  const model = await modelName();
  const stream = await client.chat.completions.create({
    model, messages, max_tokens: 8, temperature: 0, stream: true,
    stream_options: { include_usage: true },
  });
  let first = true;
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length === 0) continue;
    if (first) {
      assert.equal(chunk.choices[0].delta.role, 'assistant');
      first = false;
    }
    text += chunk.choices[0].delta.content ?? '';
    if (chunk.choices[0].finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(first, false, 'no chunk arrived');
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage, 'no usage chunk');
  assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 8);
  assert.equal(typeof text, 'string');
});

test('streaming and non-streaming agree under greedy decoding', async () => {
  const model = await modelName();
  const args = { model, messages, max_tokens: 6, temperature: 0, seed: 1 };
  const full = await client.chat.completions.create(args);
  const stream = await client.chat.completions.create({ ...args, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
  assert.equal(text, full.choices[0].message.content);
});

test('chat with n=2 and logprobs', async () => {
  const model = await modelName();
  const r = await client.chat.completions.create({
    model, messages, max_tokens: 4, n: 2, logprobs: true, top_logprobs: 2,
  });
  assert.equal(r.choices.length, 2);
  assert.deepEqual(r.choices.map((c) => c.index).sort(), [0, 1]);
  for (const c of r.choices) {
    assert.ok(c.logprobs.content.length >= 1);
    assert.equal(typeof c.logprobs.content[0].logprob, 'number');
    assert.equal(c.logprobs.content[0].top_logprobs.length, 2);
  }
});

test('completion (non-streaming and streaming)', async () => {
  const model = await modelName();
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 5, temperature: 0 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  const stream = await client.completions.create({
    model, prompt: 'Once upon a time', max_tokens: 5, temperature: 0, stream: true,
  });
  let text = '';
  let finish = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.text ?? '';
    if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
  }
  assert.equal(text, r.choices[0].text);
  assert.ok(['stop', 'length'].includes(finish));
});

test('bad requests surface as SDK errors with OpenAI error bodies', async () => {
  const model = await modelName();
  await assert.rejects(
    client.chat.completions.create({ model, messages, temperature: -1 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature',
  );
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages }),
    (e) => e instanceof OpenAI.NotFoundError && e.status === 404,
  );
  await assert.rejects(
    client.completions.create({ model, prompt: 'x', echo: true }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'echo',
  );
});
