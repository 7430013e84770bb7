import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type AgentRecordInput,
  expectationOf,
  JsonFileRegistry,
  keyidOfPublicKey,
  type Registry,
  RegistryError,
  recordPublicKey,
  SqliteRegistry,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'geofence-registry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function agent(
  name: string,
  alg: 'ecdsa-p256-sha256' | 'rsa-v1_5-sha256' = 'ecdsa-p256-sha256',
): AgentRecordInput {
  const { publicKey } =
    alg === 'ecdsa-p256-sha256'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    agent_name: name,
    keyid: keyidOfPublicKey(publicKey),
    alg,
    app_public_key_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    geo_policy: { allow: [{ region: 'US', state: 'California', city: 'Santa Clara' }] },
    status: 'active',
  };
}

let n = 0;
const kinds: Record<string, () => Promise<Registry>> = {
  sqlite: () => SqliteRegistry.open({ path: join(dir, `r${++n}.db`) }),
  json: () => JsonFileRegistry.open({ path: join(dir, `r${++n}.json`) }),
};

describe.each(Object.keys(kinds))('%s registry', (kind) => {
  it('stores, looks up by keyid and name, updates and deletes', async () => {
    const reg = await kinds[kind]!();
    const a = agent('agent-001');
    const rec = await reg.put(a);
    expect(rec.enrolled_at).toBe(rec.updated_at);
    expect(Object.isFrozen(rec.geo_policy)).toBe(true);
    expect((await reg.getByKeyid(a.keyid))?.agent_name).toBe('agent-001');
    expect((await reg.getByName('agent-001'))?.keyid).toBe(a.keyid);
    expect(recordPublicKey(rec).asymmetricKeyType).toBe('ec');
    const revoked = await reg.setStatus('agent-001', 'revoked');
    expect(revoked.status).toBe('revoked');
    expect(revoked.enrolled_at).toBe(rec.enrolled_at);
    // key rotation: the old keyid no longer resolves
    const rotated = agent('agent-001');
    await reg.put({ ...rotated, status: 'active' });
    expect(await reg.getByKeyid(a.keyid)).toBeUndefined();
    expect((await reg.getByKeyid(rotated.keyid))?.status).toBe('active');
    await reg.put(agent('agent-002', 'rsa-v1_5-sha256'));
    expect((await reg.list()).map((r) => r.agent_name)).toEqual(['agent-001', 'agent-002']);
    expect(await reg.list({ status: 'revoked' })).toEqual([]);
    expect(await reg.delete('agent-002')).toBe(true);
    expect(await reg.delete('agent-002')).toBe(false);
    await expect(reg.setStatus('nobody', 'active')).rejects.toMatchObject({ code: 'not_found' });
    await reg.close();
  });

  it('validates every write', async () => {
    const reg = await kinds[kind]!();
    const a = agent('agent-001');
    const b = agent('agent-002');
    const bad: Array<Record<string, unknown>> = [
      { ...a, keyid: b.keyid }, // keyid not the hash of the key
      { ...a, alg: 'rsa-v1_5-sha256' }, // key type does not match alg
      { ...a, agent_name: 'bad name/../' },
      { ...a, status: 'enabled' },
      { ...a, geo_policy: { allow: [{ region: '' }] } },
      { ...a, app_public_key_pem: 'not a pem' },
      { ...a, extra: true },
    ];
    for (const r of bad) {
      await expect(reg.put(r as AgentRecordInput)).rejects.toMatchObject({ code: 'invalid_record' });
    }
    await reg.put(a);
    // a keyid belongs to one agent only
    await expect(reg.put({ ...a, agent_name: 'agent-003' })).rejects.toBeInstanceOf(RegistryError);
    expect(await reg.list()).toHaveLength(1);
    await reg.close();
  });
  it('putIfMatch writes only when the stored identity is still the expected one', async () => {
    const reg = await kinds[kind]!();
    const a = agent('agent-001');
    const first = await reg.putIfMatch(a, null);
    // a second "first enrolment" for the same name loses
    await expect(reg.putIfMatch(agent('agent-001'), null)).rejects.toMatchObject({ code: 'conflict' });
    // the expectation of the record as read lets the write through, once
    const next = agent('agent-001');
    await reg.putIfMatch({ ...next, ek_public_hash: 'a'.repeat(64) }, expectationOf(first));
    await expect(reg.putIfMatch(agent('agent-001'), expectationOf(first))).rejects.toMatchObject({
      code: 'conflict',
    });
    // the EK hash is part of the identity too
    await expect(
      reg.putIfMatch(agent('agent-001'), { keyid: next.keyid, ek_public_hash: undefined }),
    ).rejects.toMatchObject({ code: 'conflict' });
    expect((await reg.getByName('agent-001'))?.keyid).toBe(next.keyid);
    await reg.close();
  });
});

