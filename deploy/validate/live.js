#!/usr/bin/env node
// Runs one rendered overlay's pods for real, on this host, the way the kubelet
// would: every tpserve container of one replica pod and one gateway pod, with
// the args, ConfigMap and Secret files of the manifests; then evaluates each
// container's probes (HTTP, gRPC health, TCP), calls the API with the
// Secret's key, scrapes the annotated metrics ports and checks that SIGTERM
// stops everything. Meant for the cpu-demo overlay (no GPU, model in the
// image). Run it in a private network and mount namespace (check.sh uses
// `unshare --net --mount`): the pod's fixed ports are then free, and the
// gateways' --router host names are mapped to 127.0.0.1 in /etc/hosts.
//
//   node live.js --binary TPSERVE [--map IMAGE_PATH=HOST_PATH]... [--secret NAME=DIR]...
//                [--dashboard JSON] RENDERED.yaml
// --secret gives the files of a Secret the overlay leaves to the operator
// (e.g. the internal TLS certificates), one file per key.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const http = require("http");
const http2 = require("http2");
const net = require("net");
const { spawn, spawnSync } = require("child_process");
const YAML = require("yaml");
const T = require("./tpserve");

const results = [];
function report(check, ok, detail) {
  results.push({ check: `live ${check}`, ok, detail });
  process.stdout.write(`${ok ? "PASS" : "FAIL"} live ${check}${detail ? `${ok ? " (" : ": "}${detail}${ok ? ")" : ""}` : ""}\n`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One HTTP request; resolves {status, body} or {error}.
function httpRequest(port, reqPath, { method = "GET", headers = {}, body, timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const req = http.request({ host: "127.0.0.1", port, path: reqPath, method, headers, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => resolve({ error: e.message }));
    req.end(body);
  });
}

// grpc.health.v1.Health/Check over h2c; ok when the answer is SERVING.
function grpcHealth(port, service, timeoutMs = 5000) {
  return new Promise((resolve) => {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    const done = (r) => { client.close(); resolve(r); };
    client.on("error", (e) => done({ ok: false, detail: e.message }));
    const name = Buffer.from(service || "");
    const msg = name.length ? Buffer.concat([Buffer.from([0x0a, name.length]), name]) : Buffer.alloc(0);
    const frame = Buffer.alloc(5 + msg.length);
    frame.writeUInt32BE(msg.length, 1);
    msg.copy(frame, 5);
    const req = client.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check",
                                 "content-type": "application/grpc", te: "trailers" });
    let status = null;
    const chunks = [];
    req.on("response", (h) => { if (h["grpc-status"] !== undefined) status = h["grpc-status"]; });
    req.on("trailers", (t) => { status = t["grpc-status"]; });
    req.on("data", (c) => chunks.push(c));
    req.on("error", (e) => done({ ok: false, detail: e.message }));
    req.on("end", () => {
      if (status !== "0") return done({ ok: false, detail: `grpc-status ${status}` });
      const m = Buffer.concat(chunks).subarray(5);
      const serving = m.length >= 2 && m[0] === 0x08 && m[1] === 1;
      done({ ok: serving, detail: serving ? undefined : `health status ${m.length >= 2 ? m[1] : "unknown"}` });
    });
    req.setTimeout(timeoutMs, () => { req.close(); done({ ok: false, detail: "timeout" }); });
    req.end(frame);
  });
}

function tcpConnect(port, timeoutMs = 3000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    const done = (r) => { s.destroy(); resolve(r); };
    s.setTimeout(timeoutMs, () => done({ ok: false, detail: "timeout" }));
    s.on("connect", () => done({ ok: true }));
    s.on("error", (e) => done({ ok: false, detail: e.message }));
  });
}

// An exec probe's command, as the kubelet runs it in the container: ok when
// it exits 0 within the probe's timeout.
function execOnce(command, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(command[0], command.slice(1), { stdio: "ignore" });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => { clearTimeout(timer); resolve({ ok: false, detail: e.message }); });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ ok: code === 0, detail: signal ? `killed (${signal})` : `exit ${code}` });
    });
  });
}

