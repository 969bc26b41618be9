// A real FHIR R4 server for the end-to-end tests: Medplum's FhirRouter over its MemoryRepository
// (transactions, conditional create, search), with every written resource checked by
// @medplum/core validateResource against the official R4 definitions. Loopback only.
//
// Usage: node fhir-server.mjs [--port N] [--port-file FILE] [--tls-cert PEM --tls-key PEM]
//   Prints "listening <port>" on stdout (and writes the port to --port-file) once ready.
// Options through the environment (all optional):
//   PEER_REQUIRE_TOKEN=1        FHIR requests need "Authorization: Bearer <issued token>"
//   PEER_CLIENT_ID, PEER_CLIENT_SECRET   accepted by POST /auth/token (client_secret_basic or _post)
//   PEER_CLIENT_PUBLIC_KEY=FILE PEM public key for private_key_jwt client assertions (RS384/ES384)
//   PEER_TOKEN_TTL=300          expires_in of issued tokens (seconds)
// Test control (not FHIR): GET /_control/stats, POST /_control/fail {"status":503,"count":3,
//   "retryAfter":"1"}, POST /_control/reset.
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { FhirRouter, MemoryRepository, answer, outcome, route, send, validateBody } from './fhir-common.mjs';

const args = process.argv.slice(2);
const argValue = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};

const router = new FhirRouter();
let repo = new MemoryRepository();
const stats = { requests: 0, transactions: 0, rejected: 0, injected: 0, tokens: 0, unauthorized: 0, validationErrors: [] };
let fault = null; // { status, count, retryAfter }
const issuedTokens = new Map(); // token -> expiry ms
const seenJti = new Set();

function base64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

// Verifies a private_key_jwt client assertion (RS384 or ES384) against PEER_CLIENT_PUBLIC_KEY.
function verifyAssertion(assertion, tokenUrl) {
  const parts = (assertion ?? '').split('.');
  if (parts.length !== 3) return 'malformed assertion';
  const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
  const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
  if (!header.kid) return 'kid missing';
  if (header.typ !== 'JWT') return 'typ must be JWT';
  const key = crypto.createPublicKey(fs.readFileSync(process.env.PEER_CLIENT_PUBLIC_KEY));
  const data = Buffer.from(parts[0] + '.' + parts[1]);
  const sig = Buffer.from(parts[2], 'base64url');
  let ok = false;
  if (header.alg === 'RS384') ok = crypto.verify('sha384', data, key, sig);
  else if (header.alg === 'ES384') ok = crypto.verify('sha384', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
  else return 'unsupported alg ' + header.alg;
  if (!ok) return 'bad signature';
  if (claims.iss !== process.env.PEER_CLIENT_ID || claims.sub !== process.env.PEER_CLIENT_ID) return 'iss/sub must be the client id';
  if (claims.aud !== tokenUrl) return 'aud must be the token URL ' + tokenUrl;
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp < now || claims.exp > now + 300 + 5) return 'exp must be within 5 minutes';
  if (!claims.jti) return 'jti missing';
  if (seenJti.has(claims.jti)) return 'jti replayed';
  seenJti.add(claims.jti);
  return null;
}

function handleToken(req, res, raw, port) {
  const form = new URLSearchParams(raw);
  const tokenUrl = `http://127.0.0.1:${port}/auth/token`;
  let error = null;
  if (form.get('grant_type') !== 'client_credentials') error = 'unsupported_grant_type';
  else if (form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') {
    if (!process.env.PEER_CLIENT_PUBLIC_KEY) error = 'invalid_client';
    else {
      const why = verifyAssertion(form.get('client_assertion'), tokenUrl);
      if (why) error = 'invalid_client: ' + why;
    }
  } else {
    let id = form.get('client_id');
    let secret = form.get('client_secret');
    const auth = req.headers.authorization ?? '';
    if (auth.startsWith('Basic ')) {
      const decoded = Buffer.from(auth.slice(6), 'base64').toString();
      const colon = decoded.indexOf(':');
      id = decodeURIComponent(decoded.slice(0, colon));
      secret = decodeURIComponent(decoded.slice(colon + 1));
    }
    if (!process.env.PEER_CLIENT_SECRET || id !== process.env.PEER_CLIENT_ID || secret !== process.env.PEER_CLIENT_SECRET) {
      error = 'invalid_client';
    }
  }
  if (error) {
    const body = JSON.stringify({ error: error.split(':')[0], error_description: error });
    res.writeHead(error.startsWith('invalid_client') ? 401 : 400, { 'Content-Type': 'application/json' });
    res.end(body);
    return;
  }
  stats.tokens++;
  const token = base64url(crypto.randomBytes(24));
  const ttl = Number(process.env.PEER_TOKEN_TTL ?? 300);
  issuedTokens.set(token, Date.now() + ttl * 1000);
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: ttl, scope: form.get('scope') ?? '' }));
}

