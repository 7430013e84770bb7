/**
 * One framework-neutral handler per endpoint — `GET /nonce`, `POST /metrics` (collector), the
 * enforcing gateway's check, and the attestation endpoints. Each factory validates its options once
 * and returns an {@link Endpoint} that owns its compiled state; the Express middleware, the Fastify
 * plugin and the reference server only read the body, call {@link Endpoint.handle} and write the
 * {@link HttpAnswer} (or forward, for the gateway).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { DEFAULT_BODY_LIMIT_BYTES, type RejectedBy } from '@geofence/protocol';
import {
  type AttestationHandlers,
  type AttestationHandlersOptions,
  createAttestationHandlers,
} from '../attestation/http.js';
import { GeofenceError } from '../errors.js';
import { checkMiddlewareOptions, type MiddlewareOptions } from '../middleware/common.js';
import type {
  CollectorOptions,
  GatewayOptions,
  GatewayVerdict,
  NonceEndpointOptions,
  VerifierRequest,
} from '../pipeline/types.js';
import { createCollectorVerifier, createGatewayVerifier, createNonceIssuer } from '../pipeline/verify.js';
import { clientRequestIdOf } from '../request-id.js';
import { type HttpAnswer, jsonAnswer, problemAnswer } from './answer.js';
import { headersStrippedByGateway } from './gateway-headers.js';

/**
 * A request as an endpoint sees it: the verifier's request view plus our request id and the route
 * parameters.
 * @public
 */
export interface EndpointRequest extends VerifierRequest {
  /** Request headers as Node parsed them. */
  headers: IncomingHttpHeaders;
  /** Our request id (see `requestIdOf`: never the client's `X-Request-Id`). */
  requestId: string;
  /** Route parameters (`id` of `/enroll/:id/complete`). */
  params?: Readonly<Record<string, string | undefined>>;
}

/**
 * What an endpoint decided: an answer to write, or (the enforcing gateway) a verified request to
 * forward without the headers in `stripped`.
 * @public
 */
export type EndpointResult =
  | { kind: 'answer'; answer: HttpAnswer }
  | { kind: 'forward'; verdict: GatewayVerdict; stripped: readonly string[] };

/**
 * A framework-neutral endpoint handler.
 * @public
 */
export interface Endpoint {
  /** `rejected_by` of its problems. */
  readonly rejectedBy: RejectedBy;
  /** How many body bytes an adapter reads for a request of `method` (0: the body is not read). */
  bodyLimit(method: string): number;
  /** Handles a request whose body (when read) is in `rawBody`. Never throws. */
  handle(req: EndpointRequest): Promise<EndpointResult>;
  /** The answer to a failure before {@link Endpoint.handle} ran (e.g. 413 while reading the body). */
  reject(err: unknown, req: EndpointRequest): HttpAnswer;
}

function rejecter(role: RejectedBy, o: MiddlewareOptions): Endpoint['reject'] {
  const rejectedBy = o.rejectedBy ?? role;
  return (err, req) => {
    const ge = GeofenceError.from(err);
    o.onReject?.(ge, req, req.requestId, clientRequestIdOf(req.headers));
    return problemAnswer(ge, rejectedBy, req.requestId);
  };
}

function answering(
  role: RejectedBy,
  o: MiddlewareOptions,
  bodyLimit: (method: string) => number,
  run: (req: EndpointRequest) => Promise<EndpointResult>,
): Endpoint {
  const reject = rejecter(role, o);
  return {
    rejectedBy: o.rejectedBy ?? role,
    bodyLimit,
    reject,
    async handle(req) {
      try {
        await o.beforeVerify?.(req);
        return await run(req);
      } catch (err) {
        return { kind: 'answer', answer: reject(err, req) };
      }
    },
  };
}

const NO_BODY = () => 0;

/**
 * `GET /nonce` of the collector: `200 {nonce, expires_at, expires_in}` or a problem.
 * @public
 */
