// Cross checks between the manifests of one overlay and the tpserve binary:
// every container's flags and config are accepted (`--check-config`), the
// ports it declares are the ones it listens on, probes and scrape annotations
// point at those ports and at paths the binary serves, Services, gateways'
// --router and routers' --worker addresses reach real containers, every rank
// of a replica runs in one container that holds all of the replica's GPUs
// (gpu-set), internal mutual TLS is on for every component or none, and the
// Grafana dashboard parses and queries tpserve metrics (live.js checks that
// the services export them).
"use strict";

const T = require("./tpserve");

const PROBES = ["startupProbe", "readinessProbe", "livenessProbe"];

// The TCP ports an exec probe connects to: a `bash -c` script that opens
// /dev/tcp/127.0.0.1/<port>, literally or for each port of a
// `for p in <ports>; do ... /dev/tcp/127.0.0.1/$p ...` loop; null when the
// probe has another form.
function execProbePorts(probe) {
  const cmd = probe.exec && probe.exec.command;
  if (!Array.isArray(cmd) || cmd.length !== 3 || !/(^|\/)(ba)?sh$/.test(cmd[0]) || cmd[1] !== "-c") return null;
  const script = cmd[2];
  const ports = [...script.matchAll(/\/dev\/tcp\/(?:127\.0\.0\.1|localhost)\/(\d+)/g)].map((m) => Number(m[1]));
  const loop = script.match(/for (\w+) in ([\d ]+); do (.*); done/);
  if (loop && new RegExp(`/dev/tcp/(127\\.0\\.0\\.1|localhost)/\\$${loop[1]}\\b`).test(loop[3])) {
    ports.push(...loop[2].trim().split(/\s+/).map(Number));
  }
  return ports.length ? ports : null;
}

const TLS_FILES = ["internal-ssl-ca-certs", "internal-ssl-certfile", "internal-ssl-keyfile"];

// `tpserve probe ...` as an exec probe (the image's PATH has the binary).
function isTpserveProbe(probe) {
  const cmd = probe.exec && probe.exec.command;
  return Array.isArray(cmd) && /(^|\/)tpserve$/.test(cmd[0]) && cmd[1] === "probe";
}

// A setting's value as the container sees it: the flag as written in `args`
// (before the checker rewrote in-container paths), else the resolved setting
// (from the mounted config file, whose paths are in-container ones).
function inContainer(args, settings, key) {
  const list = args || [];
  for (let i = 0; i < list.length; i++) {
    if (list[i].startsWith(`--${key}=`)) return list[i].slice(key.length + 3);
    if (list[i] === `--${key}` && i + 1 < list.length) return list[i + 1];
  }
  return settings[key];
}

function probeArgs(probe) {
  return probe.exec.command.slice(1);
}

// {secret, mountPath} when `file` lies in a Secret volume mounted into the
// container, else null.
function secretFile(workload, container, file) {
  if (typeof file !== "string" || !file.startsWith("/")) return null;
  const vols = new Map((workload.spec.template.spec.volumes || []).map((v) => [v.name, v]));
  for (const m of container.volumeMounts || []) {
    const v = vols.get(m.name);
    if (v && v.secret && (file === m.mountPath || file.startsWith(`${m.mountPath}/`))) {
      return { secret: v.secret.secretName, mountPath: m.mountPath };
    }
  }
  return null;
}

// Pod-template port lookup: a number, or a name declared by a container.
function resolvePort(containers, port) {
  if (typeof port === "number") return port;
  for (const c of containers) {
    for (const p of c.ports || []) if (p.name === port) return p.containerPort;
  }
  return null;
}

function labelsMatch(selector, labels) {
  return Object.entries(selector || {}).every(([k, v]) => labels && labels[k] === v);
}

function podLabels(w) {
  return (w.spec.template.metadata && w.spec.template.metadata.labels) || {};
}

// Ports the binary serves HTTP on (metrics, /health) for one container.
function httpPorts(sub, s) {
  const ports = [];
  if (sub === "gateway" || sub === "serve") ports.push(Number(s.port));
  if (Number(s["metrics-port"]) > 0) ports.push(Number(s["metrics-port"]));
  return ports;
}

class Checker {
  constructor(label, objects, binary, binaryBytes) {
    this.label = label;
    this.objects = objects;
    this.binary = binary;
    this.bytes = binaryBytes;
    this.results = [];
    this.resolved = [];  // {workload, container, sub, settings}
  }