// One probe attempt as the kubelet makes it, for the container of `proc`
// (an exec of `tpserve` runs the binary under test, with the container's
// mounted files).
async function probeOnce(proc, probe) {
  const container = proc.container;
  const portOf = (p) => typeof p === "number" ? p : ((container.ports || []).find((x) => x.name === p) || {}).containerPort;
  if (probe.httpGet) {
    const r = await httpRequest(portOf(probe.httpGet.port), probe.httpGet.path || "/", { timeoutMs: (probe.timeoutSeconds || 1) * 1000 });
    return r.error ? { ok: false, detail: r.error } : { ok: r.status >= 200 && r.status < 400, detail: `HTTP ${r.status}` };
  }
  if (probe.grpc) return grpcHealth(probe.grpc.port, probe.grpc.service, (probe.timeoutSeconds || 1) * 1000);
  if (probe.tcpSocket) return tcpConnect(portOf(probe.tcpSocket.port));
  if (probe.exec) {
    let command = probe.exec.command;
    if (command[0] === "tpserve") command = [proc.binary, ...T.rewriteArgs(command.slice(1), proc.mounts)];
    return execOnce(command, (probe.timeoutSeconds || 1) * 1000);
  }
  return { ok: false, detail: "unsupported probe" };
}

// Retries a probe for its whole budget (period x failureThreshold), capped,
// but gives up at once when the process has exited (the kubelet would be
// restarting it) or the answer cannot change (gRPC UNIMPLEMENTED: no health
// service registered).
async function probeUntil(proc, probe, capMs, kind) {
  const period = (probe.periodSeconds || 10) * 1000;
  // A startup probe has a budget; readiness is probed for as long as the
  // pod lives, so only the cap bounds the wait.
  const budget = kind === "startupProbe" ? period * (probe.failureThreshold || 3) : capMs;
  const deadline = Date.now() + Math.min(capMs, budget);
  let last;
  do {
    last = await probeOnce(proc, probe);
    if (last.ok || proc.child.exited || last.detail === "grpc-status 12") return last;
    await sleep(Math.min(period, 1000));
  } while (Date.now() < deadline);
  return last;
}

// Repeats an HTTP request while it fails with a retryable answer (no
// connection, 503 while replicas load), up to `ms`.
async function httpRetry(proc, port, reqPath, options, ms) {
  const deadline = Date.now() + ms;
  let r;
  do {
    r = await httpRequest(port, reqPath, options);
    if ((!r.error && r.status !== 503) || proc.child.exited) return r;
    await sleep(1000);
  } while (Date.now() < deadline);
  return r;
}

function applyMaps(text, maps) {
  return maps.reduce((t, [from, to]) => t.split(from).join(to), text);
}

function setUpNamespace(hostnames) {
  const lo = spawnSync("ip", ["link", "set", "lo", "up"], { encoding: "utf8" });
  if (lo.status !== 0) throw new Error(`ip link set lo up: ${lo.stderr || lo.error}`);
  const hosts = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "tpserve-live-hosts-")), "hosts");
  fs.writeFileSync(hosts, fs.readFileSync("/etc/hosts", "utf8") + hostnames.map((h) => `127.0.0.1 ${h}\n`).join(""));
  const m = spawnSync("mount", ["--bind", hosts, "/etc/hosts"], { encoding: "utf8" });
  if (m.status !== 0) throw new Error(`mount --bind ${hosts} /etc/hosts: ${m.stderr || m.error}`);
}

