// Tool calls through the official `openai` npm SDK, against the test gateway
// (//gateway/testing:test_gateway) started with a --reply that is a Qwen
// <tool_call> block: run by run_against_test_gateway.sh, which sets
// TPSERVE_TOOL_BASE_URL. (Not in the model-backed e2e run: a random-weight
// model never writes a tool call.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.TPSERVE_TOOL_BASE_URL;
if (!baseURL) throw new Error('set TPSERVE_TOOL_BASE_URL (a test gateway replying with a <tool_call>)');
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });

const request = {
  model: 'tiny-qwen2-chat',
  max_tokens: 100,
  messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
  tools: [{
    type: 'function',
    function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } },
  }],
};

test('non-streaming reply carries tool_calls', async () => {
  const r = await client.chat.completions.create(request);
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].type, 'function');
  assert.equal(m.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { city: 'Paris' });
});

test('the SDK stream helper assembles the streamed tool call', async () => {
  const runner = client.chat.completions.stream({ ...request, stream: true });
  const done = await runner.finalChatCompletion();
  const m = done.choices[0].message;
  assert.equal(done.choices[0].finish_reason, 'tool_calls');
  assert.equal(m.tool_calls.length, 1);
  assert.equal(m.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { city: 'Paris' });
});
