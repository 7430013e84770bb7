/**
 * PoG credentials end to end (issue 14): an agent on swtpm with a gpsfake GNSS receiver attests its
 * location at the real collector over HTTPS and gets a JWT and an X.509 credential; jose verifies the
 * JWT against the collector's published JWKS, openssl reads the certificate's critical claims
 * extension and verifies it against the published CA; `geofence resource-server` serves a file only
 * to a request signed by the TPM key the credential binds.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import {
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  type KeyObject,
  webcrypto,
} from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AgentState,
  createAgent,
  type Agent as GeofenceAgent,
  GeofenceRejection,
  gpsdLocation,
} from '@geofence/agent';
import { type SwtpmInstance, startSwtpm, Tpm, tpmSigner } from '@geofence/native-tpm';
import { CREDENTIAL_X509_EXTENSION_OID, jcsBytes, type MnoLocation } from '@geofence/protocol';
import { parsePublic, publicToPem } from '@geofence/tpm-wire';
import { jwkThumbprint } from '@geofence/verifier';
import * as x509 from '@peculiar/x509';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { request, Agent as UndiciAgent } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { loadConfig } from '../src/config.js';
import { type SimulatedReceiver, startSimulatedReceiver } from '../src/demo/gnss.js';
import {
  obtainCredential,
  type PogCredential,
  sendResourceRequest,
  signResourceRequest,
} from '../src/demo/pog-client.js';
import { upsertPreRegistration } from '../src/preregistrations.js';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { type RunningResourceServer, startResourceServer } from '../src/server/resource.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';

// Real processes (swtpm, gpsfake, servers) on a shared 2-core machine: generous per-test bound.
vi.setConfig({ testTimeout: 120_000 });

const POINT = { lat: 37.354, lon: -121.955 };
let dir: string;
let ca: string;
let swtpm: SwtpmInstance;
let tpm: Tpm;
let receiver: SimulatedReceiver;
let col: RunningCollector;
let agent: GeofenceAgent;
let repo: RunningResourceServer;
let dispatcher: UndiciAgent;
let credential: PogCredential;
const secret = Buffer.from('model weights: 0123456789abcdef\n');

interface TestMno {
  caPem: string;
  certDer: Buffer;
  key: KeyObject;
}
let mno: TestMno;
let rogue: TestMno;

/** A test MNO: its own CA and a signing certificate issued by it (ECDSA P-256). */
async function makeMno(name: string): Promise<TestMno> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const caKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const now = Date.now();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: `${name} location signer`,
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    publicKey: keys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    caPem: caCert.toString('pem'),
    certDer: Buffer.from(cert.rawData),
    key: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
  };
}

/** The MNO's signed statement for `nonce`: its own area estimate, signed over its JCS. */
function mnoStatement(
  by: TestMno,
  nonce: string,
  area: { lat: number; lon: number; accuracy: number },
  edit?: (p: Record<string, unknown>) => void,
): MnoLocation {
  const payload = { ...area, nonce, timestamp: Math.floor(Date.now() / 1000) };
  const sig = cryptoSign('sha256', jcsBytes(payload), { key: by.key, dsaEncoding: 'ieee-p1363' });
  edit?.(payload);
  return {
    'geolocation-payload': payload,
    'mno-key-cert': by.certDer.toString('base64'),
    'mno-sig': sig.toString('base64url'),
  };
}

