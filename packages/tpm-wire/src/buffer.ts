import { TpmWireError } from './errors.js';

/**
 * Bounds-checked big-endian reader over a byte array. Every read checks the remaining length first,
 * so malformed input can only ever produce a {@link TpmWireError}.
 * @internal
 */
export class Reader {
  private readonly view: DataView;
  /** Current read offset. */
  offset = 0;

  constructor(
    readonly bytes: Uint8Array,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  private need(n: number, field: string): void {
    if (n > this.remaining) {
      throw new TpmWireError(
        'truncated',
        `${this.what}: truncated reading ${field} (need ${n} bytes at offset ${this.offset}, have ${this.remaining})`,
      );
    }
  }

  u8(field: string): number {
    this.need(1, field);
    const v = this.view.getUint8(this.offset);
    this.offset += 1;
    return v;
  }

  u16(field: string): number {
    this.need(2, field);
    const v = this.view.getUint16(this.offset);
    this.offset += 2;
    return v;
  }

  u32(field: string): number {
    this.need(4, field);
    const v = this.view.getUint32(this.offset);
    this.offset += 4;
    return v;
  }

  u64(field: string): bigint {
    this.need(8, field);
    const v = this.view.getBigUint64(this.offset);
    this.offset += 8;
    return v;
  }

  /** Reads `n` bytes and returns a copy (callers may keep it after the input is reused). */
  bytesN(n: number, field: string): Uint8Array {
    this.need(n, field);
    const v = this.bytes.slice(this.offset, this.offset + n);
    this.offset += n;
    return v;
  }

  /** Reads a TPM2B: a 2-byte size followed by that many bytes; `max` is the TPM 2.0 maximum for the type. */
  tpm2b(field: string, max: number): Uint8Array {
    const size = this.u16(`${field}.size`);
    if (size > max) {
      throw new TpmWireError('oversized', `${this.what}: ${field} size ${size} exceeds maximum ${max}`);
    }
    return this.bytesN(size, field);
  }

  /** Returns the rest of the input. */
  rest(): Uint8Array {
    const v = this.bytes.slice(this.offset);
    this.offset = this.bytes.length;
    return v;
  }

  /** Asserts the whole input was consumed. */
  end(): void {
    if (this.remaining !== 0) {
      throw new TpmWireError('trailing_data', `${this.what}: ${this.remaining} trailing bytes`);
    }
  }
}

/**
 * Growable big-endian writer.
 * @internal
 */
export class Writer {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(b: Uint8Array): this {
    this.chunks.push(b);
    this.length += b.length;
    return this;
  }

  u8(v: number): this {
    return this.push(Uint8Array.of(v & 0xff));
  }

  u16(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff)
      throw new TpmWireError('invalid_argument', `u16 out of range: ${v}`);
    return this.push(Uint8Array.of(v >>> 8, v & 0xff));
  }

  u32(v: number): this {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
      throw new TpmWireError('invalid_argument', `u32 out of range: ${v}`);
    }
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v);
    return this.push(b);
  }

  u64(v: bigint): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v);
    return this.push(b);
  }

  bytes(b: Uint8Array): this {
    return this.push(Uint8Array.from(b));
  }

  /** Writes a TPM2B (2-byte size + bytes), refusing sizes above the type's maximum. */
  tpm2b(b: Uint8Array, max: number, field: string): this {
    if (b.length > max)
      throw new TpmWireError('oversized', `${field} size ${b.length} exceeds maximum ${max}`);
    this.u16(b.length);
    return this.bytes(b);
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/** Concatenates byte arrays. @internal */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const w = new Writer();
  for (const p of parts) w.bytes(p);
  return w.finish();
}

/** Wraps bytes in a TPM2B size prefix. @internal */
export function tpm2b(b: Uint8Array, max = 0xffff, field = 'TPM2B'): Uint8Array {
  return new Writer().tpm2b(b, max, field).finish();
}

/** Constant-time-ish equality for public values (length leak is fine). @internal */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= (a[i] as number) ^ (b[i] as number);
  return d === 0;
}

/** Lowercase hex. @internal */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}
