/**
 * Fetching a fresh nonce for the agent's keyid (`GET /nonce`, SPEC §6.1), signed with the AppSK when
 * the agent is configured to (SPEC §6.3). Metrics delivery, location attestation and credential
 * refresh all take their nonces from here.
 */
import { type Signer, signRequest } from '@geofence/http-sig';
import {
  NONCE_SIGNATURE_COMPONENTS,
  type NonceResponse,
  SIGNATURE_LABEL,
  SIGNATURE_TAG,
} from '@geofence/protocol';
import type { Transport } from './transport.js';

/** Signature algorithms that give the same bytes for the same input (so a signature base must not repeat). */
const DETERMINISTIC: ReadonlySet<string> = new Set(['rsa-v1_5-sha256']);

/** Obtains nonces over the agent's transport, one signed request at a time. */
export class NonceRequester {
  /** `created`/`expires` of the last signed nonce request (see {@link NonceRequester.signature}). */
  private last: { created: number; expires: number } | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly origin: string,
    private readonly validitySeconds: number,
    private readonly signed: boolean,
  ) {}

  /** `GET /nonce?public_key_hash=<keyid>`, signed by `signer` when signing is on. */
  async fetch(keyid: string, signer: Signer): Promise<NonceResponse> {
    return (await this.fetchMany(keyid, signer, 1))[0] as NonceResponse;
  }

  /**
   * Up to `count` nonces for one request (`&count=n`, SPEC §16; only with signing on, as the
   * collector issues batches to signed requests only). A collector without batches gives one.
   */
  fetchMany(keyid: string, signer: Signer, count: number): Promise<NonceResponse[]> {
    return this.transport.nonces(
      keyid,
      this.signed ? count : 1,
      this.signed ? (target) => this.signature(signer, target) : undefined,
    );
  }

  /**
   * RFC 9421 signature of `GET <target>` (SPEC §6.3: `@method @path @query`, no nonce). The collector
   * accepts each signed nonce request once (SPEC §16; it remembers the signature bytes). ECDSA
   * signatures are randomised, so two requests never share them. RSASSA-PKCS1-v1_5 signatures are
   * deterministic: for them two requests signed in the same second get different `expires` values —
   * the signature base, and so the signature, never repeats — and once a second's values are used up
   * the next request waits for the next second. (That wait is not paid by ECDSA keys: a fast sender
   * would otherwise be held to `validitySeconds − 1` nonce requests per second.)
   */
  private async signature(signer: Signer, target: string): Promise<Record<string, string>> {
    const created = Math.floor(Date.now() / 1000);
    let expires = created + this.validitySeconds;
    if (DETERMINISTIC.has(signer.alg)) {
      const last = this.last;
      if (last && last.created === created) expires = Math.max(created + 1, last.expires - 1);
      if (last && last.created === created && last.expires === expires) {
        // Every expires value of this second is used: the next second starts a fresh range.
        await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000)));
        return this.signature(signer, target);
      }
    }
    this.last = { created, expires };
    const h = await signRequest(
      { method: 'GET', url: `${this.origin}${target}`, headers: {} },
      {
        signer,
        components: NONCE_SIGNATURE_COMPONENTS,
        label: SIGNATURE_LABEL,
        tag: SIGNATURE_TAG,
        created,
        expires,
      },
    );
    return { 'signature-input': h['signature-input'], signature: h.signature };
  }
}
