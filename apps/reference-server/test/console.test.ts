/**
 * The collector console in a real browser: Debian's chromium driven by playwright-core (system
 * executable, no browser download), against a real HTTPS collector with three agents. Checks the
 * login exchange (HttpOnly/Secure/SameSite=Strict cookie, no token in any URL), the live feed, the
 * map layers, record re-verification, CSRF-protected revoke, and that attacker-chosen strings in
 * every agent-provided field stay text.
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildMetricsRequest } from '@geofence/agent';
import { type NonceResponse, SqliteRegistry } from '@geofence/verifier';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { type Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCollector, startCollector } from '../src/server/collector.js';
import { silentLog, testConfig, testDataDir } from './helpers/env.js';
import { client, http, postMetrics, type SoftAgent, signedRequest, softAgent } from './helpers/soft-agent.js';

/** What the functions evaluated in the page use of its globals (this Node program has no DOM lib). */
interface PageNode {
  textContent: string | null;
  querySelectorAll(selector: string): Iterable<PageNode> & { length: number };
}
declare const document: PageNode & { querySelector(selector: string): PageNode | null; cookie: string };

const here = dirname(fileURLToPath(import.meta.url));
const appRoot = resolve(here, '..');
const ARTIFACTS = resolve(appRoot, '../../test-artifacts');
const TOKEN = 'test-admin-token-0123456789abcdef';
/** Every field an agent controls carries this; executing it would set window.__xss. */
const XSS = '<img src=x onerror="window.__xss=1">';

const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A fence (GeoJSON Polygon) around Santa Clara, CA. */
const SANTA_CLARA_FENCE = {
  type: 'Polygon',
  coordinates: [
    [
      [-122.05, 37.3],
      [-121.9, 37.3],
      [-121.9, 37.42],
      [-122.05, 37.42],
      [-122.05, 37.3],
    ],
  ],
};

let col: RunningCollector;
let registry: SqliteRegistry;
let c: Agent;
let context: BrowserContext;
let page: Page;
const requested: string[] = [];
const fenced = softAgent('agent-fenced');
const xssAgent = softAgent('agent-xss');
const munich = softAgent('agent-munich');

async function put(a: SoftAgent, geo_policy: object, extra: Record<string, unknown> = {}) {
  await registry.put({
    agent_name: a.name,
    keyid: a.keyid,
    alg: 'ecdsa-p256-sha256',
    app_public_key_pem: a.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    geo_policy: geo_policy as never,
    status: 'active',
    ...extra,
  });
}

/** A signed message of `a` with a precise reading (lat/lon/accuracy) and the given claims. */
async function preciseRequest(
  a: SoftAgent,
  reading: { lat: number; lon: number; accuracy: number },
  place: { region: string; state?: string; city?: string },
  metrics: Record<string, unknown>,
) {
  const n = await http(c, `${col.url}/nonce?public_key_hash=${a.keyid}`);
  const { body, headers } = await buildMetricsRequest({
    agentName: a.name,
    keyid: a.keyid,
    signer: a.signer,
    nonce: n.json as unknown as NonceResponse,
    observation: {
      geographicRegion: place,
      reading: { ...reading, quality: 'wifi' },
      quality: 'wifi',
      locationType: 'precise',
    },
    metrics,
    clientType: 'thick',
    path: '/metrics',
    origin: 'https://gateway',
    now: new Date(),
    validitySeconds: 60,
  });
  return { body: Buffer.from(body.buffer, body.byteOffset, body.byteLength), headers };
}

