/**
 * The floor of a flow on this machine (bench/flow.bench.ts `floor` scenario): a bare `node:https`
 * server with no framework and no @geofence code that does the irreducible work a collector does per
 * flow — TLS with keep-alive, HTTP parsing, reading the body, SHA-256 of it, `JSON.parse`, the three
 * ECDSA P-256 verifications (one for `GET /nonce`, two for `POST /metrics`, over inputs of the sizes a
 * real flow has), a random nonce, and an append of the record made durable (`fdatasync`, on the
 * thread pool) before the 200. It checks nothing a real verifier would refuse on; its CPU per flow is
 * what Node.js itself needs for a flow, the reference to read the collector's figure against.
 *
 * Run by the bench: `node bench/lib/floor-service.mjs <cert.pem> <key.pem> <records-file>` with
 * HOST/PORT in the environment.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createServer } from 'node:https';

const [certPath, keyPath, recordsPath] = process.argv.slice(2);
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const opts = { key: publicKey, dsaEncoding: 'ieee-p1363' };
/** Inputs of the sizes of a flow: a nonce request's and a metrics request's signature base, a payload. */
const inputs = [180, 420, 520].map((n) => {
  const data = randomBytes(n);
  return { data, sig: sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' }) };
});
const check = (i) => {
  if (!verify('sha256', inputs[i].data, opts, inputs[i].sig)) throw new Error('floor verify failed');
};
const records = await open(recordsPath, 'a');
let sequence = 0;
/** `FLOOR_DURABLE=false` leaves out the fdatasync, to split what durability costs from the rest. */
const DURABLE = process.env.FLOOR_DURABLE !== 'false';

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function nonce() {
  // 32 random bytes, base64url: the form (and last-character set) of a real nonce.
  return randomBytes(32).toString('base64url');
}

const server = createServer(
  { cert: readFileSync(certPath), key: readFileSync(keyPath), keepAliveTimeout: 30_000 },
  (req, res) => {
    if (req.method === 'GET' && req.url.startsWith('/nonce?')) {
      check(0);
      const count = Number(new URL(req.url, 'https://x').searchParams.get('count') ?? 1);
      const expiresAt = new Date(Date.now() + 300_000).toISOString();
      if (count > 1) {
        const nonces = Array.from({ length: count }, () => ({ nonce: nonce(), expires_at: expiresAt }));
        json(res, 200, { nonces, expires_in: 300 });
      } else json(res, 200, { nonce: nonce(), expires_at: expiresAt, expires_in: 300 });
      return;
    }
    if (req.method === 'POST' && req.url === '/metrics') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        createHash('sha256').update(body).digest('base64');
        const payload = JSON.parse(body.toString('utf8'));
        check(1);
        check(2);
        const id = String(++sequence);
        const line = `${JSON.stringify({ id, agent: payload.agent_name, body: body.toString('utf8') })}\n`;
        records
          .write(line)
          .then(() => (DURABLE ? records.datasync() : undefined))
          .then(
            () => json(res, 200, { status: 'success', record_id: id }),
            (err) => json(res, 503, { error: String(err) }),
          );
      });
      return;
    }
    json(res, 404, { error: 'not found' });
  },
);
server.listen(Number(process.env.PORT), process.env.HOST ?? '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  records.close().finally(() => process.exit(0));
});
