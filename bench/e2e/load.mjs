// bench/e2e's load tool. Generates unique Flow submissions (a different patient and phone per
// message) and either
//   webhook: POSTs them as Meta WhatsApp Cloud API webhooks, signed with X-Hub-Signature-256, to
//            the engine at a fixed rate (open loop), then waits until the FHIR server has committed
//            every accepted one and reports the delivered rate and end-to-end latency (webhook
//            accepted at the engine -> Bundle committed at the server, from the server's commit
//            times keyed by the Patient's phone);
//   direct:  POSTs transaction Bundles straight to the FHIR server as fast as N connections allow
//            (the server's own ceiling): Bundles from --bundles FILE (one per line, e.g. the
//            engine's own Bundles captured by fhir-server-timed.mjs) or, with --template FILE,
//            the engine's Bundle for message 0 (from `switchboard map`) rewritten for message i;
//   webhook-body / bundle-for: print message i's webhook body / generated Bundle (sanity checks).
// Prints one "RESULT key=value ..." line. Single-threaded (Node event loop); loopback only.
//
// Usage:
//   node load.mjs webhook --url http://127.0.0.1:P/webhooks/whatsapp --secret S --fhir http://127.0.0.1:F
//                 --rate R --seconds T [--first I] [--run ID]
//   node load.mjs direct --url http://127.0.0.1:F/ (--bundles FILE | --template FILE) --connections C
//                 --seconds T [--count N] [--first I]
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(3);
const mode = process.argv[2];
const opt = (name, dflt) => {
  const i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const now = () => performance.timeOrigin + performance.now();
const here = path.dirname(fileURLToPath(import.meta.url));

// ---- unique messages ----------------------------------------------------------------------------
const FIRST = ['Emily', 'Liam', 'Olivia', 'Noah', 'Ava', 'Mateo', 'Sofia', 'Ethan', 'Mia', 'Lucas', 'Amara', 'Kenji',
  'Priya', 'Diego', 'Fatima', 'Jonas', 'Hana', 'Omar', 'Zoe', 'Ravi', 'Ingrid', 'Tomasz', 'Leila'];
const LAST = ['Chen', 'Garcia', 'Okafor', 'Smith', 'Nguyen', 'Patel', 'Kowalski', 'Haddad', 'Silva', 'Johansson', 'Kim',
  'Murphy', 'Rossi', 'Mbeki', 'Tanaka', 'Novak', 'Dubois', 'Alvarez', 'Weber', 'Ivanova', 'Larsen', 'Moreau', 'Quinn',
  'Sato', 'Adeyemi', 'Berg', 'Costa', 'Duarte', 'Eriksen'];
const day = (base, n) => new Date(Date.parse(base + 'T00:00:00Z') + n * 86400000).toISOString().slice(0, 10);

// Message i: its patient, phone and appointment. Appointment dates stay in Jan-Feb 2027 (one UTC
// offset in America/New_York) so that rewriting message 0's Bundle gives message i's exactly.
function message(i) {
  const first = FIRST[i % FIRST.length];
  const last = LAST[Math.floor(i / FIRST.length) % LAST.length];
  return {
    phone: String(15552000000 + i),
    first,
    last,
    dob: day('1940-01-01', (i * 7919) % 25000),
    email: `${first}.${last}.${i}@example.com`.toLowerCase(),
    member: `BCBS${100000000 + i}`,
    date: day('2027-01-04', i % 50),
  };
}

const seedWebhook = JSON.parse(fs.readFileSync(path.join(here, 'flow_nfm_reply.json'), 'utf8'));
const seedAnswers = JSON.parse(seedWebhook.entry[0].changes[0].value.messages[0].interactive.nfm_reply.response_json);

function webhookBody(i, run) {
  const m = message(i);
  const body = structuredClone(seedWebhook);
  const value = body.entry[0].changes[0].value;
  value.contacts[0].wa_id = m.phone;
  value.contacts[0].profile.name = `${m.first} ${m.last}`;
  const msg = value.messages[0];
  msg.from = m.phone;
  msg.id = `wamid.bench.${run}.${i}`;
  msg.timestamp = String(Math.floor(Date.now() / 1000));
  const answers = {
    ...seedAnswers,
    patient_first_name: m.first,
    patient_last_name: m.last,
    date_of_birth: m.dob,
    patient_email: m.email,
    member_id: m.member,
    appointment_date: m.date,
    flow_token: `bench-${run}-${i}`,
  };
  msg.interactive.nfm_reply.response_json = JSON.stringify(answers);
  return { phone: m.phone, text: JSON.stringify(body) };
}

// Message i's Bundle from message 0's: every per-message value and every UUID rewritten.
function bundleGenerator(template) {
  const m0 = message(0);
  const uuids = [...new Set(template.match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g) ?? [])];
  const replaceAll = (text, from, to) => text.split(from).join(to);
  return (i) => {
    const m = message(i);
    let text = template;
    for (const u of uuids) text = replaceAll(text, u, u.slice(0, 24) + i.toString(16).padStart(12, '0'));
    text = replaceAll(text, m0.email, m.email);
    text = replaceAll(text, m0.phone, m.phone);
    text = replaceAll(text, m0.member, m.member);
    text = replaceAll(text, m0.dob, m.dob);
    text = replaceAll(text, m0.date, m.date);
    text = replaceAll(text, m0.first, m.first);
    text = replaceAll(text, m0.last, m.last);
    return { phone: '+' + m.phone, text };
  };
}

// ---- HTTP -----------------------------------------------------------------------------------------
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(opt('max-sockets', 1024)) });

