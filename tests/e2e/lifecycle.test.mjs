// `tpserve serve` process lifecycle: SIGTERM leaves nothing behind; a worker
// that dies fails in-flight requests quickly and the service exits non-zero
// (the documented policy: no silent restarts inside `serve`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { spawnSync } from 'node:child_process';
import { BIN, startServe, childPids, commandOf, alive, waitFor } from './serve_helpers.mjs';

const MODEL = 'tiny-qwen2-chat';

test('SIGTERM stops gateway, router and workers with no process left behind', async () => {
  const server = await startServe(['--tensor-parallel-size', '2']);
  const children = childPids(server.proc.pid);
  assert.equal(children.length, 4, `expected 2 workers + router + gateway, got ${children.length}`);
  server.proc.kill('SIGTERM');
  const { code } = await server.exited;
  assert.equal(code, 0);
  for (const pid of children) assert.equal(alive(pid), false, `child ${pid} still alive`);
});

// One raw streaming request: resolves `started` at the first content chunk
// and `body` with everything the server sent until it closed.
function rawStream(port) {
  let markStarted;
  const started = new Promise((resolve) => { markStarted = resolve; });
  const body = (async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        model: MODEL, stream: true, max_tokens: 3000, ignore_eos: true,
        messages: [{ role: 'user', content: 'Tell me everything.' }],
      }),
    });
    const decoder = new TextDecoder();
    let text = '';
    for await (const part of res.body) {
      text += decoder.decode(part, { stream: true });
      if (/"content":"[^"]/.test(text)) markStarted();
    }
    markStarted();
    return text;
  })();
  return { started, body };
}

test('SIGTERM during 20 streams: each gets an error event and [DONE], exit 0, nothing left', async () => {
  const server = await startServe(['--drain-timeout-ms', '1000']);
  const children = childPids(server.proc.pid);
  const streams = Array.from({ length: 20 }, () => rawStream(server.port));
  await Promise.all(streams.map((s) => s.started));
  server.proc.kill('SIGTERM');
  const bodies = await Promise.all(streams.map((s) => s.body));
  for (const body of bodies) {
    const events = body.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.at(-1), 'data: [DONE]', body.slice(-300));
    assert.match(events.at(-2), /^data: \{"error":.*service_unavailable/, body.slice(-300));
  }
  const { code } = await server.exited;
  assert.equal(code, 0);
  for (const pid of children) assert.equal(alive(pid), false, `child ${pid} still alive`);
});

test('killing a worker fails in-flight requests with a clear error and exits non-zero', async () => {
  const server = await startServe(['--tensor-parallel-size', '2']);
  const children = childPids(server.proc.pid);
  const worker = children.find((pid) => commandOf(pid).includes(' worker '));
  assert.ok(worker, 'found a worker process');
  const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'Tell me everything.' }],
    max_tokens: 3000,
    ignore_eos: true,
    stream: true,
  });
  let chunks = 0;
  const started = Date.now();
  let failure = null;
  try {
    for await (const chunk of stream) {
      chunks += 1;
      if (chunks === 3) process.kill(worker, 'SIGKILL');
      if (chunk.choices[0]?.finish_reason) break;
    }
  } catch (err) {
    failure = err;
  }
  const elapsed = Date.now() - started;
  assert.ok(failure, 'the stream ended with an error, not a normal finish');
  assert.match(String(failure.message ?? failure), /rank|worker|unavailable/i);
  assert.ok(elapsed < 15000, `error took ${elapsed} ms`);
  const { code } = await server.exited;
  assert.notEqual(code, 0, 'serve exits non-zero after losing a worker');
  for (const pid of children) {
    await waitFor(() => !alive(pid), 10000, `child ${pid} to exit`);
  }
});

test('a KV cache too small for one max-model-len sequence fails start-up at once with the numbers and flags', () => {
  const r = spawnSync(BIN, ['serve', '--device', 'cpu', '--port', '0', '--cpu-kv-cache-space', '0.00001'],
    { encoding: 'utf8', timeout: 90000 });
  assert.equal(r.status, 1, `exit status ${r.status}, signal ${r.signal}`);
  const err = r.stderr.split('\n').filter((l) => l.startsWith('error:')).join('\n');
  assert.match(err, /max_model_len 4096 needs 256 blocks/);
  assert.match(err, /--cpu-kv-cache-space/);
});