beforeAll(async () => {
  const assets = mkdtempSync(join(tmpdir(), 'gf-console-assets-'));
  // The same build step `npm run build` runs (esbuild bundle of console-ui, world outlines).
  execFileSync(process.execPath, [join(appRoot, 'scripts/build-console.mjs'), assets]);
  const { dir, pki } = await testDataDir('console');
  registry = await SqliteRegistry.open({ path: join(dir, 'registry.db') });
  await put(fenced, { allow: [{ region: 'US', state: 'California' }], fences: [SANTA_CLARA_FENCE] });
  // The EK issuer comes from a certificate the agent presented at enrolment: attacker-chosen text.
  await put(xssAgent, { allow: [{ region: 'US', state: 'California' }] }, { ek_cert_issuer: `CN=${XSS}` });
  await put(munich, { allow: [{ region: 'DE', state: 'Bavaria' }] });
  col = await startCollector(
    testConfig('collector', dir, {
      console: { enabled: true },
      rateLimit: { perIpPerSecond: 1000, perIpBurst: 1000, perKeyidPerSecond: 1000, perKeyidBurst: 1000 },
    }),
    { log: silentLog, consoleAssetsDir: assets },
  );
  c = client(pki.ca);
  // Trust exactly the collector's certificate key (the demo CA is not in chromium's store).
  const spki = new X509Certificate(pki.cert).publicKey.export({ type: 'spki', format: 'der' });
  const pin = createHash('sha256').update(spki).digest('base64');
  context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'gf-chromium-')), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [...CHROMIUM_FLAGS, `--ignore-certificate-errors-spki-list=${pin}`],
    viewport: { width: 1400, height: 1000 },
  });
  // Every CSP violation of the page is recorded: the console must not need a single exception.
  await context.addInitScript({
    content: `document.addEventListener('securitypolicyviolation', (e) => {
      (window.__csp ??= []).push(e.violatedDirective + ' ' + e.blockedURI);
    });`,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('request', (r) => requested.push(r.url()));
  page.on('dialog', (d) => void d.dismiss());
}, 60_000);

afterAll(async () => {
  await context?.close();
  await col?.close();
  await registry?.close();
  await c?.close();
});

