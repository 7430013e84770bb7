import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Options of {@link startSwtpm}. @public */
export interface SwtpmOptions {
  /**
   * Directory for the TPM state (`<stateDir>/tpm`) and its local EK CA (`<stateDir>/localca`).
   * Default: a fresh temporary directory, deleted by `stop()`. An existing state directory is reused
   * as is (no re-manufacturing), so persistent keys and NV survive a restart.
   */
  stateDir?: string;
  /** Create EK certificates (RSA-2048 at NV 0x01C00002, ECC P-384 at 0x01C00016) and a platform certificate. Default `true`. */
  ekCert?: boolean;
  /** PCR banks to activate on first setup. Default `['sha1', 'sha256']`. */
  pcrBanks?: string[];
  /** Milliseconds to wait for swtpm to answer. Default 10000. */
  timeoutMs?: number;
}

/** A running swtpm, see {@link startSwtpm}. @public */
export interface SwtpmInstance {
  /** TCTI configuration for `Tpm.open`, e.g. `swtpm:host=127.0.0.1,port=40123`. */
  tcti: string;
  /** TPM command port (the control channel is `port + 1`). */
  port: number;
  /** PEM certificates of the local CA that issued the EK certificates: issuer (intermediate) first, then root. */
  ekCaCertificates: string[];
  /** The state directory (see {@link SwtpmOptions.stateDir}). */
  stateDir: string;
  /** Process id of the supervisor shell that owns swtpm (it kills swtpm when this process goes away). */
  pid: number;
  /** Stops swtpm (SIGTERM, then SIGKILL after 5 s) and deletes the state directory if it was temporary. */
  stop(): Promise<void>;
}

/**
 * Supervisor: starts swtpm with the given arguments, forwards SIGTERM/SIGINT, and kills it as soon as
 * stdin reaches EOF (our process closed the pipe or died). Exits with swtpm's status.
 */
const SUPERVISOR = [
  // Background jobs of a non-interactive shell get /dev/null as stdin: keep ours on fd 3.
  'exec 3<&0',
  'swtpm "$@" </dev/null 3<&- & pid=$!',
  "trap 'kill $pid 2>/dev/null' TERM INT",
  '(read _ignored <&3; kill $pid 2>/dev/null) &',
  'exec 3<&-',
  'wait $pid; status=$?',
  // After a trapped signal the first wait returns early; wait for swtpm to really exit (state lock).
  'while kill -0 $pid 2>/dev/null; do wait $pid; status=$?; done',
  'exit $status',
].join('\n');

const live = new Set<{ child: ChildProcess; tempDir: string | undefined }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Synchronous by necessity: 'exit' handlers cannot await.
  process.on('exit', () => {
    for (const entry of live) {
      // The supervisor kills swtpm on SIGTERM (and on EOF of its stdin once we are gone).
      entry.child.kill('SIGTERM');
      if (entry.tempDir) rmSync(entry.tempDir, { recursive: true, force: true });
    }
  });
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) {
        const hint =
          (err as NodeJS.ErrnoException).code === 'ENOENT' ? ' (apt-get install swtpm swtpm-tools)' : '';
        reject(new Error(`${cmd} failed${hint}: ${err.message}\n${stdout}${stderr}`.trim()));
      } else {
        resolve();
      }
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A free port P such that P+1 is free too (the swtpm TCTI uses port+1 for control). */
async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    if (port > 0 && port < 65535 && (await portFree(port + 1))) return port;
  }
  throw new Error('startSwtpm: no free pair of loopback ports');
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

/** Writes swtpm_setup / swtpm_localca configs that keep the CA inside the state directory. */
function writeConfigs(dir: string, banks: string[]): string {
  const caDir = join(dir, 'localca');
  mkdirSync(caDir, { recursive: true, mode: 0o700 });
  const localcaConf = join(dir, 'swtpm-localca.conf');
  writeFileSync(
    localcaConf,
    [
      `statedir = ${caDir}`,
      `signingkey = ${join(caDir, 'signkey.pem')}`,
      `issuercert = ${join(caDir, 'issuercert.pem')}`,
      `certserial = ${join(caDir, 'certserial')}`,
      '',
    ].join('\n'),
  );
  const optionsFile = join(dir, 'swtpm-localca.options');
  writeFileSync(
    optionsFile,
    '--platform-manufacturer geofence\n--platform-version 2.1\n--platform-model swtpm\n',
  );
  const setupConf = join(dir, 'swtpm_setup.conf');
  writeFileSync(
    setupConf,
    [
      'create_certs_tool = /usr/bin/swtpm_localca',
      `create_certs_tool_config = ${localcaConf}`,
      `create_certs_tool_options = ${optionsFile}`,
      `active_pcr_banks = ${banks.join(',')}`,
      '',
    ].join('\n'),
  );
  return setupConf;
}