  // Records one check named "<kind> <overlay> <what>".
  add(kind, what, problems, note) {
    const ok = problems.length === 0;
    const check = [kind, this.label, what].filter(Boolean).join(" ");
    this.results.push({ check, ok, detail: ok ? note : problems.join("; ") });
  }

  inBinary(text) {
    return this.bytes.includes(Buffer.from(text));
  }

  run() {
    for (const w of T.workloads(this.objects)) {
      for (const c of T.tpserveContainers(w)) this.container(w, c);
    }
    this.scrapeAnnotations();
    this.services();
    this.gatewayRouters();
    this.routerWorkers();
    this.internalTls();
    this.references();
    this.dashboards();
    return this.results;
  }

  container(w, c) {
    const id = `${w.kind}/${w.metadata.name}/${c.name}`;
    const r = T.checkConfig(this.binary, this.objects, w, c);
    this.add("check-config", `${id}`, r.ok ? [] : [r.detail], r.notes.join("; ") || undefined);
    if (!r.ok) return;
    this.resolved.push({ workload: w, container: c, sub: r.subcommand, settings: r.settings });
    const listening = T.listeningPorts(r.subcommand, r.settings);
    const declared = (c.ports || []).map((p) => p.containerPort);
    const problems = [];
    for (const [p, key] of listening) {
      if (!declared.includes(p)) problems.push(`listens on ${p} (${key}) but declares no such containerPort`);
    }
    for (const p of declared) {
      if (!listening.has(p)) problems.push(`declares containerPort ${p} it does not listen on`);
    }
    this.add("ports", `${id}`, problems);

    const probeProblems = [];
    const present = PROBES.filter((k) => c[k]);
    if (!present.some((k) => k !== "readinessProbe")) probeProblems.push("no startup or liveness probe");
    const http = httpPorts(r.subcommand, r.settings);
    const grpc = r.subcommand === "router" ? [Number(r.settings["router-port"])]
      : T.workerRanks(r.subcommand, r.settings).map((x) => x.port);
    const tls = TLS_FILES.some((key) => r.settings[key]);
    for (const k of present) {
      const probe = c[k];
      if (probe.exec && isTpserveProbe(probe)) {
        probeProblems.push(...this.tpserveProbe(w, c, r, k));
        continue;
      }
      if (probe.grpc && tls) {
        probeProblems.push(`${k}: the kubelet's gRPC probe has no client certificate and internal mutual TLS refuses it; use an exec \`tpserve probe\``);
      }
      if (probe.exec) {
        const ports = execProbePorts(probe);
        if (!ports) {
          probeProblems.push(`${k}: only exec probes that connect to /dev/tcp/127.0.0.1/<port> are checked`);
          continue;
        }
        for (const p of ports) {
          if (!listening.has(p)) probeProblems.push(`${k}: port ${p} is not one this container listens on`);
        }
        // One container, several rank processes: a probe must reach every
        // rank, or a rank that stopped listening goes unnoticed.
        const missing = grpc.filter((p) => !ports.includes(p));
        if (r.subcommand === "workers" && missing.length) probeProblems.push(`${k}: does not check rank port(s) ${missing.join(", ")}`);
        continue;
      }
      const action = probe.httpGet || probe.grpc || probe.tcpSocket;
      if (!action) {
        probeProblems.push(`${k}: only httpGet, grpc, tcpSocket and exec probes are checked`);
        continue;
      }
      const port = resolvePort([c], action.port);
      if (port === null || !listening.has(port)) {
        probeProblems.push(`${k}: port ${action.port} is not one this container listens on`);
      } else if (probe.httpGet && !http.includes(port)) {
        probeProblems.push(`${k}: port ${port} does not serve HTTP`);
      } else if (probe.grpc && !grpc.includes(port)) {
        probeProblems.push(`${k}: port ${port} is not this container's gRPC port`);
      } else if (r.subcommand === "workers" && k !== "readinessProbe" && grpc.length > 1) {
        probeProblems.push(`${k}: probes one port of ${grpc.length} ranks; use an exec probe over every rank's port`);
      }
      // Whether the path answers is checked by running the pods (live.js):
      // string literals are not reliably contiguous in an optimized binary.
      if (probe.httpGet && !(probe.httpGet.path || "/").startsWith("/")) {
        probeProblems.push(`${k}: path ${probe.httpGet.path} does not start with /`);
      }
      if (probe.grpc && probe.grpc.service && !this.inBinary(probe.grpc.service)) {
        probeProblems.push(`${k}: gRPC service ${probe.grpc.service} does not occur in the binary`);
      }
      // The kubelet's gRPC probe calls grpc.health.v1.Health/Check: the
      // binary must register that service (gRPC's default one or its own).
      if (probe.grpc && !this.inBinary("EnableDefaultHealthCheckService") && !this.inBinary("grpc.health.v1.Health")) {
        probeProblems.push(`${k}: the binary registers no grpc.health.v1.Health service`);
      }
    }
    this.add("probes", `${id}`, probeProblems);
  }