export function createNonceEndpoint(options: NonceEndpointOptions & MiddlewareOptions): Endpoint {
  checkMiddlewareOptions(options, 'nonce');
  const issuer = createNonceIssuer(options);
  return answering('collector', options, NO_BODY, async (req) => {
    const verdict = await issuer.issue(req);
    return { kind: 'answer', answer: jsonAnswer(200, verdict.body) };
  });
}

/**
 * `POST /metrics` of the collector: verifies in the SPEC §6.4 order, stores through `onAccept` and
 * answers `200 {status, message, record_id}`, or a problem.
 * @public
 */
export function createMetricsEndpoint(options: CollectorOptions & MiddlewareOptions): Endpoint {
  checkMiddlewareOptions(options, 'collector');
  const collector = createCollectorVerifier(options);
  const limit = bodyLimitOf(options);
  return answering(
    'collector',
    options,
    () => limit,
    async (req) => {
      const verdict = await collector.verify(req);
      return { kind: 'answer', answer: jsonAnswer(200, verdict.body) };
    },
  );
}

/**
 * The enforcing gateway's check of `POST /metrics` and `GET /nonce`: a problem, or `forward` with
 * the verdict and the headers to strip ({@link headersStrippedByGateway}). Never consumes nonces.
 * @public
 */
export function createGatewayEndpoint(options: GatewayOptions & MiddlewareOptions): Endpoint {
  checkMiddlewareOptions(options, 'gateway');
  const gateway = createGatewayVerifier(options);
  const limit = bodyLimitOf(options);
  return answering(
    'gateway',
    options,
    (method) => (method === 'GET' || method === 'HEAD' ? 0 : limit),
    async (req) => ({
      kind: 'forward',
      verdict: await gateway.verify(req),
      stripped: headersStrippedByGateway(req.method, req.url),
    }),
  );
}

function bodyLimitOf(o: { bodyLimit?: number | undefined }): number {
  // Validated when the role's verifier was built, just before.
  return o.bodyLimit ?? DEFAULT_BODY_LIMIT_BYTES;
}

/**
 * The attestation endpoints as {@link Endpoint}s (`POST /enroll`, `POST /enroll/:id/complete`,
 * `POST /attest/location`, `GET /.well-known/jwks.json`).
 * @public
 */
export interface AttestationEndpoints {
  /** `POST /enroll` → 201 with the credential-activation challenge. */
  enroll: Endpoint;
  /** `POST /enroll/:id/complete` → 200 with the attestation result (reads `params.id`). */
  complete: Endpoint;
  /** `POST /attest/location` → 200 with the attestation result of a `lah-bundle`. */
  location: Endpoint;
  /** `GET /.well-known/jwks.json` → the result signer's JWKS. */
  jwks: Endpoint;
}

/**
 * Build the attestation endpoints over {@link createAttestationHandlers} (or handlers you built).
 * @public
 */
export function createAttestationEndpoints(
  handlersOrOptions: AttestationHandlers | AttestationHandlersOptions,
  rejectedBy: RejectedBy = 'collector',
): AttestationEndpoints {
  const h =
    typeof (handlersOrOptions as Partial<AttestationHandlers>).enroll === 'function'
      ? (handlersOrOptions as AttestationHandlers)
      : createAttestationHandlers(handlersOrOptions as AttestationHandlersOptions);
  const withBody = () => h.bodyLimitBytes;
  const input = (req: EndpointRequest) => {
    const ct = req.headers['content-type'];
    return {
      body: req.rawBody ?? new Uint8Array(0),
      contentType: typeof ct === 'string' ? ct : undefined,
      requestId: req.requestId,
    };
  };
  const endpoint = (
    bodyLimit: (method: string) => number,
    run: (req: EndpointRequest) => Promise<HttpAnswer> | HttpAnswer,
  ): Endpoint =>
    answering('collector', { rejectedBy }, bodyLimit, async (req) => ({
      kind: 'answer',
      answer: await run(req),
    }));
  return {
    enroll: endpoint(withBody, (req) => h.enroll(input(req))),
    complete: endpoint(withBody, (req) => h.completeEnrollment(req.params?.id ?? '', input(req))),
    location: endpoint(withBody, (req) => h.attestLocation(input(req))),
    jwks: endpoint(NO_BODY, () => h.jwks()),
  };
}