function post(url, headers, body) {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent, headers: { ...headers, 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', (err) => resolve({ status: 0, body: String(err) }));
    req.end(body);
  });
}

function get(url) {
  return new Promise((resolve) => {
    http.get(url, { agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString()));
    }).on('error', () => resolve(''));
  });
}

const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : NaN);
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'nan');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- modes ----------------------------------------------------------------------------------------
async function webhookMode() {
  const url = opt('url');
  const secret = opt('secret');
  const fhir = opt('fhir');
  const rate = Number(opt('rate', 100));
  const seconds = Number(opt('seconds', 20));
  const first = Number(opt('first', 0));
  const run = opt('run', String(process.pid));
  const total = Math.round(rate * seconds);
  const serverStats = async () => {
    try { return JSON.parse(await get(fhir + '/_control/stats')); } catch { return {}; }
  };
  const baseline = await serverStats();
  const ended = (s) => (s.committed ?? 0) + (s.rejected ?? 0) - (baseline.committed ?? 0) - (baseline.rejected ?? 0);
  const accepted = new Map(); // phone -> accepted time
  const intake = [];
  let sent = 0, done = 0, refused = 0;
  const start = now();
  await new Promise((resolveAll) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((now() - start) * rate) / 1000) + 1);
      while (sent < due) {
        const { phone, text } = webhookBody(first + sent, run);
        const sig = 'sha256=' + crypto.createHmac('sha256', secret).update(text).digest('hex');
        sent++;
        const t0 = now();
        post(url, { 'Content-Type': 'application/json', 'X-Hub-Signature-256': sig }, text).then((r) => {
          const t1 = now();
          if (r.status === 200) {
            accepted.set('+' + phone, t1);
            intake.push(t1 - t0);
          } else {
            refused++;
            if (refused <= 3) process.stderr.write(`webhook answered ${r.status}: ${r.body.slice(0, 200)}\n`);
          }
          if (++done === total) resolveAll();
        });
      }
      if (sent < total) setTimeout(tick, 1);
    };
    tick();
  });
  const sendEnd = now();
  // Wait for the server to commit every accepted message (or give up after --drain seconds).
  const drain = Number(opt('drain', 180));
  let stats = {};
  for (const until = now() + drain * 1000; now() < until; await sleep(200)) {
    stats = await serverStats();
    if (ended(stats) >= accepted.size) break;
  }
  const commits = JSON.parse((await get(fhir + '/_control/commits')) || '{}');
  const lat = [];
  let lastCommit = 0;
  for (const [phone, t] of accepted) {
    const c = commits[phone];
    if (c === undefined) continue;
    lat.push(c - t);
    lastCommit = Math.max(lastCommit, c);
  }
  lat.sort((a, b) => a - b);
  intake.sort((a, b) => a - b);
  const delivered = lat.length / ((lastCommit - start) / 1000);
  console.log(`RESULT sent=${total} accepted=${accepted.size} refused=${refused} committed=${lat.length} ` +
    `rejected=${(stats.rejected ?? 0) - (baseline.rejected ?? 0)} offered_rps=${fmt(total / ((sendEnd - start) / 1000))} rps=${fmt(delivered)} ` +
    `p50_ms=${fmt(percentile(lat, 50))} p99_ms=${fmt(percentile(lat, 99))} max_ms=${fmt(lat[lat.length - 1])} ` +
    `intake_p50_ms=${fmt(percentile(intake, 50))} intake_p99_ms=${fmt(percentile(intake, 99))} ` +
    `window_s=${fmt((lastCommit - start) / 1000)}`);
}

async function directMode() {
  const url = opt('url');
  const connections = Number(opt('connections', 8));
  const seconds = Number(opt('seconds', 20));
  let next;
  let count = Number(opt('count', Infinity));
  if (opt('bundles')) {
    const lines = fs.readFileSync(opt('bundles'), 'utf8').split('\n').filter((l) => l.length > 0);
    count = Math.min(count, lines.length);
    next = (i) => ({ text: lines[i] });
  } else {
    const generate = bundleGenerator(fs.readFileSync(opt('template'), 'utf8').trim());
    const first = Number(opt('first', 0));
    next = (i) => generate(first + i);
  }
  const lat = [];
  let issued = 0, ok = 0, failed = 0;
  const start = now();
  const deadline = start + seconds * 1000;
  const worker = async () => {
    while (issued < count && now() < deadline) {
      const { text } = next(issued++);
      const t0 = now();
      const r = await post(url, { 'Content-Type': 'application/fhir+json', Prefer: 'return=minimal' }, text);
      if (r.status === 200) {
        ok++;
        lat.push(now() - t0);
      } else if (++failed <= 3) {
        process.stderr.write(`server answered ${r.status}: ${r.body.slice(0, 300)}\n`);
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = (now() - start) / 1000;
  lat.sort((a, b) => a - b);
  console.log(`RESULT committed=${ok} failed=${failed} rps=${fmt(ok / elapsed)} p50_ms=${fmt(percentile(lat, 50))} ` +
    `p99_ms=${fmt(percentile(lat, 99))} window_s=${fmt(elapsed)}`);
}

if (mode === 'webhook') await webhookMode();
else if (mode === 'direct') await directMode();
else if (mode === 'webhook-body') process.stdout.write(webhookBody(Number(opt('index', 0)), opt('run', 'check')).text + '\n');
else if (mode === 'bundle-for') {
  process.stdout.write(bundleGenerator(fs.readFileSync(opt('template'), 'utf8').trim())(Number(opt('index', 0))).text + '\n');
} else {
  process.stderr.write('usage: node load.mjs webhook|direct|webhook-body|bundle-for [options] (see the header)\n');
  process.exit(2);
}
agent.destroy();
