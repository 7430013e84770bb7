import { parseAttest, pcrDigest } from '@geofence/tpm-wire';
import { TpmError, toTpmError } from './errors.js';
import {
  loadAddon,
  type NativeContext,
  type NativeKey,
  type NativePcrs,
  type NativeResult,
} from './native.js';
import type {
  CertifyResult,
  EkAlg,
  KeyAlg,
  PcrBank,
  PcrSelection,
  PcrValues,
  QuoteResult,
  TpmCommandStats,
  TpmInfo,
  TpmKey,
} from './types.js';

/** Options of {@link Tpm.open}. @public */
export interface TpmOpenOptions {
  /**
   * tpm2-tss TCTI configuration, e.g. `swtpm:host=127.0.0.1,port=2321`, `device:/dev/tpmrm0`,
   * `tabrmd:bus_type=system`. An empty string uses the tctildr default.
   */
  tcti: string;
  /**
   * Flush every loaded transient object and session when opening. Default `false`. Useful on a
   * simulator without resource manager (swtpm) that you are the only user of, after a process died
   * with objects loaded; never do this while other users of the same TPM are active (it flushes their
   * objects too — this library recovers from that, others may not).
   */
  flushTransients?: boolean;
  /**
   * Keep the storage root key loaded between commands. Default: `true` when the TCTI goes through a
   * resource manager (`device:/dev/tpmrm0`, `tabrmd`), which virtualises object slots, and `false`
   * otherwise: without a resource manager (swtpm, `/dev/tpm0`) all users share about three object
   * slots, so an idle `Tpm` holds none; the SRK is then reloaded from a saved context per command
   * (TPM2_ContextLoad, much cheaper than re-deriving it).
   */
  cacheSrk?: boolean;
}

/** Options of {@link Tpm.activateCredential}. @public */
export interface ActivateCredentialOptions {
  /** Which EK the credential was made for. Default `'rsa-2048'`. */
  ekAlg?: EkAlg;
}

const ALG_ID: Record<EkAlg, number> = { 'rsa-2048': 1, 'ecc-p256': 2, 'ecc-p384': 3 };
const BANK_ID: Record<PcrBank, number> = { sha1: 0x0004, sha256: 0x000b, sha384: 0x000c, sha512: 0x000d };
const BANK_BY_ID = new Map<number, PcrBank>(Object.entries(BANK_ID).map(([k, v]) => [v, k as PcrBank]));

/** EK certificate NV indices of the TCG EK Credential Profile (low range) per EK algorithm. */
const EK_CERT_NV: Record<EkAlg, number[]> = {
  'rsa-2048': [0x01c00002],
  'ecc-p256': [0x01c0000a],
  'ecc-p384': [0x01c00016],
};

function checkAlg(alg: unknown): KeyAlg {
  if (alg !== 'rsa-2048' && alg !== 'ecc-p256') {
    throw new TpmError('invalid_argument', `unsupported key algorithm ${JSON.stringify(alg)}`);
  }
  return alg;
}

function checkEkAlg(alg: unknown): EkAlg {
  return alg === 'ecc-p384' ? alg : checkAlg(alg);
}

function checkBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TpmError('invalid_argument', `${what} must be a Uint8Array`);
  return value;
}

function checkKey(key: unknown, what: string): TpmKey {
  if (typeof key !== 'object' || key === null)
    throw new TpmError('invalid_argument', `${what} must be a TpmKey`);
  const k = key as TpmKey;
  if (k.handle === undefined && !(k.blob instanceof Uint8Array)) {
    throw new TpmError('invalid_argument', `${what} has neither a blob nor a persistent handle`);
  }
  return k;
}

