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

function renderCpuDemo() {
  const r = spawnSync("kubectl", ["kustomize", path.join(ROOT, "deploy/k8s/overlays/cpu-demo")], { encoding: "utf8" });
  assert.strictEqual(r.status, 0, r.stderr);
  return YAML.parseAllDocuments(r.stdout).map((d) => d.toJS());
}

function failures(objects) {
  return crossChecks("t", objects, BIN, fs.readFileSync(BIN))
    .filter((r) => !r.ok).map((r) => `${r.check}: ${r.detail}`);
}

function replica(objects) {
  return objects.find((o) => o.kind === "StatefulSet").spec.template.spec.containers;
}

const crossOpts = { skip: !BIN || !HAVE_KUBECTL ? "needs TPSERVE_BIN and kubectl" : false };

test("cross checks accept cpu-demo's flags, ports, addresses and devices", crossOpts, () => {
  const f = failures(renderCpuDemo()).filter((x) => /^(check-config|ports|routers|workers|device|service|references) /.test(x));
  assert.deepStrictEqual(f, []);
});

test("cross checks catch wrong flags, ports, addresses and devices", crossOpts, () => {
  const cases = [
    [(o) => replica(o).find((c) => c.name === "router").args.push("--port=1"), /^check-config .*router: .*--port/],
    [(o) => { replica(o).find((c) => c.name === "worker-1").ports[0].containerPort = 50070; }, /^ports .*worker-1: .*50062/],
    [(o) => { const a = replica(o).find((c) => c.name === "router").args; a.splice(a.length - 2, 2, "--worker=127.0.0.1:50062", "--worker=127.0.0.1:50061"); }, /^workers .*rank 0 but worker-1/],
    [(o) => { o.find((x) => x.kind === "StatefulSet").spec.replicas = 2; }, /^routers .*tpserve-replica-1 is not in --router/],
    [(o) => { replica(o).find((c) => c.name === "worker-0").env = []; }, /^device .*worker-0: env NCCL_NVLS_ENABLE/],
    [(o) => { replica(o).find((c) => c.name === "worker-0").resources.limits["nvidia.com/gpu"] = 1; }, /^device .*worker-0: device cpu but requests a GPU/],
    [(o) => { replica(o).find((c) => c.name === "router").livenessProbe.tcpSocket.port = 50099; }, /^probes .*router: .*livenessProbe: port 50099/],
    [(o) => { o.find((x) => x.kind === "Service" && x.metadata.name === "tpserve-replica").spec.ports[0].targetPort = "nope"; }, /^service .*tpserve-replica: port grpc/],
  ];
  for (const [mutate, expected] of cases) {
    const objects = renderCpuDemo();
    mutate(objects);
    const f = failures(objects);
    assert.ok(f.some((x) => expected.test(x)), `expected ${expected} in:\n${f.join("\n")}`);
  }
});
