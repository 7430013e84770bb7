/**
 * `geofence agents …`: registry administration on the local data directory. The collector picks the
 * changes up without restart (the SQLite registry and the pre-registration file are hot-reloaded).
 */
import { readFileSync } from 'node:fs';
import type { AgentRecord, AgentStatus, GeoPolicy } from '@geofence/verifier';
import type { Config } from './config.js';
import { readPreRegistrations, upsertPreRegistration } from './preregistrations.js';
import { openRegistry } from './runtime.js';

const out = (s: string) => process.stdout.write(`${s}\n`);
const err = (s: string) => process.stderr.write(`geofence: ${s}\n`);

function placeOf(p: GeoPolicy): string {
  const allow = p.allow ?? [];
  const fences = p.fences?.length ? ` +${p.fences.length} fence(s)` : '';
  return (
    (allow.map((a) => [a.region, a.state, a.city].filter(Boolean).join('/')).join(', ') || '(any)') + fences
  );
}

/** Prints registry records and pending pre-registrations as a table. */
export async function agentsList(cfg: Config): Promise<void> {
  const registry = await openRegistry(cfg);
  try {
    const records = await registry.list();
    const pre = readPreRegistrations(cfg.dataDir).filter(
      (p) => !records.some((r) => r.agent_name === p.agent_name),
    );
    const rows: string[][] = [['agent_name', 'status', 'keyid', 'geo_policy', 'updated_at']];
    for (const r of records) {
      rows.push([r.agent_name, r.status, `${r.keyid.slice(0, 16)}…`, placeOf(r.geo_policy), r.updated_at]);
    }
    for (const p of pre) {
      rows.push([p.agent_name, 'pre-registered', '-', placeOf(p.geo_policy), p.added_at ?? '-']);
    }
    const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
    for (const r of rows) out(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  '));
  } finally {
    await registry.close();
  }
}

/** Prints one record (registry record or pre-registration) as JSON; 1 when unknown. */
export async function agentsShow(cfg: Config, name: string): Promise<number> {
  const registry = await openRegistry(cfg);
  try {
    const rec: AgentRecord | undefined = await registry.getByName(name);
    const pre = readPreRegistrations(cfg.dataDir).find((p) => p.agent_name === name);
    if (!rec && !pre) {
      err(`agent ${name} not found`);
      return 1;
    }
    out(JSON.stringify(rec ?? { ...pre, status: 'pre-registered' }, null, 2));
    return 0;
  } finally {
    await registry.close();
  }
}

/** `agents add`: pre-registers an agent with its geo policy and EK constraint. */
export async function agentsAdd(
  cfg: Config,
  name: string,
  o: { region: string; state?: string; city?: string; fence?: string; ekHash?: string },
): Promise<number> {
  if (o.city && !o.state) {
    err('--city needs --state');
    return 2;
  }
  const entry: { region: string; state?: string; city?: string } = { region: o.region };
  if (o.state) entry.state = o.state;
  if (o.city) entry.city = o.city;
  const geo_policy: GeoPolicy = { allow: [entry] };
  if (o.fence) geo_policy.fences = [JSON.parse(readFileSync(o.fence, 'utf8'))];
  try {
    upsertPreRegistration(cfg.dataDir, {
      agent_name: name,
      ek: o.ekHash ? { hash: o.ekHash.toLowerCase() } : 'any-trusted-ca',
      geo_policy,
    });
  } catch (e) {
    err((e as Error).message);
    return 2;
  }
  out(`pre-registered ${name} for ${placeOf(geo_policy)}; it becomes active when it completes enrolment`);
  return 0;
}

/** `agents approve|revoke`. */
export async function agentsSetStatus(cfg: Config, name: string, status: AgentStatus): Promise<number> {
  const registry = await openRegistry(cfg);
  try {
    const rec = await registry.getByName(name);
    if (!rec) {
      err(
        status === 'revoked'
          ? `agent ${name} is not in the registry (nothing to revoke)`
          : `agent ${name} is not in the registry (an agent must enrol before it can be approved)`,
      );
      return 1;
    }
    await registry.setStatus(name, status);
    out(`${name}: ${rec.status} → ${status}`);
    return 0;
  } finally {
    await registry.close();
  }
}
