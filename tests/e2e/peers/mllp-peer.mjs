// A real MLLP peer for the end-to-end tests, built on Medplum's @medplum/hl7 (Hl7Server and
// Hl7Client), driven over a small HTTP control API on 127.0.0.1:
//   GET  /_control/state           {"mllpPort": N, "received": [{"base64": the raw bytes of one
//                                    frame as they came over TCP}], "texts": [Hl7Message.toString()]}
//   POST /_control/answers         ["AE","AA","AR"]: ACK codes for the next messages, in order
//                                    (then AA); AE and AR carry an ERR segment
//   POST /_control/send            {"port": N, "messages": ["MSH|..."]} sends them one by one with
//                                    Hl7Client.sendAndWait on one connection; answers
//                                    {"acks": ["MSH|...\rMSA|AA|..."]}
// Usage: node mllp-peer.mjs [--port-file FILE]; prints "listening <port>" once ready.
import { WebSocket } from 'ws';
if (!globalThis.WebSocket) globalThis.WebSocket = WebSocket;  // Node 20: @medplum/core expects one
const { Hl7Message, Hl7Segment } = await import('@medplum/core');
const { Hl7Client, Hl7Server } = await import('@medplum/hl7');
import http from 'node:http';
import fs from 'node:fs';

const args = process.argv.slice(2);
const portFile = args.includes('--port-file') ? args[args.indexOf('--port-file') + 1] : null;

const received = [];
const answers = [];
const texts = [];  // Hl7Message.toString() of each message, in order

const hl7Server = new Hl7Server((connection) => {
  // Keep the raw bytes as they came over TCP, to compare with what the engine was given.
  let pending = Buffer.alloc(0);
  connection.socket.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    for (;;) {
      const end = pending.indexOf(Buffer.from([0x1c, 0x0d]));
      if (end < 0) break;
      received.push({ base64: pending.subarray(0, end + 2).toString('base64') });
      pending = pending.subarray(end + 2);
    }
  });
  connection.addEventListener('message', ({ message }) => {
    texts.push(message.toString());
    const code = answers.length ? answers.shift() : 'AA';
    const options = { ackCode: code };
    if (code !== 'AA') {
      options.errSegment = Hl7Segment.parse(
        code === 'AR' ? 'ERR||PID^1^3|204^Unknown key identifier^HL70357|E||||unknown patient at the peer'
                      : 'ERR|||207^Application internal error^HL70357|E||||peer busy, send again');
    }
    connection.send(message.buildAck(options));
  });
});
hl7Server.start(0);
await new Promise((resolve) => hl7Server.server.listening ? resolve() : hl7Server.server.once('listening', resolve));
const mllpPort = hl7Server.server.address().port;

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function sendAll(port, messages) {
  const client = new Hl7Client({ host: '127.0.0.1', port, keepAlive: true });
  const acks = [];
  try {
    for (const text of messages) {
      const ack = await client.sendAndWait(Hl7Message.parse(text), { timeoutMs: 20000 });
      acks.push(ack.toString());
    }
  } finally {
    await client.close();
  }
  return acks;
}

const control = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const body = Buffer.concat(chunks).toString('utf8');
    try {
      if (req.method === 'GET' && req.url === '/_control/state') return json(res, 200, { mllpPort, received, texts });
      if (req.method === 'POST' && req.url === '/_control/answers') {
        answers.push(...JSON.parse(body));
        return json(res, 200, { queued: answers.length });
      }
      if (req.method === 'POST' && req.url === '/_control/send') {
        const { port, messages } = JSON.parse(body);
        return json(res, 200, { acks: await sendAll(port, messages) });
      }
      json(res, 404, { error: 'unknown control path' });
    } catch (e) {
      json(res, 500, { error: String(e && e.message ? e.message : e) });
    }
  });
});
control.listen(0, '127.0.0.1', () => {
  const port = control.address().port;
  if (portFile) fs.writeFileSync(portFile + '.tmp', String(port)), fs.renameSync(portFile + '.tmp', portFile);
  console.log(`listening ${port}`);
});
