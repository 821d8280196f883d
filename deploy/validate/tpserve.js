// Helpers that read tpserve's containers out of rendered manifests and ask the
// tpserve binary itself about them: `tpserve <args> --check-config` resolves
// the flags and the mounted YAML config exactly as the container would, and
// prints the settings, which the cross checks (checks.js) compare with the
// ports, probes and addresses in the manifests.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawnSync } = require("child_process");

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "Job"]);
const SUBCOMMANDS = new Set(["serve", "gateway", "router", "worker", "workers"]);

// Pod-template workloads of a rendered overlay.
function workloads(objects) {
  return objects.filter((o) => WORKLOAD_KINDS.has(o.kind) && o.spec && o.spec.template);
}

// The tpserve containers of a workload: those whose first argument is a
// tpserve subcommand (the image's entrypoint is the binary).
function tpserveContainers(workload) {
  const spec = workload.spec.template.spec || {};
  return (spec.containers || []).filter(
    (c) => !c.command && Array.isArray(c.args) && SUBCOMMANDS.has(c.args[0]));
}

function findObject(objects, kind, name) {
  return objects.find((o) => o.kind === kind && o.metadata && o.metadata.name === name);
}

// Content of one key of a ConfigMap or Secret, or null if absent.
function dataOf(obj, key) {
  if (obj.data && key in obj.data) {
    return obj.kind === "Secret" ? Buffer.from(obj.data[key], "base64").toString() : obj.data[key];
  }
  if (obj.stringData && key in obj.stringData) return obj.stringData[key];
  return null;
}

// Writes the files that `container` sees from ConfigMap and Secret volumes
// into `dir`, and returns [{mountPath, hostPath}] longest path first, so that
// arguments naming in-container paths can be rewritten. Secrets that the
// overlay leaves to the operator (not rendered) are read from
// `external[secretName]` (a folder, one file per key) when given, else become
// a placeholder file and a note. Throws on a ConfigMap or key that does not
// exist.
function materializeMounts(objects, podSpec, container, dir, notes, external = {}) {
  const volumes = new Map((podSpec.volumes || []).map((v) => [v.name, v]));
  const mounts = [];
  for (const m of container.volumeMounts || []) {
    const v = volumes.get(m.name);
    if (!v) throw new Error(`volumeMount ${m.name} has no volume`);
    let kind, name;
    if (v.configMap) [kind, name] = ["ConfigMap", v.configMap.name];
    else if (v.secret) [kind, name] = ["Secret", v.secret.secretName];
    else continue;
    let source = findObject(objects, kind, name);
    if (!source && kind === "ConfigMap") throw new Error(`ConfigMap ${name} is not rendered`);
    if (!source && external[name]) {
      const data = {};
      for (const f of fs.readdirSync(external[name])) data[f] = fs.readFileSync(path.join(external[name], f), "utf8");
      source = { kind: "Secret", stringData: data };
    }
    if (!source) notes.push(`Secret ${name} is created by the operator; placeholder used`);
    const keys = (v.configMap || v.secret).items;
    if (keys) throw new Error(`volume ${v.name}: 'items' is not supported by this checker`);
    // Mirror the in-container path, so that messages name the file as the
    // container sees it (under the temporary root).
    const local = path.join(dir, m.mountPath);
    const write = (key, file) => {
      const text = source ? dataOf(source, key) : "sk-placeholder-for-check\n";
      if (text === null) throw new Error(`${kind} ${name} has no key '${key}'`);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text);
    };
    if (m.subPath) {
      write(m.subPath, local);
    } else if (source) {
      for (const key of Object.keys({ ...source.data, ...source.stringData })) {
        write(key, path.join(local, key));
      }
    } else {
      // Unknown keys of an external Secret: the file the args name is made
      // on demand in rewriteArgs.
      fs.mkdirSync(local, { recursive: true });
    }
    mounts.push({ mountPath: m.mountPath, hostPath: local, external: !source });
  }
  return mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);
}

// Replaces in-container paths in `args` by the materialized files.
function rewriteArgs(args, mounts) {
  return args.map((arg) => {
    for (const m of mounts) {
      const i = arg.indexOf(m.mountPath);
      if (i < 0) continue;
      const end = i + m.mountPath.length;
      if (end < arg.length && arg[end] !== "/") continue;
      const local = m.hostPath + arg.slice(end);
      if (m.external && !fs.existsSync(local)) fs.writeFileSync(local, "sk-placeholder-for-check\n");
      return arg.slice(0, i) + local;
    }
    return arg;
  });
}

