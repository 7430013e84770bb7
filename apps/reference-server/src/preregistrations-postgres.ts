/**
 * Operator pre-registrations in the fleet's PostgreSQL (table `geofence_preregistrations`): `POST
 * /agents` or `geofence agents add` at any replica reaches the enrolment policy of every replica, by
 * the table's notification.
 */
import type { PostgresDatabase, PostgresSubscription, PreRegisteredAgent } from '@geofence/verifier';
import { z } from 'zod';
import {
  type PreRegistration,
  type PreRegistrationStore,
  preRegistrationSchema,
  toPolicyAgents,
} from './preregistrations.js';

const CHANNEL = 'geofence_preregistrations';
/** Delay before listening again after the listening connection was lost. */
const RESUBSCRIBE_MS = 500;

/** {@link PreRegistrationStore} on PostgreSQL (the caller owns `db`). */
export class PostgresPreRegistrations implements PreRegistrationStore {
  /** @param db - the process's database */
  constructor(private readonly db: PostgresDatabase) {}

  async list(): Promise<PreRegistration[]> {
    const { rows } = await this.db.query<{ entry: unknown }>(
      'registry',
      'SELECT entry FROM geofence_preregistrations ORDER BY agent_name',
    );
    return z.array(preRegistrationSchema).parse(rows.map((r) => r.entry));
  }

  async upsert(entry: PreRegistration): Promise<void> {
    const valid = preRegistrationSchema.parse({
      ...entry,
      added_at: entry.added_at ?? new Date().toISOString(),
    });
    await this.db.query(
      'registry',
      `INSERT INTO geofence_preregistrations (agent_name, entry) VALUES ($1, $2)
       ON CONFLICT (agent_name) DO UPDATE SET entry = excluded.entry, updated_at = now()`,
      [valid.agent_name, JSON.stringify(valid)],
    );
  }

  async watch(target: PreRegisteredAgent[], onError: (err: Error) => void): Promise<() => Promise<void>> {
    let stopped = false;
    let sub: PostgresSubscription | undefined;
    let timer: NodeJS.Timeout | undefined;
    // Loads run one after another, so an older snapshot never replaces a newer one.
    let loading: Promise<void> = Promise.resolve();
    const load = () => {
      loading = loading.then(async () => {
        try {
          target.splice(0, target.length, ...toPolicyAgents(await this.list()));
        } catch (err) {
          onError(err as Error);
        }
      });
      return loading;
    };
    // Listen first, then load: a change between the two is in the load or notified.
    const subscribe = async (): Promise<void> => {
      try {
        sub = await this.db.listen(
          CHANNEL,
          () => void load(),
          (err) => {
            if (err) onError(err);
            sub = undefined;
            if (!stopped) timer = setTimeout(() => void subscribe(), RESUBSCRIBE_MS).unref();
          },
        );
        if (stopped) await sub.close();
        else await load();
      } catch (err) {
        onError(err as Error);
        if (!stopped) timer = setTimeout(() => void subscribe(), RESUBSCRIBE_MS).unref();
      }
    };
    await subscribe();
    return async () => {
      stopped = true;
      clearTimeout(timer);
      await sub?.close();
    };
  }

  async close(): Promise<void> {}
}