async function main(argv) {
  let binary;
  const maps = [];
  let file;
  let dashboard = null;
  const secrets = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--binary") binary = argv[++i];
    else if (argv[i] === "--map") maps.push(argv[++i].split("="));
    else if (argv[i] === "--dashboard") dashboard = argv[++i];
    else if (argv[i] === "--secret") {
      const [name, dir] = argv[++i].split("=");
      secrets[name] = dir;
    }
    else file = argv[i];
  }
  if (!binary || !file) {
    process.stderr.write("usage: live.js --binary TPSERVE [--map IMAGE=HOST]... [--secret NAME=DIR]... [--dashboard JSON] RENDERED.yaml\n");
    process.exit(2);
  }
  const objects = YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
  const pods = T.workloads(objects).filter((w) => T.tpserveContainers(w).length > 0);
  const procs = [];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "tpserve-live-"));
  try {
    const routerHosts = [];
    for (const w of pods) {
      for (const c of T.tpserveContainers(w)) {
        for (const a of c.args) {
          const m = a.match(/^--router=([^:]+):\d+$/);
          if (m) routerHosts.push(m[1]);
        }
      }
    }
    setUpNamespace(routerHosts);
    // Start every container of one pod per workload, as the kubelet would.
    for (const w of pods) {
      for (const c of T.tpserveContainers(w)) {
        const dir = path.join(work, `${w.metadata.name}-${c.name}`);
        const notes = [];
        const mounts = T.materializeMounts(objects, w.spec.template.spec, c, dir, notes, secrets);
        for (const m of mounts) {
          const files = fs.statSync(m.hostPath).isDirectory()
            ? fs.readdirSync(m.hostPath).map((f) => path.join(m.hostPath, f)) : [m.hostPath];
          for (const f of files) fs.writeFileSync(f, applyMaps(fs.readFileSync(f, "utf8"), maps));
        }
        const args = T.rewriteArgs(c.args, mounts).map((a) => applyMaps(a, maps));
        const env = { PATH: process.env.PATH };
        for (const e of c.env || []) if (typeof e.value === "string") env[e.name] = e.value;
        const log = path.join(work, `${w.metadata.name}-${c.name}.log`);
        const out = fs.openSync(log, "w");
        const child = spawn(binary, args, { env, stdio: ["ignore", out, out] });
        child.on("exit", (code, signal) => { child.exited = { code, signal }; });
        procs.push({ workload: w, container: c, child, log, mounts, binary });
      }
    }
    const tail = (p) => fs.readFileSync(p.log, "utf8").trim().split("\n").slice(-3).join(" | ");
    // Every container's startup probe, then readiness (which the kubelet
    // keeps probing: it must pass within the cap, e.g. once the router is
    // ready for a gateway), then one liveness probe.
    for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      for (const p of procs) {
        const probe = p.container[kind];
        if (!probe) continue;
        const r = kind === "livenessProbe" ? await probeOnce(p, probe) : await probeUntil(p, probe, 180000, kind);
        report(`${kind} ${p.workload.metadata.name}/${p.container.name}`, r.ok,
               r.ok ? undefined : `${r.detail}${p.child.exited ? `; exited ${JSON.stringify(p.child.exited)}` : ""}; log: ${tail(p)}`);
      }
    }
    await checkInternalTls(procs);
    const key = await checkApi(objects, procs);
    await checkScrapes(procs);
    if (dashboard) await checkDashboard(dashboard, procs, key);
    const crashed = procs.filter((p) => p.child.exited);
    report("every container still running", crashed.length === 0,
           crashed.map((p) => `${p.container.name} exited ${JSON.stringify(p.child.exited)}: ${tail(p)}`).join("; ") || undefined);
    if (crashed.length === procs.length) return;
    // SIGTERM everything at once, as on pod deletion; all must exit.
    for (const p of procs) if (!p.child.exited) p.child.kill("SIGTERM");
    const deadline = Date.now() + 45000;
    while (Date.now() < deadline && procs.some((p) => !p.child.exited)) await sleep(250);
    const left = procs.filter((p) => !p.child.exited).map((p) => p.container.name);
    report("SIGTERM stops every container within 45 s", left.length === 0, left.length ? `still running: ${left.join(", ")}` : undefined);
  } catch (e) {
    report("setup", false, e.message);
  } finally {
    for (const p of procs) if (!p.child.exited) p.child.kill("SIGKILL");
    fs.rmSync(work, { recursive: true, force: true });
  }
  process.exit(results.every((r) => r.ok) ? 0 : 1);
}

