// The internal gRPC ports: `tpserve serve` keeps router and workers on
// loopback, and with --internal-ssl-* every internal link is mutual TLS, so a
// raw gRPC call without a certificate from the deployment's CA is refused
// while the OpenAI API keeps working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import http2 from 'node:http2';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServe, childPids, commandOf } from './serve_helpers.mjs';

const MODEL = 'tiny-qwen2-chat';

// Ports the launcher gave its router and workers (from their command lines),
// the router's first.
function internalPorts(launcherPid) {
  const ports = [];
  for (const pid of childPids(launcherPid)) {
    const m = commandOf(pid).match(/--(router|worker)-port=(\d+)/);
    if (m) ports[m[1] === 'router' ? 'unshift' : 'push'](Number(m[2]));
  }
  return ports;
}

// Local addresses (hex, as /proc/net/tcp{,6} print them) listening on `port`.
function listenAddresses(port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const out = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== '0A') continue;  // 0A: LISTEN
      const [addr, p] = f[1].split(':');
      if (p === hexPort) out.push(addr);
    }
  }
  return out;
}

// One gRPC call over HTTP/2 as any gRPC client would send it: `body` is the
// framed request (an empty message by default), closed after writing, so a
// streaming method sees one message and the end of the stream. Resolves with
// the grpc-status trailer, or rejects when the connection or the call fails.
function rawCall(url, method, { tls = {}, headers = {}, body = Buffer.from([0, 0, 0, 0, 0]) } = {}) {
  return new Promise((resolve, reject) => {
    const session = http2.connect(url, tls);
    const timer = setTimeout(() => { session.destroy(); reject(new Error('timeout')); }, 5000);
    session.on('error', (e) => { clearTimeout(timer); reject(e); });
    const req = session.request({
      ':method': 'POST', ':path': method,
      'content-type': 'application/grpc', te: 'trailers', ...headers,
    });
    let status = null;
    req.on('trailers', (t) => { status = t['grpc-status']; });
    req.on('response', (h) => { if (h['grpc-status'] !== undefined) status = h['grpc-status']; });
    req.on('error', (e) => { clearTimeout(timer); session.destroy(); reject(e); });
    req.on('end', () => {
      clearTimeout(timer);
      session.close();
      if (status === null) reject(new Error('no grpc-status'));
      else resolve(String(status));
    });
    req.resume();
    req.end(body);
  });
}

const rawHealth = (url, tls = {}) => rawCall(url, '/tpserve.v1.Router/Health', { tls });

function makeCerts() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tpserve-tls-'));
  const p = (n) => path.join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  execFileSync('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.pem'),
    '-days', '1', '-subj', '/CN=tpserve-e2e-ca'], { stdio: 'ignore' });
  fs.writeFileSync(p('ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  execFileSync('openssl', ['req', ...ec, '-keyout', p('node.key'), '-out', p('node.csr'),
    '-subj', '/CN=tpserve-node'], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', p('node.csr'), '-CA', p('ca.pem'),
    '-CAkey', p('ca.key'), '-CAcreateserial', '-days', '1', '-out', p('node.pem'),
    '-extfile', p('ext')], { stdio: 'ignore' });
  return { dir, ca: p('ca.pem'), cert: p('node.pem'), key: p('node.key') };
}

test('serve keeps router and workers on loopback', async () => {
  const server = await startServe(['--tensor-parallel-size', '2']);
  try {
    const ports = internalPorts(server.proc.pid);
    assert.equal(ports.length, 3, 'router + 2 workers');
    for (const port of ports) {
      const addrs = listenAddresses(port);
      assert.ok(addrs.length > 0, `port ${port} is listening`);
      // 127.0.0.1, or the same as an IPv4-mapped IPv6 address.
      for (const a of addrs) {
        assert.ok(['0100007F', '0000000000000000FFFF00000100007F'].includes(a),
          `port ${port} listens on ${a}, not 127.0.0.1`);
      }
    }
    // Positive control for the TLS test below: without TLS the raw call works.
    const router = ports[0];
    assert.equal(await rawHealth(`http://127.0.0.1:${router}`), '0');
  } finally {
    server.proc.kill('SIGTERM');
    await server.exited;
  }
});

test('with internal mutual TLS the API works and raw gRPC calls without a client certificate are refused', async () => {
  const certs = makeCerts();
  const server = await startServe(['--tensor-parallel-size', '2',
    '--internal-ssl-ca-certs', certs.ca, '--internal-ssl-certfile', certs.cert,
    '--internal-ssl-keyfile', certs.key]);
  try {
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
    const r = await client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 4,
    });
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok(r.usage.completion_tokens > 0);

    const ca = fs.readFileSync(certs.ca);
    for (const port of internalPorts(server.proc.pid)) {
      await assert.rejects(rawHealth(`http://127.0.0.1:${port}`), `plaintext call to ${port}`);
      await assert.rejects(rawHealth(`https://127.0.0.1:${port}`, { ca }),
        `TLS call without a client certificate to ${port}`);
    }
    // With the deployment's certificate the same raw call goes through.
    const [router] = internalPorts(server.proc.pid);
    assert.equal(await rawHealth(`https://127.0.0.1:${router}`, {
      ca, cert: fs.readFileSync(certs.cert), key: fs.readFileSync(certs.key),
    }), '0');
  } finally {
    server.proc.kill('SIGTERM');
    await server.exited;
    fs.rmSync(certs.dir, { recursive: true, force: true });
  }
});

test('a forged Step without the group token is refused and the group keeps serving', async () => {
  const server = await startServe(['--tensor-parallel-size', '2']);
  try {
    const client = new OpenAI({ baseURL: server.baseURL, apiKey: 'unused', maxRetries: 0 });
    const ask = () => client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8, temperature: 0,
    });
    const before = await ask();
    // A stream in flight while the forged calls arrive must finish normally.
    const stream = await client.chat.completions.create({
      model: MODEL, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 64,
      stream: true, temperature: 0,
    });
    const [, ...workers] = internalPorts(server.proc.pid);
    assert.equal(workers.length, 2);
    // StepRequest{step_id: 1, finished_seq_ids: [1]}: a well-formed step.
    const step = Buffer.from([0, 0, 0, 0, 4, 0x08, 0x01, 0x20, 0x01]);
    for (const port of workers) {
      const url = `http://127.0.0.1:${port}`;
      assert.equal(await rawCall(url, '/tpserve.v1.Worker/StepStream', { body: step }), '7',
        `StepStream without a token to ${port} is PERMISSION_DENIED`);
      assert.equal(await rawCall(url, '/tpserve.v1.Worker/StepStream', {
        body: step, headers: { 'tpserve-group-token': '0'.repeat(32) },
      }), '7', `StepStream with a wrong token to ${port}`);
      for (const m of ['LoadModel', 'ProfileMemory', 'InitCache']) {
        assert.equal(await rawCall(url, `/tpserve.v1.Worker/${m}`), '7', `${m} to ${port}`);
      }
    }
    let text = '', finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'length');
    assert.ok(text.length > 0);
    const after = await ask();
    assert.equal(after.choices[0].message.content, before.choices[0].message.content,
      'greedy output unchanged after the forged calls');
  } finally {
    server.proc.kill('SIGTERM');
    await server.exited;
  }
});
