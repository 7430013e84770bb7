import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AgentState,
  AgentStateError,
  type AppKeyTpm,
  defaultStateDir,
  type StoredTpmKey,
} from '../src/state.js';

/** Records calls; the TPM itself is not the subject here (swtpm-backed tests live in agent.test.ts). */
function recordingTpm() {
  const calls: string[] = [];
  const tpm: AppKeyTpm = {
    async createSigningKey({ alg }) {
      calls.push(`create:${alg}`);
      return { public: randomBytes(90), name: randomBytes(34), blob: randomBytes(200), handle: 0x80000001 };
    },
    async loadKey(blob) {
      calls.push(`load:${blob.length}`);
      return { public: new Uint8Array(0), name: new Uint8Array(0), blob, handle: 0x80000002 };
    },
  };
  return { tpm, calls };
}

const tmp = () => mkdtempSync(join(tmpdir(), 'agent-state-'));

describe('AgentState', () => {
  it('creates the directory with mode 0700 and tightens an existing loose one', () => {
    const dir = join(tmp(), 'a', 'b');
    AgentState.open(dir);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const loose = join(tmp(), 'loose');
    mkdirSync(loose);
    chmodSync(loose, 0o755);
    AgentState.open(loose);
    expect(statSync(loose).mode & 0o777).toBe(0o700);
  });

  it('creates the app key once and reloads it from the blob afterwards', async () => {
    const dir = tmp();
    const { tpm, calls } = recordingTpm();
    const first = await AgentState.open(dir).loadOrCreateAppKey(tpm, 'ecc-p256');
    const second = await AgentState.open(dir).loadOrCreateAppKey(tpm, 'ecc-p256');
    expect(calls).toEqual(['create:ecc-p256', `load:${first.blob!.length}`]);
    expect(Buffer.from(second.public).equals(Buffer.from(first.public))).toBe(true);
    expect(Buffer.from(second.name).equals(Buffer.from(first.name))).toBe(true);
    expect(second.handle).toBe(0x80000002);
    const file = join(dir, 'app-key.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const json = JSON.parse(readFileSync(file, 'utf8'));
    expect(json.alg).toBe('ecc-p256');
    expect(json.key.handle).toBeUndefined();
    expect(Buffer.from(json.key.blob.$base64, 'base64').equals(Buffer.from(first.blob!))).toBe(true);
  });

  it('refuses to silently switch algorithms', async () => {
    const dir = tmp();
    const { tpm } = recordingTpm();
    await AgentState.open(dir).loadOrCreateAppKey(tpm, 'ecc-p256');
    await expect(AgentState.open(dir).loadOrCreateAppKey(tpm, 'rsa-2048')).rejects.toMatchObject({
      code: 'key_alg_mismatch',
    });
  });

  it('reports a key the TPM refuses as unloadable_key', async () => {
    const dir = tmp();
    const { tpm } = recordingTpm();
    await AgentState.open(dir).loadOrCreateAppKey(tpm, 'ecc-p256');
    const refusing: AppKeyTpm = {
      ...tpm,
      loadKey: () => Promise.reject(new Error('TPM_RC_INTEGRITY')),
    };
    await expect(AgentState.open(dir).loadOrCreateAppKey(refusing, 'ecc-p256')).rejects.toMatchObject({
      code: 'unloadable_key',
    });
  });

  it('rejects a corrupt key file', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'app-key.json'), '{"version":1,"alg":"ecc-p256"}');
    await expect(
      AgentState.open(dir).loadOrCreateAppKey(recordingTpm().tpm, 'ecc-p256'),
    ).rejects.toBeInstanceOf(AgentStateError);
    writeFileSync(join(dir, 'app-key.json'), 'not json');
    expect(() => AgentState.open(dir).storedAppKey()).toThrow(/not valid JSON/);
  });

  it('racing creators agree on one key', async () => {
    const dir = tmp();
    const { tpm } = recordingTpm();
    const keys = await Promise.all(
      [1, 2, 3].map(() => AgentState.open(dir).loadOrCreateAppKey(tpm, 'ecc-p256')),
    );
    const stored = AgentState.open(dir).storedAppKey()!;
    for (const k of keys) expect(Buffer.from(k.public).equals(Buffer.from(stored.key.public))).toBe(true);
  });

  it('stores and returns the enrolment result with binary fields intact', () => {
    const dir = tmp();
    const state = AgentState.open(dir);
    expect(state.enrollment()).toBeNull();
    const ak: StoredTpmKey = { public: randomBytes(10), name: randomBytes(5), blob: randomBytes(7) };
    state.saveEnrollment({ enrollment_id: 'e1', attestation_result: 'jwt', ak });
    const back = AgentState.open(dir).enrollment<{ enrollment_id: string; ak: StoredTpmKey }>()!;
    expect(back.enrollment_id).toBe('e1');
    expect(back.ak.blob).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(back.ak.blob!).equals(Buffer.from(ak.blob!))).toBe(true);
    expect(statSync(join(dir, 'enrollment.json')).mode & 0o777).toBe(0o600);
    state.clearEnrollment();
    expect(state.enrollment()).toBeNull();
  });

  it('derives the default directory from a safe agent name only', () => {
    expect(defaultStateDir('agent-001')).toMatch(/\.geofence\/agent-001$/);
    for (const bad of ['../x', 'a/b', '.hidden', '', 'a b']) {
      expect(() => defaultStateDir(bad)).toThrow(AgentStateError);
    }
  });
});