beforeAll(async () => {
  const made = await testDataDir('pogres');
  dir = made.dir;
  ca = made.pki.ca;
  dispatcher = new UndiciAgent({ connect: { ca } });
  swtpm = await startSwtpm({ stateDir: join(dir, 'swtpm') });
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  receiver = await startSimulatedReceiver(dir, POINT);
  upsertPreRegistration(dir, {
    agent_name: 'agent-001',
    ek: 'any-trusted-ca',
    geo_policy: { allow: [{ region: 'US', state: 'California' }] },
  });
  mno = await makeMno('CN=Test MNO Root');
  rogue = await makeMno('CN=Rogue MNO');
  writeFileSync(join(dir, 'mno-ca.pem'), mno.caPem);
  col = await startCollector(
    testConfig('collector', dir, { enrollment: { mnoCaPaths: [join(dir, 'mno-ca.pem')] } }),
    {
      log: silentLog,
      ekCaCertificates: swtpm.ekCaCertificates,
    },
  );
  // The receiver identity (gpsd DEVICE report) must be known before enrolment binds the sensor.
  const gnss = gpsdLocation({ port: receiver.port });
  await gnss.current();
  agent = createAgent({
    name: 'agent-001',
    tpm,
    gateway: col.url,
    tls: { ca },
    location: gnss,
    stateDir: join(dir, 'agent-state'),
    outbox: false,
    retry: { attempts: 1 },
    logger: silentLog,
  });
  await agent.enroll({ workload: { name: 'metrics-agent', version: '1.0.0' } });
  credential = await obtainCredential({
    collector: col.url,
    dispatcher,
    tpm,
    state: AgentState.open(join(dir, 'agent-state')),
    location: { ...POINT, accuracy: 25 },
    format: 'x509',
  });
  const files = join(dir, 'files');
  mkdirSync(files);
  writeFileSync(join(files, 'model.bin'), secret);
  repo = await startResourceServer(
    loadConfig({
      role: 'resource',
      env: {},
      cwd: dir,
      overrides: {
        dataDir: dir,
        port: 0,
        logLevel: 'silent',
        resource: {
          dir: files,
          issuer: col.deps.signer.issuer,
          jwksUrl: `${col.url}/.well-known/jwks.json`,
          allow: [{ region: 'US', state: 'California' }],
        },
      },
    }),
    { log: silentLog },
  );
});

afterAll(async () => {
  await repo?.close();
  await agent?.close();
  await col?.close();
  await tpm?.close();
  await receiver?.stop();
  await swtpm?.stop();
  await dispatcher?.close();
});

async function fetchText(url: string): Promise<string> {
  const r = await request(url, { dispatcher });
  expect(r.statusCode).toBe(200);
  return r.body.text();
}

