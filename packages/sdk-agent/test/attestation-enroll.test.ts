/**
 * Enrolment (SPEC §4) against swtpm: the success path end to end over real HTTP on 127.0.0.1, and
 * every rejection of issue 5 item 3, each an `attestation` rejection naming the failed check.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SwtpmInstance, startSwtpm, Tpm, type TpmKey } from '@geofence/native-tpm';
import { keyIdOfPublic, objectName, parsePublic, publicToJwk } from '@geofence/tpm-wire';
import {
  type AgentRecordInput,
  AttestationResultSigner,
  type EnrollmentPolicy,
  EnrollmentService,
  type EnrollRequest,
  type EnrollStartResponse,
  enrollmentQualifyingData,
  expectedWorkloadPcr,
  GeofenceError,
  type Jwks,
  jwkThumbprint,
  keyidOfPublicKey,
  mountAttestationExpress,
  type PendingEnrollmentStore,
  type Registry,
  SqliteRegistry,
  verifyAttestationResult,
} from '@geofence/verifier';
import express from 'express';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttestationClientError, ensureWorkloadPcr, performEnrollment } from '../src/attestation/index.js';
import { GeofenceRejection } from '../src/errors.js';
import { AgentState } from '../src/state.js';

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const unb64u = (s: string) => new Uint8Array(Buffer.from(s, 'base64url'));
const hexOf = (b: Uint8Array) => Buffer.from(b).toString('hex');

let swtpm: SwtpmInstance;
let rogue: SwtpmInstance; // only its (different) EK CA is used
let tpm: Tpm;
let dir: string;
let signer: AttestationResultSigner;
let ekPublic: Uint8Array;
let ekCert: Uint8Array;
let ekPublicEcc: Uint8Array;
let app: TpmKey;
let duplicable: TpmKey;
let imagePath: string;
let imageDigest: string;
const registries: SqliteRegistry[] = [];

const DUP_HANDLE = 0x81000123;

/** A duplicable AppSK (no fixedTPM/fixedParent), made with tpm2-tools and persisted for the addon. */
function makeDuplicableKey(tcti: string, work: string): TpmKey {
  const env = { ...process.env, TPM2TOOLS_TCTI: tcti };
  const run = (...args: string[]) =>
    execFileSync(args[0] as string, args.slice(1), { env, cwd: work, stdio: 'pipe' });
  run('tpm2_createprimary', '-C', 'o', '-G', 'ecc256', '-c', 'prim.ctx');
  run('tpm2_flushcontext', '-t');
  run(
    'tpm2_create',
    '-C',
    'prim.ctx',
    '-G',
    'ecc256:ecdsa-sha256',
    '-a',
    'sensitivedataorigin|userwithauth|sign',
    '-u',
    'dup.pub',
    '-r',
    'dup.priv',
  );
  run('tpm2_flushcontext', '-t');
  run('tpm2_load', '-C', 'prim.ctx', '-u', 'dup.pub', '-r', 'dup.priv', '-c', 'dup.ctx');
  run('tpm2_flushcontext', '-t');
  run('tpm2_evictcontrol', '-C', 'o', '-c', 'dup.ctx', `0x${DUP_HANDLE.toString(16)}`);
  run('tpm2_flushcontext', '-t');
  const pub = new Uint8Array(readFileSync(join(work, 'dup.pub')));
  return { public: pub, name: objectName(pub), handle: DUP_HANDLE };
}

async function newService(
  policy: Partial<EnrollmentPolicy> = {},
  now?: () => Date,
  pendingStore?: PendingEnrollmentStore,
) {
  const registry = await SqliteRegistry.open({ path: join(dir, `reg-${randomBytes(4).toString('hex')}.db`) });
  registries.push(registry);
  const service = new EnrollmentService({
    registry,
    signer,
    policy: { ekCaBundle: swtpm.ekCaCertificates, ...policy },
    ...(now ? { now } : {}),
    ...(pendingStore ? { pendingStore } : {}),
  });
  return { service, registry };
}

