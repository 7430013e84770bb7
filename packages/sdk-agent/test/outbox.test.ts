import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type SwtpmInstance, startSwtpm, Tpm } from '@geofence/native-tpm';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgent } from '../src/agent.js';
import { DeliveryDeferredError, OutboxFullError } from '../src/errors.js';
import { staticLocation } from '../src/location/static.js';
import { OutboxLockedError, SqliteOutbox } from '../src/outbox.js';
import { startCollector, type TestCollector } from './helpers/collector.js';
import { makePki, type TestPki } from './helpers/pki.js';

const CHILD = fileURLToPath(new URL('./helpers/outbox-child.ts', import.meta.url));
const SANTA_CLARA = { region: 'US', state: 'California', city: 'Santa Clara' };
const quiet = { debug() {}, info() {}, warn() {}, error() {} };

let swtpm: SwtpmInstance;
let pki: TestPki;
let collector: TestCollector;

beforeAll(async () => {
  pki = makePki();
  swtpm = await startSwtpm({ ekCert: false, timeoutMs: 60_000 });
  collector = await startCollector(pki);
});

afterAll(async () => {
  await collector?.stop();
  await swtpm?.stop();
});

/** Runs the child agent until `line` appears on stdout; returns the child and that line's payload. */
function runChild(config: object, until: string): Promise<{ child: ChildProcess; lines: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(config)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    cwd: fileURLToPath(new URL('../../..', import.meta.url)),
  });
  const lines: string[] = [];
  let err = '';
  child.stderr!.on('data', (d) => {
    err += String(d);
  });
  return new Promise((resolve, reject) => {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += String(d);
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      for (const l of parts) {
        lines.push(l);
        if (l.startsWith(until)) resolve({ child, lines });
      }
    });
    child.once('exit', (code) => reject(new Error(`child exited (${code}) before ${until}: ${err}`)));
  });
}

