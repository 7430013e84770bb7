/**
 * One error root: everything the agent SDK throws itself is an AgentError with a stable code and
 * its own name, so `catch (e) { if (e instanceof AgentError) switch (e.code) … }` sees all of them.
 */
import { describe, expect, it } from 'vitest';
import {
  AgentClosedError,
  AgentError,
  AgentOptionsError,
  AgentStateError,
  AttestationClientError,
  CredentialRefusedError,
  DeliveryDeferredError,
  DeliveryError,
  DeliveryUncertainError,
  GeofenceRejection,
  NoLocationError,
  OutboxFullError,
  OutboxLockedError,
  RetriableError,
} from '../src/index.js';

describe('agent errors', () => {
  it('all descend from AgentError and carry their code and name', () => {
    const cases: Array<[AgentError<string>, string, string]> = [
      [new GeofenceRejection(403, { error: 'x' }), 'rejected', 'GeofenceRejection'],
      [new NoLocationError('no_fix', 'no fix'), 'no_fix', 'NoLocationError'],
      [new AgentStateError('unloadable_key', 'bad key'), 'unloadable_key', 'AgentStateError'],
      [new AttestationClientError('bad_response', 'odd'), 'bad_response', 'AttestationClientError'],
      [new OutboxLockedError('/tmp/o', 1), 'outbox_locked', 'OutboxLockedError'],
      [new RetriableError('try again', { status: 503 }), 'retriable', 'RetriableError'],
      [
        new CredentialRefusedError(
          new GeofenceRejection(403, {
            error: 'outside the fence',
            validation_type: 'attestation',
            rejected_by: 'collector',
            request_id: 'r1',
            details: { check: 'geofence' },
          }),
        ),
        'credential_refused',
        'CredentialRefusedError',
      ],
    ];
    for (const [err, code, name] of cases) {
      expect(err, name).toBeInstanceOf(AgentError);
      expect(err, name).toBeInstanceOf(Error);
      expect({ code: err.code, name: err.name }).toEqual({ code, name });
    }
    for (const Cls of [
      AgentClosedError,
      AgentOptionsError,
      DeliveryDeferredError,
      DeliveryError,
      DeliveryUncertainError,
      OutboxFullError,
    ]) {
      expect(Cls.prototype).toBeInstanceOf(AgentError);
    }
  });
});
