/**
 * An edge host installs `@geofence/agent` to send metrics; it must not pull the verifier or the
 * verifier's server-side dependencies (issue 10: no ioredis, turf, jose or fastify-plugin on an edge
 * host). The agent gets the wire contract from `@geofence/protocol`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const FORBIDDEN = [/^@geofence\/verifier$/, /^ioredis$/, /^@turf\//, /^fastify-plugin$/, /^jose$/];
const forbidden = (names: Iterable<string>) => [...names].filter((n) => FORBIDDEN.some((re) => re.test(n)));

interface LsNode {
  dependencies?: Record<string, LsNode>;
}

function namesOf(node: LsNode, out = new Set<string>()): Set<string> {
  for (const [name, child] of Object.entries(node.dependencies ?? {})) {
    out.add(name);
    namesOf(child, out);
  }
  return out;
}

interface LockEntry {
  name?: string;
  resolved?: string;
  link?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/** Production dependency closure of the package at `start` (a lockfile key), by Node's resolution. */
function lockClosure(packages: Record<string, LockEntry>, start: string): Set<string> {
  const names = new Set<string>();
  const seen = new Set<string>();
  const visit = (key: string) => {
    if (seen.has(key)) return;
    seen.add(key);
    const entry = packages[key];
    if (!entry) return;
    if (entry.link && entry.resolved) return visit(entry.resolved);
    const deps = { ...entry.dependencies, ...entry.optionalDependencies, ...entry.peerDependencies };
    for (const dep of Object.keys(deps)) {
      let dir = key;
      let found: string | undefined;
      for (;;) {
        const candidate = dir === '' ? `node_modules/${dep}` : `${dir}/node_modules/${dep}`;
        if (packages[candidate]) {
          found = candidate;
          break;
        }
        if (dir === '') break;
        const cut = dir.lastIndexOf('/node_modules/');
        dir = cut === -1 ? '' : dir.slice(0, cut);
      }
      // A declared peer that nobody installed is not part of the closure.
      if (!found) continue;
      names.add(dep);
      visit(found);
    }
  };
  visit(start);
  return names;
}

describe('@geofence/agent production dependencies', () => {
  it('declare neither the verifier nor its server-side dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'packages/sdk-agent/package.json'), 'utf8'));
    const declared = [
      ...Object.keys(pkg.dependencies ?? {}),
      ...Object.keys(pkg.optionalDependencies ?? {}),
      ...Object.keys(pkg.peerDependencies ?? {}),
    ];
    expect(declared).toContain('@geofence/protocol');
    expect(forbidden(declared)).toEqual([]);
  });

  it('resolve (package-lock.json closure) to no verifier, ioredis, @turf/*, fastify-plugin or jose', () => {
    const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
    const closure = lockClosure(lock.packages, 'packages/sdk-agent');
    expect(closure).toContain('@geofence/protocol');
    expect(closure).toContain('@geofence/http-sig');
    expect(forbidden(closure)).toEqual([]);
  });

  it('as installed (`npm ls --omit=dev --all -w @geofence/agent`) contain none of them', () => {
    const out = execFileSync('npm', ['ls', '--omit=dev', '--all', '--json', '-w', '@geofence/agent'], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    const tree = JSON.parse(out) as LsNode;
    const agent = tree.dependencies?.['@geofence/agent'];
    expect(agent).toBeDefined();
    const installed = namesOf(agent!);
    expect(installed).toContain('@geofence/protocol');
    expect(forbidden(installed)).toEqual([]);
  });
});
