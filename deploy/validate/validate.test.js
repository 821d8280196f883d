// Tests of the deploy checkers: each check must fail on the mistake it is
// meant to catch, and pass on the shipped manifests.
//   TPSERVE_BIN=path/to/tpserve node --test deploy/validate/
// Without TPSERVE_BIN (or kubectl) the tests that need them are skipped.
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawnSync } = require("child_process");
const YAML = require("yaml");

const { instructions, patternToRegExp, ignored } = require("./dockerfile");
const { checkSchemas, checkFields } = require("./schema");
const { parseDescribe, rewriteArgs } = require("./tpserve");
const { crossChecks } = require("./checks");

const ROOT = path.resolve(__dirname, "../..");
const BIN = process.env.TPSERVE_BIN ? path.resolve(process.env.TPSERVE_BIN) : null;
const HAVE_KUBECTL = spawnSync("kubectl", ["version", "--client"]).status === 0;

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), "tpserve-deploy-test-"));
}

function runDockerfileCheck(text, ignore) {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, "Dockerfile"), text);
  if (ignore) fs.writeFileSync(path.join(dir, "Dockerfile.dockerignore"), ignore);
  const r = spawnSync("node", [path.join(__dirname, "dockerfile.js"), path.join(dir, "Dockerfile"), ROOT],
                      { encoding: "utf8" });
  fs.rmSync(dir, { recursive: true, force: true });
  return r;
}

test("Dockerfile instructions join continuation lines and drop comments", () => {
  assert.deepStrictEqual(instructions("# c\nFROM a AS b\nCOPY x \\\n  # inner\n  y /z\n"),
                         ["FROM a AS b", "COPY x y /z"]);
});

test("dockerignore patterns follow Docker's rules", () => {
  const rules = [".git", "bazel-*", "**/node_modules", "tests/**/*.json", "!tests/keep.json"]
    .map((l) => ({ negate: l.startsWith("!"), re: patternToRegExp(l.replace(/^!/, "")) }));
  assert.ok(ignored(rules, ".git/config"));
  assert.ok(ignored(rules, "bazel-bin"));
  assert.ok(ignored(rules, "deploy/validate/node_modules/yaml"));
  assert.ok(ignored(rules, "tests/fixtures/a/config.json"));
  assert.ok(!ignored(rules, "tests/keep.json"));
  assert.ok(!ignored(rules, "deploy/Dockerfile"));
});

test("the shipped Dockerfile passes the COPY check", () => {
  const r = spawnSync("node", [path.join(__dirname, "dockerfile.js"), path.join(ROOT, "deploy/Dockerfile"), ROOT],
                      { encoding: "utf8" });
  assert.strictEqual(r.status, 0, r.stdout);
  assert.match(r.stdout, /PASS docker deploy\/Dockerfile COPY tests\/fixtures\/tiny-qwen2-chat\/config.json/);
});

test("a missing, ignored or unstaged COPY source fails", () => {
  const r = runDockerfileCheck(
    "FROM a AS one\nCOPY --from=two /x /y\nCOPY tests/fixtures/none.json /m/\n" +
    "COPY tests/fixtures/tiny-qwen2-chat/config.json /m/\nRUN deploy/none.sh\n",
    "tests/fixtures/tiny-qwen2-chat/config.json\n");
  assert.strictEqual(r.status, 1);
  assert.match(r.stdout, /FAIL .*--from=two: no earlier stage/);
  assert.match(r.stdout, /FAIL .*none.json: does not exist/);
  assert.match(r.stdout, /FAIL .*config.json: excluded by the .dockerignore/);
  assert.match(r.stdout, /FAIL .*RUN deploy\/none.sh/);
});

