/**
 * The Express and Fastify snippets of docs/pog-credentials.md run as written (transpiled by
 * TypeScript, their imports bound to this package): against an issuer serving its JWKS over HTTP,
 * a request signed by the credential's key gets through, an unsigned one is refused.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createSigner, signRequest } from '@geofence/http-sig';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireGeofenceFastify } from '../src/fastify.js';
import { AttestationResultSigner, jwkThumbprint, requireGeofence } from '../src/index.js';
import { close, listen } from './helpers/http.js';
import { freePort } from './helpers/redis.js';

const guide = readFileSync(new URL('../../../docs/pog-credentials.md', import.meta.url), 'utf8');
const blocks = [...guide.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** Runs a guide snippet: imports become the bindings given, the rest runs as transpiled. */
function run(snippet: string, bindings: Record<string, unknown>, result: string): unknown {
  const body = snippet.replace(/^import .*$/gm, '');
  const js = ts.transpileModule(body, {
    compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
  }).outputText;
  return new Function(...Object.keys(bindings), `${js}\nreturn ${result};`)(...Object.values(bindings));
}

const MODELS_DIR = new URL('./fixtures-pog/', import.meta.url).pathname;
let issuerServer: Server;
let COLLECTOR: string;
let signer: AttestationResultSigner;
const holder = generateKeyPairSync('ec', { namedCurve: 'P-256' });
let jwt: string;

beforeAll(async () => {
  // The issuer's URL is its `iss`: listen first, create the signer for that URL, then serve its JWKS.
  issuerServer = createServer((_req, res) => {
    res.setHeader('content-type', 'application/jwk-set+json');
    res.end(JSON.stringify(signer.jwks()));
  });
  COLLECTOR = await listen(issuerServer);
  signer = await AttestationResultSigner.create({
    key: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    issuer: COLLECTOR,
  });
  jwt = await signer.sign('agent-001', holder.publicKey, {
    keyid: 'a'.repeat(64),
    ek_hash: 'b'.repeat(64),
    workload_digest: 'c'.repeat(64),
    platform_integrity: 'recorded',
    agent_integrity: 'verified',
    residency: 'tpm+geofence',
    trust_level: 'low',
    evidence: 'lah-bundle',
    attested_at: Math.floor(Date.now() / 1000),
    area: { region: 'US', state: 'California', place: 'US-CA' },
  });
});

afterAll(async () => {
  await close(issuerServer);
});

async function signedGet(url: string): Promise<Response> {
  const headers: Record<string, string> = { 'geofence-credential': jwt };
  const sig = await signRequest(
    { method: 'GET', url, headers },
    {
      signer: createSigner({
        key: holder.privateKey,
        alg: 'ecdsa-p256-sha256',
        keyid: await jwkThumbprint(holder.publicKey),
      }),
      components: ['@method', '@target-uri', 'geofence-credential'],
      label: 'pog',
      tag: 'geofence-pog/v1',
      nonce: randomBytes(16).toString('base64url'),
    },
  );
  return fetch(url, { headers: { ...headers, ...sig } });
}

describe('docs/pog-credentials.md', () => {
  it('the Express snippet protects the model directory', async () => {
    const block = blocks.find((b) => b.includes('requireGeofence({'));
    expect(block).toBeDefined();
    const server = createServer();
    const ORIGIN = await listen(server);
    const app = run(block!, { express, requireGeofence, COLLECTOR, ORIGIN, MODELS_DIR }, 'app');
    server.on('request', app as express.Express);
    try {
      const ok = await signedGet(`${ORIGIN}/models/model.bin`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toBe('weights\n');
      const bare = await fetch(`${ORIGIN}/models/model.bin`);
      expect(bare.status).toBe(401);
    } finally {
      await close(server);
    }
  });

  it('the Fastify snippet guards its route', async () => {
    const block = blocks.find((b) => b.includes('requireGeofenceFastify({'));
    expect(block).toBeDefined();
    const port = await freePort();
    const ORIGIN = `http://127.0.0.1:${port}`;
    const app = run(block!, { Fastify, requireGeofenceFastify, COLLECTOR, ORIGIN }, 'app') as FastifyInstance;
    await app.listen({ port, host: '127.0.0.1' });
    try {
      const ok = await signedGet(`${ORIGIN}/models/model.bin`);
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ name: 'model.bin', for: 'agent-001' });
      expect((await fetch(`${ORIGIN}/models/model.bin`)).status).toBe(401);
    } finally {
      await app.close();
    }
  });
});