function toNativeSelection(selection: PcrSelection): Array<{ alg: number; pcrs: number[] }> {
  if (!Array.isArray(selection) || selection.length === 0) {
    throw new TpmError('invalid_argument', 'PCR selection must be a non-empty array');
  }
  // One entry per bank (a bank listed twice is merged), as a TPML_PCR_SELECTION has it.
  const banks = new Map<number, Set<number>>();
  for (const { bank, pcrs } of selection) {
    const alg = Object.hasOwn(BANK_ID, bank) ? BANK_ID[bank] : undefined;
    if (alg === undefined) throw new TpmError('invalid_argument', `unknown PCR bank ${JSON.stringify(bank)}`);
    if (!Array.isArray(pcrs) || pcrs.some((p) => !Number.isInteger(p) || p < 0 || p > 23)) {
      throw new TpmError('invalid_argument', 'PCR indices must be integers in 0..23');
    }
    const set = banks.get(alg) ?? new Set<number>();
    for (const p of pcrs) set.add(p);
    banks.set(alg, set);
  }
  return [...banks].map(([alg, set]) => ({ alg, pcrs: [...set].sort((a, b) => a - b) }));
}

function toPcrValues(pcrs: NativePcrs): PcrValues {
  const out: PcrValues = {};
  for (const { alg, pcr, value } of pcrs.values) {
    const bank = BANK_BY_ID.get(alg) ?? `alg_0x${alg.toString(16)}`;
    out[bank] ??= {};
    (out[bank] as Record<number, Uint8Array>)[pcr] = value;
  }
  return out;
}

function toKey(k: NativeKey): TpmKey {
  const key: TpmKey = { public: k.public, name: k.name, blob: k.blob };
  if (k.handle !== undefined) key.handle = k.handle;
  return key;
}

/** Length of a DER TLV at the start of `der`, or undefined when it is not one. */
function derLength(der: Uint8Array): number | undefined {
  if (der.length < 2 || der[0] !== 0x30) return undefined;
  const first = der[1] as number;
  if (first < 0x80) return 2 + first;
  const n = first & 0x7f;
  if (n === 0 || n > 4 || der.length < 2 + n) return undefined;
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + (der[2 + i] as number);
  return 2 + n + len;
}

