// End-to-end acceptance of structured output (issue 21): `tpserve serve` on
// CPU with the embedded tiny chat model, whose random weights write garbage
// unless the grammar holds them to the schema. 100 varied JSON Schemas go
// through the OpenAI SDK; each completed answer must validate with a real
// JSON Schema validator (Ajv, draft 2020-12, formats included).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { startServe, metric, waitFor } from './serve_helpers.mjs';
import { schemaCorpus } from './structured_schemas.mjs';

let server;
let client;
const MODEL = 'tiny-qwen2-chat';
const SCHEMAS = schemaCorpus(100);

before(async () => {
  server = await startServe(['--max-num-seqs', '32']);
  client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  if (server) {
    server.proc.kill('SIGTERM');
    await server.exited;
  }
});

function newAjv() {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  return ajv;
}

// Runs `fn` over `items` with at most `limit` in flight.
async function pool(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: limit }, worker));
  return out;
}

test('100 JSON Schemas: >= 95% stop, and every stopped answer validates', async (t) => {
  assert.equal(SCHEMAS.length, 100);
  const ajv = newAjv();
  const validators = SCHEMAS.map((s) => ajv.compile(s));
  const results = await pool(SCHEMAS, 16, async (schema, i) => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: `Fill in record ${i} as JSON.` }],
      max_tokens: 512,
      temperature: i % 2 === 0 ? 0 : 0.8,
      seed: i,
      response_format: { type: 'json_schema', json_schema: { name: `s${i}`, schema, strict: true } },
    });
    return r.choices[0];
  });
  const stopped = results.filter((c) => c.finish_reason === 'stop');
  const lengths = results.map((c, i) => [i, c.finish_reason, c.message.content.slice(0, 200)]).filter(([, f]) => f !== 'stop');
  t.diagnostic(`${stopped.length}/100 stopped; not stopped: ${JSON.stringify(lengths)}`);
  assert.ok(stopped.length >= 95, `only ${stopped.length}/100 stopped; others: ${JSON.stringify(lengths)}`);
  results.forEach((c, i) => {
    if (c.finish_reason !== 'stop') return;
    let doc;
    assert.doesNotThrow(() => { doc = JSON.parse(c.message.content); },
      `schema ${i}: not JSON: ${c.message.content}`);
    assert.ok(validators[i](doc),
      `schema ${i} ${JSON.stringify(SCHEMAS[i])}\noutput ${c.message.content}\n` +
      `errors ${JSON.stringify(validators[i].errors)}`);
  });
  // The router counts the requests; the gateway re-exports its counter
  // (from a Stats poll at most 250 ms old).
  await waitFor(async () => (await metric(server.port, 'tpserve:structured_output_requests_total')) >= 100,
    5000, 'structured_output_requests_total >= 100');
  assert.ok((await metric(server.port, 'tpserve:structured_output_mask_seconds_count')) > 0);
});