// The OpenAI API through the gateway: the Secret's key is required and works.
async function checkApi(objects, procs) {
  const gw = procs.find((p) => p.container.args[0] === "gateway");
  if (!gw) return report("api", false, "no gateway container");
  const port = gw.container.ports[0].containerPort;
  const secret = objects.find((o) => o.kind === "Secret");
  const key = secret ? Buffer.from(Object.values(secret.data)[0], "base64").toString().split("\n")[0].trim() : null;
  if (!key) return report("api", false, "no rendered Secret with an API key");
  const open = await httpRequest(port, "/v1/models");
  report("/v1/models without a key is 401", open.status === 401, open.error || `HTTP ${open.status}`);
  const auth = { Authorization: `Bearer ${key}` };
  // The gateway answers before its routers are ready; give them a minute.
  const models = await httpRetry(gw, port, "/v1/models", { headers: auth }, 60000);
  let name = null;
  try { name = JSON.parse(models.body).data[0].id; } catch (e) { /* reported below */ }
  report("/v1/models with the Secret's key", models.status === 200 && !!name, models.error || `HTTP ${models.status} ${name || (models.body || "").slice(0, 120)}`);
  const body = JSON.stringify({ model: name, messages: [{ role: "user", content: "Hello" }], max_tokens: 8 });
  const chat = await httpRetry(gw, port, "/v1/chat/completions", {
    method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body, timeoutMs: 60000 }, 60000);
  let content = null;
  try { content = JSON.parse(chat.body).choices[0].message.content; } catch (e) { /* reported below */ }
  report("/v1/chat/completions answers", chat.status === 200 && typeof content === "string",
         chat.error || `HTTP ${chat.status}${chat.status === 200 ? "" : ` ${(chat.body || "").slice(0, 160)}`}`);
  return key;
}

// Every metric the Grafana dashboard queries is exported by a gateway or a
// router (read with the API key, after the requests above).
async function checkDashboard(file, procs, key) {
  const exprs = [];
  const walk = (x) => {
    if (Array.isArray(x)) x.forEach(walk);
    else if (x && typeof x === "object") {
      for (const [k, v] of Object.entries(x)) (k === "expr" && typeof v === "string") ? exprs.push(v) : walk(v);
    }
  };
  walk(JSON.parse(fs.readFileSync(file, "utf8")));
  const names = [...new Set((exprs.join(" ").match(/tpserve:[a-zA-Z0-9_:]+/g) || [])
    .map((n) => n.replace(/_(bucket|sum|count)$/, "")))];
  let text = "";
  for (const p of procs) {
    const sub = p.container.args[0];
    const port = sub === "gateway" ? p.container.ports[0].containerPort
      : Number((p.container.args.find((a) => a.startsWith("--metrics-port=")) || "=0").split("=")[1]);
    if (!port) continue;
    const r = await httpRequest(port, "/metrics", { headers: key ? { Authorization: `Bearer ${key}` } : {} });
    if (r.status === 200) text += r.body + "\n";
  }
  const missing = names.filter((n) => !new RegExp(`^(# TYPE )?${n.replace(/[:]/g, "\\$&")}[ {]`, "m").test(text));
  report(`dashboard metrics exported (${names.length})`, names.length > 0 && missing.length === 0,
         missing.length ? `not on any /metrics: ${missing.join(", ")}` : undefined);
}

// With internal mutual TLS on, a caller without a certificate reaches no
// router or worker: a plaintext gRPC health call to each internal port fails.
async function checkInternalTls(procs) {
  for (const p of procs) {
    const tls = p.container.args.some((a) => a.startsWith("--internal-ssl-certfile="));
    const sub = p.container.args[0];
    if (!tls || sub === "gateway") continue;
    const metrics = p.container.args.filter((a) => a.startsWith("--metrics-port=")).map((a) => Number(a.split("=")[1]));
    for (const port of (p.container.ports || []).map((x) => x.containerPort)) {
      if (metrics.includes(port)) continue;  // plain-HTTP /metrics
      const r = await grpcHealth(port, "");
      report(`internal-tls ${p.container.name}:${port} refuses a plaintext gRPC call`, !r.ok && r.detail !== undefined,
             r.ok ? "answered SERVING without a certificate" : r.detail);
    }
  }
}

// Every prometheus.io-annotated pod serves Prometheus text there.
async function checkScrapes(procs) {
  for (const w of [...new Set(procs.map((p) => p.workload))]) {
    const ann = (w.spec.template.metadata || {}).annotations || {};
    if (ann["prometheus.io/scrape"] !== "true") continue;
    const r = await httpRequest(Number(ann["prometheus.io/port"]), ann["prometheus.io/path"] || "/metrics");
    report(`scrape ${w.metadata.name} :${ann["prometheus.io/port"]}${ann["prometheus.io/path"] || "/metrics"}`,
           r.status === 200 && /^# TYPE tpserve:/m.test(r.body), r.error || `HTTP ${r.status}`);
  }
}

module.exports = { grpcHealth, httpRequest, tcpConnect };
if (require.main === module) main(process.argv.slice(2));