test("the image's CMD must pass the binary's --check-config", { skip: BIN ? false : "needs TPSERVE_BIN" }, () => {
  const dir = tmpdir();
  const run = (cmd) => {
    fs.writeFileSync(path.join(dir, "Dockerfile"), `FROM a\nCOPY deploy/Dockerfile /x\nCMD ${cmd}\n`);
    return spawnSync("node", [path.join(__dirname, "dockerfile.js"), path.join(dir, "Dockerfile"), ROOT, BIN],
                     { encoding: "utf8" });
  };
  assert.strictEqual(run('["serve", "--port", "8000"]').status, 0);
  const bad = run('["serve", "--no-such-flag"]');
  assert.strictEqual(bad.status, 1);
  assert.match(bad.stdout, /FAIL .*CMD accepted .*no-such-flag/);
  assert.match(run("serve --port 8000").stdout, /FAIL .*not in JSON/);
  fs.rmSync(dir, { recursive: true, force: true });
});

const DEPLOYMENT = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "d" },
  spec: {
    selector: { matchLabels: { a: "b" } },
    template: {
      metadata: { labels: { a: "b" } },
      spec: { containers: [{ name: "c", image: "i", ports: [{ containerPort: 80, protocol: "TCP" }] }] },
    },
  },
};

function withContainer(patch) {
  const d = structuredClone(DEPLOYMENT);
  Object.assign(d.spec.template.spec.containers[0], patch);
  return d;
}

test("schemas accept a valid object and reject bad types, enums and kinds", () => {
  assert.ok(checkSchemas("t", [DEPLOYMENT])[0].ok);
  const badEnum = withContainer({ ports: [{ containerPort: 80, protocol: "TCPX" }] });
  assert.match(checkSchemas("t", [badEnum])[0].detail, /protocol/);
  const badType = withContainer({ ports: [{ containerPort: "80" }] });
  assert.match(checkSchemas("t", [badType])[0].detail, /containerPort must be integer/);
  const unknown = { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } };
  assert.match(checkSchemas("t", [unknown])[0].detail, /no schema/);
});

test("unknown fields fail at any depth, known ones pass", () => {
  const typo = withContainer({ readinesProbe: { tcpSocket: { port: 80 } } });
  const deep = withContainer({ livenessProbe: { tcpSocket: { port: 80 }, periodSecond: 3 } });
  const results = checkFields([{ label: "t", objects: [DEPLOYMENT, typo, deep] }]);
  // All three objects share a name; results are in order of insertion.
  assert.strictEqual(results.length, 1);
  assert.ok(!results[0].ok);
  assert.match(results[0].detail, /readinesProbe/);
  assert.match(results[0].detail, /periodSecond/);
  const good = checkFields([{ label: "t", objects: [DEPLOYMENT] }]);
  assert.ok(good[0].ok, good[0].detail);
});

test("--check-config output and in-container paths are mapped", () => {
  assert.deepStrictEqual(parseDescribe('port: "8000"\nworker: [a:1, b:2]\nrouter: []\nnoise\n'),
                         { port: "8000", worker: ["a:1", "b:2"], router: [] });
  const mounts = [{ mountPath: "/etc/tpserve/config.yaml", hostPath: "/tmp/x/etc/tpserve/config.yaml" }];
  assert.deepStrictEqual(rewriteArgs(["--config=/etc/tpserve/config.yaml", "/etc/tpserve/config.yamlx"], mounts),
                         ["--config=/tmp/x/etc/tpserve/config.yaml", "/etc/tpserve/config.yamlx"]);
});

// A fresh copy of an overlay's objects (rendered once per overlay).
const rendered = new Map();
function render(overlay) {
  if (!rendered.has(overlay)) {
    const r = spawnSync("kubectl", ["kustomize", path.join(ROOT, "deploy/k8s/overlays", overlay)], { encoding: "utf8" });
    assert.strictEqual(r.status, 0, r.stderr);
    rendered.set(overlay, YAML.parseAllDocuments(r.stdout).map((d) => d.toJS()));
  }
  return structuredClone(rendered.get(overlay));
}
const renderCpuDemo = () => render("cpu-demo");

function failures(objects) {
  return crossChecks("t", objects, BIN, fs.readFileSync(BIN))
    .filter((r) => !r.ok).map((r) => `${r.check}: ${r.detail}`);
}