  // An exec probe running `tpserve probe`: its flags are accepted, it asks
  // this router container's own port, with the container's TLS settings.
  tpserveProbe(w, c, r, kind) {
    if (r.subcommand !== "router") return [`${kind}: tpserve probe asks a router; this is a ${r.subcommand} container`];
    const args = probeArgs(c[kind]);
    const pr = T.checkConfig(this.binary, this.objects, w, { ...c, args });
    if (!pr.ok) return [`${kind}: ${pr.detail}`];
    const problems = [];
    const want = `127.0.0.1:${r.settings["router-port"]}`;
    const routers = pr.settings.router || [];
    if (routers.length !== 1 || routers[0] !== want) problems.push(`${kind}: asks --router ${routers.join(", ")} instead of ${want}`);
    for (const key of [...TLS_FILES, "internal-ssl-target-name"]) {
      const mine = inContainer(args, pr.settings, key) || "";
      const router = inContainer(c.args, r.settings, key) || "";
      if (mine !== router) problems.push(`${kind}: --${key} '${mine}' differs from the router's '${router}'`);
    }
    return problems;
  }

  // Internal mutual TLS is all or nothing: once one component has it, every
  // gateway, router and worker container passes the four --internal-ssl-*
  // settings, with files from one Secret volume; the gateway's public port
  // stays apart from the internal ones (its clients speak plain HTTP or the
  // gateway's own --ssl-* TLS, never the internal certificate).
  internalTls() {
    const on = this.resolved.filter((x) => TLS_FILES.some((k) => x.settings[k]));
    if (on.length === 0) return;
    const problems = [];
    const secrets = new Set();
    const names = new Set();
    const internalPorts = new Set();
    for (const x of this.resolved.filter((y) => y.sub !== "gateway")) {
      for (const p of T.listeningPorts(x.sub, x.settings).keys()) internalPorts.add(p);
    }
    for (const x of this.resolved) {
      const id = x.container.name;
      const missing = [...TLS_FILES, "internal-ssl-target-name"].filter((k) => !x.settings[k]);
      if (missing.length) problems.push(`${id}: no ${missing.map((k) => `--${k}`).join(", ")}`);
      names.add(x.settings["internal-ssl-target-name"] || "");
      for (const k of TLS_FILES) {
        const file = secretFile(x.workload, x.container, this.args(x, k));
        if (!file) {
          if (x.settings[k]) problems.push(`${id}: --${k} ${this.args(x, k)} is not in a mounted Secret`);
        } else {
          secrets.add(file.secret);
        }
      }
    }
    for (const x of this.resolved.filter((y) => y.sub === "gateway")) {
      const id = x.container.name;
      const port = Number(x.settings.port);
      if (internalPorts.has(port)) problems.push(`${id}: public port ${port} is also an internal gRPC port`);
      for (const k of ["ssl-certfile", "ssl-keyfile", "ssl-ca-certs"]) {
        const f = x.settings[k] && secretFile(x.workload, x.container, this.args(x, k));
        if (f && secrets.has(f.secret)) problems.push(`${id}: --${k} serves clients the internal certificate (Secret ${f.secret})`);
      }
    }
    for (const svc of this.objects.filter((o) => o.kind === "Service")) {
      const pods = T.workloads(this.objects).filter((w) => labelsMatch(svc.spec.selector, podLabels(w)));
      if (!pods.some((w) => this.resolved.some((x) => x.workload === w && x.sub === "gateway"))) continue;
      for (const p of svc.spec.ports || []) {
        const target = resolvePort(pods[0].spec.template.spec.containers, p.targetPort === undefined ? p.port : p.targetPort);
        if (internalPorts.has(target)) problems.push(`Service ${svc.metadata.name} exposes internal port ${target}`);
      }
    }
    if (secrets.size > 1) problems.push(`the components read their certificates from different Secrets: ${[...secrets].join(", ")}`);
    if (names.size > 1) problems.push(`the components expect different --internal-ssl-target-name values: ${[...names].join(", ")}`);
    this.add("internal-tls", "", problems, `${this.resolved.length} components, Secret ${[...secrets].join(", ")}`);
  }

