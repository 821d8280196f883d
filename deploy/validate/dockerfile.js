#!/usr/bin/env node
// Checks a Dockerfile that cannot be built here (no container engine): every
// COPY/ADD source from the build context exists in the repository and is not
// excluded by the Dockerfile's .dockerignore, every `COPY --from=` names an
// earlier stage, and every repository script a RUN line calls is executable.
// With a built binary, the image's default CMD must pass its --check-config.
// Prints one PASS/FAIL line per check; exits 1 if any failed.
//
//   node dockerfile.js deploy/Dockerfile REPO_ROOT [TPSERVE]
"use strict";

const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

// Logical instructions: continuation lines joined, comments dropped.
function instructions(text) {
  const out = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (current === "" && (line.startsWith("#") || line === "")) continue;
    if (line.startsWith("#")) continue;
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
      continue;
    }
    out.push((current + line).replace(/\s+/g, " ").trim());
    current = "";
  }
  if (current.trim()) out.push(current.replace(/\s+/g, " ").trim());
  return out;
}

// Docker's ignore-pattern syntax (Go filepath.Match plus "**") as a RegExp.
function patternToRegExp(pattern) {
  let p = path.posix.normalize(pattern.replace(/^\/+/, ""));
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const ch = p[i];
    if (ch === "*" && p[i + 1] === "*") {
      re += ".*";
      i++;
      if (p[i + 1] === "/") i++;
    } else if (ch === "*") {
      re += "[^/]*";
    } else if (ch === "?") {
      re += "[^/]";
    } else {
      re += ch.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    }
  }
  // A pattern also excludes everything below a matching directory.
  return new RegExp(`^${re}(/.*)?$`);
}

// Whether the ignore rules (last match wins, "!" re-includes) exclude `rel`.
function ignored(rules, rel) {
  let out = false;
  for (const { negate, re } of rules) if (re.test(rel)) out = !negate;
  return out;
}

function loadIgnore(dockerfile, root) {
  const candidates = [`${dockerfile}.dockerignore`, path.join(root, ".dockerignore")];
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) return [];
  return fs.readFileSync(file, "utf8").split("\n").map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => ({ negate: l.startsWith("!"), re: patternToRegExp(l.replace(/^!/, "")) }));
}

// Expands a context path with * and ? (one directory level each).
function expand(root, source) {
  const parts = path.posix.normalize(source).split("/").filter((p) => p && p !== ".");
  let found = [""];
  for (const part of parts) {
    const next = [];
    for (const base of found) {
      if (!/[*?[]/.test(part)) {
        if (fs.existsSync(path.join(root, base, part))) next.push(path.posix.join(base, part));
        continue;
      }
      const re = patternToRegExp(part);
      const dir = path.join(root, base);
      if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) continue;
      for (const name of fs.readdirSync(dir)) if (re.test(name)) next.push(path.posix.join(base, name));
    }
    found = next;
  }
  return parts.length === 0 ? ["."] : found;
}

// The image's default command (ENTRYPOINT is the binary) must be accepted by
// the built binary: `tpserve <CMD...> --check-config` exits 0.
function checkDefaultCommand(label, cmd, binary) {
  const check = `docker ${label} CMD accepted by ${path.basename(binary)}`;
  let args;
  try {
    args = JSON.parse(cmd);
  } catch (e) {
    return { check, ok: false, detail: "CMD is missing or not in JSON (exec) form" };
  }
  const r = spawnSync(binary, [...args, "--check-config"], { encoding: "utf8", timeout: 30000 });
  if (r.status === 0) return { check, ok: true };
  return { check, ok: false, detail: `exit ${r.status}: ${(r.stderr || r.stdout || String(r.error)).trim()}` };
}

function main([dockerfile, root, binary]) {
  if (!dockerfile || !root) {
    process.stderr.write("usage: dockerfile.js DOCKERFILE REPO_ROOT [TPSERVE]\n");
    process.exit(2);
  }
  const results = [];
  let lastCmd = null;
  const rules = loadIgnore(dockerfile, root);
  const stages = new Set();
  const label = path.relative(root, dockerfile);
  for (const ins of instructions(fs.readFileSync(dockerfile, "utf8"))) {
    const [op, ...rest] = ins.split(/\s+/);
    const word = op.toUpperCase();
    if (word === "FROM") {
      const as = rest.findIndex((w) => w.toUpperCase() === "AS");
      if (as >= 0) stages.add(rest[as + 1]);
    } else if (word === "COPY" || word === "ADD") {
      const flags = rest.filter((w) => w.startsWith("--"));
      let args = rest.filter((w) => !w.startsWith("--"));
      if (args.length && args[0].startsWith("[")) args = JSON.parse(args.join(" "));
      const from = flags.find((f) => f.startsWith("--from="));
      if (from) {
        const stage = from.slice("--from=".length);
        results.push({ check: `docker ${label} ${word} --from=${stage}`, ok: stages.has(stage),
                       detail: stages.has(stage) ? undefined : "no earlier stage of that name" });
        continue;
      }
      if (args.length < 2) {
        results.push({ check: `docker ${label} ${ins}`, ok: false, detail: "needs a source and a destination" });
        continue;
      }
      for (const src of args.slice(0, -1)) {
        const matches = expand(root, src);
        const kept = matches.filter((m) => m === "." || !ignored(rules, m));
        let detail;
        if (matches.length === 0) detail = "does not exist in the repository";
        else if (kept.length === 0) detail = "excluded by the .dockerignore";
        results.push({ check: `docker ${label} ${word} ${src}`, ok: !detail, detail });
      }
    } else if (word === "CMD") {
      lastCmd = ins.slice(op.length).trim();
    } else if (word === "RUN") {
      for (const script of ins.match(/(?<=^|[\s;&|])(?:\.\/)?(?:deploy|tools|cli)\/[\w./-]+\.sh\b/g) || []) {
        const file = path.join(root, script);
        const ok = fs.existsSync(file) && (fs.statSync(file).mode & 0o111) !== 0 && !ignored(rules, script);
        results.push({ check: `docker ${label} RUN ${script}`, ok,
                       detail: ok ? undefined : "missing, not executable or excluded from the context" });
      }
    }
  }
  if (results.length === 0) results.push({ check: `docker ${label}`, ok: false, detail: "no COPY found" });
  if (binary) results.push(checkDefaultCommand(label, lastCmd, binary));
  let failed = 0;
  for (const r of results) {
    if (!r.ok) failed++;
    process.stdout.write(`${r.ok ? "PASS" : "FAIL"} ${r.check}${r.detail ? `: ${r.detail}` : ""}\n`);
  }
  process.exit(failed ? 1 : 0);
}

module.exports = { instructions, patternToRegExp, ignored };
if (require.main === module) main(process.argv.slice(2));
