// Local fakes of the three send APIs a reply goes out through (the real servers cannot be reached
// from the test machines). Each checks the documented request (method, path, auth, content type,
// required fields), answers with the documented response shape, and records what it received.
//   Meta Cloud API  POST /{version}/{phone_number_id}/messages   Bearer token, JSON
//                   -> {"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],"messages":[{"id":"wamid..."}]}
//   8x8 Chat Apps   POST /api/v1/subaccounts/{subAccountId}/messages   Bearer API key, JSON
//                   -> {"umid":"...","clientMessageId":null,"status":{"state":"queued",...}}
//   Twilio          POST /2010-04-01/Accounts/{AccountSid}/Messages.json   Basic auth, form
//                   -> {"sid":"SM...","status":"queued",...}
// Usage: node vendor-send.mjs [--port-file FILE]; env FAKE_META_TOKEN, FAKE_8X8_KEY,
// FAKE_TWILIO_SID, FAKE_TWILIO_TOKEN. GET /_control/requests lists what was received;
// POST /_control/fail {"status":500,"count":2} makes the next sends fail.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';

const args = process.argv.slice(2);
const portFile = args.includes('--port-file') ? args[args.indexOf('--port-file') + 1] : null;
const received = [];
let fault = null;

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function handle(req, res, raw) {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/_control/requests') return json(res, 200, received);
  if (url.pathname === '/_control/fail') {
    fault = { status: 500, count: 1, ...JSON.parse(raw || '{}') };
    return json(res, 200, { ok: true });
  }
  const record = { method: req.method, path: url.pathname, headers: req.headers, body: raw };
  received.push(record);
  if (fault && fault.count > 0) {
    fault.count--;
    return json(res, fault.status, { error: { message: 'injected failure', code: 1 } });
  }
  if (req.method !== 'POST') return json(res, 405, { error: { message: 'POST only' } });
  const auth = req.headers.authorization ?? '';
  let m;
  if ((m = url.pathname.match(/^\/(v\d+\.\d+)\/([^/]+)\/messages$/))) {
    record.provider = 'meta';
    if (auth !== `Bearer ${process.env.FAKE_META_TOKEN}`) {
      return json(res, 401, { error: { message: 'Invalid OAuth access token.', type: 'OAuthException', code: 190 } });
    }
    if (!String(req.headers['content-type']).startsWith('application/json')) {
      return json(res, 400, { error: { message: 'content type must be JSON', code: 100 } });
    }
    const body = JSON.parse(raw);
    record.json = body;
    if (body.messaging_product !== 'whatsapp' || !body.to || !['text', 'template'].includes(body.type)) {
      return json(res, 400, { error: { message: '(#100) Invalid parameter', code: 100 } });
    }
    if (body.type === 'text' && (!body.text?.body || body.text.body.length > 4096)) {
      return json(res, 400, { error: { message: '(#100) Param text[\'body\'] is required, max 4096', code: 100 } });
    }
    const id = 'wamid.' + crypto.randomBytes(18).toString('base64url');
    record.outboundId = id;
    return json(res, 200, { messaging_product: 'whatsapp', contacts: [{ input: body.to, wa_id: String(body.to).replace(/^\+/, '') }], messages: [{ id }] });
  }
  if ((m = url.pathname.match(/^\/api\/v1\/subaccounts\/([^/]+)\/messages$/))) {
    record.provider = '8x8';
    if (auth !== `Bearer ${process.env.FAKE_8X8_KEY}`) return json(res, 401, { code: 1200, message: 'Unauthorized', errorId: crypto.randomUUID() });
    const body = JSON.parse(raw);
    record.json = body;
    if (!body.user?.msisdn || !body.type || !body.content) {
      return json(res, 400, { code: 1000, message: 'Invalid request', errorId: crypto.randomUUID() });
    }
    const umid = crypto.randomUUID();
    record.outboundId = umid;
    return json(res, 200, { umid, clientMessageId: body.clientMessageId ?? null, status: { state: 'queued', timestamp: new Date().toISOString() } });
  }
  if ((m = url.pathname.match(/^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/))) {
    record.provider = 'twilio';
    const expected = 'Basic ' + Buffer.from(`${process.env.FAKE_TWILIO_SID}:${process.env.FAKE_TWILIO_TOKEN}`).toString('base64');
    if (auth !== expected || m[1] !== process.env.FAKE_TWILIO_SID) {
      return json(res, 401, { code: 20003, message: 'Authenticate', more_info: 'https://www.twilio.com/docs/errors/20003', status: 401 });
    }
    const form = Object.fromEntries(new URLSearchParams(raw));
    record.form = form;
    if (!form.To || !form.From || (!form.Body && !form.ContentSid)) {
      return json(res, 400, { code: 21602, message: 'Message body is required.', status: 400 });
    }
    const sid = 'SM' + crypto.randomBytes(16).toString('hex');
    record.outboundId = sid;
    return json(res, 201, { sid, account_sid: m[1], to: form.To, from: form.From, body: form.Body ?? '', status: 'queued', api_version: '2010-04-01' });
  }
  return json(res, 404, { error: { message: 'unknown path ' + url.pathname } });
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
});
server.listen(0, '127.0.0.1', () => {
  const port = server.address().port;
  if (portFile) fs.writeFileSync(portFile + '.tmp', String(port)), fs.renameSync(portFile + '.tmp', portFile);
  process.stdout.write(`listening ${port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