function authorized(req) {
  if (process.env.PEER_REQUIRE_TOKEN !== '1') return true;
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('Bearer ')) return false;
  const expiry = issuedTokens.get(auth.slice(7));
  return expiry !== undefined && expiry > Date.now();
}

async function handle(req, res, raw, port) {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname.startsWith('/_control/')) {
    if (url.pathname === '/_control/stats') return send(res, 200, stats, { 'Content-Type': 'application/json' });
    if (url.pathname === '/_control/fail') {
      fault = { status: 503, count: 1, ...JSON.parse(raw || '{}') };
      return send(res, 200, { ok: true });
    }
    if (url.pathname === '/_control/reset') {
      repo = new MemoryRepository();
      fault = null;
      Object.assign(stats, { requests: 0, transactions: 0, rejected: 0, injected: 0, tokens: 0, unauthorized: 0, validationErrors: [] });
      return send(res, 200, { ok: true });
    }
    return send(res, 404, { error: 'unknown control' });
  }
  if (url.pathname === '/auth/token' && req.method === 'POST') return handleToken(req, res, raw, port);
  if (url.pathname === '/.well-known/smart-configuration') {
    return send(res, 200, {
      token_endpoint: `http://127.0.0.1:${port}/auth/token`,
      token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_basic'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
      grant_types_supported: ['client_credentials'],
    }, { 'Content-Type': 'application/json' });
  }

  stats.requests++;
  if (!authorized(req)) {
    stats.unauthorized++;
    return send(res, 401, outcome('login', 'a valid bearer token is required'), { 'WWW-Authenticate': 'Bearer' });
  }
  if (fault && fault.count > 0) {
    fault.count--;
    stats.injected++;
    const headers = fault.retryAfter ? { 'Retry-After': String(fault.retryAfter) } : {};
    return send(res, fault.status, outcome('transient', 'injected failure'), headers);
  }

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
      stats.validationErrors.push(...errors.map((e) => `${e.where}: ${e.diagnostics ?? e.details?.text ?? e.code} @ ${(e.expression ?? []).join(',')}`));
      return send(res, 400, { resourceType: 'OperationOutcome', issue: errors.map(({ where, ...issue }) => issue) });
    }
  }
  if (body?.resourceType === 'Bundle' && req.method === 'POST' && (url.pathname === '/' || url.pathname === '')) {
    stats.transactions++;
  }

  let routed;
  try {
    routed = await route(router, repo, req, url, body);
  } catch (err) {
    return send(res, 500, outcome('exception', String(err?.message ?? err)));
  }
  const [status, oo, resource] = routed;
  return answer(res, req, status, oo, resource);
}

const tlsCert = argValue('--tls-cert', null);
const tlsKey = argValue('--tls-key', null);
const listener = (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks).toString('utf8'), server.address().port).catch((err) => {
      send(res, 500, outcome('exception', String(err?.message ?? err)));
    });
  });
};
// With --tls-cert/--tls-key the server speaks HTTPS only (for the destination's TLS checks).
const server = tlsCert
  ? https.createServer({ cert: fs.readFileSync(tlsCert), key: fs.readFileSync(tlsKey) }, listener)
  : http.createServer(listener);
server.keepAliveTimeout = 30000;
server.listen(Number(argValue('--port', '0')), '127.0.0.1', () => {
  const port = server.address().port;
  const portFile = argValue('--port-file', null);
  if (portFile) fs.writeFileSync(portFile + '.tmp', String(port)), fs.renameSync(portFile + '.tmp', portFile);
  process.stdout.write(`listening ${port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
