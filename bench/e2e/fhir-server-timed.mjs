// bench/e2e's FHIR R4 server: the same Medplum setup as tests/e2e/peers/fhir-server.mjs (FhirRouter
// over MemoryRepository, validateResource on every written resource), plus what the benchmark
// needs: the commit time of every transaction, keyed by the Patient's phone, and optionally the
// raw transaction Bundles it received (to replay the engine's exact Bundles straight at a fresh
// server). Loopback only; no auth, no fault injection. Single-threaded (Node event loop).
//
// Usage: node fhir-server-timed.mjs [--port-file FILE] [--capture FILE] [--sink]
//   --sink: no FhirRouter, no validation: every transaction Bundle is answered at once with the
//           transaction-response Medplum gives for new resources (each entry's resource with a new
//           id and meta, status 201 Created, location, etag); the capacity phase's endpoint, which
//           measures the engine's own cost at rates far beyond the real server's (~30 tx/s).
//   GET  /_control/stats    {"requests","transactions","committed","rejected","validationErrors"}
//   GET  /_control/commits  {"<phone>": <commit time, ms since the epoch, fractional>, ...}
//   POST /_control/dump     writes the captured Bundles to the --capture file, one per line
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
// fhir-common.mjs is tests/e2e/peers/fhir-common.mjs, copied beside this file by bench/e2e/run.
import { FhirRouter, MemoryRepository, answer, outcome, route, send, validateBody } from './fhir-common.mjs';

const args = process.argv.slice(2);
const argValue = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const captureFile = argValue('--capture', null);
const sink = args.includes('--sink');

const router = new FhirRouter();
const repo = new MemoryRepository();
const stats = { requests: 0, transactions: 0, committed: 0, rejected: 0, validationErrors: [] };
const commits = {};
const captured = [];
const now = () => performance.timeOrigin + performance.now();

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
  if (sink) return sinkAnswer(res, url, body);
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

  let routed;
  try {
    routed = await route(router, repo, req, url, body);
  } catch (err) {
    return send(res, 500, outcome('exception', String(err?.message ?? err)));
  }
  const [status, oo, resource] = routed;
  if (isTransaction && status < 300) {
    stats.committed++;
    const key = bundleKey(body);
    if (key && commits[key] === undefined) commits[key] = now();
  }
  return answer(res, req, status, oo, resource);
}

// --sink: the transaction-response for a Bundle of new resources, without storing anything.
function sinkAnswer(res, url, body) {
  if (body?.resourceType !== 'Bundle' || body.type !== 'transaction' || url.pathname !== '/') {
    stats.rejected++;
    return send(res, 400, outcome('not-supported', 'the sink takes transaction Bundles at the base only'));
  }
  stats.transactions++;
  const lastUpdated = new Date().toISOString();
  const entry = (body.entry ?? []).map((e) => {
    const type = e.resource?.resourceType ?? 'Resource';
    const id = crypto.randomUUID();
    const location = `${type}/${id}/_history/1`;
    return {
      resource: { ...e.resource, id, meta: { versionId: '1', lastUpdated } },
      response: { status: '201 Created', location, etag: 'W/"1"', lastModified: lastUpdated },
    };
  });
  stats.committed++;
  const key = bundleKey(body);
  if (key && commits[key] === undefined) commits[key] = now();
  return send(res, 200, { resourceType: 'Bundle', type: 'transaction-response', entry });
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
