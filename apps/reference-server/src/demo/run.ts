/**
 * `geofence demo` (SPEC §11): one swtpm per simulated host with EK certificates, a collector and a
 * gateway on free loopback ports with the demo CA, enrolment of three agents through the real
 * enrolment flow, then the scenarios in standard mode and in gateway-policy-enforcement mode, then
 * the Proof-of-Geofencing part (a model repository behind requireGeofence, pog-part.ts), a results table, and a non-zero exit on any mismatch. Everything it starts is stopped at the end and
 * on Ctrl-C.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { type Agent, createAgent, staticLocation } from '@geofence/agent';
import { type SwtpmInstance, startSwtpm, Tpm, tpmSigner } from '@geofence/native-tpm';
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { upsertPreRegistration } from '../preregistrations.js';
import { type RunningCollector, startCollector } from '../server/collector.js';
import { type RunningGateway, startGateway } from '../server/gateway.js';
import { ensureDemoPki } from '../tls.js';
import { verifyStoredRecord } from '../verify-record.js';
import { runPogPart } from './pog-part.js';
import { buildSigned, demoDispatcher, fetchNonce, post, type RawAnswer, tamper } from './raw.js';
import {
  crossModeViolations,
  type DemoMode,
  describeObserved,
  type Expected,
  fromError,
  matches,
  type Observed,
  observe,
  type ResultRow,
  renderTable,
} from './table.js';

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Data directory: the demo PKI is reused from `<dataDir>/tls`, the run lives in `<dataDir>/demo-run`. */
  dataDir: string;
  mode: 'both' | DemoMode;
  /** Keep `<dataDir>/demo-run` (logs, registry, records) after the run; it is wiped when the next run starts. */
  keep: boolean;
  out: Writable;
  /** Overall bound (default 300 000 ms): on expiry the demo fails and stops everything. */
  timeoutMs?: number;
}

type Place = { region: string; state: string; city: string };

const SANTA_CLARA: Place = { region: 'US', state: 'California', city: 'Santa Clara' };
const BERLIN: Place = { region: 'EU', state: 'Germany', city: 'Berlin' };

/** The three simulated hosts of the original demo. */
const HOSTS = [
  { host: 'edge-host-1', agent: 'agent-001', place: SANTA_CLARA, preRegister: true },
  { host: 'edge-host-2', agent: 'agent-geo-policy-violation-002', place: BERLIN, preRegister: true },
  { host: 'edge-host-3', agent: 'agent-unregistered-003', place: SANTA_CLARA, preRegister: false },
] as const;

interface Host {
  host: string;
  agent: string;
  place: Place;
  swtpm: SwtpmInstance;
  tpm: Tpm;
}

/** LIFO stack of cleanup steps, each bounded in time so a stuck step cannot hang the exit. */
class Cleanup {
  private steps: Array<{ name: string; fn: () => Promise<unknown> | unknown }> = [];
  private running: Promise<void> | undefined;
  add(name: string, fn: () => Promise<unknown> | unknown): void {
    // Something that finished starting after cleanup began (Ctrl-C, timeout) is stopped at once.
    if (this.running) {
      void Promise.resolve()
        .then(fn)
        .catch(() => undefined);
      return;
    }
    this.steps.push({ name, fn });
  }
  run(): Promise<void> {
    this.running ??= (async () => {
      while (this.steps.length > 0) {
        const step = this.steps.pop();
        if (!step) break;
        await Promise.race([
          Promise.resolve()
            .then(step.fn)
            .catch(() => undefined),
          new Promise((r) => setTimeout(r, 8000).unref()),
        ]);
      }
    })();
    return this.running;
  }
}

const ok = (): Expected => ({ status: 200, validationType: null, rejectedBy: null });
const rej = (status: number, vt: string, by: string): Expected => ({
  status,
  validationType: vt,
  rejectedBy: by,
});

