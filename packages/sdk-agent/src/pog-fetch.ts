/**
 * `agent.fetch`: an HTTP request to a resource server that carries the agent's Proof-of-Geofencing
 * credential and an RFC 9421 signature by the TPM key the credential binds (SPEC §17), so that the
 * credential is worthless to anyone who copies it without the key.
 */
import { randomBytes } from 'node:crypto';
import { contentDigest, type Signer, signRequest } from '@geofence/http-sig';
import {
  CREDENTIAL_CERTIFICATE_HEADER,
  CREDENTIAL_HEADER,
  CREDENTIAL_SIGNATURE_COMPONENTS,
  CREDENTIAL_SIGNATURE_LABEL,
  CREDENTIAL_SIGNATURE_TAG,
} from '@geofence/protocol';
import { type Dispatcher, fetch, Headers, Request, type RequestInit, type Response } from 'undici';
import type { CredentialKeeper } from './credential.js';

/** Bytes of the per-request `nonce` parameter (192 bits; the contract asks for at least 128). */
const NONCE_BYTES = 24;

/** Headers the agent sets itself; a caller setting one would break or forge the proof. */
const RESERVED_HEADERS = [
  'signature',
  'signature-input',
  'content-digest',
  CREDENTIAL_HEADER,
  CREDENTIAL_CERTIFICATE_HEADER,
];

/** What a {@link PogFetcher} needs. */
export interface PogFetcherOptions {
  credentials: CredentialKeeper;
  /** The AppSK signer (its own `keyid` is replaced by the credential's `cnf.jkt`). */
  signer: () => Promise<Signer>;
  /** Connection pool for resource servers (TLS settings of the agent). */
  dispatcher: Dispatcher;
  /** `expires` − `created` of each request signature, seconds. */
  validitySeconds: number;
}

/** Sends requests with the current credential, each signed once with a fresh nonce. */
export class PogFetcher {
  constructor(private readonly o: PogFetcherOptions) {}

  /**
   * Sends `init` to `url` with the `geofence-credential` header and a `pog` signature over
   * `@method`, `@target-uri`, `geofence-credential` and — when there is a body — `content-digest`.
   * Redirects are returned, not followed: the signature covers one target URI.
   */
  async fetch(url: string | URL, init: RequestInit = {}): Promise<Response> {
    if (init.redirect !== undefined && init.redirect !== 'manual') {
      throw new TypeError('agent.fetch does not follow redirects (the signature covers one target URI)');
    }
    // The Request does what fetch would do with `init`: URL parsing, method normalisation, the
    // body's bytes and its content-type; we sign exactly what it produced.
    const request = new Request(url, init);
    for (const name of RESERVED_HEADERS) {
      if (request.headers.has(name)) throw new TypeError(`agent.fetch sets the ${name} header itself`);
    }
    const bytes = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    const body = bytes && bytes.length > 0 ? bytes : undefined;
    const target = new URL(request.url);
    target.hash = '';

    const credential = await this.o.credentials.current();
    const headers = new Headers(request.headers);
    headers.set(CREDENTIAL_HEADER, credential.jwt);
    const components: string[] = [...CREDENTIAL_SIGNATURE_COMPONENTS, CREDENTIAL_HEADER];
    if (body) {
      headers.set('content-digest', contentDigest(body));
      components.push('content-digest');
    }
    const tpm = await this.o.signer();
    const signer: Signer = { keyid: credential.jkt, alg: tpm.alg, sign: (data) => tpm.sign(data) };
    const created = Math.floor(Date.now() / 1000);
    const signature = await signRequest(
      { method: request.method, url: target.href, headers: Object.fromEntries(headers), body },
      {
        signer,
        components,
        label: CREDENTIAL_SIGNATURE_LABEL,
        tag: CREDENTIAL_SIGNATURE_TAG,
        created,
        expires: created + this.o.validitySeconds,
        nonce: randomBytes(NONCE_BYTES).toString('base64url'),
      },
    );
    headers.set('signature-input', signature['signature-input']);
    headers.set('signature', signature.signature);
    const { duplex: _duplex, ...rest } = init as RequestInit & { duplex?: unknown };
    return fetch(target.href, {
      ...rest,
      method: request.method,
      headers: Object.fromEntries(headers),
      body,
      redirect: 'manual',
      dispatcher: init.dispatcher ?? this.o.dispatcher,
    });
  }
}