let counter = 0;
async function enrollRequest(overrides: Partial<EnrollRequest> = {}) {
  const ak = await tpm.createAk({ alg: 'ecc-p256' });
  const request: EnrollRequest = {
    agent_name: `agent-${++counter}`,
    ek: { public: b64u(ekPublic), certificate: b64u(ekCert) },
    ak: { public: b64u(ak.public) },
    app_key: { public: b64u(app.public) },
    workload: { name: 'metrics-agent', version: '1.0.0', image_digest: imageDigest },
    platform: { os: 'Linux', kernel: '6.1' },
    ...overrides,
  };
  return { ak, request };
}

interface CompleteOptions {
  certifyKey?: TpmKey;
  certifyNonce?: string;
  quoteData?: Uint8Array;
  secret?: Uint8Array;
  mutatePcrs?: (p: Record<string, Record<string, string>>) => void;
}

async function completionBody(
  ch: EnrollStartResponse,
  request: EnrollRequest,
  ak: TpmKey,
  opts: CompleteOptions = {},
) {
  const secret =
    opts.secret ??
    (await tpm.activateCredential(ak, unb64u(ch.credential_blob), unb64u(ch.encrypted_secret)));
  const certify = await tpm.certify(opts.certifyKey ?? app, ak, unb64u(opts.certifyNonce ?? ch.nonce));
  const quote = await tpm.quote(
    ak,
    ch.pcr_selection as Array<{ bank: 'sha256'; pcrs: number[] }>,
    opts.quoteData ?? enrollmentQualifyingData(ch.enrollment_id, ch.nonce, request),
  );
  const pcrs: Record<string, Record<string, string>> = {};
  for (const [bank, v] of Object.entries(quote.pcrValues)) {
    pcrs[bank] = Object.fromEntries(Object.entries(v).map(([i, d]) => [i, hexOf(d)]));
  }
  opts.mutatePcrs?.(pcrs);
  return {
    secret: b64u(secret),
    certify: { attest: b64u(certify.attest), signature: b64u(certify.signature) },
    quote: { attest: b64u(quote.attest), signature: b64u(quote.signature), pcrs },
  };
}

/** A record an operator or an app wrote through the registry API: a software key, no EK binding. */
function softwareRecord(agentName: string): AgentRecordInput {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    agent_name: agentName,
    keyid: keyidOfPublicKey(publicKey),
    alg: 'ecdsa-p256-sha256',
    app_public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    geo_policy: { allow: [{ region: 'US', state: 'California', city: 'Santa Clara' }] },
    status: 'active',
  };
}

