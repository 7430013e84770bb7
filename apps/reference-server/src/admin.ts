/**
 * `geofence agents …`: registry administration on the local data directory. The collector picks the
 * changes up without restart (the SQLite registry and the pre-registration file are hot-reloaded).
 */
import { readFileSync } from 'node:fs';
import {
  type AgentRecord,
  type AgentStatus,
  type GeoPolicy,
  StoreUnavailableError,
} from '@geofence/verifier';
import type { Config } from './config.js';
import { err, type OutputFormat, out, printTable as table } from './output.js';
import type { PreRegistration } from './preregistrations.js';
import { openPreRegistrations, openRegistry } from './runtime.js';

/** An allow list as `US/California, DE` (+ the number of fences). */
export function placeOf(p: GeoPolicy): string {
  const allow = p.allow ?? [];
  const fences = p.fences?.length ? ` +${p.fences.length} fence(s)` : '';
  return (
    (allow.map((a) => [a.region, a.state, a.city].filter(Boolean).join('/')).join(', ') || '(any)') + fences
  );
}

/**
 * A pre-registration in the shape of a record: `status: 'pre-registered'`, so that every entry of
 * `agents list -o json` has `agent_name`, `status` and `geo_policy`.
 */
function preRecord(p: PreRegistration) {
  return { ...p, status: 'pre-registered' as const };
}

/**
 * Prints registry records and pending pre-registrations: a table, or (`json`) one JSON array of the
 * records as `agents show -o json` prints them.
 */
export async function agentsList(cfg: Config, format: OutputFormat = 'table'): Promise<void> {
  const registry = await openRegistry(cfg);
  const preRegistrations = await openPreRegistrations(cfg);
  try {
    const records = await registry.list();
    const pre = (await preRegistrations.list()).filter(
      (p) => !records.some((r) => r.agent_name === p.agent_name),
    );
    if (format === 'json') {
      out(JSON.stringify([...records, ...pre.map(preRecord)], null, 2));
      return;
    }
    const rows: string[][] = [['agent_name', 'status', 'keyid', 'geo_policy', 'updated_at']];
    for (const r of records) {
      rows.push([r.agent_name, r.status, `${r.keyid.slice(0, 16)}…`, placeOf(r.geo_policy), r.updated_at]);
    }
    for (const p of pre) {
      rows.push([p.agent_name, 'pre-registered', '-', placeOf(p.geo_policy), p.added_at ?? '-']);
    }
    table(rows);
  } finally {
    await preRegistrations.close();
    await registry.close();
  }
}

/**
 * Prints one record (registry record or pre-registration): a two-column table of its fields, or
 * (`json`) the record as stored. 1 when unknown.
 */
export async function agentsShow(cfg: Config, name: string, format: OutputFormat = 'table'): Promise<number> {
  const registry = await openRegistry(cfg);
  const preRegistrations = await openPreRegistrations(cfg);
  try {
    const rec: AgentRecord | undefined = await registry.getByName(name);
    const pre = (await preRegistrations.list()).find((p) => p.agent_name === name);
    if (!rec && !pre) {
      err(`agent ${name} not found`);
      return 1;
    }
    const shown = rec ?? preRecord(pre as PreRegistration);
    if (format === 'json') {
      out(JSON.stringify(shown, null, 2));
      return 0;
    }
    const rows: string[][] = [];
    for (const [k, v] of Object.entries(shown)) {
      if (v === undefined) continue;
      if (k === 'geo_policy') rows.push([k, placeOf(v as GeoPolicy)]);
      else if (k === 'app_public_key_pem' || k === 'ak_public_pem') rows.push([k, '(PEM, see -o json)']);
      else rows.push([k, typeof v === 'string' ? v : JSON.stringify(v)]);
    }
    table(rows);
    return 0;
  } finally {
    await preRegistrations.close();
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
  const preRegistrations = await openPreRegistrations(cfg);
  try {
    await preRegistrations.upsert({
      agent_name: name,
      ek: o.ekHash ? { hash: o.ekHash.toLowerCase() } : 'any-trusted-ca',
      geo_policy,
    });
  } catch (e) {
    if (e instanceof StoreUnavailableError) throw e;
    err((e as Error).message);
    return 2;
  } finally {
    await preRegistrations.close();
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