// Each [mutate, expected] case applied to a fresh copy of the overlay must
// make a check fail with a message matching `expected`.
function expectFailures(overlay, cases) {
  for (const [mutate, expected] of cases) {
    const objects = render(overlay);
    mutate(objects);
    const f = failures(objects);
    assert.ok(f.some((x) => expected.test(x)), `expected ${expected} in:\n${f.join("\n")}`);
  }
}

function replica(objects) {
  return objects.find((o) => o.kind === "StatefulSet").spec.template.spec.containers;
}

const crossOpts = { skip: !BIN || !HAVE_KUBECTL ? "needs TPSERVE_BIN and kubectl" : false };

const CORE = /^(check-config|ports|probes|routers|workers|device|gpu-set|internal-tls|service|references) /;

test("cross checks accept cpu-demo's flags, ports, addresses and devices", crossOpts, () => {
  assert.deepStrictEqual(failures(renderCpuDemo()).filter((x) => CORE.test(x)), []);
});

test("cross checks accept the 8-GPU overlay: one container with every rank and GPU", crossOpts, () => {
  assert.deepStrictEqual(failures(render("qwen2-72b-8gpu")).filter((x) => CORE.test(x)), []);
});

// The layout before `tpserve workers`: one container and one GPU per rank
// (cpu-demo's two ranks, made CUDA ranks: fewer containers to check).
function splitRanks(objects) {
  const spec = objects.find((o) => o.kind === "StatefulSet").spec.template.spec;
  const group = spec.containers.find((c) => c.name === "workers");
  const ranks = group.ports.map((p, rank) => {
    const c = structuredClone(group);
    c.name = `worker-${rank}`;
    c.args = ["worker", "--config=/etc/tpserve/config.yaml", `--rank=${rank}`, `--worker-port=${50061 + rank}`, "--device=cuda"];
    c.ports = [{ ...p, containerPort: 50061 + rank }];
    c.startupProbe = { tcpSocket: { port: 50061 + rank } };
    c.livenessProbe = { tcpSocket: { port: 50061 + rank } };
    c.resources = { requests: { "nvidia.com/gpu": 1 }, limits: { "nvidia.com/gpu": 1 } };
    return c;
  });
  spec.containers = spec.containers.filter((c) => c !== group).concat(ranks);
}

