/**
 * `geofence completion bash|zsh`: the generated scripts load in real bash and zsh, and the bash
 * function completes commands, subcommands, options and option values from the CLI's own tree.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it, vi } from 'vitest';

vi.setConfig({ testTimeout: 60_000 });

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

let bashScript: string;
let zshScript: string;

beforeAll(async () => {
  const script = async (shell: string) =>
    (await run(process.execPath, ['--import', 'tsx', CLI, 'completion', shell])).stdout;
  [bashScript, zshScript] = await Promise.all([script('bash'), script('zsh')]);
});

/** What the bash function offers for the words typed so far (the last one is being completed). */
async function complete(...words: string[]): Promise<string[]> {
  const script = `${bashScript}
COMP_WORDS=(geofence ${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length}
_geofence_complete
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const { stdout } = await run('bash', ['-c', script]);
  return stdout.split('\n').filter(Boolean).sort();
}

describe('geofence completion', () => {
  it('completes commands, subcommands, options and their values in bash', async () => {
    expect(await complete('rec')).toEqual(['records']);
    expect(await complete('')).toEqual(
      expect.arrayContaining(['agents', 'doctor', 'records', 'verify-record']),
    );
    expect(await complete('agents', '')).toEqual(['--help', 'add', 'approve', 'list', 'revoke', 'show']);
    expect(await complete('records', 'list', '--s')).toEqual(['--since']);
    expect(await complete('agents', 'list', '-d', '/tmp/x', '-o', '')).toEqual(['json', 'table']);
    expect(await complete('demo', '--mode', 'gateway-')).toEqual([
      'gateway-allowlist',
      'gateway-policy-enforcement',
    ]);
    expect(await complete('completion', '')).toEqual(['--help', 'bash', 'zsh']);
  });

  it('registers the same function in zsh through bashcompinit', async () => {
    const { stdout } = await run('zsh', [
      '-f',
      '-c',
      `autoload -U compinit && compinit -u -D; ${zshScript}\nprint -r -- $_comps[geofence]`,
    ]);
    expect(stdout.trim()).toMatch(/_bash_complete|_geofence_complete/);
  });

  it('refuses an unknown shell as a usage error (exit 2)', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', CLI, 'completion', 'fish']).catch((e) => e);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("'fish' is invalid for argument 'shell'");
  });
});