describe('PoG credential from a real location attestation', () => {
  it('jose verifies the JWT against the published JWKS; the claims carry every V-PEA member', async () => {
    const jwks = JSON.parse(await fetchText(`${col.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(credential.jwt, createLocalJWKSet(jwks), {
      issuer: col.deps.signer.issuer,
      typ: 'geofence-ar+jwt',
    });
    expect(payload.exp! - payload.iat!).toBe(600);
    expect(payload.geofence).toMatchObject({
      platform_integrity: 'recorded',
      agent_integrity: 'recorded',
      residency: 'tpm+geofence',
      trust_level: 'low',
      evidence: 'lah-bundle',
      area: { region: 'US', state: 'California', place: 'US-CA' },
    });
    const g = payload.geofence as Record<string, unknown>;
    for (const m of [
      'keyid',
      'ek_hash',
      'workload_digest',
      'attested_at',
      'nonce_hash',
      'geolocation_proof_hash',
    ])
      expect(g[m], m).toBeDefined();
    const cnf = payload.cnf as { jkt: string; jwk: Record<string, string> };
    expect(await jwkThumbprint(cnf.jwk)).toBe(cnf.jkt);
  });

  it('openssl shows the critical claims extension and verifies the certificate against the published CA', async () => {
    const caPem = await fetchText(`${col.url}/.well-known/geofence-ca.pem`);
    writeFileSync(join(dir, 'ca.pem'), caPem);
    writeFileSync(join(dir, 'pog.der'), credential.certificate!);
    const text = execFileSync(
      'openssl',
      ['x509', '-inform', 'DER', '-in', join(dir, 'pog.der'), '-noout', '-text'],
      {
        encoding: 'utf8',
      },
    );
    expect(text).toContain(`${CREDENTIAL_X509_EXTENSION_OID}: critical`);
    expect(text).toContain('"trust_level":"low"');
    expect(text).toMatch(/Subject: CN ?= ?agent-001/);
    execFileSync('openssl', [
      'x509',
      '-inform',
      'DER',
      '-in',
      join(dir, 'pog.der'),
      '-out',
      join(dir, 'pog.pem'),
    ]);
    // Unaware relying parties fail closed: plain openssl refuses the unknown critical extension.
    const plain = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'pog.pem')], {
      encoding: 'utf8',
    });
    expect(plain.status).not.toBe(0);
    expect(plain.stdout + plain.stderr).toMatch(/unhandled critical extension/i);
    const aware = execFileSync(
      'openssl',
      ['verify', '-ignore_critical', '-CAfile', join(dir, 'ca.pem'), join(dir, 'pog.pem')],
      { encoding: 'utf8' },
    );
    expect(aware).toContain(': OK');
  });
});

describe('geofence resource-server', () => {
  it('serves the file to the TPM-signed request, refuses it unsigned, and cannot be walked out of', async () => {
    const key = await AgentState.open(join(dir, 'agent-state')).loadOrCreateAppKey(tpm, 'ecc-p256');
    const jkt = await jwkThumbprint(createPublicKey(publicToPem(parsePublic(key.public))));
    const signer = tpmSigner(tpm, key, { keyid: jkt, alg: 'ecdsa-p256-sha256' });
    const ok = await sendResourceRequest(
      await signResourceRequest({ url: `${repo.url}/model.bin`, credential, signer }),
      dispatcher,
    );
    expect(ok.status).toBe(200);
    expect(ok.bytes.equals(secret)).toBe(true);
    const bare = await request(`${repo.url}/model.bin`, { dispatcher });
    expect(bare.statusCode).toBe(401);
    expect(((await bare.body.json()) as { details: { check: string } }).details.check).toBe(
      'credential_missing',
    );
    // A signed request for a path outside the directory: admitted by the guard, found by nothing.
    const walk = await sendResourceRequest(
      await signResourceRequest({ url: `${repo.url}/..%2f..%2fetc%2fpasswd`, credential, signer }),
      dispatcher,
    );
    expect(walk.status).toBe(404);
  });

  it('the CLI refuses to start without the directory and the issuer (exit 2)', () => {
    const cli = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', 'tsx', cli, 'resource-server', '--data-dir', dir], {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('../../../', import.meta.url)),
      env: { ...process.env, RESOURCE_DIR: '', RESOURCE_ISSUER: '' },
    });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/resource\.dir.*required/s);
    expect(r.stderr).toMatch(/resource\.issuer.*required/s);
  });
});

describe('trust level medium: GNSS corroborated by a signed MNO location (V-PEA §5.3.4, §6.2.4)', () => {
  const here = { ...POINT, accuracy: 25 };
  const nearby = { lat: 37.36, lon: -121.95, accuracy: 2000 }; // cell-sized area around the fix

  async function refusal(mnoLocation: (nonce: string) => Promise<MnoLocation>): Promise<unknown> {
    const err = await agent.attestLocation({ location: here, mnoLocation }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GeofenceRejection);
    const r = err as GeofenceRejection;
    expect({ status: r.status, vt: r.validationType, check: r.details?.check }).toEqual({
      status: 403,
      vt: 'attestation',
      check: 'mno_location',
    });
    return r.details?.mno_check;
  }

  it('a verified MNO statement that agrees with the GNSS point gives medium', async () => {
    const out = await agent.attestLocation({
      location: here,
      mnoLocation: async (n) => mnoStatement(mno, n, nearby),
    });
    expect(out.trustLevel).toBe('medium');
    const claims = JSON.parse(Buffer.from(out.attestationResult.split('.')[1]!, 'base64url').toString());
    expect(claims.geofence.trust_level).toBe('medium');
    expect((await agent.attestLocation({ location: here })).trustLevel).toBe('low');
  });

  it('refuses an MNO statement that does not corroborate: area, chain, signature, nonce', async () => {
    const berlin = { lat: 52.52, lon: 13.405, accuracy: 2000 };
    expect(await refusal(async (n) => mnoStatement(mno, n, berlin))).toBe('area');
    expect(await refusal(async (n) => mnoStatement(rogue, n, nearby))).toBe('chain');
    expect(
      await refusal(async (n) =>
        mnoStatement(mno, n, nearby, (p) => {
          p.accuracy = 900_000;
        }),
      ),
    ).toBe('signature');
    expect(
      await refusal(async () => mnoStatement(mno, 'another-nonce-AAAAAAAAAAAAAAAAAAAAAAAAAAAA', nearby)),
    ).toBe('nonce');
  });
});

describe('credential status for relying parties', () => {
  it('GET /credentials/status tells active from revoked and unknown', async () => {
    const claims = JSON.parse(Buffer.from(credential.jwt.split('.')[1]!, 'base64url').toString());
    const keyid = claims.geofence.keyid as string;
    const status = async (k: string) => {
      const r = await request(`${col.url}/credentials/status?keyid=${k}`, { dispatcher });
      return { code: r.statusCode, body: (await r.body.json()) as Record<string, unknown> };
    };
    expect(await status(keyid)).toEqual({ code: 200, body: { keyid, status: 'active' } });
    expect((await status('0'.repeat(64))).body.status).toBe('unknown');
    expect((await status('nope')).code).toBe(400);
    await col.deps.registry.setStatus('agent-001', 'revoked');
    try {
      expect((await status(keyid)).body.status).toBe('revoked');
    } finally {
      await col.deps.registry.setStatus('agent-001', 'active');
    }
  });
});