// Parses `--check-config` output: `name: "value"` and `name: [a, b]` lines.
function parseDescribe(text) {
  const settings = {};
  for (const line of text.split("\n")) {
    let m = line.match(/^([a-z0-9-]+): "(.*)"$/);
    if (m) {
      settings[m[1]] = m[2];
      continue;
    }
    m = line.match(/^([a-z0-9-]+): \[(.*)\]$/);
    if (m) settings[m[1]] = m[2] === "" ? [] : m[2].split(",").map((s) => s.trim());
  }
  return settings;
}

// `--check-config` answers by binary, in-container args, environment and
// mounted file contents: the checkers' tests check many variants of one
// overlay, most containers unchanged, and each run of the binary costs
// seconds on a loaded machine.
const checkCache = new Map();

function mountedFiles(mounts) {
  const files = {};
  const walk = (local, inside) => {
    if (fs.statSync(local).isDirectory()) {
      for (const f of fs.readdirSync(local)) walk(path.join(local, f), `${inside}/${f}`);
    } else {
      files[inside] = fs.readFileSync(local, "utf8");
    }
  };
  for (const m of mounts) walk(m.hostPath, m.mountPath);
  return files;
}

function runCached(binary, args, env, mounts, run) {
  const key = JSON.stringify([binary, args, env, mountedFiles(mounts)]);
  if (!checkCache.has(key)) checkCache.set(key, run());
  return checkCache.get(key);
}

// Runs `binary <container args> --check-config` with the container's mounted
// files; returns {ok, detail, settings, subcommand, notes}.
function checkConfig(binary, objects, workload, container) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpserve-check-"));
  const notes = [];
  try {
    const mounts = materializeMounts(objects, workload.spec.template.spec, container, dir, notes);
    const args = [...rewriteArgs(container.args, mounts), "--check-config"];
    const env = { PATH: process.env.PATH };
    for (const e of container.env || []) if (typeof e.value === "string") env[e.name] = e.value;
    const r = runCached(binary, container.args, env, mounts, () =>
      spawnSync(binary, args, { encoding: "utf8", env, timeout: 30000 }));
    if (r.error) return { ok: false, detail: `cannot run ${binary}: ${r.error.message}`, notes };
    if (r.status !== 0) {
      const why = (r.stderr || r.stdout || "").trim().split("\n").slice(-3).join(" | ");
      return { ok: false, detail: `exit ${r.status}${r.signal ? ` (${r.signal})` : ""}: ${why}`, notes };
    }
    return { ok: true, settings: parseDescribe(r.stdout), subcommand: container.args[0], notes };
  } catch (e) {
    return { ok: false, detail: e.message, notes };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// The ranks a worker container runs: [{rank, port}] from its resolved
// settings (`workers`: rank r on --worker-port + r, for every rank of
// --tensor-parallel-size; `worker`: its one --rank), [] for other
// subcommands.
function workerRanks(subcommand, settings) {
  const port = Number(settings["worker-port"]);
  if (subcommand === "worker") return [{ rank: Number(settings.rank), port }];
  if (subcommand !== "workers") return [];
  const n = Number(settings["tensor-parallel-size"]);
  return Array.from({ length: n }, (_, r) => ({ rank: r, port: port + r }));
}

// Ports a tpserve process listens on, from its resolved settings:
// {port -> what} (0 means disabled and is left out). `workers` listens on
// each rank's ports.
function listeningPorts(subcommand, settings) {
  const keys = {
    gateway: ["port"],
    router: ["router-port", "metrics-port"],
    worker: ["worker-port", "metrics-port"],
    workers: ["worker-port", "metrics-port"],
    serve: ["port"],
  }[subcommand] || [];
  const ranks = subcommand === "workers" ? Number(settings["tensor-parallel-size"]) : 1;
  const ports = new Map();
  for (const k of keys) {
    const p = Number(settings[k]);
    if (!Number.isInteger(p) || p <= 0) continue;
    for (let r = 0; r < ranks; r++) ports.set(p + r, ranks > 1 ? `${k} + ${r}` : k);
  }
  return ports;
}

module.exports = {
  workloads, tpserveContainers, findObject, checkConfig, listeningPorts, workerRanks, parseDescribe,
  materializeMounts, rewriteArgs,
};
