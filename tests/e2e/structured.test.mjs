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