describe('compare-and-set across connections', () => {
  it('SQLite: two writers that both read "no record" — exactly one first enrolment wins', async () => {
    const path = join(dir, 'race.db');
    const one = await SqliteRegistry.open({ path });
    const two = await SqliteRegistry.open({ path });
    expect(await one.getByName('agent-001')).toBeUndefined();
    expect(await two.getByName('agent-001')).toBeUndefined();
    const a = agent('agent-001');
    const b = agent('agent-001');
    await one.putIfMatch(a, expectationOf(undefined));
    await expect(two.putIfMatch(b, expectationOf(undefined))).rejects.toMatchObject({ code: 'conflict' });
    expect((await two.getByName('agent-001'))?.keyid).toBe(a.keyid);
    // setStatus applies to the row as stored now, never to a stale copy
    await two.setStatus('agent-001', 'revoked');
    expect(await one.getByName('agent-001')).toMatchObject({ keyid: a.keyid, status: 'revoked' });
    await one.close();
    await two.close();
  });
});

describe('hot reload', () => {
  it('SQLite: sees commits of another connection (another process) without restart', async () => {
    const path = join(dir, 'shared.db');
    const server = await SqliteRegistry.open({ path });
    const admin = await SqliteRegistry.open({ path });
    const a = agent('agent-001');
    await admin.put({ ...a, status: 'pending' });
    expect((await server.getByKeyid(a.keyid))?.status).toBe('pending');
    await admin.setStatus('agent-001', 'active');
    expect((await server.getByKeyid(a.keyid))?.status).toBe('active');
    await admin.delete('agent-001');
    expect(await server.getByKeyid(a.keyid)).toBeUndefined();
    await server.close();
    await admin.close();
  });

  it('JSON file: reloads on change, keeps the last valid content on a bad edit, survives restart', async () => {
    const path = join(dir, 'allowlist.json');
    const errors: Error[] = [];
    const reloads: number[] = [];
    const reg = await JsonFileRegistry.open({
      path,
      onError: (e) => errors.push(e),
      onReload: (c) => reloads.push(c),
    });
    const a = agent('agent-001');
    await reg.put(a);
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    expect(doc.agents).toHaveLength(1);
    // an operator revokes the agent by editing the file
    doc.agents[0].status = 'revoked';
    writeFileSync(path, JSON.stringify(doc));
    await expect.poll(async () => (await reg.getByKeyid(a.keyid))?.status, { timeout: 5000 }).toBe('revoked');
    // a broken edit is reported and ignored
    writeFileSync(path, '{"agents": [ {"agent_name": "x"} ]}');
    await expect.poll(() => errors.length, { timeout: 5000 }).toBeGreaterThan(0);
    expect((await reg.getByKeyid(a.keyid))?.status).toBe('revoked');
    await expect(reg.reload()).rejects.toMatchObject({ code: 'invalid_record' });
    await reg.close();
    writeFileSync(path, JSON.stringify(doc));
    const again = await JsonFileRegistry.open({ path, watch: false });
    expect((await again.getByName('agent-001'))?.status).toBe('revoked');
    await again.close();
    expect(reloads.length).toBeGreaterThan(0);
  });
});