function readCaCertificates(dir: string): string[] {
  const caDir = join(dir, 'localca');
  return ['issuercert.pem', 'swtpm-localca-rootca-cert.pem']
    .map((f) => join(caDir, f))
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f, 'utf8'));
}

async function launch(tpmDir: string, timeoutMs: number): Promise<{ child: ChildProcess; port: number }> {
  let lastError = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePortPair();
    // swtpm runs under a small supervisor shell that kills it when our end of its stdin pipe closes,
    // i.e. on stop() and also when this process dies without running exit handlers (SIGKILL, crash),
    // so no orphaned swtpm keeps ports and the state lock.
    const child = spawn(
      '/bin/sh',
      [
        '-c',
        SUPERVISOR,
        'swtpm-supervisor',
        'socket',
        '--tpm2',
        '--tpmstate',
        `dir=${tpmDir}`,
        '--server',
        `type=tcp,port=${port},bindaddr=127.0.0.1`,
        '--ctrl',
        `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
        '--flags',
        'not-need-init,startup-clear',
      ],
      { stdio: ['pipe', 'ignore', 'pipe'] },
    );
    // The pipe must not keep this process alive, and a closed pipe must not throw.
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    child.stdin?.on('error', () => undefined);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    let exited = false;
    child.once('exit', () => {
      exited = true;
      child.stdin?.destroy();
    });
    const spawnError = new Promise<Error | undefined>((resolve) => {
      child.once('error', (e) => resolve(e));
      child.once('spawn', () => resolve(undefined));
    });
    const err = await spawnError;
    if (err) throw new Error(`startSwtpm: cannot run /bin/sh: ${err.message}`);
    const deadline = Date.now() + timeoutMs;
    while (!exited && Date.now() < deadline) {
      if ((await canConnect(port + 1)) && (await canConnect(port))) {
        child.stderr?.removeAllListeners('data');
        child.stderr?.resume();
        return { child, port };
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    if (!exited) child.kill('SIGTERM');
    if (child.exitCode === 127)
      throw new Error('startSwtpm: swtpm not found (apt-get install swtpm swtpm-tools)');
    lastError = stderr.trim() || 'swtpm did not answer in time';
  }
  throw new Error(`startSwtpm: swtpm failed to start: ${lastError}`);
}

/**
 * Starts a software TPM (swtpm) on free loopback ports for development and tests.
 *
 * On first use of a state directory it manufactures the TPM with `swtpm_setup` (EK certificates
 * issued by a local CA kept in `<stateDir>/localca`), then runs `swtpm socket` and waits until it
 * accepts connections. The process is stopped by `stop()` and, as a last resort, when this process
 * exits. Importing this module starts nothing.
 *
 * @example
 * ```ts
 * const swtpm = await startSwtpm();
 * const tpm = await Tpm.open({ tcti: swtpm.tcti });
 * // ...
 * await tpm.close();
 * await swtpm.stop();
 * ```
 * @public
 */
export async function startSwtpm(options: SwtpmOptions = {}): Promise<SwtpmInstance> {
  const ekCert = options.ekCert ?? true;
  const banks = options.pcrBanks ?? ['sha1', 'sha256'];
  const tempDir = options.stateDir ? undefined : mkdtempSync(join(tmpdir(), 'geofence-swtpm-'));
  const dir = options.stateDir ?? (tempDir as string);
  const tpmDir = join(dir, 'tpm');
  try {
    mkdirSync(tpmDir, { recursive: true, mode: 0o700 });
    if (!existsSync(join(tpmDir, 'tpm2-00.permall'))) {
      const setupConf = writeConfigs(dir, banks);
      await run('swtpm_setup', [
        '--tpm2',
        '--tpmstate',
        tpmDir,
        '--config',
        setupConf,
        '--pcr-banks',
        banks.join(','),
        ...(ekCert ? ['--create-ek-cert', '--create-platform-cert'] : ['--createek']),
        '--overwrite',
      ]);
    }
    const { child, port } = await launch(tpmDir, options.timeoutMs ?? 10_000);
    const entry = { child, tempDir };
    live.add(entry);
    installExitHook();
    let stopping: Promise<void> | undefined;
    return {
      tcti: `swtpm:host=127.0.0.1,port=${port}`,
      port,
      ekCaCertificates: readCaCertificates(dir),
      stateDir: dir,
      pid: child.pid ?? 0,
      stop() {
        stopping ??= new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            live.delete(entry);
            if (tempDir) rmSync(tempDir, { recursive: true, force: true });
            resolve();
          };
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          if (child.exitCode !== null || child.signalCode !== null) {
            done();
            return;
          }
          child.once('exit', done);
          child.stdin?.end();
          child.kill('SIGTERM');
        });
        return stopping;
      },
    };
  } catch (err) {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }
}