describe('durable outbox', () => {
  it('keeps 100 messages through a SIGKILL while the gateway is down and delivers each exactly once, in order', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'outbox-agent-'));
    const name = 'agent-outbox';
    const gateway = collector.url;
    await collector.pause(); // gateway down: connection refused
    const base = { name, tcti: swtpm.tcti, gateway, ca: pki.caPem, stateDir };

    const first = await runChild({ ...base, mode: 'enqueue', count: 100 }, 'QUEUED');
    expect(first.lines.find((l) => l.startsWith('QUEUED'))).toBe('QUEUED 100');
    const identity = JSON.parse(first.lines.find((l) => l.startsWith('IDENTITY'))!.slice('IDENTITY '.length));
    const exited = new Promise((r) => first.child.once('exit', r));
    first.child.kill('SIGKILL');
    await exited;

    await collector.listen(); // gateway back
    await collector.register(name, identity.pem, identity.keyid, { allow: [SANTA_CLARA] });
    const second = await runChild({ ...base, mode: 'drain' }, 'DRAINED');
    const status = JSON.parse(second.lines.find((l) => l.startsWith('DRAINED'))!.slice('DRAINED '.length));
    expect(status.outbox).toMatchObject({ pending: 0, deadLettered: 0 });
    await new Promise((r) => second.child.once('exit', r));

    const seqs = collector.records.filter((r) => r.agentName === name).map((r) => r.metrics.seq);
    expect(seqs).toEqual(Array.from({ length: 100 }, (_, i) => i)); // all, once each, in order
  }, 180_000);

  it('after a crash, resends the same signed bytes of a request whose answer was lost: stored once', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'outbox-lost-'));
    const name = 'agent-lost-answers';
    const base = { name, tcti: swtpm.tcti, gateway: collector.url, ca: pki.caPem, stateDir };
    // Register first (a throw-away run creates the key), then let the collector swallow every answer.
    const boot = await runChild({ ...base, mode: 'drain' }, 'DRAINED');
    await new Promise((r) => boot.child.once('exit', r));
    const identity = JSON.parse(boot.lines.find((l) => l.startsWith('IDENTITY'))!.slice('IDENTITY '.length));
    await collector.register(name, identity.pem, identity.keyid, { allow: [SANTA_CLARA] });
    collector.dropNextAnswers(1_000_000);
    const first = await runChild({ ...base, mode: 'enqueue', count: 1, marker: 'lost' }, 'QUEUED');
    // Wait until the agent has stored the request it must resend, then crash it.
    const db = new Database(join(stateDir, 'outbox.sqlite'), { readonly: true });
    try {
      for (let i = 0; i < 600; i++) {
        if ((db.prepare('SELECT count(*) AS n FROM resend').get() as { n: number }).n === 1) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((db.prepare('SELECT count(*) AS n FROM resend').get() as { n: number }).n).toBe(1);
    } finally {
      db.close();
    }
    const exited = new Promise((r) => first.child.once('exit', r));
    first.child.kill('SIGKILL');
    await exited;
    collector.dropNextAnswers(0);

    const second = await runChild({ ...base, mode: 'drain' }, 'DRAINED');
    const status = JSON.parse(second.lines.find((l) => l.startsWith('DRAINED'))!.slice('DRAINED '.length));
    await new Promise((r) => second.child.once('exit', r));
    // The restarted agent sent the same bytes; the consumed nonce refused them: stored exactly once,
    // and the message is in the dead-letter table as "uncertain" instead of being signed anew.
    expect(collector.records.filter((r) => r.metrics.marker === 'lost')).toHaveLength(1);
    expect(status.outbox).toMatchObject({ pending: 0, deadLettered: 1 });
    expect(status.lastSend).toMatchObject({ ok: false, code: 'uncertain' });
  }, 180_000);

  it('defers a send while the gateway is down and delivers it when it is back', async () => {
    const tpm = await Tpm.open({ tcti: swtpm.tcti });
    const agent = createAgent({
      name: 'agent-deferred',
      tpm,
      gateway: collector.url,
      tls: { ca: pki.caPem },
      location: staticLocation(SANTA_CLARA),
      stateDir: mkdtempSync(join(tmpdir(), 'outbox-deferred-')),
      retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 50 },
      outbox: { maxMessages: 3 },
      logger: quiet,
    });
    try {
      const id = await agent.ready();
      await collector.register('agent-deferred', id.publicKeyPem, id.keyid, { allow: [SANTA_CLARA] });
      await collector.pause();
      const err = await agent.send({ n: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DeliveryDeferredError);
      agent.enqueue({ n: 2 });
      agent.enqueue({ n: 3 });
      // Bounded: the fourth message is refused, clearly.
      expect(() => agent.enqueue({ n: 4 })).toThrow(OutboxFullError);
      await expect(agent.send({ n: 4 })).rejects.toMatchObject({ code: 'outbox_full', limit: 3 });
      expect(agent.status().outbox.pending).toBe(3);
      expect(await agent.flush({ timeoutMs: 300 })).toBe(false); // still down: nothing lost, nothing sent
      await collector.listen();
      expect(await agent.flush()).toBe(true);
      const got = collector.records.filter((r) => r.agentName === 'agent-deferred').map((r) => r.metrics.n);
      expect(got).toEqual([1, 2, 3]);
    } finally {
      await agent.close();
      await tpm.close();
    }
  });

  it('allows one deliverer per outbox and takes over the lock of a dead process', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'outbox-lock-')), 'outbox.sqlite');
    const lock = `${path}.lock`;
    const a = new SqliteOutbox(path, 10);
    // A second agent in this process must not deliver the same queue…
    expect(() => new SqliteOutbox(path, 10)).toThrow(OutboxLockedError);
    a.close();
    // …nor one in another live process…
    writeFileSync(lock, String(process.ppid));
    expect(() => new SqliteOutbox(path, 10)).toThrow(OutboxLockedError);
    // …but the lock of a process that died (SIGKILL) is stale and taken over.
    writeFileSync(lock, '999999999');
    const b = new SqliteOutbox(path, 10);
    expect(b.size()).toBe(0);
    b.close();
  });
});
