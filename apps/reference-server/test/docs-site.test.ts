/**
 * The typedoc site (issue 15 item 5): built with the repository's typedoc.json into a temp dir and
 * opened in Debian's chromium — mermaid blocks render as SVG diagrams from the bundled script (no
 * network), and the package READMEs are pages named by package, not copied media files.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

/** What the functions evaluated in the page use of its globals (this Node program has no DOM lib). */
declare const document: { querySelectorAll(selector: string): { length: number } };

let out: string;
let browser: Browser;

beforeAll(async () => {
  out = mkdtempSync(join(tmpdir(), 'gf-docs-'));
  await run(process.execPath, [join(ROOT, 'node_modules/typedoc/bin/typedoc'), '--out', out], { cwd: ROOT });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
    ],
  });
}, 240_000);

afterAll(async () => {
  await browser?.close();
});

describe('docs site', () => {
  it('renders the mermaid diagrams of a document offline', async () => {
    const page = await browser.newPage();
    const remote: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) remote.push(r.url());
    });
    await page.goto(pathToFileURL(join(out, 'documents', 'architecture.html')).href);
    await page.waitForFunction(
      () =>
        document.querySelectorAll('pre.mermaid').length > 0 &&
        document.querySelectorAll('pre.mermaid svg').length ===
          document.querySelectorAll('pre.mermaid').length,
      undefined,
      { timeout: 30_000 },
    );
    expect(await page.locator('pre.mermaid svg').count()).toBe(2);
    expect(remote).toEqual([]);
    await page.close();
  });

  it('has the package READMEs as pages named by package', () => {
    for (const name of [
      '_geofence_agent',
      '_geofence_verifier',
      '_geofence_reference-server',
      'deploy',
      'operations',
    ])
      expect(existsSync(join(out, 'documents', `${name}.html`)), name).toBe(true);
    const media = existsSync(join(out, 'media')) ? readdirSync(join(out, 'media')) : [];
    expect(media.filter((f) => f.endsWith('.md'))).toEqual([]);
  });
});