describe('console', () => {
  it('is off by default and its API needs a session', async () => {
    const { dir, pki } = await testDataDir('console-off');
    const off = await startCollector(testConfig('collector', dir), { log: silentLog });
    const offClient = client(pki.ca);
    try {
      expect((await http(offClient, `${off.url}/console/`)).status).toBe(404);
    } finally {
      await offClient.close();
      await off.close();
    }
    const anon = await http(c, `${col.url}/console/api/state`);
    expect(anon.status).toBe(403);
    expect(anon.json.validation_type).toBe('agent_verification');
    const page0 = await http(c, `${col.url}/console/`);
    expect(page0.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page0.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page0.text).toContain('action="/console/login"');
  });

  it('exchanges the admin token for an HttpOnly, Secure, SameSite=Strict cookie', async () => {
    await page.goto(`${col.url}/console/`);
    await page.fill('#token', 'wrong-token-0123456789abcdefgh');
    await page.click('button[type=submit]');
    await page.waitForSelector('.error');
    await page.fill('#token', TOKEN);
    await page.click('button[type=submit]');
    await page.waitForSelector('body[data-ready="true"]', { timeout: 10_000 });
    const [cookie] = await context.cookies(col.url);
    expect(cookie).toMatchObject({
      name: '__Host-geofence-console',
      httpOnly: true,
      secure: true,
      sameSite: 'Strict',
      path: '/',
    });
    expect(requested.some((u) => u.includes(TOKEN))).toBe(false);
    expect(await page.evaluate(() => document.cookie)).toBe('');
  });

  it('shows an accepted and a rejected message in the live feed within 2 s', async () => {
    const ok = await postMetrics(
      c,
      col.url,
      await preciseRequest(
        fenced,
        { lat: 37.354, lon: -121.955, accuracy: 800 },
        {
          region: 'US',
          state: 'California',
          city: 'Santa Clara',
        },
        { cpu_percent: 12.5 },
      ),
    );
    expect(ok.status).toBe(200);
    const bad = await postMetrics(
      c,
      col.url,
      await preciseRequest(
        munich,
        { lat: 52.52, lon: 13.405, accuracy: 2000 },
        { region: 'DE', state: 'Berlin' },
        {
          cpu_percent: 3,
        },
      ),
    );
    expect(bad.status).toBe(403);
    await page.waitForFunction(
      () =>
        document.querySelector('#feed [data-outcome="accepted"] .agent')?.textContent === 'agent-fenced' &&
        document.querySelector('#feed [data-outcome="rejected"] .validation')?.textContent ===
          'geolocation_policy',
      undefined,
      { timeout: 2000 },
    );
    const rejected = await page.locator('#feed [data-outcome="rejected"]').first().innerText();
    expect(rejected).toContain('agent-munich');
    expect(rejected).toContain('by collector');
    expect(rejected).toContain('Berlin');
  });

  it('draws the fences, the allow-list places and the agents with accuracy circles', async () => {
    await page.waitForFunction(() => document.querySelectorAll('path.agent-marker').length >= 2, undefined, {
      timeout: 5000,
    });
    const counts = await page.evaluate(() => ({
      fences: document.querySelectorAll('path.fence').length,
      places: document.querySelectorAll('path.place-outline').length,
      world: document.querySelectorAll('path.world').length,
      accepted: document.querySelectorAll('path.agent-marker.verdict-accepted').length,
      rejected: document.querySelectorAll('path.agent-marker.verdict-rejected').length,
      circles: document.querySelectorAll('path.accuracy-circle').length,
    }));
    // US-CA (two agents share it) and DE-BY; the Santa Clara fence; a world of country outlines;
    // a green marker in Santa Clara, a red one in Berlin (agent-xss reports no coordinates).
    expect(counts).toMatchObject({ fences: 1, places: 2, accepted: 1, rejected: 1, circles: 2 });
    expect(counts.world).toBeGreaterThan(100);
    const rows = await page
      .locator('#agents tbody tr')
      .evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows.map((r) => r[0]).sort()).toEqual(['agent-fenced', 'agent-munich', 'agent-xss']);
    const munichRow = rows.find((r) => r[0] === 'agent-munich');
    expect(munichRow?.[6]).toContain('geolocation_policy');
    expect(munichRow?.[2]).toBe(`${munich.keyid.slice(0, 12)}…`);
  });

  it('shows a record with its offline re-verification', async () => {
    await page.locator('#feed [data-outcome="accepted"]').first().click();
    await page.waitForSelector('#detail[data-valid="true"]', { timeout: 5000 });
    const detail = await page.locator('#detail').innerText();
    expect(detail).toContain('payload_signature');
    expect(detail).toContain('cpu_percent');
  });

  it('keeps attacker-chosen strings in every agent-provided field as text', async () => {
    // Accepted: the state-level policy does not constrain the city; metric keys and values are free.
    const ok = await postMetrics(
      c,
      col.url,
      await signedRequest(c, col.url, xssAgent, {
        place: { region: 'US', state: 'California', city: XSS },
        metrics: { [XSS]: XSS },
      }),
    );
    expect(ok.status).toBe(200);
    // Rejected: a body that claims XSS everywhere (agent name, keyid, place, metrics).
    const forged = JSON.stringify({
      version: XSS,
      agent_name: XSS,
      tpm_public_key_hash: XSS,
      nonce: XSS,
      timestamp: XSS,
      metrics: { [XSS]: XSS },
      geographic_region: { region: XSS, state: XSS, city: XSS },
      algorithm: XSS,
      signature: XSS,
    });
    const bad = await http(c, `${col.url}/metrics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: forged,
    });
    expect(bad.status).toBeGreaterThanOrEqual(400);
    await page.waitForFunction(
      (x) => [...document.querySelectorAll('#feed .agent')].some((e) => e.textContent === x),
      XSS,
      { timeout: 5000 },
    );
    await page.waitForFunction(
      (x) =>
        [...document.querySelectorAll('#feed .place')].filter((e) => e.textContent?.includes(x)).length >= 2,
      XSS,
      { timeout: 5000 },
    );
    await page.locator('#feed .feed-item', { hasText: 'agent-xss' }).first().click();
    await page.waitForSelector('#detail[data-valid="true"]', { timeout: 5000 });
    // The payload is shown as JSON text (its quotes escaped): the markup is there, inert.
    expect(await page.locator('#detail').innerText()).toContain('<img src=x onerror=');
    await page
      .locator('#feed .feed-item', { hasText: XSS })
      .filter({ hasNotText: 'agent-xss' })
      .first()
      .click();
    await page.waitForSelector('#detail[data-valid="rejected"]', { timeout: 5000 });
    await page.waitForFunction(
      (x) => document.querySelector('#agents tbody tr[data-agent="agent-xss"]')?.textContent?.includes(x),
      XSS,
      { timeout: 5000 },
    );
    const outcome = await page.evaluate(() => ({
      xss: (globalThis as { __xss?: number }).__xss,
      imgs: document.querySelectorAll('img').length,
      cspViolations: (globalThis as { __csp?: string[] }).__csp ?? [],
    }));
    expect(outcome).toEqual({ xss: undefined, imgs: 0, cspViolations: [] });
    // Nothing but the collector itself was ever contacted (no CDN, no tile server).
    const origin = new URL(col.url).origin;
    expect(requested.filter((u) => !u.startsWith(`${origin}/`))).toEqual([]);
  });

  it('revokes an agent with the CSRF token and refuses a request without it', async () => {
    const cookies = await context.cookies(col.url);
    const cookie = cookies.map((k) => `${k.name}=${k.value}`).join('; ');
    const forged = await http(c, `${col.url}/console/api/agents/agent-munich/revoke`, {
      method: 'POST',
      headers: { cookie },
    });
    expect(forged.status).toBe(403);
    expect((await registry.getByName('agent-munich'))?.status).toBe('active');
    await page.locator('#agents tr[data-agent="agent-munich"] button[data-action="revoke"]').click();
    await page.waitForFunction(
      () =>
        document.querySelector('#agents tr[data-agent="agent-munich"] td:nth-child(2)')?.textContent ===
        'revoked',
      undefined,
      { timeout: 5000 },
    );
    expect((await registry.getByName('agent-munich'))?.status).toBe('revoked');
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'console.png'), fullPage: true });
  });
});

describe('console sessions', () => {
  /** Signs in over HTTP; returns the cookie and the session's CSRF token. */
  async function signIn() {
    const login = await http(c, `${col.url}/console/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    expect(login.status).toBe(303);
    const setCookie = String(login.headers['set-cookie']);
    expect(setCookie).toMatch(/; HttpOnly; Secure; SameSite=Strict$/);
    const cookie = setCookie.split(';')[0] ?? '';
    const s = await http(c, `${col.url}/console/api/session`, { headers: { cookie } });
    return { cookie, csrf: String(s.json.csrf_token) };
  }

  it('ends the live feed and refuses the cookie once signed out', async () => {
    const { cookie, csrf } = await signIn();
    const stream = await request(`${col.url}/console/api/events`, { headers: { cookie }, dispatcher: c });
    expect(stream.statusCode).toBe(200);
    expect(stream.headers['content-type']).toContain('text/event-stream');
    const ended = (async () => {
      for await (const _ of stream.body) {
        // drain until the server ends the stream
      }
    })();
    const out = await http(c, `${col.url}/console/logout`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrf },
    });
    expect(out.status).toBe(204);
    // The next event meets the ended session and closes the stream.
    await postMetrics(c, col.url, await signedRequest(c, col.url, fenced));
    await ended;
    expect((await http(c, `${col.url}/console/api/state`, { headers: { cookie } })).status).toBe(403);
    expect((await http(c, `${col.url}/console/api/events`, { headers: { cookie } })).status).toBe(403);
  });

  it('refuses a cross-site request even with the session and its token', async () => {
    const { cookie, csrf } = await signIn();
    const cross = await http(c, `${col.url}/console/api/agents/agent-xss/revoke`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrf, origin: 'https://evil.example' },
    });
    expect(cross.status).toBe(403);
    const site = await http(c, `${col.url}/console/api/agents/agent-xss/revoke`, {
      method: 'POST',
      headers: { cookie, 'x-csrf-token': csrf, 'sec-fetch-site': 'cross-site' },
    });
    expect(site.status).toBe(403);
    expect((await registry.getByName('agent-xss'))?.status).toBe('active');
    const missing = await http(c, `${col.url}/console/assets/nope.js`);
    expect(missing.status).toBe(404);
  });
});
