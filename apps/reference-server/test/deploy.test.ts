/**
 * The deployment files under deploy/: the systemd units pass `systemd-analyze verify` and agree with
 * the example config files, and each example config passes the configuration validation of its role.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, configSchema, loadConfig } from '../src/config.js';

const run = promisify(execFile);
const DEPLOY = fileURLToPath(new URL('../../../deploy/', import.meta.url));
const ROLES = ['collector', 'gateway', 'agent'] as const;
/** Where the units expect the launcher (deploy/systemd/README.md). */
const BIN = '/usr/local/bin/geofence';

const unit = (role: string) => readFileSync(join(DEPLOY, 'systemd', `geofence-${role}.service`), 'utf8');
const example = (role: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(DEPLOY, 'examples', role, 'geofence.config.json'), 'utf8'));

/** Values of `key=` in the unit (every occurrence, in order). */
function directive(text: string, key: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

function systemdAnalyze(): string {
  try {
    return execFileSync('which', ['systemd-analyze'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('systemd-analyze not found: install the Debian package systemd (scripts/bootstrap.sh)');
  }
}

/**
 * The example with every absolute path moved below `root`, and the files it reads created there, so
 * that the path checks of loadConfig run against files that exist on this machine.
 */
function relocate(value: unknown, root: string, create: boolean): unknown {
  if (typeof value === 'string' && value.startsWith('/')) {
    const p = join(root, value);
    if (create && value.startsWith('/etc/')) {
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    }
    return p;
  }
  if (Array.isArray(value)) return value.map((v) => relocate(v, root, create));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, relocate(v, root, create)]));
  }
  return value;
}

/**
 * A copy of the unit in a temporary directory whose ExecStart= runs a stub: verify refuses an
 * ExecStart= binary that does not exist, and the launcher is installed on the target host, not here.
 * The stub stands in for it at a temporary path; the arguments stay as written.
 */
function stubbed(role: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gf-unit-'));
  const stub = join(dir, 'geofence');
  writeFileSync(stub, '#!/bin/sh\nexit 0\n');
  chmodSync(stub, 0o755);
  const text = unit(role);
  expect(text).toContain(`\nExecStart=${BIN} ${role} `);
  const file = join(dir, `geofence-${role}.service`);
  writeFileSync(file, text.replaceAll(`ExecStart=${BIN} `, `ExecStart=${stub} `));
  return file;
}

describe('systemd units', () => {
  it.each(ROLES)('geofence-%s.service passes systemd-analyze verify', async (role) => {
    const analyze = systemdAnalyze();
    const file = stubbed(role);
    const r = await run(analyze, ['verify', file]).then(
      (x) => ({ code: 0, stderr: x.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    // Unknown or misspelt directives are only warnings (exit 0): no line about this unit is allowed.
    const aboutUnit = r.stderr.split('\n').filter((l) => l.includes(`geofence-${role}`));
    expect(aboutUnit).toEqual([]);
    expect(r.code).toBe(0);
  });

  it.each(ROLES)('geofence-%s.service: systemd-analyze security rates it 2.0 or better', async (role) => {
    const file = stubbed(role);
    const r = await run(systemdAnalyze(), ['security', '--offline=yes', file]);
    const level = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout)?.[1];
    expect(level, r.stdout.slice(-400)).toBeDefined();
    expect(Number(level)).toBeLessThanOrEqual(2.0);
  });

  it.each(ROLES)('geofence-%s.service is hardened', (role) => {
    const text = unit(role);
    for (const [key, value] of [
      ['User', 'geofence'],
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['CapabilityBoundingSet', ''],
      ['RestartPreventExitStatus', '2'],
    ]) {
      expect(directive(text, key as string), `${role}: ${key}`).toEqual([value]);
    }
    expect(directive(text, 'StateDirectory')).toHaveLength(1);
    if (role === 'agent') {
      expect(directive(text, 'SupplementaryGroups')).toEqual(['tss']);
      expect(directive(text, 'DevicePolicy')).toEqual(['closed']);
      expect(directive(text, 'DeviceAllow')).toEqual(['/dev/tpmrm0 rw']);
      expect(directive(text, 'PrivateDevices')).toEqual(['no']);
    } else {
      expect(directive(text, 'PrivateDevices')).toEqual(['yes']);
    }
  });

  it.each(ROLES)('geofence-%s.service: example config, writes only its state dir', (role) => {
    const text = unit(role);
    const [exec] = directive(text, 'ExecStart');
    expect(exec).toBe(`${BIN} ${role} --config /etc/geofence/${role}/geofence.config.json`);
    // ProtectSystem=strict: the state directory is the only writable place, so the data directory
    // (and the agent state) of the example config must be in it.
    const [state] = directive(text, 'StateDirectory');
    const cfg = example(role);
    expect(cfg.dataDir).toBe(`/var/lib/${state}`);
    const stateDir = (cfg.agent as { stateDir?: string } | undefined)?.stateDir;
    if (stateDir !== undefined) expect(stateDir.startsWith(`/var/lib/${state}/`)).toBe(true);
  });
});

describe('system user', () => {
  it('geofence.sysusers.conf creates the user geofence the units run as', async () => {
    const root = mkdtempSync(join(tmpdir(), 'gf-sysusers-'));
    mkdirSync(join(root, 'etc'));
    const sysusers = join(dirname(systemdAnalyze()), 'systemd-sysusers');
    const r = await run(sysusers, [
      `--root=${root}`,
      '--dry-run',
      join(DEPLOY, 'systemd', 'geofence.sysusers.conf'),
    ]);
    expect(r.stdout + r.stderr).toContain("Creating user 'geofence'");
  });
});

describe('example config files', () => {
  it.each(ROLES)('deploy/examples/%s/geofence.config.json passes the schema as written', (role) => {
    const r = configSchema.safeParse(example(role));
    expect(r.success ? [] : r.error.issues).toEqual([]);
  });

  it.each(ROLES)('deploy/examples/%s/geofence.config.json passes loadConfig for its role', (role) => {
    const root = mkdtempSync(join(tmpdir(), `gf-example-${role}-`));
    const configPath = join(root, 'geofence.config.json');
    writeFileSync(configPath, JSON.stringify(relocate(example(role), root, true)));
    const required = role === 'agent' ? ['agent.name', 'agent.gatewayUrl'] : [];
    const cfg = loadConfig({ role, env: {}, cwd: root, configPath, required });
    expect(cfg.port).toBe(example(role).port);
    expect(cfg.dataDir).toBe(join(root, example(role).dataDir as string));
  });

  it('the path checks run: without the files the collector example lists each missing one', () => {
    const root = mkdtempSync(join(tmpdir(), 'gf-example-missing-'));
    const configPath = join(root, 'geofence.config.json');
    writeFileSync(configPath, JSON.stringify(relocate(example('collector'), root, false)));
    let error: unknown;
    try {
      loadConfig({ role: 'collector', env: {}, cwd: root, configPath });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    // certPath, keyPath, caPath and the three EK CA bundles.
    expect(issues.filter((i) => i.includes('(ENOENT)'))).toHaveLength(6);
  });
});
