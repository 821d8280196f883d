// End-to-end: `tpserve bench serve` against `tpserve serve` (CPU, the embedded
// tiny chat model), both endpoints, the saved JSON checked against the
// server's own token counter, and the failure paths a user meets.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, startServe, metric, freePort } from './serve_helpers.mjs';

let open;   // no API key
let keyed;  // --api-key sekrit
let dir;

before(async () => {
  open = await startServe(['--max-num-seqs', '32']);
  keyed = await startServe(['--api-key', 'sekrit']);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpserve-bench-'));
});

after(async () => {
  for (const s of [open, keyed]) {
    if (s) {
      s.proc.kill('SIGTERM');
      await s.exited;
    }
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// Runs `tpserve bench serve ARGS`; resolves with its exit code and output.
function bench(args, env = {}) {
  return new Promise((resolve) => {
    const proc = spawn(BIN, ['bench', 'serve', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, OPENAI_API_KEY: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => { stdout += d; });
    proc.stderr.on('data', (d) => { stderr += d; });
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const SMALL = ['--random-input-len', '32', '--random-output-len', '16', '--disable-tqdm'];

// A line of vLLM's result block: the label padded to 40, a space, the value.
const row = (label, value) => `${label.padEnd(40)} ${value}`;

for (const [endpoint, readyCheck] of [['/v1/completions', true], ['/v1/chat/completions', false]]) {
  test(`bench serve ${endpoint}: 64 prompts at max-concurrency 16`, async () => {
    const generatedBefore = await metric(open.port, 'tpserve:generation_tokens_total');
    const file = `${path.basename(endpoint)}.json`;
    const r = await bench([
      '--base-url', `http://127.0.0.1:${open.port}`, '--endpoint', endpoint,
      '--num-prompts', '64', '--max-concurrency', '16', ...SMALL,
      '--percentile-metrics', 'ttft,tpot,itl,e2el', '--metric-percentiles', '50,99',
      '--save-result', '--result-dir', dir, '--result-filename', file,
      ...(readyCheck ? [] : ['--ready-check-timeout-sec', '0']),
    ]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /=+ Serving Benchmark Result =+/);
    assert.ok(r.stdout.includes(row('Successful requests:', 64)), r.stdout);
    assert.ok(r.stdout.includes(row('Maximum request concurrency:', 16)), r.stdout);

    const j = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
    for (const key of ['date', 'backend', 'model_id', 'num_prompts', 'request_rate', 'burstiness',
      'max_concurrency', 'duration', 'completed', 'failed', 'total_input_tokens',
      'total_output_tokens', 'request_throughput', 'output_throughput', 'total_token_throughput',
      'max_output_tokens_per_s', 'max_concurrent_requests']) {
      assert.ok(key in j, `missing ${key}`);
    }
    assert.equal(j.completed, 64);
    assert.equal(j.failed, 0);
    assert.equal(j.model_id, 'tiny-qwen2-chat');  // from /v1/models
    assert.equal(j.backend, endpoint.includes('chat') ? 'openai-chat' : 'openai');
    assert.equal(j.max_concurrency, 16);
    // random: ignore_eos, so every request produced exactly its 16 tokens...
    assert.equal(j.total_output_tokens, 64 * 16);
    if (!endpoint.includes('chat')) assert.equal(j.total_input_tokens, 64 * 32);
    // ...and the server counted the same (plus the initial test request).
    const generated = await metric(open.port, 'tpserve:generation_tokens_total') - generatedBefore;
    assert.equal(generated, j.total_output_tokens + (readyCheck ? 16 : 0));
    for (const m of ['ttft', 'tpot', 'itl', 'e2el']) {
      for (const k of [`mean_${m}_ms`, `median_${m}_ms`, `std_${m}_ms`, `p50_${m}_ms`, `p99_${m}_ms`]) {
        assert.equal(typeof j[k], 'number', k);
      }
      assert.ok(j[`p50_${m}_ms`] <= j[`p99_${m}_ms`], m);
      assert.ok(j[`mean_${m}_ms`] > 0, m);
    }
    assert.ok(j.mean_e2el_ms >= j.mean_ttft_ms);
  });
}

test('bench serve with a bad API key: failures counted and shown, non-zero exit', async () => {
  const common = ['--base-url', `http://127.0.0.1:${keyed.port}`, '--model', 'tiny-qwen2-chat',
    '--num-prompts', '8', ...SMALL];
  const run = await bench([...common, '--api-key', 'wrong', '--ready-check-timeout-sec', '0']);
  assert.equal(run.code, 1, run.stdout + run.stderr);
  assert.ok(run.stdout.includes(row('Successful requests:', 0)), run.stdout);
  assert.ok(run.stdout.includes(row('Failed requests:', 8)), run.stdout);
  assert.match(run.stdout, /Errors \(3 of 8 failed requests\):\n {2}request 0: HTTP 401: /);
  assert.match(run.stderr, /^error: 8 of 8 requests failed \(first: HTTP 401: .*\)\n$/m);

  // With the default ready check the first request fails at once (no retry on 401).
  const started = Date.now();
  const check = await bench([...common, '--api-key', 'wrong']);
  assert.equal(check.code, 1);
  assert.match(check.stderr, /^error: initial test request to .* failed: HTTP 401: /m);
  assert.ok(Date.now() - started < 60000);  // not the 600 s a retry would take

  // The right key from $OPENAI_API_KEY, as vLLM's benchmark reads it.
  const ok = await bench(common, { OPENAI_API_KEY: 'sekrit' });
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.ok(ok.stdout.includes(row('Successful requests:', 8)), ok.stdout);
});

test('bench serve bad input: one clear line, non-zero exit', async () => {
  const nobody = await freePort();
  const unreachable = await bench(['--port', String(nobody), '--num-prompts', '2']);
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, new RegExp(`^error: cannot reach http://127.0.0.1:${nobody}/v1/models: `));
  assert.equal(unreachable.stderr.trim().split('\n').length, 1, unreachable.stderr);

  const missing = await bench(['--base-url', `http://127.0.0.1:${open.port}`, '--dataset-name',
    'sharegpt', '--dataset-path', path.join(dir, 'none.json')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^error: --dataset-path '.*none\.json': cannot open/);

  const bad = path.join(dir, 'bad.json');
  fs.writeFileSync(bad, '[{"conversations": [');
  const malformed = await bench(['--base-url', `http://127.0.0.1:${open.port}`, '--dataset-name',
    'sharegpt', '--dataset-path', bad]);
  assert.equal(malformed.code, 1);
  assert.match(malformed.stderr, /^error: --dataset-path '.*bad\.json': not valid JSON/);

  const flag = await bench(['--num-prompt', '3']);
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /did you mean --num-prompts\?/);

  const help = await bench(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--request-rate X/);
  assert.match(help.stdout, /--goodput KEY:MS .../);
});