  args(x, key) {
    return inContainer(x.container.args, x.settings, key);
  }

  scrapeAnnotations() {
    for (const w of T.workloads(this.objects)) {
      const ann = (w.spec.template.metadata && w.spec.template.metadata.annotations) || {};
      if (ann["prometheus.io/scrape"] !== "true") continue;
      const port = Number(ann["prometheus.io/port"]);
      const p = ann["prometheus.io/path"] || "/metrics";
      const serving = this.resolved.filter((x) => x.workload === w)
        .flatMap((x) => httpPorts(x.sub, x.settings));
      const problems = [];
      if (!serving.includes(port)) problems.push(`prometheus.io/port ${ann["prometheus.io/port"]} is not a metrics/HTTP port of the pod (${serving.join(", ") || "none"})`);
      if (!p.startsWith("/")) problems.push(`path ${p} does not start with /`);
      this.add("scrape", `${w.kind}/${w.metadata.name}`, problems);
    }
  }

  services() {
    for (const svc of this.objects.filter((o) => o.kind === "Service")) {
      const targets = T.workloads(this.objects).filter((w) => labelsMatch(svc.spec.selector, podLabels(w)));
      const problems = [];
      if (!svc.spec.selector || targets.length === 0) problems.push("selects no workload's pods");
      for (const w of targets) {
        for (const p of svc.spec.ports || []) {
          const target = resolvePort(w.spec.template.spec.containers, p.targetPort === undefined ? p.port : p.targetPort);
          const declared = w.spec.template.spec.containers.flatMap((c) => (c.ports || []).map((q) => q.containerPort));
          if (target === null || !declared.includes(target)) {
            problems.push(`port ${p.name || p.port} -> ${p.targetPort} is not a containerPort of ${w.metadata.name}`);
          }
        }
      }
      this.add("service", `Service/${svc.metadata.name}`, problems);
    }
  }

  // Every gateway --router address is <statefulset>-<i>.<headless service>
  // of a rendered StatefulSet, with i below its replicas and the port its
  // router listens on; and every replica is listed.
  gatewayRouters() {
    for (const g of this.resolved.filter((x) => x.sub === "gateway")) {
      const problems = [];
      const listed = new Set();
      for (const addr of g.settings.router || []) {
        const m = addr.match(/^([a-z0-9-]+)-(\d+)\.([a-z0-9-]+)(\.[a-z0-9.-]+)?:(\d+)$/);
        if (!m) {
          problems.push(`--router ${addr} is not <statefulset>-<n>.<service>:<port>`);
          continue;
        }
        const [, sts, idx, svcName, , port] = m;
        const set = T.findObject(this.objects, "StatefulSet", sts);
        const svc = T.findObject(this.objects, "Service", svcName);
        if (!set) { problems.push(`${addr}: no StatefulSet ${sts}`); continue; }
        if (set.spec.serviceName !== svcName) problems.push(`${addr}: ${sts} uses serviceName ${set.spec.serviceName}`);
        const replicas = set.spec.replicas === undefined ? 1 : set.spec.replicas;
        if (Number(idx) >= replicas) problems.push(`${addr}: ${sts} has ${replicas} replicas`);
        listed.add(`${sts}/${idx}`);
        if (!svc || svc.spec.clusterIP !== "None") problems.push(`${addr}: Service ${svcName} is missing or not headless`);
        else if (!(svc.spec.ports || []).some((p) => p.port === Number(port))) problems.push(`${addr}: Service ${svcName} has no port ${port}`);
        const routers = this.resolved.filter((x) => x.workload === set && x.sub === "router");
        if (routers.length !== 1) problems.push(`${addr}: ${sts} has ${routers.length} router containers`);
        else if (Number(routers[0].settings["router-port"]) !== Number(port)) {
          problems.push(`${addr}: the router listens on ${routers[0].settings["router-port"]}`);
        }
      }
      for (const set of this.objects.filter((o) => o.kind === "StatefulSet")) {
        if (!this.resolved.some((x) => x.workload === set && x.sub === "router")) continue;
        const replicas = set.spec.replicas === undefined ? 1 : set.spec.replicas;
        for (let i = 0; i < replicas; i++) {
          if (!listed.has(`${set.metadata.name}/${i}`)) problems.push(`replica ${set.metadata.name}-${i} is not in --router`);
        }
      }
      this.add("routers", `${g.workload.kind}/${g.workload.metadata.name}/${g.container.name}`, problems);
    }
  }

