import { randomBytes } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import {
  type AgentRecord,
  type AgentRecordInput,
  type AgentStatus,
  checkExpectation,
  RecordIndex,
  type Registry,
  RegistryError,
  type RegistryExpectation,
  stampRecord,
  validateAgentRecord,
  withStatus,
} from './registry.js';
import { isFileFault, StoreUnavailableError } from './store-fault.js';

/**
 * Options of {@link JsonFileRegistry.open}.
 * @public
 */
export interface JsonFileRegistryOptions {
  /** The JSON file: `{"agents": [AgentRecord, ...]}` (created on first write when missing). */
  path: string;
  /** Watch the file and reload on change (default true). */
  watch?: boolean;
  /** Called when a reload fails (invalid JSON or record): the previous content stays in force. */
  onError?: (err: Error) => void;
  /** Called after each successful reload triggered by a file change. */
  onReload?: (count: number) => void;
  /** Clock (tests). */
  now?: () => Date;
}

/**
 * JSON-file registry, meant for operator-edited allowlists (for example a gateway's). The file is
 * watched and re-read on change (hot reload); an edit that fails validation is reported through
 * `onError` and ignored — the last valid content stays in force (fail safe, never fail open).
 * Writes go to a temporary file that is fsynced and atomically renamed over the original. One
 * writer process at a time (use {@link SqliteRegistry} for several writers).
 * @public
 */
export class JsonFileRegistry implements Registry {
  private readonly index = new RecordIndex();
  private watcher: FSWatcher | undefined;
  private lastText: string | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  private constructor(private readonly opts: JsonFileRegistryOptions) {}

  /** Load the file (missing file = empty registry) and start watching it. */
  static async open(options: JsonFileRegistryOptions): Promise<JsonFileRegistry> {
    const reg = new JsonFileRegistry(options);
    await reg.load(true);
    if (options.watch !== false) reg.startWatching();
    return reg;
  }

  private startWatching(): void {
    // Watch the directory: editors and our own writer replace the file by rename, which a watch on
    // the file itself would lose.
    const dir = dirname(this.opts.path);
    const name = basename(this.opts.path);
    try {
      this.watcher = watch(dir, { persistent: false }, (_event, file) => {
        if (file !== null && file !== name) return;
        clearTimeout(this.debounce);
        this.debounce = setTimeout(() => {
          this.serial(() => this.load(false)).catch((err: unknown) => this.opts.onError?.(err as Error));
        }, 25);
        this.debounce.unref();
      });
      this.watcher.on('error', (err) => this.opts.onError?.(err));
    } catch (err) {
      this.opts.onError?.(err as Error);
    }
  }

  /** Run `fn` after every earlier load/write (one at a time). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async load(initial: boolean): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.opts.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        if (initial) this.index.replaceAll([]);
        return; // a file being replaced is briefly missing: keep the current content
      }
      throw new RegistryError('storage', `cannot read ${this.opts.path}`, err);
    }
    if (text === this.lastText) return;
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw new RegistryError('invalid_record', `${this.opts.path} is not valid JSON`, err);
    }
    const list = Array.isArray(doc) ? doc : (doc as { agents?: unknown } | null)?.agents;
    if (!Array.isArray(list))
      throw new RegistryError('invalid_record', `${this.opts.path}: expected {"agents": [...]}`);
    const records = list.map((r) => validateAgentRecord(r));
    this.index.replaceAll(records);
    this.lastText = text;
    if (!initial) this.opts.onReload?.(records.length);
  }

  private async write(records: AgentRecord[]): Promise<void> {
    const text = `${JSON.stringify({ agents: records }, null, 2)}\n`;
    const tmp = `${this.opts.path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await mkdir(dirname(this.opts.path), { recursive: true });
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.writeFile(text, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.opts.path);
      const dh = await open(dirname(this.opts.path), 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch (err) {
      await rm(tmp, { force: true });
      // A full or read-only file system is an outage (503), not a broken request or a bug.
      if (isFileFault(err)) throw new StoreUnavailableError('registry', err);
      throw new RegistryError('storage', `cannot write ${this.opts.path}`, err);
    }
    this.lastText = text;
  }

  private ensureOpen(): void {
    if (this.closed) throw new RegistryError('unavailable', 'registry is closed');
  }

  /** {@inheritDoc Registry.getByKeyid} */
  async getByKeyid(keyid: string): Promise<AgentRecord | undefined> {
    this.ensureOpen();
    return this.index.byKey(keyid);
  }

  /** {@inheritDoc Registry.getByName} */
  async getByName(agentName: string): Promise<AgentRecord | undefined> {
    this.ensureOpen();
    return this.index.byAgent(agentName);
  }

  /** {@inheritDoc Registry.list} */
  async list(filter?: { status?: AgentStatus }): Promise<AgentRecord[]> {
    this.ensureOpen();
    const all = this.index.all();
    return filter?.status ? all.filter((r) => r.status === filter.status) : all;
  }

  /** {@inheritDoc Registry.put} */
  put(input: AgentRecordInput): Promise<AgentRecord> {
    return this.serial(() => this.write1(input.agent_name, () => input));
  }

  /**
   * {@inheritDoc Registry.putIfMatch}
   *
   * The file is re-read first, so an edit by the operator or another process is seen; the check and
   * the write are atomic within this process only — a file has no cross-process lock, which is one
   * reason a fleet uses the SQLite (one host) or a database registry instead.
   */
  putIfMatch(input: AgentRecordInput, expected: RegistryExpectation | null): Promise<AgentRecord> {
    return this.serial(async () => {
      this.ensureOpen();
      await this.load(false);
      return this.write1(input.agent_name, (current) => {
        checkExpectation(input.agent_name, current, expected);
        return input;
      });
    });
  }

  /** {@inheritDoc Registry.setStatus} */
  setStatus(agentName: string, status: AgentStatus): Promise<AgentRecord> {
    return this.serial(() => this.write1(agentName, withStatus(agentName, status)));
  }

  /** Validates and writes the record `decide` returns after checking (or deriving it from) the current one. */
  private async write1(
    agentName: string,
    decide: (current: AgentRecord | undefined) => AgentRecordInput,
  ): Promise<AgentRecord> {
    this.ensureOpen();
    const current = this.index.byAgent(agentName);
    const input = decide(current);
    const now = (this.opts.now ?? (() => new Date()))();
    const record = validateAgentRecord(stampRecord(input, current, now));
    this.index.checkUnique(record);
    const next = this.index.all().filter((r) => r.agent_name !== record.agent_name);
    next.push(record);
    next.sort((a, b) => (a.agent_name < b.agent_name ? -1 : 1));
    await this.write(next);
    this.index.set(record);
    return record;
  }

  /** {@inheritDoc Registry.delete} */
  delete(agentName: string): Promise<boolean> {
    return this.serial(async () => {
      this.ensureOpen();
      if (!this.index.byAgent(agentName)) return false;
      await this.write(this.index.all().filter((r) => r.agent_name !== agentName));
      this.index.delete(agentName);
      return true;
    });
  }

  /** {@inheritDoc Registry.reload} */
  reload(): Promise<void> {
    return this.serial(() => this.load(false));
  }

  /** {@inheritDoc Registry.close} */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.debounce);
    this.watcher?.close();
    await this.chain;
  }
}
