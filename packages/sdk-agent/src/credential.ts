/**
 * The agent's current Proof-of-Geofencing credential (SPEC §17): the attestation-result JWT the
 * collector issues for a fresh location attestation, kept until shortly before it expires and then
 * renewed by a new attestation — once for all concurrent callers.
 */
import { AttestationClientError } from './attestation/errors.js';
import { CredentialRefusedError, GeofenceRejection } from './errors.js';
import type { AgentLogger } from './options.js';

/** A credential as the agent holds it. */
export interface HeldCredential {
  /** The compact JWT, sent as is in the `geofence-credential` header. */
  jwt: string;
  /** `cnf.jkt`: RFC 7638 thumbprint of the AppSK, the `keyid` of the request signatures. */
  jkt: string;
  /** Local clock (ms) after which it is renewed before use. */
  refreshAt: number;
  /** Local clock (ms) at which it expires. */
  expiresAt: number;
}

/** What a {@link CredentialKeeper} needs. */
export interface CredentialKeeperOptions {
  /** A fresh location attestation; resolves with the attestation-result JWT. */
  attest: () => Promise<string>;
  /** `cnf.jkt` the credential must bind (the AppSK's thumbprint). */
  jkt: () => Promise<string>;
  /** Renew this many seconds before expiry (at most half the credential's lifetime). */
  marginSeconds: number;
  logger: AgentLogger;
}

/**
 * After a failed renewal that left a still-valid credential in use, wait this long before trying
 * again, so a collector outage is not met with one TPM quote per request.
 */
const RETRY_AFTER_FAILURE_MS = 5000;

/** Keeps the current credential and renews it (single-flight). */
export class CredentialKeeper {
  private held: HeldCredential | undefined;
  private renewing: Promise<HeldCredential> | undefined;
  private retryAt = 0;

  constructor(private readonly o: CredentialKeeperOptions) {}

  /**
   * The credential to present now. Renews it when it is due (or there is none); concurrent callers
   * share one renewal. A refusal (4xx) forgets the credential and throws
   * {@link CredentialRefusedError}; when the renewal fails otherwise (network, 5xx, no location fix)
   * the current credential is used while it has not expired, else that failure is thrown.
   */
  async current(): Promise<HeldCredential> {
    const held = this.held;
    const now = Date.now();
    if (held && (now < held.refreshAt || (now < this.retryAt && now < held.expiresAt))) return held;
    try {
      return await this.renew();
    } catch (err) {
      if (err instanceof CredentialRefusedError) throw err;
      if (this.held && Date.now() < this.held.expiresAt) {
        this.retryAt = Date.now() + RETRY_AFTER_FAILURE_MS;
        this.o.logger.warn(
          { err: (err as Error).message, expiresInMs: this.held.expiresAt - Date.now() },
          'credential renewal failed; presenting the current credential until it expires',
        );
        return this.held;
      }
      throw err;
    }
  }

  /** Forgets the credential (the next request obtains a new one). */
  clear(): void {
    this.held = undefined;
  }

  private renew(): Promise<HeldCredential> {
    this.renewing ??= this.obtain().finally(() => {
      this.renewing = undefined;
    });
    return this.renewing;
  }

  private async obtain(): Promise<HeldCredential> {
    let jwt: string;
    const asked = Date.now();
    try {
      jwt = await this.o.attest();
    } catch (err) {
      if (err instanceof GeofenceRejection && err.status >= 400 && err.status < 500 && err.status !== 429) {
        this.held = undefined;
        throw new CredentialRefusedError(err);
      }
      throw err;
    }
    const claims = decodeClaims(jwt);
    const jkt = await this.o.jkt();
    if (claims.jkt !== jkt) {
      throw new AttestationClientError(
        'bad_response',
        'the collector issued a credential bound to another key (cnf.jkt is not the AppSK thumbprint)',
      );
    }
    // Timed on the local clock from the moment we asked: the lifetime is the issuer's, the
    // offset between the two clocks does not matter.
    const lifetimeMs = (claims.exp - claims.iat) * 1000;
    const marginMs = Math.min(this.o.marginSeconds * 1000, lifetimeMs / 2);
    const held: HeldCredential = {
      jwt,
      jkt,
      refreshAt: asked + lifetimeMs - marginMs,
      expiresAt: asked + lifetimeMs,
    };
    this.held = held;
    this.retryAt = 0;
    return held;
  }
}

/** `iat`, `exp` and `cnf.jkt` of a compact JWT (the agent does not verify its issuer's signature). */
function decodeClaims(jwt: string): { iat: number; exp: number; jkt: string } {
  const parts = jwt.split('.');
  let payload: { iat?: unknown; exp?: unknown; cnf?: { jkt?: unknown } } | undefined;
  try {
    payload =
      parts.length === 3 ? JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) : undefined;
  } catch {
    payload = undefined;
  }
  const iat = payload?.iat;
  const exp = payload?.exp;
  const jkt = payload?.cnf?.jkt;
  if (
    typeof iat !== 'number' ||
    typeof exp !== 'number' ||
    !Number.isFinite(iat) ||
    !(exp > iat) ||
    typeof jkt !== 'string'
  ) {
    throw new AttestationClientError('bad_response', 'the credential is not a JWT with iat, exp and cnf.jkt');
  }
  return { iat, exp, jkt };
}