  // A router's --worker list, in rank order, names the ranks run by the
  // worker containers of its own pod; the ranks get their GPUs (gpu-set) and
  // devices.
  routerWorkers() {
    for (const r of this.resolved.filter((x) => x.sub === "router")) {
      const problems = [];
      const workers = this.resolved.filter((x) => x.workload === r.workload && (x.sub === "worker" || x.sub === "workers"));
      const ranks = workers.flatMap((w) => T.workerRanks(w.sub, w.settings).map((x) => ({ ...x, w })));
      const tp = Number(r.settings["tensor-parallel-size"]);
      (r.settings.worker || []).forEach((addr, rank) => {
        const m = addr.match(/^(127\.0\.0\.1|localhost):(\d+)$/);
        if (!m) { problems.push(`--worker ${addr} is not a port of this pod (127.0.0.1:<port>)`); return; }
        const x = ranks.find((y) => y.port === Number(m[2]));
        if (!x) problems.push(`--worker ${addr}: no worker container listens on ${m[2]}`);
        else if (x.rank !== rank) problems.push(`--worker ${addr} is rank ${rank} but ${x.w.container.name} runs rank ${x.rank} there`);
      });
      if ((r.settings.worker || []).length !== tp) problems.push(`${(r.settings.worker || []).length} --worker addresses for tensor-parallel-size ${tp}`);
      if (ranks.length !== tp) problems.push(`${ranks.length} ranks in worker containers for tensor-parallel-size ${tp}`);
      for (const w of workers) {
        if (Number(w.settings["tensor-parallel-size"]) !== tp) problems.push(`${w.container.name} has tensor-parallel-size ${w.settings["tensor-parallel-size"]}`);
      }
      this.add("workers", `${r.workload.kind}/${r.workload.metadata.name}`, problems);
      for (const w of workers) this.workerDevice(w, tp);
      this.gpuSet(r.workload, workers, tp);
    }
  }

  // Every rank of a GPU replica must see the same GPUs: NCCL uses NVLink or
  // PCIe peer-to-peer (and NVLS) only between GPUs that one process can see,
  // and CUDA IPC buffers (the custom all-reduce) can only be opened on a
  // visible device. Ranks in separate containers each see only their own
  // GPU; so all ranks run in one container that requests tensor-parallel-size
  // GPUs, rank r on device r.
  gpuSet(workload, workers, tp) {
    const problems = [];
    const gpusOf = (c) => {
      const res = c.resources || {};
      return { limit: (res.limits || {})["nvidia.com/gpu"], request: (res.requests || {})["nvidia.com/gpu"] };
    };
    const cuda = workers.filter((w) => w.settings.device === "cuda");
    if (cuda.length > 0) {
      if (workers.length !== 1) {
        problems.push(`the ${tp} ranks run in ${workers.length} containers (${workers.map((w) => w.container.name).join(", ")}), ` +
                      "each seeing only its own GPUs: no NVLink/P2P between ranks, no CUDA IPC; run them in one `tpserve workers` container");
      }
      for (const w of cuda) {
        const g = gpusOf(w.container);
        const n = T.workerRanks(w.sub, w.settings).length;
        if (Number(g.limit) !== tp) problems.push(`${w.container.name} (${n} rank${n === 1 ? "" : "s"}) has limits nvidia.com/gpu ${g.limit}, not tensor-parallel-size ${tp}`);
        if (g.request !== undefined && Number(g.request) !== Number(g.limit)) problems.push(`${w.container.name} requests nvidia.com/gpu ${g.request} but limits ${g.limit}`);
        const env = (w.container.env || []).find((e) => e.name === "CUDA_VISIBLE_DEVICES");
        if (env && typeof env.value === "string" && env.value.split(",").filter(Boolean).length < tp) {
          problems.push(`${w.container.name} sets CUDA_VISIBLE_DEVICES=${env.value}: fewer devices than ranks`);
        }
      }
    }
    const rankContainers = new Set(workers.map((w) => w.container.name));
    for (const c of workload.spec.template.spec.containers) {
      if (!rankContainers.has(c.name) && gpusOf(c).limit !== undefined) problems.push(`${c.name} runs no rank but takes GPUs`);
    }
    this.add("gpu-set", `${workload.kind}/${workload.metadata.name}`, problems);
  }

