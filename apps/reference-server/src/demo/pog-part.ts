/**
 * The demo's third part (issue 14): a model repository served by `geofence resource-server` only
 * through `requireGeofence`, trusting the demo collector's credentials. Five scenarios: agent-001
 * downloads model.bin; the credential copied to another host fails there; a captured request
 * replayed fails; the Berlin agent gets no credential; a modified workload gets no credential.
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AgentState, createAgent, gpsdLocation } from '@geofence/agent';
import type { Signer } from '@geofence/http-sig';
import { type Tpm, tpmSigner } from '@geofence/native-tpm';
import { parsePublic, publicToPem } from '@geofence/tpm-wire';
import { type GeoFence, jwkThumbprint } from '@geofence/verifier';
import type { Agent as UndiciAgent } from 'undici';
import { loadConfig } from '../config.js';
import type { Logger } from '../logger.js';
import type { RunningCollector } from '../server/collector.js';
import { startResourceServer } from '../server/resource.js';
import { startSimulatedReceiver } from './gnss.js';
import { obtainCredential, sendResourceRequest, signResourceRequest } from './pog-client.js';
import { type Expected, fromError, type Observed, observe } from './table.js';

/** A simulated host as the demo started it. */
export interface PogHost {
  agent: string;
  tpm: Tpm;
}

/** Where the agents are: the sealed points of their location attestations. */
const SANTA_CLARA_POINT = { lat: 37.354, lon: -121.955, accuracy: 20 };
const BERLIN_POINT = { lat: 52.52, lon: 13.405, accuracy: 20 };

/** The campus fence the operator sets for location attestation (a GeoJSON Feature with an id). */
const CAMPUS_FENCE: GeoFence = {
  type: 'Feature',
  id: 'santa-clara-campus',
  properties: { name: 'santa-clara-campus' },
  geometry: {
    type: 'Polygon',
    coordinates: [
      [
        [-122.0, 37.32],
        [-121.9, 37.32],
        [-121.9, 37.4],
        [-122.0, 37.4],
        [-122.0, 37.32],
      ],
    ],
  },
};

/** Inputs of {@link runPogPart}. */
export interface PogPartOptions {
  runDir: string;
  pki: { ca: string; paths: { cert: string; key: string; ca: string } };
  collector: RunningCollector;
  hosts: readonly PogHost[];
  dispatcher: UndiciAgent;
  log: Logger;
  say: (msg: string) => void;
  record: (scenario: string, expected: Expected, observed: Observed) => void;
  onClose: (name: string, fn: () => Promise<unknown>) => void;
}

async function appSigner(host: PogHost, state: AgentState): Promise<Signer> {
  const key = await state.loadOrCreateAppKey(host.tpm, 'ecc-p256');
  // keyid of a PoG request signature = cnf.jkt of the credential: the RFC 7638 thumbprint.
  const jkt = await jwkThumbprint(createPublicKey(publicToPem(parsePublic(key.public))));
  return tpmSigner(host.tpm, key, { keyid: jkt, alg: 'ecdsa-p256-sha256' });
}

