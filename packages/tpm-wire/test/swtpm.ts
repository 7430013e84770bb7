import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A running swtpm for one test file, driven through tpm2-tools. */
export interface TestTpm {
  dir: string;
  /** Runs a tpm2-tools command against this TPM (cwd = dir) and returns stdout. Flushes transient objects. */
  tool(cmd: string, args: string[]): string;
  stop(): Promise<void>;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function freePortPair(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    if ((await portFree(port)) && (await portFree(port + 1))) return port;
  }
  throw new Error('no free port pair');
}

/** Starts swtpm (fresh state, EK certificates) on free loopback ports and waits until it answers. */
export async function startTestTpm(): Promise<TestTpm> {
  const dir = mkdtempSync(join(tmpdir(), 'tpm-wire-'));
  execFileSync('swtpm_setup', ['--tpm2', '--tpmstate', dir, '--create-ek-cert', '--overwrite'], {
    stdio: 'ignore',
  });
  const port = await freePortPair();
  const child: ChildProcess = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${dir}`,
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
    ],
    { stdio: 'ignore' },
  );
  const env = { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` };
  const tool = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { cwd: dir, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } finally {
      // swtpm has no resource manager: leftover transient objects would exhaust its 3 object slots.
      execFileSync('tpm2_flushcontext', ['-t'], { cwd: dir, env, stdio: 'ignore' });
    }
  };
  for (let i = 0; ; i++) {
    try {
      execFileSync('tpm2_getrandom', ['4'], { env, stdio: 'ignore' });
      break;
    } catch (e) {
      if (i > 100) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    dir,
    tool,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** tpm2-tools credential file: magic 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
export function toolsCredentialFile(credentialBlob: Uint8Array, encryptedSecret: Uint8Array): Uint8Array {
  return new Uint8Array([0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1, ...credentialBlob, ...encryptedSecret]);
}
