import { createRequire } from 'node:module';

/** Result envelope of every native command: the value plus the time spent inside ESAPI. */
export interface NativeResult<T> {
  value: T;
  esapiNs: number;
}

/** A key reference as the addon takes it. */
export interface NativeKeyRef {
  blob?: Uint8Array | undefined;
  handle?: number | undefined;
}

/** One PCR bank selection with a numeric TPM_ALG_ID. */
export interface NativePcrSel {
  alg: number;
  pcrs: number[];
}

/** PCR values as the addon returns them. */
export interface NativePcrs {
  values: Array<{ alg: number; pcr: number; value: Uint8Array }>;
  updateCounter: number;
}

/** Raw key data returned by createKey / loadKey. */
export interface NativeKey {
  public: Uint8Array;
  name: Uint8Array;
  blob: Uint8Array;
  handle?: number;
}

/** The addon's Context class: one TCTI + ESYS context; every method returns a Promise. */
export interface NativeContext {
  open(tcti: string, flushTransients: boolean, cacheSrk: boolean): Promise<NativeResult<null>>;
  close(): Promise<NativeResult<null>>;
  info(): Promise<NativeResult<Array<[number, number]>>>;
  getRandom(n: number): Promise<NativeResult<Uint8Array>>;
  pcrRead(sel: NativePcrSel[]): Promise<NativeResult<NativePcrs>>;
  pcrExtend(index: number, digest: Uint8Array): Promise<NativeResult<null>>;
  ekPublic(alg: number): Promise<NativeResult<{ public: Uint8Array; handle: number }>>;
  nvReadFirst(indices: number[]): Promise<NativeResult<{ index: number; data: Uint8Array } | null>>;
  createKey(restricted: boolean, alg: number, persistAt?: number): Promise<NativeResult<NativeKey>>;
  loadKey(blob: Uint8Array): Promise<NativeResult<NativeKey>>;
  persist(blob: Uint8Array, handle: number): Promise<NativeResult<number>>;
  evict(handle: number): Promise<NativeResult<null>>;
  sign(key: NativeKeyRef, digest: Uint8Array): Promise<NativeResult<Uint8Array>>;
  certify(
    object: NativeKeyRef,
    ak: NativeKeyRef,
    qualifyingData: Uint8Array,
  ): Promise<NativeResult<{ attest: Uint8Array; signature: Uint8Array }>>;
  quote(
    ak: NativeKeyRef,
    sel: NativePcrSel[],
    qualifyingData: Uint8Array,
  ): Promise<NativeResult<{ attest: Uint8Array; signature: Uint8Array; pcrs: NativePcrs }>>;
  activateCredential(
    ak: NativeKeyRef,
    ekAlg: number,
    credentialBlob: Uint8Array,
    encryptedSecret: Uint8Array,
  ): Promise<NativeResult<Uint8Array>>;
}

/** The addon module. */
export interface NativeAddon {
  Context: new () => NativeContext;
  rcDecode(rc: number): string;
}

let addon: NativeAddon | undefined;

/**
 * Loads the compiled addon on first use (never at import, so importing the package has no
 * side effects and works where only `startSwtpm` or the types are needed).
 * The relative path is the same from `src/` and `dist/`.
 */
export function loadAddon(): NativeAddon {
  if (!addon) {
    // tpm2-tss logs TPM errors (e.g. probing an absent persistent EK) to stderr; they are reported
    // through TpmError instead. An explicit TSS2_LOG setting wins.
    process.env.TSS2_LOG ??= 'all+NONE';
    const require = createRequire(import.meta.url);
    const path = process.env.GEOFENCE_TPM_ADDON ?? '../build/Release/geofence_tpm.node';
    try {
      addon = require(path) as NativeAddon;
    } catch (err) {
      throw new Error(
        `@geofence/native-tpm: cannot load the native addon (${path}): ${(err as Error).message}. ` +
          'It is built on install; rebuild it with `npm rebuild @geofence/native-tpm` ' +
          '(needs libtss2-dev: apt-get install libtss2-dev).',
        { cause: err },
      );
    }
  }
  return addon;
}
