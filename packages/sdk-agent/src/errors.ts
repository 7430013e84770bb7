import { isProblem, type Problem, type RejectedBy, type ValidationType } from '@geofence/protocol';

/** Stable codes of the agent's own errors. */
export type AgentErrorCode =
  | 'rejected'
  | 'unavailable'
  | 'deferred'
  | 'uncertain'
  | 'outbox_full'
  | 'closed'
  | 'invalid_options';

/**
 * The one root of every error the agent SDK throws itself: `err instanceof AgentError` catches them
 * all (delivery, rejections, location, state directory, outbox lock, attestation, retriable
 * transport failures), and `code` is stable and machine-readable. Subclasses narrow `Code` to their
 * own codes (`NoLocationError` → `NoLocationCode`, …).
 */
export class AgentError<Code extends string = AgentErrorCode> extends Error {
  /** Stable machine-readable reason. */
  readonly code: Code;
  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentError';
    this.code = code;
  }
}

/**
 * The gateway or collector refused the message with a 4xx answer (SPEC §7). Never retried: the same
 * message would be refused again. Carries the RFC 9457 problem members when the server sent them.
 */
export class GeofenceRejection extends AgentError {
  /** HTTP status. */
  readonly status: number;
  /** Which check failed (`unknown` when the answer was not an aligned problem body). */
  readonly validationType: ValidationType | 'unknown';
  /** Which component refused (`gateway`, `collector`, …), when known. */
  readonly rejectedBy: RejectedBy | undefined;
  /** The problem's `error` message. */
  readonly error: string;
  /** Check-specific details from the server. */
  readonly details: Record<string, unknown> | undefined;
  /** Server correlation id. */
  readonly requestId: string | undefined;
  /** The whole problem body, when it was one. */
  readonly problem: Problem | undefined;

  constructor(status: number, body: unknown) {
    const problem = isProblem(body) ? body : undefined;
    const error = problem?.error ?? `HTTP ${status}`;
    super('rejected', `${problem?.validation_type ?? 'rejected'} (${status}): ${error}`);
    this.name = 'GeofenceRejection';
    this.status = status;
    this.problem = problem;
    this.validationType = problem?.validation_type ?? 'unknown';
    this.rejectedBy = problem?.rejected_by;
    this.error = error;
    this.details = problem?.details;
    this.requestId = problem?.request_id;
  }
}

/**
 * The collector refused to issue (or renew) the Proof-of-Geofencing credential `agent.fetch`
 * presents: the location attestation was answered with a 4xx, e.g. because the host left its fence
 * (`validationType` `attestation`, `check` `geofence`) or its workload is not approved. The agent
 * forgets its credential, so no request is sent on the strength of the old one; the server's
 * answer is the `cause` ({@link GeofenceRejection}).
 */
export class CredentialRefusedError extends AgentError<'credential_refused'> {
  /** HTTP status of the refusal. */
  readonly status: number;
  /** Which check failed (`unknown` when the answer was not an aligned problem body). */
  readonly validationType: ValidationType | 'unknown';
  /** The problem's `details.check`, naming the failed step (e.g. `geofence`), when given. */
  readonly check: string | undefined;
  /** The whole problem body, when it was one. */
  readonly problem: Problem | undefined;

  constructor(rejection: GeofenceRejection) {
    const check = typeof rejection.details?.check === 'string' ? rejection.details.check : undefined;
    super(
      'credential_refused',
      `credential refused: ${rejection.validationType}${check ? `/${check}` : ''} (${rejection.status}): ${rejection.error}`,
      { cause: rejection },
    );
    this.name = 'CredentialRefusedError';
    this.status = rejection.status;
    this.validationType = rejection.validationType;
    this.check = check;
    this.problem = rejection.problem;
  }
}

/** Every attempt failed with a retriable error (network, timeout, 5xx) and there is no outbox. */
export class DeliveryError extends AgentError {
  /** Attempts made. */
  readonly attempts: number;
  constructor(attempts: number, cause: unknown) {
    super('unavailable', `gateway unavailable after ${attempts} attempt(s): ${describe(cause)}`, { cause });
    this.name = 'DeliveryError';
    this.attempts = attempts;
  }
}

/**
 * The gateway stayed unavailable for all attempts of this call, but the message is safe in the
 * durable outbox and will be delivered (in order) when the gateway is back — also after a restart.
 */
export class DeliveryDeferredError extends AgentError {
  /** Outbox ids of the deferred messages. */
  readonly outboxIds: number[];
  constructor(outboxIds: number[], cause: unknown) {
    super(
      'deferred',
      `gateway unavailable; ${outboxIds.length} message(s) kept in the outbox: ${describe(cause)}`,
      {
        cause,
      },
    );
    this.name = 'DeliveryDeferredError';
    this.outboxIds = outboxIds;
  }
}

/**
 * An attempt reached the collector but its answer was lost, and resending the identical signed
 * request was refused because its nonce is already used: the collector processed the first
 * attempt (stored it, or rejected it at a later check). The message is not sent again — that could
 * store it twice — and stays in the outbox's dead-letter table for review.
 */
export class DeliveryUncertainError extends AgentError {
  /** Outbox ids (negative: never written to the outbox) of the messages concerned. */
  readonly outboxIds: number[];
  constructor(outboxIds: number[], cause: unknown) {
    super(
      'uncertain',
      "the collector already consumed this message's nonce on an attempt whose answer was lost; not resent",
      { cause },
    );
    this.name = 'DeliveryUncertainError';
    this.outboxIds = outboxIds;
  }
}

/** The outbox holds `limit` messages already; the new message was NOT stored. */
export class OutboxFullError extends AgentError {
  /** Configured bound. */
  readonly limit: number;
  constructor(limit: number) {
    super('outbox_full', `outbox is full (${limit} messages waiting); the new message was dropped`);
    this.name = 'OutboxFullError';
    this.limit = limit;
  }
}

/** The agent was closed. */
export class AgentClosedError extends AgentError {
  constructor() {
    super('closed', 'agent is closed');
    this.name = 'AgentClosedError';
  }
}

/** Invalid `createAgent` options. */
export class AgentOptionsError extends AgentError {
  /** One line per problem. */
  readonly issues: string[];
  constructor(issues: string[]) {
    super('invalid_options', `invalid agent options: ${issues.join('; ')}`);
    this.name = 'AgentOptionsError';
    this.issues = issues;
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
