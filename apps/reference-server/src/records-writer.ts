/**
 * Worker thread that commits accepted records for `SqliteRecordStore.insert`: its own
 * connection to the records database (WAL, `synchronous = FULL`), so the fsync of each commit blocks
 * this thread and never the service's event loop. Rows that arrive while a commit is being fsynced
 * are written together in the next transaction (group commit: one fsync for the group).
 *
 * Self-contained on purpose (no imports from this package): the thread is started from the built
 * `dist/records-writer.js` or, from the sources, through tsx.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/** What the thread is started with. */
export interface WriterData {
  path: string;
  busyTimeoutMs: number;
}

/** One row to insert, already complete (id and receive time are chosen by the caller). */
export interface WriterRow {
  id: string;
  agentName: string;
  keyid: string;
  receivedAt: string;
  body: Uint8Array;
  verdict: string;
  headers: string;
  /** JSON of the record's HTTP-signature facts, or null. */
  httpSignature: string | null;
}

/** A request to the thread: rows to commit under the caller's sequence numbers. */
export interface WriterRequest {
  seq: number;
  row: WriterRow;
}

/** The answer for one committed (or failed) group: `error` set when the transaction did not commit. */
export interface WriterReply {
  seqs: number[];
  error?: { message: string; code?: string | undefined };
}

function main(port: NonNullable<typeof parentPort>, data: WriterData): void {
  const db = new Database(data.path);
  db.pragma('journal_mode = WAL');
  // FULL: the WAL is fsynced at every commit, so an acknowledged record survives power loss too.
  db.pragma('synchronous = FULL');
  // Waiting for another process's lock blocks only this thread; the caller answers 503 on a fault.
  db.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
  const insert = db.prepare(
    'INSERT INTO records (id, agent_name, keyid, received_at, body, verdict, headers, http_signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const commit = db.transaction((rows: WriterRequest[]) => {
    for (const { row: r } of rows) {
      insert.run(
        r.id,
        r.agentName,
        r.keyid,
        r.receivedAt,
        Buffer.from(r.body),
        r.verdict,
        r.headers,
        r.httpSignature,
      );
    }
  });

  let queue: WriterRequest[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    const batch = queue;
    if (batch.length === 0) return;
    queue = [];
    const seqs = batch.map((b) => b.seq);
    let reply: WriterReply;
    try {
      commit(batch);
      reply = { seqs };
    } catch (err) {
      const e = err as { message?: string; code?: unknown };
      reply = {
        seqs,
        error: { message: String(e.message ?? err), code: typeof e.code === 'string' ? e.code : undefined },
      };
    }
    port.postMessage(reply);
  };
  port.on('message', (m: WriterRequest | 'close') => {
    if (m === 'close') {
      if (queue.length > 0) flush();
      db.close();
      port.close();
      return;
    }
    queue.push(m);
    // After the messages already waiting (those that arrived during the last commit) are queued.
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
}

if (parentPort) main(parentPort, workerData as WriterData);
