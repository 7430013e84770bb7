import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('startSwtpm', () => {
  it('leaves no swtpm behind when its owner is SIGKILLed (no exit handlers run)', async () => {
    // The only swtpm of this file runs in a child process that we kill hard.
    const script = `
      const { startSwtpm } = await import(${JSON.stringify(entry)});
      const s = await startSwtpm();
      const { X509Certificate } = await import('node:crypto');
      for (const pem of s.ekCaCertificates) new X509Certificate(pem);
      console.log(JSON.stringify({ port: s.port, cas: s.ekCaCertificates, tcti: s.tcti }));
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const info = await new Promise<{ port: number; cas: string[]; tcti: string }>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line));
      });
      child.once('exit', (code) => reject(new Error(`helper exited early with ${code}`)));
    });
    expect(info.tcti).toBe(`swtpm:host=127.0.0.1,port=${info.port}`);
    expect(info.cas).toHaveLength(2);
    const [issuer, root] = info.cas.map((pem) => new X509Certificate(pem)) as [
      X509Certificate,
      X509Certificate,
    ];
    expect(issuer.checkIssued(root)).toBe(true);
    expect(await accepts(info.port)).toBe(true);

    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    let alive = true;
    for (let i = 0; i < 100 && alive; i++) {
      await new Promise((r) => setTimeout(r, 50));
      alive = (await accepts(info.port)) || (await accepts(info.port + 1));
    }
    expect(alive).toBe(false);
  });
});
