import type { Readable } from 'node:stream';
import { GeofenceError } from '../errors.js';

function tooLarge(limit: number): GeofenceError {
  return new GeofenceError('request_validation', 'Payload too large', { status: 413, details: { limit } });
}

/**
 * Read a request body up to `limit` bytes. Rejects with 413 as soon as `Content-Length` announces
 * more, or as soon as the bytes received exceed the limit — the rest is never buffered: the stream
 * is switched to discard mode so the connection can still carry the 413 answer.
 * @public
 */
export function readBody(
  stream: Readable & { headers?: Record<string, unknown> },
  limit: number,
): Promise<Buffer> {
  const declared = stream.headers?.['content-length'];
  if (typeof declared === 'string' && /^\d+$/.test(declared) && Number(declared) > limit) {
    stream.resume();
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        chunks.length = 0;
        stream.resume(); // discard the remainder without keeping it
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(
        new GeofenceError('request_validation', 'Invalid payload structure', {
          details: { reason: 'body could not be read' },
          cause: err,
        }),
      );
    };
    const onAborted = () => onError(new Error('request aborted'));
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('aborted', onAborted);
  });
}