// The id of `text`, which must be one token.
async function tokenId(text) {
  const r = await fetch(`http://127.0.0.1:${server.port}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: text, add_special_tokens: false }),
  });
  const { tokens } = await r.json();
  assert.equal(tokens.length, 1, `${text} is ${tokens.length} tokens`);
  return tokens[0];
}

test('json_object answers parse as objects', async () => {
  // An unconstrained object never has to end, and random weights rarely end
  // one within max_tokens; logit_bias on the closing tokens (applied after
  // the grammar's mask, so it cannot break the JSON) makes them end.
  // '"' outweighs '}' so a string closes before a '}' is written into it.
  const [quote, brace] = await Promise.all(['"', '}'].map(tokenId));
  const results = await pool([0, 1, 2, 3, 4, 5], 6, async (i) => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: `Any JSON object, please (${i}).` }],
      max_tokens: 256,
      temperature: i % 2 ? 0.7 : 0,
      seed: i,
      response_format: { type: 'json_object' },
      logit_bias: { [quote]: 10 + i, [brace]: 4 + i },
    });
    return r.choices[0];
  });
  const stopped = results.filter((c) => c.finish_reason === 'stop');
  assert.ok(stopped.length >= 5, `only ${stopped.length}/6 stopped: ${JSON.stringify(results.map((c) => c.message.content))}`);
  for (const c of stopped) {
    const doc = JSON.parse(c.message.content);
    assert.equal(typeof doc, 'object');
    assert.ok(doc !== null && !Array.isArray(doc), c.message.content);
  }
});

test('tool_choice "required" yields tool calls whose arguments match the parameters', async () => {
  const tools = [
    {
      type: 'function',
      function: {
        name: 'get_weather',
        description: 'Weather for a city',
        parameters: {
          type: 'object',
          properties: {
            city: { type: 'string', minLength: 1, maxLength: 20 },
            unit: { enum: ['celsius', 'fahrenheit'] },
          },
          required: ['city', 'unit'],
          additionalProperties: false,
        },
      },
    },
    {
      type: 'function',
      function: {
        name: 'add',
        parameters: {
          type: 'object',
          properties: { a: { type: 'integer', minimum: -100, maximum: 100 }, b: { type: 'integer' } },
          required: ['a', 'b'],
          additionalProperties: false,
        },
      },
    },
  ];
  const ajv = newAjv();
  const check = Object.fromEntries(tools.map((t) => [t.function.name, ajv.compile(t.function.parameters)]));
  const results = await pool([0, 1, 2, 3], 4, async (i) => {
    const r = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: `Call a tool (${i}).` }],
      max_tokens: 256,
      temperature: i % 2 ? 0.7 : 0,
      seed: i,
      tools,
      tool_choice: 'required',
      parallel_tool_calls: false,
    });
    return r.choices[0];
  });
  let calls = 0;
  for (const c of results) {
    if (c.finish_reason === 'length') continue;
    assert.equal(c.finish_reason, 'tool_calls', JSON.stringify(c));
    assert.equal(c.message.tool_calls.length, 1, JSON.stringify(c.message));
    for (const call of c.message.tool_calls) {
      assert.ok(call.function.name in check, call.function.name);
      const args = JSON.parse(call.function.arguments);
      assert.ok(check[call.function.name](args), `${call.function.name}(${call.function.arguments})`);
      ++calls;
    }
  }
  assert.ok(calls >= 3, `only ${calls}/4 requests produced a tool call`);
});

// Token ids of `text` (no special tokens added).
async function tokenize(text) {
  const r = await fetch(`http://127.0.0.1:${server.port}/tokenize`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: text, add_special_tokens: false }),
  });
  return (await r.json()).tokens;
}

// A greedy chat answer as its tokens' bytes (one token's bytes name it:
// the byte-level vocabulary has no two tokens with the same bytes).
async function greedyTokens(extra) {
  const r = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'Tell me about Paris.' }],
    max_tokens: 40,
    temperature: 0,
    logprobs: true,
    ...extra,
  });
  return r.choices[0].logprobs.content.map((e) => Buffer.from(e.bytes).toString('latin1'));
}

function containsRun(tokens, run) {
  for (let i = 0; i + run.length <= tokens.length; ++i) {
    if (run.every((t, j) => tokens[i + j] === t)) return true;
  }
  return false;
}

test('bad_words: a word greedy wrote, banned, is not written again', async (t) => {
  const greedy = await greedyTokens({});
  assert.ok(greedy.length >= 8, JSON.stringify(greedy));
  // Words of one and of two consecutive output tokens that the gateway's
  // tokenization of the word (as written or after a space, stripped as vLLM
  // strips it) turns back into exactly those tokens.
  const asText = (t) => Buffer.from(t, 'latin1').toString('utf8');
  const idOf = async (t) => {
    const ids = await tokenize(asText(t));
    return ids.length === 1 && Buffer.from(asText(t), 'utf8').toString('latin1') === t ? ids[0] : -1;
  };
  const found = { 1: null, 2: null };
  for (let i = 0; i < greedy.length && (!found[1] || !found[2]); ++i) {
    for (const n of [1, 2]) {
      if (found[n] || i + n > greedy.length) continue;
      const run = greedy.slice(i, i + n);
      const ids = await Promise.all(run.map(idOf));
      const word = run.map(asText).join('').trimStart();
      if (ids.includes(-1) || word === '' || /[\uFFFD<>|]/.test(word)) continue;
      const forms = [await tokenize(word), await tokenize(' ' + word)];
      if (forms.some((f) => JSON.stringify(f) === JSON.stringify(ids))) found[n] = { word, run };
    }
  }
  assert.ok(found[1] && found[2], `no usable words in ${JSON.stringify(greedy.map((t) => asText(t)))}`);
  for (const n of [1, 2]) {
    const { word, run } = found[n];
    const banned = await greedyTokens({ bad_words: [word] });
    t.diagnostic(`banned ${JSON.stringify(word)}: ${JSON.stringify(greedy.map(asText).join(''))} -> ` +
      JSON.stringify(banned.map(asText).join('')));
    assert.ok(banned.length > 0);
    assert.ok(!containsRun(banned, run),
      `bad_words ${JSON.stringify(word)} still wrote ${JSON.stringify(run.map(asText))}: ` +
      JSON.stringify(banned.map(asText)));
  }
  // The 400s name the field.
  const bad = await fetch(`${server.baseURL}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, prompt: 'hi', bad_words: [''] }),
  });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).error.param, 'bad_words');
});