/** Runs the five scenarios; every outcome goes to `record`. */
export async function runPogPart(o: PogPartOptions): Promise<void> {
  const { say, record, dispatcher, collector } = o;
  const host = (name: string) => o.hosts.find((h) => h.agent === name) as PogHost;
  const stateOf = (name: string) => AgentState.open(join(o.runDir, 'agents', name));

  // agent-001's host gets a GNSS receiver (gpsfake) and re-enrols with it: the enrolment binds the
  // sensor, so its sealed fixes count as GNSS (trust level low); a configured location is `none`.
  const a1 = host('agent-001');
  const receiver = await startSimulatedReceiver(o.runDir, SANTA_CLARA_POINT);
  o.onClose('gnss receiver', () => receiver.stop());
  const gnss = gpsdLocation({ port: receiver.port });
  const gnssAgent = createAgent({
    name: 'agent-001',
    tpm: a1.tpm,
    gateway: collector.url,
    tls: { ca: o.pki.ca },
    location: gnss,
    stateDir: join(o.runDir, 'agents', 'agent-001'),
    outbox: false,
    retry: { attempts: 1 },
    logger: o.log.child({ service: 'agent', agent: 'agent-001' }),
  });
  o.onClose('agent-001 (GNSS)', () => gnssAgent.close());
  const fix = (await gnss.current()).reading;
  await gnssAgent.enroll({ workload: { name: 'geofence-metrics-agent', version: '0.1.0' } });
  say(
    `   agent-001 re-enrolled with its GNSS receiver (gpsfake, fix ${fix?.lat}, ${fix?.lon} ±${fix?.accuracy} m)`,
  );

  // The operator narrows both agents to the campus fence for location attestation: the place
  // table has state boundaries but no city ones, so a city entry could not be appraised from a
  // sealed point. (The per-message scenarios above are over.)
  for (const name of ['agent-001', 'agent-geo-policy-violation-002']) {
    const rec = await collector.deps.registry.getByName(name);
    if (rec) {
      await collector.deps.registry.put({
        ...rec,
        geo_policy: { allow: [{ region: 'US', state: 'California' }], fences: [CAMPUS_FENCE] },
      });
    }
  }

  const models = join(o.runDir, 'models');
  mkdirSync(models, { recursive: true });
  const model = randomBytes(256 * 1024);
  writeFileSync(join(models, 'model.bin'), model);
  const cfg = loadConfig({
    role: 'resource',
    env: {},
    cwd: o.runDir,
    overrides: {
      serviceName: 'geofence-model-repository',
      dataDir: o.runDir,
      port: 0,
      host: '127.0.0.1',
      tls: { certPath: o.pki.paths.cert, keyPath: o.pki.paths.key, caPath: o.pki.paths.ca },
      resource: {
        dir: models,
        issuer: collector.deps.signer.issuer,
        jwksUrl: `${collector.url}/.well-known/jwks.json`,
        // The collector's attestation CA (also served at /.well-known/geofence-ca.pem).
        caCertPath: join(o.runDir, 'attestation-ca.pem'),
        minTrustLevel: 'low',
        allow: [{ region: 'US', state: 'California' }],
        maxAgeSeconds: 600,
      },
    },
  });
  const repo = await startResourceServer(cfg, { log: o.log.child({ service: 'resource' }) });
  o.onClose('resource server', () => repo.close());
  say(`== proof-of-geofencing: model repository ${repo.url} (requireGeofence, issuer ${collector.url})`);
  say('   policy: trust level ≥ low, area US/California; credentials from a TPM-sealed location attestation');
  const modelUrl = `${repo.url}/model.bin`;

  // Scenario 1: agent-001 (Santa Clara) attests its GNSS location, then downloads the model.
  const here = fix ? { lat: fix.lat, lon: fix.lon, accuracy: fix.accuracy ?? 1000 } : SANTA_CLARA_POINT;
  const state1 = stateOf('agent-001');
  const signer1 = await appSigner(a1, state1);
  let credential: Awaited<ReturnType<typeof obtainCredential>> | undefined;
  try {
    credential = await obtainCredential({
      collector: collector.url,
      dispatcher,
      tpm: a1.tpm,
      state: state1,
      location: here,
      format: 'x509',
    });
    const r = await sendResourceRequest(
      await signResourceRequest({ url: modelUrl, credential, signer: signer1 }),
      dispatcher,
    );
    const same = r.status === 200 && r.bytes.equals(model);
    record(
      'download model.bin',
      { status: 200, validationType: null, rejectedBy: null },
      {
        ...observe(r.status, r.problem),
        ...(r.status === 200 ? { note: same ? `${r.bytes.length} bytes match` : 'BYTES DIFFER' } : {}),
        ...(r.status === 200 && !same ? { status: null } : {}),
      },
    );
    const c = await sendResourceRequest(
      await signResourceRequest({ url: modelUrl, credential, signer: signer1, useCertificate: true }),
      dispatcher,
    );
    record(
      'download with certificate',
      { status: 200, validationType: null, rejectedBy: null },
      observe(
        c.status,
        c.problem,
        c.status === 200 && c.bytes.equals(model) ? 'X.509 credential' : undefined,
      ),
    );
  } catch (err) {
    record('download model.bin', { status: 200, validationType: null, rejectedBy: null }, fromError(err));
  }

  const expect401 = (vt: string): Expected => ({ status: 401, validationType: vt, rejectedBy: 'resource' });
  if (credential) {
    // Scenario 2: the credential copied to another host, which signs with its own TPM key.
    const thief = host('agent-geo-policy-violation-002');
    const thiefSigner = await appSigner(thief, stateOf(thief.agent));
    const stolen = await sendResourceRequest(
      await signResourceRequest({ url: modelUrl, credential, signer: thiefSigner }),
      dispatcher,
    );
    record('copied credential', expect401('signature_verification'), observe(stolen.status, stolen.problem));

    // Scenario 3: one captured request (credential + signature) replayed verbatim.
    const captured = await signResourceRequest({ url: modelUrl, credential, signer: signer1 });
    const first = await sendResourceRequest(captured, dispatcher);
    const again = await sendResourceRequest(captured, dispatcher);
    record(
      'replayed resource request',
      expect401('nonce_validation'),
      first.status === 200
        ? observe(again.status, again.problem)
        : observe(first.status, first.problem, `first copy got ${first.status}`),
    );
  }

  /** A credential request the collector must refuse (`expected`): issuing one is the failure. */
  const expectRefused = async (
    scenario: string,
    expected: Expected,
    request: Parameters<typeof obtainCredential>[0],
  ): Promise<void> => {
    try {
      await obtainCredential(request);
      record(scenario, expected, {
        status: 200,
        validationType: null,
        rejectedBy: null,
        note: 'credential issued',
      });
    } catch (err) {
      record(scenario, expected, fromError(err));
    }
  };

  // Scenario 4: the Berlin agent asks for a credential: refused, so it never reaches the model.
  const berlin = host('agent-geo-policy-violation-002');
  await expectRefused(
    'Berlin asks for credential',
    { status: 403, validationType: 'geolocation_policy', rejectedBy: 'collector' },
    {
      collector: collector.url,
      dispatcher,
      tpm: berlin.tpm,
      state: stateOf(berlin.agent),
      location: BERLIN_POINT,
    },
  );

  // Scenario 5: agent-001's workload binary was modified: its measured digest is not the approved
  // (enrolled) one, so no credential. Same host, same TPM and keys; only the image differs.
  const modifiedDir = join(o.runDir, 'agents', 'agent-001-modified');
  cpSync(join(o.runDir, 'agents', 'agent-001'), modifiedDir, { recursive: true });
  const image = join(o.runDir, 'modified-workload.js');
  writeFileSync(image, 'console.log("a workload nobody approved");\n');
  const enrollmentFile = join(modifiedDir, 'enrollment.json');
  const enrollment = JSON.parse(readFileSync(enrollmentFile, 'utf8')) as {
    workload: Record<string, unknown>;
  };
  enrollment.workload.image_path = image;
  writeFileSync(enrollmentFile, JSON.stringify(enrollment));
  await expectRefused(
    'modified workload',
    { status: 403, validationType: 'attestation', rejectedBy: 'collector' },
    {
      collector: collector.url,
      dispatcher,
      tpm: a1.tpm,
      state: AgentState.open(modifiedDir),
      location: here,
    },
  );
}