async function expectCheck(p: Promise<unknown>, check: string, extra?: Record<string, unknown>) {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected rejection ${check}`).toBeInstanceOf(GeofenceError);
  const ge = err as GeofenceError;
  expect({ vt: ge.validationType, status: ge.status, check: ge.details?.check }).toEqual({
    vt: 'attestation',
    status: 403,
    check,
  });
  if (extra) expect(ge.details).toMatchObject(extra);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'enroll-test-'));
  [swtpm, rogue] = await Promise.all([startSwtpm(), startSwtpm()]);
  duplicable = makeDuplicableKey(swtpm.tcti, dir);
  tpm = await Tpm.open({ tcti: swtpm.tcti });
  ekPublic = await tpm.ekPublic('rsa-2048');
  ekCert = (await tpm.ekCertificate('rsa-2048')) as Uint8Array;
  ekPublicEcc = await tpm.ekPublic('ecc-p256');
  app = await tpm.createSigningKey({ alg: 'ecc-p256' });
  imagePath = join(dir, 'workload.js');
  writeFileSync(imagePath, 'console.log("approved workload v1");\n');
  imageDigest = execFileSync('sha256sum', [imagePath]).toString().slice(0, 64);
  const { privateKey } = await import('node:crypto').then((c) =>
    c.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  );
  signer = await AttestationResultSigner.create({ key: privateKey, issuer: 'https://collector.test' });
});

afterAll(async () => {
  await Promise.all(registries.map((r) => r.close()));
  await tpm?.close();
  await Promise.all([swtpm?.stop(), rogue?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('enrolment over HTTP (express on 127.0.0.1)', () => {
  it('enrols end to end; the result JWT verifies with the served JWKS and binds the AppSK', async () => {
    const { service, registry } = await newService({
      agents: [{ agentName: 'agent-001', ek: 'any-trusted-ca', geoPolicy: { allow: [{ region: 'US' }] } }],
      workloadDigests: [imageDigest],
    });
    const appExpress = express();
    mountAttestationExpress(appExpress, { enrollment: service, signer });
    const server = appExpress.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const post = async (path: string, json: unknown) => {
      const res = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(json),
      });
      return { status: res.status, body: await res.json() };
    };
    try {
      const state = AgentState.open(join(dir, 'state-001'));
      const result = await performEnrollment({
        agentName: 'agent-001',
        tpm,
        state,
        post,
        workload: { name: 'metrics-agent', version: '1.0.0', imagePath },
        sensor: { type: 'gnss', model: 'u-blox M8', serial: 'SN-0001' },
      });
      expect(result).toMatchObject({
        status: 'active',
        alg: 'ecdsa-p256-sha256',
        agent_integrity: 'verified',
      });
      expect(result.platform_integrity).toBe('recorded');
      expect(state.enrollment()).toMatchObject({ keyid: result.keyid, agent_name: 'agent-001' });

      const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as Jwks;
      const appPublic = state.storedAppKey()?.key.public as Uint8Array;
      const { payload } = await verifyAttestationResult(result.attestation_result, jwks, {
        issuer: 'https://collector.test',
        subject: 'agent-001',
        appKey: publicToJwk(appPublic) as never,
      });
      expect(payload.cnf.jkt).toBe(await jwkThumbprint(publicToJwk(appPublic) as never));
      expect(payload.geofence).toMatchObject({
        keyid: keyIdOfPublic(appPublic),
        ek_hash: keyIdOfPublic(ekPublic),
        workload_digest: imageDigest,
        residency: 'tpm',
        agent_integrity: 'verified',
        evidence: 'enrollment',
        status: 'active',
      });

      const record = await registry.getByName('agent-001');
      expect(record).toMatchObject({
        keyid: result.keyid,
        status: 'active',
        ek_public_hash: keyIdOfPublic(ekPublic),
        workload_digest: imageDigest,
        geo_policy: { allow: [{ region: 'US' }] },
      });
      expect(record?.ek_cert_issuer).toBeTruthy();
      expect(record?.sensor_id_hash).toMatch(/^[0-9a-f]{64}$/);

      // Re-enrolment with a new AK keeps the record (same EK) and the same keyid (same AppSK).
      const again = await performEnrollment({
        agentName: 'agent-001',
        tpm,
        state,
        post,
        workload: { name: 'metrics-agent', version: '1.0.0', imagePath },
      });
      expect(again.keyid).toBe(result.keyid);
      expect(hexOf(again.ak.public)).not.toBe(hexOf(result.ak.public));

      // A refusal over HTTP is an aligned problem that the agent surfaces as GeofenceRejection.
      const err = await performEnrollment({
        agentName: 'agent-001',
        tpm,
        state: AgentState.open(join(dir, 'state-001b')),
        post,
        workload: {
          name: 'metrics-agent',
          version: '1.0.0',
          imagePath: join(dir, 'state-001', 'app-key.json'),
        },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GeofenceRejection);
      expect(err).toMatchObject({ status: 403, validationType: 'attestation', rejectedBy: 'collector' });
      expect((err as GeofenceRejection).details).toMatchObject({ check: 'workload_digest' });
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('enrolment checks (in process, same swtpm)', () => {
  it('records an agent that is not pre-registered as pending', async () => {
    const { service, registry } = await newService();
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const done = await service.complete(ch.enrollment_id, await completionBody(ch, request, ak));
    expect(done.status).toBe('pending');
    expect((await registry.getByName(request.agent_name))?.status).toBe('pending');
  });

  it('keeps pending enrolments in any store that holds plain JSON (as a shared store would)', async () => {
    const kept = new Map<string, string>();
    const store: PendingEnrollmentStore = {
      async put(id, record, expiresAt) {
        kept.set(id, JSON.stringify({ record, expiresAt: expiresAt.getTime() }));
      },
      async take(id, now) {
        const text = kept.get(id);
        if (text === undefined) return { status: 'unknown' };
        if (text === 'used') return { status: 'used' };
        kept.set(id, 'used');
        const { record, expiresAt } = JSON.parse(text);
        return now.getTime() > expiresAt ? { status: 'expired' } : { status: 'ok', value: record };
      },
    };
    const { service } = await newService({}, undefined, store);
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    expect(JSON.parse(kept.get(ch.enrollment_id) as string).record.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const body = await completionBody(ch, request, ak);
    await expect(service.complete(ch.enrollment_id, body)).resolves.toMatchObject({ status: 'pending' });
    await expectCheck(service.complete(ch.enrollment_id, body), 'enrollment_already_used');
  });

  it('never lets an enrolment replace an active record that has no EK binding (takeover)', async () => {
    const { service, registry } = await newService();
    const victim = softwareRecord('victim-1');
    await registry.put(victim);
    const before = await registry.getByName('victim-1');
    const { request } = await enrollRequest({ agent_name: 'victim-1' });
    await expectCheck(service.start(request), 'ek_not_registered_for_agent', { agent_name: 'victim-1' });
    expect(await registry.getByName('victim-1')).toEqual(before);
  });

  it('re-enrols a record without EK binding once the operator pre-registered the name', async () => {
    const geoPolicy = { allow: [{ region: 'US', state: 'California' }] };
    const { service, registry } = await newService({
      agents: [{ agentName: 'victim-2', ek: 'any-trusted-ca', geoPolicy }],
    });
    await registry.put(softwareRecord('victim-2'));
    const { ak, request } = await enrollRequest({ agent_name: 'victim-2' });
    const ch = await service.start(request);
    const done = await service.complete(ch.enrollment_id, await completionBody(ch, request, ak));
    expect(done.status).toBe('active');
    expect(await registry.getByName('victim-2')).toMatchObject({
      keyid: keyIdOfPublic(app.public),
      ek_public_hash: keyIdOfPublic(ekPublic),
    });
  });

  it('fails an enrolment whose record another writer changed between check and write', async () => {
    const path = join(dir, `race-${randomBytes(4).toString('hex')}.db`);
    const own = await SqliteRegistry.open({ path });
    const other = await SqliteRegistry.open({ path });
    registries.push(own, other);
    const racer = softwareRecord('racer-1');
    let armed = false;
    // The other process's write lands right after complete() read "no record".
    const registry: Registry = new Proxy(own, {
      get(target, prop, receiver) {
        if (prop !== 'getByName') return Reflect.get(target, prop, receiver);
        return async (name: string) => {
          const found = await target.getByName(name);
          if (armed) {
            armed = false;
            await other.put(racer);
          }
          return found;
        };
      },
    });
    const service = new EnrollmentService({
      registry,
      signer,
      policy: { ekCaBundle: swtpm.ekCaCertificates },
    });
    const { ak, request } = await enrollRequest({ agent_name: 'racer-1' });
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak);
    armed = true;
    await expectCheck(service.complete(ch.enrollment_id, body), 'registration_conflict', {
      agent_name: 'racer-1',
    });
    expect((await own.getByName('racer-1'))?.keyid).toBe(racer.keyid);
  });

  it('rejects an EK certificate from an untrusted CA', async () => {
    const { service } = await newService({ ekCaBundle: rogue.ekCaCertificates });
    const { request } = await enrollRequest();
    await expectCheck(service.start(request), 'ek_certificate_chain');
  });

  it('rejects an EK certificate whose key differs from the EK public', async () => {
    const { service } = await newService();
    const { request } = await enrollRequest({ ek: { public: b64u(ekPublicEcc), certificate: b64u(ekCert) } });
    await expectCheck(service.start(request), 'ek_certificate_key');
  });

  it('rejects a missing certificate when the EK hash is not approved, accepts it when approved', async () => {
    const { service } = await newService();
    const { request } = await enrollRequest({ ek: { public: b64u(ekPublic) } });
    await expectCheck(service.start(request), 'ek_hash_not_approved', { ek_hash: keyIdOfPublic(ekPublic) });
    const ok = await newService({ approvedEkHashes: [keyIdOfPublic(ekPublic)] });
    await expect(ok.service.start(request)).resolves.toMatchObject({ enrollment_id: expect.any(String) });
  });

  it('rejects an AK that is not a restricted signing key', async () => {
    const { service } = await newService();
    const { request } = await enrollRequest({ ak: { public: b64u(app.public) } });
    await expectCheck(service.start(request), 'ak_attributes', { failed: ['restricted'] });
  });

  it('rejects a wrong activated secret', async () => {
    const { service } = await newService();
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak, { secret: new Uint8Array(randomBytes(32)) });
    await expectCheck(service.complete(ch.enrollment_id, body), 'credential_secret');
  });

  it('rejects a replayed completion', async () => {
    const { service } = await newService();
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak);
    await expect(service.complete(ch.enrollment_id, body)).resolves.toMatchObject({ status: 'pending' });
    await expectCheck(service.complete(ch.enrollment_id, body), 'enrollment_already_used');
  });

  it('rejects a completion after expiry (default 5 minutes)', async () => {
    let skew = 0;
    const { service } = await newService({}, () => new Date(Date.now() + skew));
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak);
    skew = 301_000;
    await expectCheck(service.complete(ch.enrollment_id, body), 'enrollment_expired');
  });

  it('rejects a certify over a different key', async () => {
    const { service } = await newService();
    const other = await tpm.createSigningKey({ alg: 'ecc-p256' });
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak, { certifyKey: other });
    await expectCheck(service.complete(ch.enrollment_id, body), 'certify', { code: 'name_mismatch' });
  });

  it('rejects a certify with a stale nonce', async () => {
    const { service } = await newService();
    const first = await enrollRequest();
    const stale = await service.start(first.request);
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak, { certifyNonce: stale.nonce });
    await expectCheck(service.complete(ch.enrollment_id, body), 'certify', { code: 'nonce_mismatch' });
  });

  it('refuses an AppSK without fixedTPM (duplicable key)', async () => {
    expect(parsePublic(duplicable.public).attributes.fixedTPM).toBe(false);
    const { service } = await newService();
    const { ak, request } = await enrollRequest({ app_key: { public: b64u(duplicable.public) } });
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak, { certifyKey: duplicable });
    await expectCheck(service.complete(ch.enrollment_id, body), 'app_key_attributes', {
      failed: ['fixedTPM', 'fixedParent'],
    });
  });

  it('rejects a quote with a stale nonce', async () => {
    const { service } = await newService();
    const first = await enrollRequest();
    const stale = await service.start(first.request);
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak, {
      quoteData: enrollmentQualifyingData(stale.enrollment_id, stale.nonce, first.request),
    });
    await expectCheck(service.complete(ch.enrollment_id, body), 'quote', { code: 'nonce_mismatch' });
  });

  it('rejects PCR values that do not match the quote digest', async () => {
    const { service } = await newService();
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak, {
      mutatePcrs: (p) => {
        (p.sha256 as Record<string, string>)['0'] = 'ab'.repeat(32);
      },
    });
    await expectCheck(service.complete(ch.enrollment_id, body), 'quote', { code: 'pcr_digest_mismatch' });
  });

  it('rejects PCRs that do not match the reference values', async () => {
    const { service } = await newService({ pcrs: { sha256: { 0: '00'.repeat(32), 7: 'ab'.repeat(32) } } });
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    expect(ch.pcr_selection).toEqual([{ bank: 'sha256', pcrs: [0, 7] }]);
    const body = await completionBody(ch, request, ak);
    await expectCheck(service.complete(ch.enrollment_id, body), 'pcr_policy', { bank: 'sha256', pcr: 7 });
  });

  it('rejects a workload digest that is not approved', async () => {
    const { service } = await newService({ workloadDigests: ['00'.repeat(32)] });
    const { ak, request } = await enrollRequest();
    const ch = await service.start(request);
    const body = await completionBody(ch, request, ak);
    await expectCheck(service.complete(ch.enrollment_id, body), 'workload_digest', {
      image_digest: imageDigest,
    });
  });

  it('verifies PCR reference values and the workload measured into PCR 23', async () => {
    const pcrs = await tpm.pcrRead([{ bank: 'sha256', pcrs: [0] }]);
    const { service } = await newService({
      pcrs: { sha256: { 0: hexOf(pcrs.sha256?.[0] as Uint8Array) } },
      workloadDigests: [imageDigest],
      workloadPcr: 23,
      agents: [{ agentName: 'agent-pcr23', ek: { hash: keyIdOfPublic(ekPublic) }, geoPolicy: {} }],
    });
    const state = AgentState.open(join(dir, 'state-pcr23'));
    const result = await performEnrollment({
      agentName: 'agent-pcr23',
      tpm,
      state,
      post: async (path, json) => {
        const m = /^\/enroll\/([^/]+)\/complete$/.exec(path);
        const body = m
          ? await service.complete(decodeURIComponent(m[1] as string), json)
          : await service.start(json);
        return { status: m ? 200 : 201, body };
      },
      workload: { name: 'metrics-agent', version: '1.0.0', imagePath, extendPcr: 23 },
    });
    expect(result).toMatchObject({
      status: 'active',
      platform_integrity: 'verified',
      agent_integrity: 'verified',
    });
    const pcr23 = (await tpm.pcrRead([{ bank: 'sha256', pcrs: [23] }])).sha256?.[23] as Uint8Array;
    expect(hexOf(pcr23)).toBe(hexOf(expectedWorkloadPcr(imageDigest)));
    // Measuring the same image again is idempotent; another image is refused (no reset available).
    await ensureWorkloadPcr(tpm, 23, imageDigest);
    const err = await ensureWorkloadPcr(tpm, 23, 'cd'.repeat(32)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AttestationClientError);
    expect(err).toMatchObject({ code: 'workload_pcr' });
  });

  it('enrols RSA-2048 keys too (RSASSA AK and AppSK)', async () => {
    const { service } = await newService({
      agents: [{ agentName: 'agent-rsa', ek: 'any-trusted-ca', geoPolicy: {} }],
    });
    const result = await performEnrollment({
      agentName: 'agent-rsa',
      tpm,
      state: AgentState.open(join(dir, 'state-rsa')),
      appKeyAlgorithm: 'rsa-2048',
      akAlgorithm: 'rsa-2048',
      post: async (path, json) => {
        const m = /^\/enroll\/([^/]+)\/complete$/.exec(path);
        const body = m
          ? await service.complete(decodeURIComponent(m[1] as string), json)
          : await service.start(json);
        return { status: m ? 200 : 201, body };
      },
      workload: { name: 'metrics-agent', version: '1.0.0', imagePath },
    });
    expect(result).toMatchObject({ status: 'active', alg: 'rsa-v1_5-sha256' });
    expect(parsePublic(result.ak.public).type).toBe('rsa');
  });

  it('rejects random or bit-flipped certify/quote evidence after a genuine activation (fuzzed)', async () => {
    const { service } = await newService();
    const { ak, request } = await enrollRequest();
    const template = await (async () => {
      const ch = await service.start(request);
      return completionBody(ch, request, ak);
    })();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('certify.attest', 'certify.signature', 'quote.attest', 'quote.signature'),
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 300 }).map((b) => ({ replace: b })),
          fc.nat().map((n) => ({ flip: n })),
        ),
        async (field, change) => {
          const ch = await service.start(request);
          const secret = await tpm.activateCredential(
            ak,
            unb64u(ch.credential_blob),
            unb64u(ch.encrypted_secret),
          );
          const body = structuredClone(template);
          body.secret = b64u(secret);
          const [part, key] = field.split('.') as ['certify' | 'quote', 'attest' | 'signature'];
          const target = body[part];
          if ('replace' in change) target[key] = b64u(change.replace);
          else {
            const bytes = unb64u(target[key]);
            const i = change.flip % (bytes.length * 8);
            bytes[i >> 3] = (bytes[i >> 3] as number) ^ (1 << (i & 7));
            target[key] = b64u(bytes);
          }
          const err = await service.complete(ch.enrollment_id, body).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(GeofenceError);
          expect((err as GeofenceError).validationType).toBe('attestation');
          expect(['certify', 'quote']).toContain((err as GeofenceError).details?.check);
        },
      ),
      { numRuns: 60 },
    );
  });
});
