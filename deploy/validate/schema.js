// Validation of rendered Kubernetes objects against the Kubernetes API
// schemas, in two passes:
//   - `schema`: the OpenAPI schemas of the API server (types, enums, required
//     fields, formats), compiled to validators by the kubernetes-models
//     packages (core/apps/autoscaling/policy and the Prometheus Operator CRDs);
//   - `fields`: unknown fields at any depth (a misspelt `readinesProbe` is
//     silently dropped by the API server and passes the OpenAPI schemas, which
//     allow extra properties). The TypeScript compiler checks every object as
//     an object literal of the package's declared type, and its excess
//     property check names the first unknown field of each nested object.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");

const MODULE_ROOT = path.join(__dirname, "node_modules");

// Module path prefix of the models for an apiVersion ("apps/v1", "v1", ...).
function modelModule(apiVersion) {
  if (apiVersion.startsWith("monitoring.coreos.com/")) {
    return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  }
  return `kubernetes-models/${apiVersion}`;
}

// Returns the model class for an object, or null when no schema is known.
function modelClass(obj) {
  if (typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") return null;
  try {
    const mod = require(modelModule(obj.apiVersion));
    return typeof mod[obj.kind] === "function" ? mod[obj.kind] : null;
  } catch (e) {
    if (e.code === "MODULE_NOT_FOUND" || e.code === "ERR_PACKAGE_PATH_NOT_EXPORTED") return null;
    throw e;
  }
}

// Name used in check lines: Kind/name.
function objectName(obj) {
  const name = obj.metadata && obj.metadata.name ? obj.metadata.name : "(unnamed)";
  return `${obj.kind || "(no kind)"}/${name}`;
}

// Schema pass: one result per object.
function checkSchemas(label, objects) {
  return objects.map((obj) => {
    const check = `schema ${label} ${objectName(obj)}`;
    const Model = modelClass(obj);
    if (Model === null) {
      return { check, ok: false, detail: `no schema for ${obj.apiVersion} ${obj.kind}` };
    }
    try {
      new Model(obj).validate();
      return { check, ok: true };
    } catch (e) {
      return { check, ok: false, detail: e.message };
    }
  });
}

// Unknown-field pass over every object of every overlay, with one compiler
// run (loading the type declarations dominates the time). `sets` is a list of
// {label, objects}; returns one result per object.
function checkFields(sets) {
  const ts = require("typescript");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tpserve-fields-"));
  const entries = [];  // {file, startLine, endLine, check}
  const results = new Map();
  const files = [];
  try {
    for (const { label, objects } of sets) {
      const file = path.join(dir, `${label.replace(/[^A-Za-z0-9_-]/g, "_")}.ts`);
      const lines = [];
      objects.forEach((obj, i) => {
        const check = `fields ${label} ${objectName(obj)}`;
        if (modelClass(obj) === null) {
          results.set(check, { check, ok: false, detail: "no type declaration for this kind" });
          return;
        }
        const mod = `${modelModule(obj.apiVersion)}/${obj.kind}`;
        lines.push(`import type { I${obj.kind} as T${i} } from "${mod}";`);
        const body = JSON.stringify(obj, null, 1).split("\n");
        const start = lines.length;
        lines.push(`export const o${i}: T${i} = ${body[0]}`, ...body.slice(1));
        lines[lines.length - 1] += ";";
        entries.push({ file, start, end: lines.length - 1, check });
        results.set(check, { check, ok: true });
      });
      fs.writeFileSync(file, lines.join("\n") + "\n");
      files.push(file);
    }
    const program = ts.createProgram(files, {
      noEmit: true,
      strict: true,
      skipLibCheck: true,
      types: [],
      moduleResolution: ts.ModuleResolutionKind.Node10,
      baseUrl: dir,
      paths: { "*": [path.join(MODULE_ROOT, "*")] },
    });
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
      if (!d.file) throw new Error(`TypeScript: ${text}`);
      const line = d.file.getLineAndCharacterOfPosition(d.start).line;
      const entry = entries.find(
        (e) => path.resolve(e.file) === path.resolve(d.file.fileName) && line >= e.start && line <= e.end);
      if (!entry) throw new Error(`TypeScript: ${d.file.fileName}:${line + 1}: ${text}`);
      const r = results.get(entry.check);
      // Keep the message short: the declared type can be hundreds of chars.
      const short = text.replace(/ does not exist in type .*/, " is not a field here");
      r.ok = false;
      r.detail = r.detail ? `${r.detail}; ${short}` : short;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return [...results.values()];
}

module.exports = { checkSchemas, checkFields, objectName };