function fourCc(v: number): string {
  const s = String.fromCharCode((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: TPM strings are NUL padded
  return s.replace(/[\u0000\s]+$/, '').replace(/^[\u0000\s]+/, '');
}

function decodeInfo(props: Array<[number, number]>): TpmInfo {
  const p: Record<number, number> = {};
  for (const [k, v] of props) p[k] = v;
  const get = (k: number) => p[k] ?? 0;
  const fw1 = get(0x10b);
  const fw2 = get(0x10c);
  return {
    manufacturer: fourCc(get(0x105)),
    vendorString: [0x106, 0x107, 0x108, 0x109].map((k) => fourCc(get(k))).join(''),
    firmwareVersion: `${fw1 >>> 16}.${fw1 & 0xffff}.${fw2 >>> 16}.${fw2 & 0xffff}`,
    family: fourCc(get(0x100)),
    specRevision: (get(0x102) / 100).toFixed(2),
    specLevel: get(0x101),
    specDate: `${get(0x104)}-${String(get(0x103)).padStart(3, '0')}`,
    transientSlots: get(0x10e),
    nvBufferMax: get(0x12c),
    properties: p,
  };
}

/**
 * An open TPM 2.0, driven through tpm2-tss ESAPI by a native addon.
 *
 * Every method returns a Promise and runs its TPM command on a libuv worker thread, so the event loop
 * never waits for the TPM. Commands on one `Tpm` run one at a time, in call order (ESAPI contexts are
 * not thread-safe, and a TPM without resource manager has only a few object slots): each command loads
 * what it needs, uses it and flushes it before the next one starts.
 *
 * Authorization: owner and endorsement hierarchies and all keys created here use empty auth values
 * (the default of a fresh TPM and of swtpm).
 *
 * @example
 * ```ts
 * const tpm = await Tpm.open({ tcti: 'swtpm:host=127.0.0.1,port=2321' });
 * const key = await tpm.createSigningKey({ alg: 'ecc-p256' });
 * const sig = await tpm.sign(key, createHash('sha256').update('hello').digest());
 * await tpm.close();
 * ```
 * @public
 */
export class Tpm {
  readonly #ctx: NativeContext;
  readonly #tcti: string;
  #tail: Promise<unknown> = Promise.resolve();
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #stats = new Map<string, TpmCommandStats>();

  private constructor(ctx: NativeContext, tcti: string) {
    this.#ctx = ctx;
    this.#tcti = tcti;
  }

  /**
   * Connects to a TPM. Rejects with a {@link TpmError} when the TCTI cannot be loaded or the TPM does
   * not answer.
   */
  static async open(options: TpmOpenOptions): Promise<Tpm> {
    if (typeof options?.tcti !== 'string') throw new TpmError('invalid_argument', 'tcti must be a string');
    let Context: ReturnType<typeof loadAddon>['Context'];
    try {
      ({ Context } = loadAddon());
    } catch (err) {
      throw new TpmError('internal', (err as Error).message, { cause: err });
    }
    const ctx = new Context();
    const flush = options.flushTransients ?? false;
    const cacheSrk = options.cacheSrk ?? /tpmrm|tabrmd/.test(options.tcti);
    try {
      await ctx.open(options.tcti, flush, cacheSrk);
    } catch (err) {
      throw toTpmError(err);
    }
    return new Tpm(ctx, options.tcti);
  }

  /** The TCTI configuration this TPM was opened with. */
  get tcti(): string {
    return this.#tcti;
  }

  /** Whether {@link Tpm.close} was called. */
  get closed(): boolean {
    return this.#closing;
  }

  /**
   * Waits for queued commands, flushes the cached storage key and disconnects. Idempotent. Calls made
   * after `close()` reject with `TpmError` code `closed`.
   */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closing = true;
      this.#closed = this.#tail.then(async () => {
        await this.#ctx.close();
      });
    }
    return this.#closed;
  }

  /**
   * Cumulative timing per command name (`sign`, `quote`, ...): calls, errors, time inside ESAPI,
   * total time, time queued. `totalMs - esapiMs` is the addon's own overhead.
   */
  stats(): Record<string, TpmCommandStats> {
    return Object.fromEntries([...this.#stats].map(([k, v]) => [k, { ...v }]));
  }

  /** Resets the counters of {@link Tpm.stats}. */
  resetStats(): void {
    this.#stats.clear();
  }

  /** Runs a native command after the previous one finished (FIFO), recording its timing. */
  #run<T>(name: string, fn: (ctx: NativeContext) => Promise<NativeResult<T>>): Promise<T> {
    if (this.#closing)
      return Promise.reject(new TpmError('closed', `${name}: TPM is closed`, { command: name }));
    const queuedAt = performance.now();
    const result = this.#tail.then(async () => {
      const start = performance.now();
      const s = this.#stats.get(name) ?? { calls: 0, errors: 0, esapiMs: 0, totalMs: 0, queuedMs: 0 };
      this.#stats.set(name, s);
      s.calls++;
      s.queuedMs += start - queuedAt;
      try {
        const r = await fn(this.#ctx);
        s.esapiMs += r.esapiNs / 1e6;
        return r.value;
      } catch (err) {
        s.errors++;
        throw toTpmError(err);
      } finally {
        s.totalMs += performance.now() - start;
      }
    });
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /** Manufacturer, firmware version, specification revision and the other fixed properties. */
  async info(): Promise<TpmInfo> {
    return decodeInfo(await this.#run('info', (c) => c.info()));
  }

  /** `n` bytes from the TPM's random number generator (several TPM2_GetRandom calls if needed). */
  async getRandom(n: number): Promise<Uint8Array> {
    if (!Number.isInteger(n) || n < 0 || n > 65536) {
      return Promise.reject(new TpmError('invalid_argument', 'getRandom: n must be an integer in 0..65536'));
    }
    return this.#run('getRandom', (c) => c.getRandom(n));
  }

  /** Reads PCR values (any number of PCRs; one consistent snapshot). */
  async pcrRead(selection: PcrSelection): Promise<PcrValues> {
    const sel = toNativeSelection(selection);
    return toPcrValues(await this.#run('pcrRead', (c) => c.pcrRead(sel)));
  }

  /** Extends PCR `index` (0..23) in the SHA-256 bank with a 32-byte digest. */
  async pcrExtend(index: number, digest: Uint8Array): Promise<void> {
    checkBytes(digest, 'digest');
    await this.#run('pcrExtend', (c) => c.pcrExtend(index, digest));
  }

  /**
   * The endorsement key's public area (TPM2B_PUBLIC): the persistent EK (0x81010001 RSA, 0x81010002
   * ECC P-256, 0x81010016 ECC P-384) when present with the requested algorithm, else the primary
   * created from the TCG EK template (L-1 / L-2 / H-3), flushed after reading.
   */
  async ekPublic(alg: EkAlg = 'rsa-2048'): Promise<Uint8Array> {
    const a = ALG_ID[checkEkAlg(alg)];
    return (await this.#run('ekPublic', (c) => c.ekPublic(a))).public;
  }

  /**
   * The EK certificate (DER) from NV: 0x01C00002 for RSA-2048, 0x01C0000A for ECC P-256, 0x01C00016 for
   * ECC P-384; `null` when the index is not defined. (swtpm provisions certificates for its RSA-2048
   * and ECC P-384 EKs, not for a P-256 EK.)
   */
  async ekCertificate(alg: EkAlg = 'rsa-2048'): Promise<Uint8Array | null> {
    const indices = EK_CERT_NV[checkEkAlg(alg)];
    const r = await this.#run('ekCertificate', (c) => c.nvReadFirst(indices));
    if (!r) return null;
    // Certificates in NV may be padded; keep exactly the DER object.
    const len = derLength(r.data);
    return len !== undefined && len <= r.data.length ? r.data.subarray(0, len) : r.data;
  }

  /**
   * Creates an attestation key: a restricted signing key (RSA-2048 RSASSA-SHA256 or ECC P-256
   * ECDSA-SHA256) with fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign.
   */
  async createAk(options: { alg: KeyAlg }): Promise<TpmKey> {
    const a = ALG_ID[checkAlg(options?.alg)];
    return toKey(await this.#run('createAk', (c) => c.createKey(true, a)));
  }

  /**
   * Creates an application signing key: an unrestricted signing key with fixedTPM, fixedParent,
   * sensitiveDataOrigin, userWithAuth, sign. With `persistAt` (0x81000000..0x81FFFFFF) it is also made
   * persistent at that handle.
   */
  async createSigningKey(options: { alg: KeyAlg; persistAt?: number }): Promise<TpmKey> {
    const a = ALG_ID[checkAlg(options?.alg)];
    const persistAt = options.persistAt;
    return toKey(await this.#run('createSigningKey', (c) => c.createKey(false, a, persistAt)));
  }

  /** Loads a key blob to check it belongs to this TPM, returning its public area and TPM-computed Name. */
  async loadKey(blob: Uint8Array): Promise<TpmKey> {
    checkBytes(blob, 'blob');
    return toKey(await this.#run('loadKey', (c) => c.loadKey(blob)));
  }

  /** Makes a key persistent at `handle` (0x81000000..0x81FFFFFF); returns the key with `handle` set. */
  async persist(key: TpmKey, handle: number): Promise<TpmKey> {
    const k = checkKey(key, 'key');
    const blob = checkBytes(k.blob, 'key.blob');
    await this.#run('persist', (c) => c.persist(blob, handle));
    return { ...k, handle };
  }

  /** Removes the persistent object at `handle`. */
  async evict(handle: number): Promise<void> {
    await this.#run('evict', (c) => c.evict(handle));
  }

  /**
   * Signs a 32-byte SHA-256 digest with the key's scheme. ECDSA: raw r‖s (64 bytes, each half
   * left-padded); RSA: RSASSA-PKCS1-v1_5 signature (256 bytes).
   */
  async sign(key: TpmKey, digest: Uint8Array): Promise<Uint8Array> {
    const k = checkKey(key, 'key');
    checkBytes(digest, 'digest');
    return this.#run('sign', (c) => c.sign(k, digest));
  }

  /** TPM2_Certify: `ak` attests that `object` is loaded in this TPM (qualifyingData ≤ 64 bytes). */
  async certify(object: TpmKey, ak: TpmKey, qualifyingData: Uint8Array): Promise<CertifyResult> {
    const o = checkKey(object, 'object');
    const a = checkKey(ak, 'ak');
    checkBytes(qualifyingData, 'qualifyingData');
    return this.#run('certify', (c) => c.certify(o, a, qualifyingData));
  }

  /**
   * TPM2_Quote over `selection`, signed by `ak`, plus the PCR values read right after it under the same
   * lock. (Another process extending a PCR in between makes the values disagree with the quote's PCR
   * digest; verifiers detect that.)
   */
  async quote(ak: TpmKey, selection: PcrSelection, qualifyingData: Uint8Array): Promise<QuoteResult> {
    const a = checkKey(ak, 'ak');
    const sel = toNativeSelection(selection);
    checkBytes(qualifyingData, 'qualifyingData');
    // The PCRs are read right after the quote under the same lock, but another TPM user (a different
    // process on a shared TPM) may extend one in between; then the values would not match the quoted
    // digest. Retry a few times so callers get evidence a verifier can check.
    for (let attempt = 1; ; attempt++) {
      const r = await this.#run('quote', (c) => c.quote(a, sel, qualifyingData));
      const pcrValues = toPcrValues(r.pcrs);
      let quoted: ReturnType<typeof parseAttest>['quote'];
      try {
        quoted = parseAttest(r.attest).quote;
      } catch (err) {
        throw new TpmError('internal', 'TPM2_Quote: the TPM returned an unparsable TPMS_ATTEST', {
          command: 'TPM2_Quote',
          cause: err,
        });
      }
      if (quoted && Buffer.from(pcrDigest(quoted.pcrSelect, pcrValues, 'sha256')).equals(quoted.pcrDigest)) {
        return { attest: r.attest, signature: r.signature, pcrValues };
      }
      if (attempt >= 3) {
        throw new TpmError('tpm_error', 'TPM2_Quote: PCR values kept changing during the quote', {
          command: 'TPM2_Quote',
        });
      }
    }
  }

  /**
   * TPM2_ActivateCredential: recovers the secret of a credential made (e.g. by `makeCredential` of
   * `@geofence/tpm-wire`) for this TPM's EK and the Name of `ak`. The EK is used through a policy
   * session satisfying PolicySecret(TPM_RH_ENDORSEMENT). `credentialBlob` / `encryptedSecret` are the
   * marshalled TPM2B_ID_OBJECT / TPM2B_ENCRYPTED_SECRET, with their size prefixes.
   */
  async activateCredential(
    ak: TpmKey,
    credentialBlob: Uint8Array,
    encryptedSecret: Uint8Array,
    options: ActivateCredentialOptions = {},
  ): Promise<Uint8Array> {
    const a = checkKey(ak, 'ak');
    const ekAlg = ALG_ID[checkEkAlg(options.ekAlg ?? 'rsa-2048')];
    checkBytes(credentialBlob, 'credentialBlob');
    checkBytes(encryptedSecret, 'encryptedSecret');
    return this.#run('activateCredential', (c) =>
      c.activateCredential(a, ekAlg, credentialBlob, encryptedSecret),
    );
  }
}