/** Runs the demo; resolves with the process exit code. */
export async function runDemo(o: DemoOptions): Promise<number> {
  const t0 = Date.now();
  const say = (msg: string) =>
    o.out.write(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}\n`);
  const cleanup = new Cleanup();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say(`${sig}: stopping everything the demo started…`);
    void cleanup.run().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const limitMs = o.timeoutMs ?? 300_000;
  const modes: DemoMode[] = o.mode === 'both' ? ['standard', 'gateway-policy-enforcement'] : [o.mode];
  const rows: ResultRow[] = [];
  let happyRecord: string | undefined;
  let collector: RunningCollector | undefined;

  let watchdog: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    // A hung step (TPM, network) must not hang the demo: fail, then clean up in `finally`.
    watchdog = setTimeout(() => reject(new Error(`demo did not finish within ${limitMs / 1000} s`)), limitMs);
    watchdog.unref();
  });
  try {
    const work = (async (): Promise<number> => {
      o.out.write('geofence demo — TPM-backed Proof of Residency and Proof of Geofencing\n\n');
      const pki = await ensureDemoPki(o.dataDir);
      say(`demo CA ready: ${pki.paths.ca}`);
      const runDir = join(o.dataDir, 'demo-run');
      rmSync(runDir, { recursive: true, force: true });
      mkdirSync(join(runDir, 'logs'), { recursive: true, mode: 0o700 });
      if (!o.keep) cleanup.add('run dir', () => rmSync(runDir, { recursive: true, force: true }));
      const log = createLogger({
        level: 'info',
        service: 'geofence-demo',
        file: join(runDir, 'logs', 'services.log'),
      });

      // 1. One swtpm per simulated host, each with EK certificates from swtpm's local CA.
      say('starting one swtpm per simulated host (EK certificates via swtpm_setup --create-ek-cert)…');
      // allSettled, not all: a host that started must be registered for cleanup even when another failed.
      const started = await Promise.allSettled(
        HOSTS.map(async (h) => {
          const swtpm = await startSwtpm({ stateDir: join(runDir, 'swtpm', h.host), ekCert: true });
          cleanup.add(`swtpm ${h.host}`, () => swtpm.stop());
          const tpm = await Tpm.open({ tcti: swtpm.tcti });
          cleanup.add(`tpm ${h.host}`, () => tpm.close());
          return { host: h.host, agent: h.agent, place: { ...h.place }, swtpm, tpm };
        }),
      );
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const hosts: Host[] = started.map((r) => (r as PromiseFulfilledResult<Host>).value);
      for (const h of hosts) say(`  ${h.host}: swtpm ${h.swtpm.tcti} (pid ${h.swtpm.pid}) for ${h.agent}`);

      // 2. Operator pre-registers agent-001 and agent-geo-policy-violation-002 for Santa Clara.
      for (const h of HOSTS.filter((x) => x.preRegister)) {
        upsertPreRegistration(runDir, {
          agent_name: h.agent,
          ek: 'any-trusted-ca',
          geo_policy: { allow: [{ ...SANTA_CLARA }] },
        });
      }
      say('pre-registered agent-001 and agent-geo-policy-violation-002 for US/California/Santa Clara');

      // 3. Collector on a free loopback port.
      const cfg = (role: 'collector' | 'gateway', extra: Record<string, unknown> = {}) =>
        loadConfig({
          role,
          env: {},
          cwd: runDir,
          overrides: {
            serviceName: `geofence-${role}`,
            dataDir: runDir,
            port: 0,
            host: '127.0.0.1',
            tls: { certPath: pki.paths.cert, keyPath: pki.paths.key, caPath: pki.paths.ca },
            ...extra,
          },
        });
      const ekCas = [...new Set(hosts.flatMap((h) => h.swtpm.ekCaCertificates))];
      collector = await startCollector(cfg('collector'), {
        log: log.child({ service: 'collector' }),
        ekCaCertificates: ekCas,
      });
      const col = collector;
      cleanup.add('collector', () => col.close());
      say(`collector listening on ${collector.url} (TLS, demo CA)`);

      const dispatcher = demoDispatcher(pki.ca);
      cleanup.add('http client', () => dispatcher.close());
      let enrolled = false;

      for (const mode of modes) {
        const enforce = mode === 'gateway-policy-enforcement';
        const gateway: RunningGateway = await startGateway(
          cfg('gateway', {
            gateway: {
              collectorUrl: collector.url,
              policyEnforcement: enforce,
              headerLogPath: join(runDir, 'logs', 'gateway_headers.log'),
            },
          }),
          { log: log.child({ service: 'gateway', mode }) },
        );
        cleanup.add(`gateway ${mode}`, () => gateway.close());
        o.out.write('\n');
        say(`== ${mode} mode: gateway ${gateway.url} → collector ${collector.url}`);
        if (enforce)
          say(
            '   gateway checks allowlist, RFC 9421 signature, time and geo policy, then strips the signature headers',
          );
        else say('   gateway is a pure proxy; the collector performs every check');

        const agents = hosts.map((h) => ({
          host: h,
          agent: createAgent({
            name: h.agent,
            tpm: h.tpm,
            gateway: gateway.url,
            tls: { ca: pki.ca },
            location: staticLocation(h.place),
            stateDir: join(runDir, 'agents', h.agent),
            outbox: false,
            retry: { attempts: 1 },
            logger: log.child({ service: 'agent', agent: h.agent }),
          }),
        }));
        for (const a of agents) cleanup.add(`agent ${a.host.agent}`, () => a.agent.close());

        if (!enrolled) {
          await enrolAll(agents, say);
          enrolled = true;
        }
        const byName = (n: string) => agents.find((a) => a.host.agent === n) as { host: Host; agent: Agent };
        const by = enforce ? 'gateway' : 'collector';
        const record = (scenario: string, expected: Expected, observed: Observed) => {
          const row: ResultRow = { scenario, mode, expected, observed, ok: matches(expected, observed) };
          rows.push(row);
          const what = describeObserved(observed);
          say(
            `   ${row.ok ? 'ok ' : 'BAD'} ${scenario.padEnd(28)} ${what}${row.ok ? '' : `  expected ${expected.status} ${expected.validationType ?? ''}`}`,
          );
        };

        // Scenario 1: happy path.
        const a1 = byName('agent-001');
        try {
          const r = await a1.agent.send({
            type: 'system',
            cpu_percent: 12.5,
            memory_percent: 41.2,
            scenario: 'happy-path',
          });
          happyRecord ??= r.recordId;
          record('happy path', ok(), {
            status: 200,
            validationType: null,
            rejectedBy: null,
            note: r.recordId,
          });
        } catch (err) {
          record('happy path', ok(), fromError(err));
        }

        // Scenario 2: geographic policy violation (enrolled for Santa Clara, located in Berlin).
        try {
          await byName('agent-geo-policy-violation-002').agent.send({ type: 'system', cpu_percent: 3.2 });
          record('geo policy violation', rej(403, 'geolocation_policy', by), {
            status: 200,
            validationType: null,
            rejectedBy: null,
          });
        } catch (err) {
          record('geo policy violation', rej(403, 'geolocation_policy', by), fromError(err));
        }

        // Scenario 3: unregistered agent (enrolled, never approved) → refused at /nonce.
        try {
          await byName('agent-unregistered-003').agent.send({ type: 'system', cpu_percent: 1 });
          record('unregistered agent', rej(403, 'agent_verification', by), {
            status: 200,
            validationType: null,
            rejectedBy: null,
          });
        } catch (err) {
          record('unregistered agent', rej(403, 'agent_verification', by), fromError(err));
        }

        // Scenarios 4–6 use agent-001's TPM key directly, through the same building blocks the SDK uses.
        const identity = await a1.agent.ready();
        const key = await a1.agent.state.loadOrCreateAppKey(a1.host.tpm, 'ecc-p256');
        const signer = tpmSigner(a1.host.tpm, key, { keyid: identity.keyid, alg: 'ecdsa-p256-sha256' });
        const build = async (now: Date) =>
          buildSigned({
            agentName: 'agent-001',
            keyid: identity.keyid,
            signer,
            nonce: await fetchNonce(gateway.url, identity.keyid, dispatcher),
            metrics: { type: 'system', cpu_percent: 55.5, memory_percent: 40.1 },
            place: SANTA_CLARA,
            now,
            validitySeconds: 60,
          });

        // Scenario 4: replay — a captured, accepted request sent again.
        try {
          const req = await build(new Date());
          const first: RawAnswer = await post(gateway.url, req, dispatcher);
          const second = await post(gateway.url, req, dispatcher);
          const note = first.status === 200 ? 'first copy accepted' : `first copy got ${first.status}`;
          const obs =
            first.status === 200
              ? observe(second.status, second.body, note)
              : observe(first.status, first.body, note);
          record('replayed request', rej(401, 'nonce_validation', 'collector'), obs);
        } catch (err) {
          record('replayed request', rej(401, 'nonce_validation', 'collector'), fromError(err));
        }

        // Scenario 5: tampered body (Content-Digest recomputed by the attacker; the signatures break).
        try {
          const answer = await post(gateway.url, tamper(await build(new Date())), dispatcher);
          record(
            'tampered body',
            rej(401, 'signature_verification', by),
            observe(answer.status, answer.body),
          );
        } catch (err) {
          record('tampered body', rej(401, 'signature_verification', by), fromError(err));
        }

        // Scenario 6: expired signature — genuinely signed 10 minutes ago, valid for 60 s.
        try {
          const answer = await post(gateway.url, await build(new Date(Date.now() - 600_000)), dispatcher);
          record(
            'expired signature',
            rej(401, 'timestamp_proximity', by),
            observe(answer.status, answer.body),
          );
        } catch (err) {
          record('expired signature', rej(401, 'timestamp_proximity', by), fromError(err));
        }

        for (const a of agents) await a.agent.close();
        await gateway.close();
        if (interrupted) break;
      }

      if (!interrupted) {
        o.out.write('\n');
        await runPogPart({
          runDir,
          pki,
          collector,
          hosts,
          dispatcher,
          log,
          say,
          onClose: (name, fn) => cleanup.add(name, fn),
          record: (scenario, expected, observed) => {
            const row: ResultRow = {
              scenario,
              mode: 'proof-of-geofencing',
              expected,
              observed,
              ok: matches(expected, observed),
            };
            rows.push(row);
            say(`   ${row.ok ? 'ok ' : 'BAD'} ${scenario.padEnd(28)} ${describeObserved(observed)}`);
          },
        });
      }

      o.out.write(`\n${renderTable(rows)}\n\n`);
      const cross = modes.length > 1 ? crossModeViolations(rows) : [];
      for (const c of cross) o.out.write(`MODE MISMATCH: ${c}\n`);
      if (modes.length > 1 && cross.length === 0) {
        o.out.write(
          'Both modes give the same status and validation_type for every scenario; only rejected_by differs.\n',
        );
      }
      if (happyRecord) {
        const rec = await collector.deps.records.get(happyRecord);
        if (rec) {
          const v = await verifyStoredRecord(rec, collector.deps.registry);
          o.out.write(
            `Offline re-verification of ${happyRecord} (raw body + registry key): ${v.valid ? 'valid' : 'INVALID'} ` +
              `(${v.checks.map((c) => `${c.check}${c.ok ? '' : '✗'}`).join(', ')})\n`,
          );
        }
      }
      const failures = rows.filter((r) => !r.ok).length + cross.length;
      const logs = o.keep ? ` Logs: ${join(runDir, 'logs')}` : '';
      o.out.write(
        failures === 0
          ? `\nDEMO PASSED: ${rows.length} checks as expected in ${((Date.now() - t0) / 1000).toFixed(1)} s.${logs}\n`
          : `\nDEMO FAILED: ${failures} mismatch(es).${logs}\n`,
      );
      return failures === 0 && rows.length > 0 ? 0 : 1;
    })();
    return await Promise.race([work, timedOut]);
  } catch (err) {
    o.out.write(`\nDEMO FAILED: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  } finally {
    clearTimeout(watchdog);
    await cleanup.run();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function enrolAll(
  agents: Array<{ host: Host; agent: Agent }>,
  say: (m: string) => void,
): Promise<void> {
  say('   enrolling the three agents (EK cert → MakeCredential/ActivateCredential → Certify → Quote)…');
  for (const { host, agent } of agents) {
    const result = await agent.enroll({ workload: { name: 'geofence-metrics-agent', version: '0.1.0' } });
    say(`   ${host.agent.padEnd(32)} enrolment ${result.status} (keyid ${result.keyid.slice(0, 16)}…)`);
  }
}

/** The simulated hosts of the demo (agent name, location), for tests and docs. */
export const DEMO_HOSTS = HOSTS;
