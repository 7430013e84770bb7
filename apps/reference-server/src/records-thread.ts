/**
 * The service's side of the record writer thread (records-writer.ts): starts the thread on the first
 * write, hands it complete rows, and settles each write when the thread reports its group's commit.
 * A database fault, or a thread that died, fails the writes it held with `StoreUnavailableError`
 * (503 `upstream`, `record_store`); the next write starts a new thread.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { isSqliteFault, StoreUnavailableError } from '@geofence/verifier';
import type { WriterData, WriterReply, WriterRequest, WriterRow } from './records-writer.js';

/**
 * Starts the thread: the built file next to this module's chunk in dist/, or, when this module runs
 * from the TypeScript sources (tsx, vitest), the source file through tsx's loader (registered in the
 * thread first: Node 20 does not apply a parent's `--import` hooks to a worker's entry).
 */
function startThread(workerData: WriterData): Worker {
  if (!import.meta.url.endsWith('.ts')) {
    return new Worker(new URL('./records-writer.js', import.meta.url), { workerData });
  }
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href;
  const entry = new URL('./records-writer.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData });
}

/** A write waiting for its group's commit. */
interface Waiting {
  thread: Worker;
  resolve(): void;
  reject(e: unknown): void;
}

/** A thread's error report as the error the caller sees (store faults: 503 `record_store`). */
function writerError(e: NonNullable<WriterReply['error']>): Error {
  const err = Object.assign(new Error(e.message), e.code ? { code: e.code } : {});
  return isSqliteFault(err) ? new StoreUnavailableError('record_store', err) : err;
}

/** Writes rows durably on a thread of their own (see records-writer.ts). */
export class RecordWriterThread {
  private thread: Worker | undefined;
  private readonly waiting = new Map<number, Waiting>();
  private nextSeq = 0;

  /** @param data - the database file and its lock wait, given to every thread started */
  constructor(private readonly data: WriterData) {}

  /** Resolves once `row` is committed (fsynced); rejects when it is not. */
  write(row: WriterRow): Promise<void> {
    return new Promise((resolve, reject) => {
      let thread: Worker;
      try {
        thread = this.ensureThread();
      } catch (err) {
        reject(new StoreUnavailableError('record_store', err));
        return;
      }
      const seq = this.nextSeq++;
      this.waiting.set(seq, { thread, resolve, reject });
      // Keeps the process alive while a commit is outstanding (and only then).
      thread.ref();
      thread.postMessage({ seq, row } satisfies WriterRequest);
    });
  }

  /** Ends the thread after it has committed what it was given; resolves when it has exited. */
  close(): Promise<void> {
    const t = this.thread;
    this.thread = undefined;
    if (!t) return Promise.resolve();
    return new Promise((resolve) => {
      t.once('exit', () => resolve());
      t.ref();
      t.postMessage('close');
    });
  }

  private ensureThread(): Worker {
    if (this.thread) return this.thread;
    const t = startThread(this.data);
    t.on('message', (reply: WriterReply) => this.settle(t, reply));
    t.on('error', (err) => this.gone(t, err));
    t.on('exit', (code) => this.gone(t, new Error(`record writer thread exited with code ${code}`)));
    t.unref();
    this.thread = t;
    return t;
  }

  private settle(t: Worker, reply: WriterReply): void {
    const err = reply.error ? writerError(reply.error) : undefined;
    for (const seq of reply.seqs) {
      const w = this.waiting.get(seq);
      if (!w) continue;
      this.waiting.delete(seq);
      if (err) w.reject(err);
      else w.resolve();
    }
    if (this.waiting.size === 0) t.unref();
  }

  /** The thread died: its uncommitted writes fail (503), the next write starts a new thread. */
  private gone(t: Worker, cause: unknown): void {
    if (this.thread === t) this.thread = undefined;
    const err = new StoreUnavailableError('record_store', cause);
    for (const [seq, w] of this.waiting) {
      if (w.thread !== t) continue;
      this.waiting.delete(seq);
      w.reject(err);
    }
  }
}