  workerDevice(w, tp) {
    const c = w.container;
    const problems = [];
    const gpus = ((c.resources || {}).limits || {})["nvidia.com/gpu"];
    const device = w.settings.device;
    if (device === "cpu") {
      if (gpus !== undefined) problems.push("device cpu but requests a GPU");
    } else if (device !== "cuda") {
      problems.push(`device '${device}': say cpu or cuda explicitly in a cluster`);
    }
    if (tp > 1) {
      const vols = w.workload.spec.template.spec.volumes || [];
      const shm = (c.volumeMounts || []).find((m) => m.mountPath === "/dev/shm");
      const vol = shm && vols.find((v) => v.name === shm.name);
      if (!vol || !vol.emptyDir || vol.emptyDir.medium !== "Memory") problems.push("no memory-backed emptyDir at /dev/shm for NCCL");
    }
    this.add("device", `${w.workload.kind}/${w.workload.metadata.name}/${c.name}`, problems);
  }

  references() {
    const problems = [];
    const has = (kind, name) => T.findObject(this.objects, kind, name) !== undefined;
    for (const h of this.objects.filter((o) => o.kind === "HorizontalPodAutoscaler")) {
      const t = h.spec.scaleTargetRef;
      if (!has(t.kind, t.name)) problems.push(`HPA ${h.metadata.name} targets missing ${t.kind}/${t.name}`);
      const w = T.findObject(this.objects, t.kind, t.name);
      if (w && w.spec.replicas !== undefined) problems.push(`${t.kind}/${t.name} sets replicas that its HPA owns`);
    }
    for (const p of this.objects.filter((o) => o.kind === "PodDisruptionBudget")) {
      const sel = p.spec.selector && p.spec.selector.matchLabels;
      if (!T.workloads(this.objects).some((w) => labelsMatch(sel, podLabels(w)))) problems.push(`PDB ${p.metadata.name} selects no pods`);
    }
    for (const sm of this.objects.filter((o) => o.kind === "ServiceMonitor")) {
      const svcs = this.objects.filter((o) => o.kind === "Service" && labelsMatch(sm.spec.selector.matchLabels, o.metadata.labels));
      if (svcs.length === 0) problems.push(`ServiceMonitor ${sm.metadata.name} selects no Service`);
      for (const e of sm.spec.endpoints || []) {
        for (const s of svcs) {
          if (!(s.spec.ports || []).some((p) => p.name === e.port)) problems.push(`ServiceMonitor ${sm.metadata.name}: Service ${s.metadata.name} has no port ${e.port}`);
        }
      }
    }
    for (const w of T.workloads(this.objects)) {
      for (const v of w.spec.template.spec.volumes || []) {
        if (v.configMap && !has("ConfigMap", v.configMap.name)) problems.push(`${w.metadata.name}: ConfigMap ${v.configMap.name} not rendered`);
        if (v.persistentVolumeClaim && !has("PersistentVolumeClaim", v.persistentVolumeClaim.claimName)) problems.push(`${w.metadata.name}: PVC ${v.persistentVolumeClaim.claimName} not rendered`);
      }
    }
    this.add("references", "", problems);
  }

  dashboards() {
    for (const cm of this.objects.filter((o) => o.kind === "ConfigMap" && o.metadata.labels && o.metadata.labels.grafana_dashboard)) {
      for (const [key, text] of Object.entries(cm.data || {})) {
        const problems = [];
        let names = [];
        try {
          const exprs = [];
          const walk = (x) => {
            if (Array.isArray(x)) x.forEach(walk);
            else if (x && typeof x === "object") Object.entries(x).forEach(([k, v]) => (k === "expr" || k === "definition") && typeof v === "string" ? exprs.push(v) : walk(v));
          };
          walk(JSON.parse(text));
          names = [...new Set(exprs.join(" ").match(/tpserve:[a-zA-Z0-9_:]+/g) || [])]
            .map((n) => n.replace(/_(bucket|sum|count)$/, ""));
          if (names.length === 0) problems.push("no tpserve metrics in the dashboard");
        } catch (e) {
          problems.push(`not JSON: ${e.message}`);
        }
        // Whether the services export these names is checked on their live
        // /metrics (live.js --dashboard).
        this.add("dashboard", `ConfigMap/${cm.metadata.name}/${key}`, problems);
      }
    }
  }
}

function crossChecks(label, objects, binary, binaryBytes) {
  return new Checker(label, objects, binary, binaryBytes).run();
}

module.exports = { crossChecks, execProbePorts };
