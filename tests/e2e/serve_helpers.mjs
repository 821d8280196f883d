// Starting and stopping `tpserve serve` the way a user does, for the
// end-to-end tests. TPSERVE_BIN points at the built binary.
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';

export const BIN = process.env.TPSERVE_BIN;

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

// Starts `tpserve serve` with `args` (on `port`, else a free one); resolves
// once it prints its ready line.
export async function startServe(args, { readyTimeoutMs = 120000, port: wanted = 0 } = {}) {
  if (!BIN) throw new Error('TPSERVE_BIN is not set');
  const port = wanted || await freePort();
  const proc = spawn(BIN, ['serve', '--device', 'cpu', '--port', String(port), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => { out += d; });
  proc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve not ready in ${readyTimeoutMs} ms:\n${out}\n${err}`)), readyTimeoutMs);
    const check = () => {
      if (out.includes('ready in')) { clearTimeout(timer); resolve(); }
    };
    proc.stdout.on('data', check);
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`serve exited early (code ${code}, signal ${signal}):\n${out}\n${err}`));
    });
  });
  await ready;
  return {
    proc,
    port,
    baseURL: `http://127.0.0.1:${port}/v1`,
    exited,
    output: () => out + err,
  };
}

// Pids of the launcher's children (workers, router, gateway).
export function childPids(pid) {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)]).toString()
      .split('\n').map((s) => s.trim()).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function commandOf(pid) {
  try {
    return execFileSync('ps', ['-o', 'args=', '-p', String(pid)]).toString().trim();
  } catch {
    return '';
  }
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(predicate, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// Value of a Prometheus sample whose line starts with `prefix` (name plus
// optional labels), summed over matching lines; null if absent.
export async function metric(port, name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let found = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = line.match(/^([^\s{]+)(\{[^}]*\})?\s+(\S+)/);
    if (m && m[1] === name) found = (found ?? 0) + Number(m[3]);
  }
  return found;
}
