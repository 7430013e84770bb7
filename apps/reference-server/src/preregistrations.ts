/**
 * Operator pre-registrations (SPEC §4): agents allowed to enrol, each with the EK it must present (its
 * hash, or any EK whose certificate chains to the EK CA bundle) and the geo policy written into its
 * registry record on enrolment. Kept in `<dataDir>/preregistered.json` so `geofence agents add` works while
 * a collector runs: the collector watches the file and updates its enrolment policy in place.
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  unwatchFile,
  watchFile,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { agentNameSchema, geoPolicySchema, type PreRegisteredAgent } from '@geofence/verifier';
import { z } from 'zod';

/** On-disk form of one pre-registration. */
export const preRegistrationSchema = z.strictObject({
  agent_name: agentNameSchema,
  ek: z.union([z.literal('any-trusted-ca'), z.strictObject({ hash: z.string().regex(/^[0-9a-f]{64}$/) })]),
  geo_policy: geoPolicySchema,
  added_at: z.string().optional(),
});

/** One pre-registration as stored. */
export type PreRegistration = z.infer<typeof preRegistrationSchema>;

/** File holding the pre-registrations. */
export function preRegistrationsPath(dataDir: string): string {
  return join(dataDir, 'preregistered.json');
}

/** Reads the pre-registrations (empty when the file does not exist). Throws on an invalid file. */
export function readPreRegistrations(dataDir: string): PreRegistration[] {
  const path = preRegistrationsPath(dataDir);
  if (!existsSync(path)) return [];
  const parsed = z.array(preRegistrationSchema).safeParse(JSON.parse(readFileSync(path, 'utf8')));
  if (!parsed.success) {
    throw new Error(
      `${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return parsed.data;
}

/** Adds or replaces one pre-registration (atomic file replace). */
export function upsertPreRegistration(dataDir: string, entry: PreRegistration): PreRegistration[] {
  const valid = preRegistrationSchema.parse({
    ...entry,
    added_at: entry.added_at ?? new Date().toISOString(),
  });
  const list = readPreRegistrations(dataDir).filter((p) => p.agent_name !== valid.agent_name);
  list.push(valid);
  list.sort((a, b) => a.agent_name.localeCompare(b.agent_name));
  const path = preRegistrationsPath(dataDir);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(list, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  return list;
}

/** Converts to the verifier's enrolment-policy form. */
export function toPolicyAgents(list: PreRegistration[]): PreRegisteredAgent[] {
  return list.map((p) => ({ agentName: p.agent_name, ek: p.ek, geoPolicy: p.geo_policy }));
}

/**
 * Keeps `target` (the array passed as `EnrollmentPolicy.agents`) equal to the file's content, polling
 * every `intervalMs`. Invalid file contents are reported and ignored (the previous list stays).
 * Returns a stop function.
 */
export function watchPreRegistrations(
  dataDir: string,
  target: PreRegisteredAgent[],
  onError: (err: Error) => void,
  intervalMs = 1000,
): () => void {
  const path = preRegistrationsPath(dataDir);
  const load = () => {
    try {
      const next = toPolicyAgents(readPreRegistrations(dataDir));
      target.splice(0, target.length, ...next);
    } catch (err) {
      onError(err as Error);
    }
  };
  load();
  watchFile(path, { interval: intervalMs, persistent: false }, load);
  return () => unwatchFile(path, load);
}

/**
 * Where pre-registrations live: the data directory's file (one host, the default) or the fleet's
 * PostgreSQL (with `REGISTRY_TYPE=postgres`, see `preregistrations-postgres.ts`).
 */
export interface PreRegistrationStore {
  /** All pre-registrations, by agent name. */
  list(): Promise<PreRegistration[]>;
  /** Adds or replaces one (validated). */
  upsert(entry: PreRegistration): Promise<void>;
  /**
   * Keeps `target` (the array passed as `EnrollmentPolicy.agents`) equal to the store's content,
   * including changes made by other processes. Resolves with a stop function.
   */
  watch(target: PreRegisteredAgent[], onError: (err: Error) => void): Promise<() => Promise<void>>;
  /** Releases the store's resources. */
  close(): Promise<void>;
}

/** The file store of `<dataDir>/preregistered.json`. */
export function filePreRegistrations(dataDir: string): PreRegistrationStore {
  return {
    list: async () => readPreRegistrations(dataDir),
    upsert: async (entry) => {
      upsertPreRegistration(dataDir, entry);
    },
    watch: async (target, onError) => {
      const stop = watchPreRegistrations(dataDir, target, onError);
      return async () => stop();
    },
    close: async () => {},
  };
}
