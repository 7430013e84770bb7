/**
 * The console's live view of `POST /metrics` outcomes: a bounded ring of recent events (replayed to
 * a new SSE subscriber, resumable by `Last-Event-ID`) and each agent's last outcome (last seen, last
 * location, last verdict, last rejection). Accepted records are durable in the record store; this
 * in-memory view is seeded from it at start. Rejections are never stored, so only those seen since
 * the process started are shown.
 */
import { EventEmitter } from 'node:events';
import type { AcceptedRecord, GeofenceError, RecordStore } from '@geofence/verifier';
import type { ConsoleAgent, FeedEvent, FeedLocation, FeedPlace } from './api.js';

/** Events kept for replay. */
const RING_SIZE = 500;
/** Largest rejected body parsed for display (an attacker chooses it; keep the copy small). */
const MAX_REJECTED_BODY_BYTES = 16 * 1024;
/** Longest string kept from a rejected body's claims. */
const MAX_CLAIM_CHARS = 256;
/** How far back the agents' last outcome is seeded from the record store, and how many records at most. */
const SEED_WINDOW_MS = 24 * 3600 * 1000;
const SEED_MAX_RECORDS = 20_000;
/** Agents whose activity is kept (rejections name agents the sender chose). */
const MAX_TRACKED_AGENTS = 10_000;

/** What the console knows of one agent's recent traffic. */
export type AgentActivity = Pick<
  ConsoleAgent,
  'last_seen' | 'last_location' | 'last_place' | 'last_verdict' | 'last_rejection'
>;

const claim = (v: unknown): string | undefined =>
  typeof v === 'string' ? v.slice(0, MAX_CLAIM_CHARS) : undefined;

function placeOf(v: unknown): FeedPlace | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  const p: FeedPlace = { region: claim(o.region), state: claim(o.state), city: claim(o.city) };
  return p.region || p.state || p.city ? p : undefined;
}

function locationOf(v: unknown): FeedLocation | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const o = v as Record<string, unknown>;
  const { lat, lon, accuracy } = o;
  if (typeof lat !== 'number' || typeof lon !== 'number') return undefined;
  if (!(Math.abs(lat) <= 90 && Math.abs(lon) <= 180)) return undefined;
  return {
    lat,
    lon,
    accuracy:
      typeof accuracy === 'number' && Number.isFinite(accuracy) && accuracy >= 0 ? accuracy : undefined,
  };
}

/** The claims of a rejected body, read defensively (it failed verification: anything may be in it). */
function rejectedClaims(raw: Uint8Array | undefined): Partial<FeedEvent> {
  if (!raw || raw.byteLength === 0 || raw.byteLength > MAX_REJECTED_BODY_BYTES) return {};
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8'));
  } catch {
    return {};
  }
  if (!body || typeof body !== 'object' || Array.isArray(body)) return {};
  const o = body as Record<string, unknown>;
  return {
    agent_name: claim(o.agent_name),
    keyid: claim(o.tpm_public_key_hash),
    place: placeOf(o.geographic_region),
    location: locationOf(o.location),
    payload: body,
  };
}

/** Live event source of the console. */
export class ConsoleFeed {
  private readonly emitter = new EventEmitter();
  private readonly ring: FeedEvent[] = [];
  private readonly activity = new Map<string, AgentActivity>();
  private seq = 0;

  constructor() {
    // One listener per open console tab.
    this.emitter.setMaxListeners(0);
  }

  /** Seeds each agent's last accepted outcome from the records of the last 24 h. */
  async seed(records: RecordStore): Promise<void> {
    const since = new Date(Date.now() - SEED_WINDOW_MS).toISOString();
    let after: number | undefined;
    let seen = 0;
    while (seen < SEED_MAX_RECORDS) {
      const page = await records.list({ since, after, limit: 1000 });
      for (const r of page.records) {
        this.noteAccepted(
          r.agentName,
          r.receivedAt,
          placeOf(r.payload.geographic_region),
          locationOf(r.payload.location),
        );
      }
      seen += page.records.length;
      if (page.next === null) break;
      after = page.next;
    }
  }

  private noteAccepted(agent: string, time: string, place?: FeedPlace, location?: FeedLocation): void {
    const a = this.activity.get(agent) ?? {};
    this.track(agent, {
      ...a,
      last_seen: time,
      last_verdict: 'accepted',
      last_place: place ?? a.last_place,
      last_location: location ?? a.last_location,
    });
  }

  private publish(e: Omit<FeedEvent, 'seq' | 'time'>): FeedEvent {
    this.seq += 1;
    const event: FeedEvent = { seq: this.seq, time: new Date().toISOString(), ...e };
    this.ring.push(event);
    if (this.ring.length > RING_SIZE) this.ring.shift();
    this.emitter.emit('event', event);
    return event;
  }

  /** Records an accepted (and durably stored) message. */
  accepted(msg: AcceptedRecord, recordId: string): FeedEvent {
    const place = placeOf(msg.payload.geographic_region);
    const location = locationOf(msg.payload.location);
    const e = this.publish({
      outcome: 'accepted',
      agent_name: msg.agentName,
      keyid: msg.keyid,
      place,
      location,
      record_id: recordId,
    });
    this.noteAccepted(msg.agentName, e.time, place, location);
    return e;
  }

  /**
   * Records a rejection. The agent named in the body is unverified: the console shows it as the
   * claimed name, and the rows it touches are bounded ({@link MAX_TRACKED_AGENTS}), so a flood of
   * invented names cannot grow memory.
   */
  rejected(err: GeofenceError, rawBody: Uint8Array | undefined, rejectedBy: string): FeedEvent {
    const e = this.publish({
      outcome: 'rejected',
      validation_type: err.validationType,
      rejected_by: rejectedBy,
      error: err.error,
      ...rejectedClaims(rawBody),
    });
    if (e.agent_name) {
      const a = this.activity.get(e.agent_name) ?? {};
      this.track(e.agent_name, {
        ...a,
        last_seen: e.time,
        last_verdict: 'rejected',
        last_place: e.place ?? a.last_place,
        last_location: e.location ?? a.last_location,
        last_rejection: { time: e.time, validation_type: e.validation_type, error: e.error },
      });
    }
    return e;
  }

  /** Sets an agent's activity, most recent last; the least recently active agent is dropped beyond the bound. */
  private track(agent: string, a: AgentActivity): void {
    this.activity.delete(agent);
    this.activity.set(agent, a);
    if (this.activity.size > MAX_TRACKED_AGENTS) {
      const oldest = this.activity.keys().next().value;
      if (oldest !== undefined) this.activity.delete(oldest);
    }
  }

  /** What is known of `agent`'s recent traffic. */
  activityOf(agent: string): AgentActivity {
    return this.activity.get(agent) ?? {};
  }

  /** Buffered events after `afterSeq` (all buffered when undefined), oldest first. */
  since(afterSeq?: number): FeedEvent[] {
    return afterSeq === undefined ? [...this.ring] : this.ring.filter((e) => e.seq > afterSeq);
  }

  /** Calls `fn` for every new event until the returned function is called. */
  subscribe(fn: (e: FeedEvent) => void): () => void {
    this.emitter.on('event', fn);
    return () => this.emitter.off('event', fn);
  }
}
