/**
 * The agent's TPM identity: opens the TPM (when given a TCTI), loads or creates the AppSK once, and
 * hands out the key's public identity and a signer over it. Everything that signs goes through here.
 */
import type { Signer } from '@geofence/http-sig';
import { Tpm, tpmSigner } from '@geofence/native-tpm';
import type { PayloadAlgorithm } from '@geofence/protocol';
import { keyIdOfPublic, parsePublic, publicToPem } from '@geofence/tpm-wire';
import { isTpm } from './options.js';
import type { AgentState, AppKeyAlgorithm, StoredTpmKey } from './state.js';

/** Public identity of the agent's AppSK. */
export interface AgentIdentity {
  /** keyid = lowercase hex SHA-256 of the SPKI DER (SPEC §3). */
  keyid: string;
  /** RFC 9421 / payload algorithm. */
  alg: PayloadAlgorithm;
  /** AppSK public key, PEM (SPKI). */
  publicKeyPem: string;
  /** TPM2B_PUBLIC of the AppSK. */
  tpmPublic: Uint8Array;
}

/** Time spent in the TPM and in total, accumulated over all deliveries (for benchmarks). */
export interface AgentTimings {
  /** Deliveries measured. */
  deliveries: number;
  /** TPM sign calls. */
  signatures: number;
  /** ms spent in TPM sign calls. */
  tpmMs: number;
  /** ms spent building, signing and posting messages, in total (includes `tpmMs`). */
  totalMs: number;
  /**
   * ms requests to the gateway spent on the wire (`GET /nonce`, `POST /metrics`, and any other):
   * from handing each to the HTTP client until the last byte of its answer was read — framing, TLS,
   * the round trip and the gateway's processing. Parsing the answer is not part of it.
   */
  networkMs: number;
}

/** The started identity: the open TPM, the loaded AppSK, its public identity and a signer. */
export interface AgentKeys {
  tpm: Tpm;
  key: StoredTpmKey;
  identity: AgentIdentity;
  signer: Signer;
}

const ALGS: Record<AppKeyAlgorithm, PayloadAlgorithm> = {
  'ecc-p256': 'ecdsa-p256-sha256',
  'rsa-2048': 'rsa-v1_5-sha256',
};

/**
 * Starts the TPM identity once, on first use: concurrent callers share the one start, and a failed
 * start (TPM unreachable) is forgotten so the next call tries again.
 */
export class TpmIdentity {
  private started: Promise<AgentKeys> | undefined;
  private opened: Tpm | undefined;
  private known: AgentIdentity | undefined;

  constructor(
    private readonly tpmOption: { tcti: string } | Tpm,
    private readonly state: AgentState,
    private readonly algorithm: AppKeyAlgorithm,
    private readonly timings: AgentTimings,
  ) {}

  /** The identity, once a start succeeded (for synchronous status reports). */
  get identity(): AgentIdentity | undefined {
    return this.known;
  }

  /** Opens the TPM and loads (or creates, once) the AppSK; resolves to the same keys every time. */
  start(): Promise<AgentKeys> {
    if (!this.started) {
      const started = this.open();
      this.started = started;
      started.catch(() => {
        if (this.started === started) this.started = undefined;
      });
    }
    return this.started;
  }

  /**
   * Asks the TPM for one random byte (starting the identity when needed). Resolves `true` when
   * it answered within `timeoutMs`, `false` otherwise; never rejects.
   */
  async probe(start: () => Promise<AgentKeys>, timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
      timer.unref();
    });
    const probe = start()
      .then(({ tpm }) => tpm.getRandom(1))
      .then(
        () => true as const,
        () => false as const,
      );
    try {
      return await Promise.race([probe, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the TPM if this identity opened it (an open `Tpm` passed in stays the caller's). */
  async close(): Promise<void> {
    if (this.opened) await this.opened.close();
  }

  private async open(): Promise<AgentKeys> {
    let tpm: Tpm;
    if (isTpm(this.tpmOption)) {
      tpm = this.tpmOption;
    } else {
      tpm = await Tpm.open({ tcti: this.tpmOption.tcti });
      this.opened = tpm;
    }
    const key = await this.state.loadOrCreateAppKey(tpm, this.algorithm);
    const pub = parsePublic(key.public);
    const identity: AgentIdentity = {
      keyid: keyIdOfPublic(pub),
      alg: ALGS[this.algorithm],
      publicKeyPem: publicToPem(pub),
      tpmPublic: key.public,
    };
    const timings = this.timings;
    const tpmSign = tpmSigner(tpm, key, { keyid: identity.keyid, alg: identity.alg });
    // Same signer, timed: the benchmark splits send() into TPM time and everything else.
    const signer: Signer = {
      keyid: tpmSign.keyid,
      alg: tpmSign.alg,
      async sign(data) {
        const t0 = performance.now();
        try {
          return await tpmSign.sign(data);
        } finally {
          timings.tpmMs += performance.now() - t0;
          timings.signatures++;
        }
      },
    };
    this.known = identity;
    return { tpm, key, identity, signer };
  }
}
