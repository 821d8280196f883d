#!/usr/bin/env node
// Validates rendered tpserve manifests: every object against the Kubernetes
// API schemas (schema.js), and every overlay against the tpserve binary
// (checks.js). Prints one "PASS ..." / "FAIL ... : why" line per check and
// exits 1 if any failed (2 on bad usage).
//
//   node validate.js --binary bazel-bin/cli/tpserve OVERLAY=rendered.yaml ...
"use strict";

const fs = require("fs");
const YAML = require("yaml");
const { checkSchemas, checkFields } = require("./schema");
const { crossChecks } = require("./checks");

function usage(message) {
  process.stderr.write(`${message}\nusage: validate.js --binary TPSERVE LABEL=RENDERED.yaml...\n`);
  process.exit(2);
}

// Parses a multi-document YAML file into objects; throws on a syntax error.
function loadObjects(file) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, "utf8"));
  const objects = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj !== null) objects.push(obj);
  }
  return objects;
}

function main(argv) {
  let binary = null;
  const sets = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--binary") {
      binary = argv[++i];
    } else {
      const eq = argv[i].indexOf("=");
      if (eq <= 0) usage(`bad argument '${argv[i]}'`);
      sets.push({ label: argv[i].slice(0, eq), file: argv[i].slice(eq + 1) });
    }
  }
  if (!binary) usage("--binary is required");
  if (sets.length === 0) usage("no rendered overlays given");
  let binaryBytes;
  try {
    binaryBytes = fs.readFileSync(binary);
  } catch (e) {
    usage(`cannot read the tpserve binary: ${e.message}`);
  }

  const results = [];
  for (const set of sets) {
    try {
      set.objects = loadObjects(set.file);
      results.push({ check: `parse ${set.label}`, ok: set.objects.length > 0,
                     detail: set.objects.length ? undefined : "no objects" });
    } catch (e) {
      results.push({ check: `parse ${set.label}`, ok: false, detail: e.message });
      set.objects = [];
    }
  }
  const loaded = sets.filter((s) => s.objects.length > 0);
  for (const set of loaded) results.push(...checkSchemas(set.label, set.objects));
  results.push(...checkFields(loaded));
  for (const set of loaded) results.push(...crossChecks(set.label, set.objects, binary, binaryBytes));

  let failed = 0;
  for (const r of results) {
    if (!r.ok) failed++;
    const detail = r.detail ? (r.ok ? ` (${r.detail})` : `: ${r.detail}`) : "";
    process.stdout.write(`${r.ok ? "PASS" : "FAIL"} ${r.check}${detail}\n`);
  }
  process.exit(failed ? 1 : 0);
}

main(process.argv.slice(2));
