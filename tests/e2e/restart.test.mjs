// issue 22: after any stop, `tpserve serve` refused to start again on the
// same port for up to a minute ("port 8000 is taken"): its port check
// tripped over the TIME-WAIT sockets the gateway's connections left, so
// systemd restarts failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServe } from './serve_helpers.mjs';

// GET with "Connection: close": the gateway closes first, so the connection
// ends in TIME-WAIT on the gateway's port.
function getAndClose(port, path) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { Connection: 'close' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
    req.on('error', reject);
  });
}

test('serve starts again on the same port right after a stop', async () => {
  const first = await startServe([]);
  for (let i = 0; i < 3; i += 1) assert.equal(await getAndClose(first.port, '/version'), 200);
  first.proc.kill('SIGTERM');
  assert.equal((await first.exited).code, 0);
  const second = await startServe([], { port: first.port });
  try {
    assert.equal(await getAndClose(second.port, '/version'), 200);
  } finally {
    second.proc.kill('SIGTERM');
    await second.exited;
  }
});