test("internal-tls fails unless every component has all the flags, the Secret and a TLS-capable probe", crossOpts, () => {
  const gateway = (o) => o.find((x) => x.kind === "Deployment").spec.template.spec.containers[0];
  const cases = [
    [(o) => { const w = replica(o).find((c) => c.name === "workers"); w.args = w.args.filter((a) => !a.startsWith("--internal-ssl-keyfile")); }, /^internal-tls .*workers: no --internal-ssl-keyfile/],
    [(o) => { const g = gateway(o); g.volumeMounts = g.volumeMounts.filter((m) => m.name !== "internal-tls"); }, /^internal-tls .*gateway: --internal-ssl-ca-certs \/etc\/tpserve\/internal-tls\/ca.crt is not in a mounted Secret/],
    [(o) => { gateway(o).args.push("--ssl-certfile=/etc/tpserve/internal-tls/tls.crt", "--ssl-keyfile=/etc/tpserve/internal-tls/tls.key"); }, /^internal-tls .*gateway: --ssl-certfile serves clients the internal certificate/],
    [(o) => { gateway(o).args.push("--port=50051"); }, /^internal-tls .*gateway: public port 50051 is also an internal gRPC port/],
    [(o) => { replica(o).find((c) => c.name === "router").readinessProbe = { grpc: { port: 50051, service: "tpserve.v1.Router" } }; }, /^probes .*router: readinessProbe: the kubelet's gRPC probe has no client certificate/],
    [(o) => { const cmd = replica(o).find((c) => c.name === "router").startupProbe.exec.command; cmd[cmd.indexOf("--router=127.0.0.1:50051")] = "--router=127.0.0.1:50052"; }, /^probes .*router: startupProbe: asks --router 127.0.0.1:50052 instead of 127.0.0.1:50051/],
    [(o) => { const cmd = replica(o).find((c) => c.name === "router").readinessProbe.exec.command; cmd.splice(cmd.findIndex((a) => a.startsWith("--internal-ssl-target-name")), 1); }, /^probes .*router: readinessProbe: --internal-ssl-target-name '' differs/],
  ];
  expectFailures("qwen2-72b-8gpu", cases);
});

test("gpu-set fails unless every rank of a GPU replica shares one container and its GPUs", crossOpts, () => {
  const workers = (o) => replica(o).find((c) => c.name === "workers");
  const split = renderCpuDemo();
  splitRanks(split);
  const f = failures(split);
  assert.ok(f.some((x) => /^gpu-set .*tpserve-replica: the 2 ranks run in 2 containers .*no NVLink\/P2P/.test(x)), f.join("\n"));
  const cases = [
    [(o) => { workers(o).resources.limits["nvidia.com/gpu"] = 1; }, /^gpu-set .*workers \(8 ranks\) has limits nvidia.com\/gpu 1, not tensor-parallel-size 8/],
    [(o) => { workers(o).resources.requests["nvidia.com/gpu"] = 4; }, /^gpu-set .*workers requests nvidia.com\/gpu 4 but limits 8/],
    [(o) => { workers(o).env.push({ name: "CUDA_VISIBLE_DEVICES", value: "0" }); }, /^gpu-set .*CUDA_VISIBLE_DEVICES=0: fewer devices than ranks/],
    [(o) => { replica(o).find((c) => c.name === "router").resources.limits["nvidia.com/gpu"] = 1; }, /^gpu-set .*router runs no rank but takes GPUs/],
  ];
  expectFailures("qwen2-72b-8gpu", cases);
});

test("cross checks catch wrong flags, ports, addresses and devices", crossOpts, () => {
  const cases = [
    [(o) => replica(o).find((c) => c.name === "router").args.push("--port=1"), /^check-config .*router: .*--port/],
    [(o) => { replica(o).find((c) => c.name === "workers").ports.find((p) => p.name === "worker-1").containerPort = 50070; }, /^ports .*workers: .*50062/],
    [(o) => { const a = replica(o).find((c) => c.name === "router").args; a.splice(a.length - 2, 2, "--worker=127.0.0.1:50062", "--worker=127.0.0.1:50061"); }, /^workers .*rank 0 but workers runs rank 1/],
    [(o) => { replica(o).find((c) => c.name === "workers").args.push("--tensor-parallel-size=1"); }, /^workers .*1 ranks in worker containers for tensor-parallel-size 2/],
    [(o) => { replica(o).find((c) => c.name === "workers").livenessProbe.exec.command[2] = "exec 3<>/dev/tcp/127.0.0.1/50061"; }, /^probes .*workers: livenessProbe: does not check rank port\(s\) 50062/],
    [(o) => { replica(o).find((c) => c.name === "workers").startupProbe = { tcpSocket: { port: 50061 } }; }, /^probes .*workers: startupProbe: probes one port of 2 ranks/],
    [(o) => { o.find((x) => x.kind === "StatefulSet").spec.replicas = 2; }, /^routers .*tpserve-replica-1 is not in --router/],
    [(o) => { replica(o).find((c) => c.name === "workers").resources.limits = { "nvidia.com/gpu": 1 }; }, /^device .*workers: device cpu but requests a GPU/],
    [(o) => { replica(o).find((c) => c.name === "router").livenessProbe.tcpSocket.port = 50099; }, /^probes .*router: .*livenessProbe: port 50099/],
    [(o) => { o.find((x) => x.kind === "Service" && x.metadata.name === "tpserve-replica").spec.ports[0].targetPort = "nope"; }, /^service .*tpserve-replica: port grpc/],
  ];
  expectFailures("cpu-demo", cases);
});
