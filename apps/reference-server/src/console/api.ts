/**
 * The console's JSON and Server-Sent-Events shapes, shared by the collector routes
 * (`./routes.ts`) and the browser code (`../../console-ui/main.ts`), which imports these types only.
 * Every string that came from an agent or an enrolment is untrusted: the page renders it as text.
 * The file imports nothing, so the browser project (console-ui/tsconfig.json) type-checks it alone.
 */

/** A hierarchical place as the agent claimed it. */
export interface FeedPlace {
  region?: string | undefined;
  state?: string | undefined;
  city?: string | undefined;
}

/** A reported point with its accuracy radius (metres). */
export interface FeedLocation {
  lat: number;
  lon: number;
  accuracy?: number | undefined;
}

/** One entry of the live feed: a `POST /metrics` the collector accepted or rejected. */
export interface FeedEvent {
  /** Increasing per collector process; the SSE event id. */
  seq: number;
  outcome: 'accepted' | 'rejected';
  /** ISO 8601 time the collector decided. */
  time: string;
  /** Agent name: for a rejection as the (unverified) body claimed it. */
  agent_name?: string | undefined;
  keyid?: string | undefined;
  place?: FeedPlace | undefined;
  location?: FeedLocation | undefined;
  /** SPEC §7 `validation_type` of a rejection. */
  validation_type?: string | undefined;
  /** Which component rejected (`collector`). */
  rejected_by?: string | undefined;
  /** Human-readable reason of a rejection. */
  error?: string | undefined;
  /** Stored record of an accepted message (`GET /console/api/records/:id`). */
  record_id?: string | undefined;
  /** Parsed body of a rejected message (only when it was a small JSON object), for inspection. */
  payload?: unknown;
}

/** A place of a policy's allow list with its outline (`[lon, lat]` MultiPolygon coordinates). */
export interface PlaceOutline {
  /** ISO code (`US-CA`). */
  code: string;
  name: string;
  coordinates: number[][][][];
}

/** One agent as the console shows it. */
export interface ConsoleAgent {
  agent_name: string;
  status: string;
  keyid: string;
  /** How the agent's key is anchored: `tpm-ek-ca` (EK certificate chain), `tpm-ek-hash`, `key-only`. */
  trust_level: 'tpm-ek-ca' | 'tpm-ek-hash' | 'key-only';
  ek_cert_issuer?: string | undefined;
  /** Allow-list entries as written in the policy (`US/California`). */
  allow: string[];
  /** Codes of the outlines (`GET /console/api/state` `places`) of the allow-list entries the table knows. */
  place_codes: string[];
  /** The policy's GeoJSON fences. */
  fences: unknown[];
  last_seen?: string | undefined;
  last_location?: FeedLocation | undefined;
  last_place?: FeedPlace | undefined;
  last_verdict?: 'accepted' | 'rejected' | undefined;
  last_rejection?:
    | { time: string; validation_type?: string | undefined; error?: string | undefined }
    | undefined;
}

/** `GET /console/api/state`. */
export interface ConsoleState {
  agents: ConsoleAgent[];
  places: Record<string, PlaceOutline>;
}

/** `GET /console/api/session`. */
export interface ConsoleSessionInfo {
  /** Send as `X-CSRF-Token` on every state-changing request. */
  csrf_token: string;
  expires_at: string;
}

/** `GET /console/api/records/:id`. */
export interface ConsoleRecord {
  record_id: string;
  agent_name: string;
  keyid: string;
  received_at: string;
  verdict: Record<string, unknown>;
  payload: unknown;
  /** Offline re-verification (`reverifyRecord`, as `geofence verify-record` prints it) against the current registry. */
  reverification: {
    valid: boolean;
    checks: Array<{ check: string; ok: boolean; detail?: string | undefined }>;
  };
}
