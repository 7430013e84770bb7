/**
 * The console page script (bundled by scripts/build-console.mjs into dist/console/console.js).
 * Everything an agent or an enrolment supplied (names, places, metric keys, EK issuers, payloads) is
 * untrusted: it reaches the DOM only through `textContent` or as a DOM node, never as markup — also
 * in Leaflet tooltips, which would parse a string as HTML.
 */
import L from 'leaflet';
import type {
  ConsoleAgent,
  ConsoleRecord,
  ConsoleSessionInfo,
  ConsoleState,
  FeedEvent,
  FeedLocation,
  FeedPlace,
} from '../src/console/api.js';

const VERDICT_COLOUR = { accepted: '#1a7f37', rejected: '#cf222e', none: '#6e7781' } as const;
const FEED_MAX = 200;

let csrfToken = '';

/** A new element with text content only. */
function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  className?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function byId<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing`);
  return e as T;
}

async function api<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (init.method === 'POST') headers.set('x-csrf-token', csrfToken);
  const r = await fetch(path, { ...init, headers, credentials: 'same-origin' });
  if (r.status === 403 && !path.endsWith('/approve') && !path.endsWith('/revoke')) {
    // Session expired: back to the login form.
    location.assign('/console/');
  }
  if (!r.ok) {
    const body = (await r.json().catch(() => ({}))) as { error?: string };
    throw new Error(body.error ?? `HTTP ${r.status}`);
  }
  return (r.status === 204 ? undefined : await r.json()) as T;
}

const placeText = (p?: FeedPlace) => (p ? [p.region, p.state, p.city].filter(Boolean).join(' / ') : '');
const locationText = (l?: FeedLocation) =>
  l
    ? `${l.lat.toFixed(4)}, ${l.lon.toFixed(4)}${l.accuracy !== undefined ? ` ±${Math.round(l.accuracy)} m` : ''}`
    : '';
const timeText = (iso?: string) => (iso ? new Date(iso).toLocaleTimeString() : '');

// ---- map ----------------------------------------------------------------------------------------

const map = L.map(byId('map'), { worldCopyJump: false, minZoom: 1, attributionControl: true }).setView(
  [30, 0],
  2,
);
map.attributionControl.setPrefix(false);
map.attributionControl.addAttribution('Outlines: Natural Earth (world-atlas), OpenStreetMap (country-coder)');
const placesLayer = L.layerGroup().addTo(map);
const fencesLayer = L.layerGroup().addTo(map);
const agentsLayer = L.layerGroup().addTo(map);

async function drawWorld(): Promise<void> {
  const world = (await (await fetch('/console/assets/world.json')).json()) as GeoJSON.FeatureCollection;
  L.geoJSON(world, {
    interactive: false,
    style: { color: '#8c959f', weight: 0.6, fillColor: '#eaeef2', fillOpacity: 1, className: 'world' },
  })
    .addTo(map)
    .bringToBack();
}

/** A tooltip body as a DOM node (a string would be parsed as HTML by Leaflet). */
function tooltip(lines: string[]): HTMLElement {
  const d = el('div');
  for (const line of lines) d.append(el('div', line));
  return d;
}

function drawAgents(state: ConsoleState): void {
  placesLayer.clearLayers();
  fencesLayer.clearLayers();
  agentsLayer.clearLayers();
  const drawnPlaces = new Set<string>();
  const bounds = L.latLngBounds([]);
  for (const a of state.agents) {
    for (const code of a.place_codes) {
      const p = state.places[code];
      if (!p || drawnPlaces.has(code)) continue;
      drawnPlaces.add(code);
      L.geoJSON({ type: 'MultiPolygon', coordinates: p.coordinates } as GeoJSON.MultiPolygon, {
        style: { color: '#8250df', weight: 1.5, fillOpacity: 0.08, className: 'place-outline' },
      })
        .bindTooltip(tooltip([`${p.name} (${p.code})`]))
        .addTo(placesLayer);
    }
    for (const f of a.fences) {
      const layer = L.geoJSON(f as GeoJSON.GeoJsonObject, {
        style: { color: '#0969da', weight: 2, dashArray: '6 4', fillOpacity: 0.12, className: 'fence' },
      })
        .bindTooltip(tooltip([`fence of ${a.agent_name}`]))
        .addTo(fencesLayer);
      bounds.extend(layer.getBounds());
    }
    const loc = a.last_location;
    if (loc) {
      const colour = VERDICT_COLOUR[a.last_verdict ?? 'none'];
      const verdictClass = `verdict-${a.last_verdict ?? 'none'}`;
      if (loc.accuracy !== undefined) {
        L.circle([loc.lat, loc.lon], {
          radius: Math.max(loc.accuracy, 1),
          color: colour,
          weight: 1,
          fillOpacity: 0.15,
          className: `accuracy-circle ${verdictClass}`,
        }).addTo(agentsLayer);
      }
      L.circleMarker([loc.lat, loc.lon], {
        radius: 7,
        color: '#ffffff',
        weight: 2,
        fillColor: colour,
        fillOpacity: 1,
        className: `agent-marker ${verdictClass}`,
      })
        .bindTooltip(
          tooltip([
            a.agent_name,
            `${a.last_verdict ?? 'no traffic'} ${timeText(a.last_seen)}`,
            locationText(loc),
          ]),
        )
        .addTo(agentsLayer);
      bounds.extend([loc.lat, loc.lon]);
    }
  }
  if (bounds.isValid()) map.fitBounds(bounds.pad(0.5), { maxZoom: 9 });
}

// ---- agents table --------------------------------------------------------------------------------

function actionButton(a: ConsoleAgent, verb: 'approve' | 'revoke'): HTMLButtonElement {
  const b = el('button', verb, `action ${verb}`);
  b.type = 'button';
  b.dataset.action = verb;
  b.disabled = verb === 'approve' ? a.status === 'active' : a.status === 'revoked';
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await api(`/console/api/agents/${encodeURIComponent(a.agent_name)}/${verb}`, { method: 'POST' });
    } catch (e) {
      alert(`${verb} failed: ${(e as Error).message}`);
    }
    await refresh();
  });
  return b;
}

function drawTable(state: ConsoleState): void {
  const body = byId<HTMLTableElement>('agents').tBodies[0];
  if (!body) return;
  body.replaceChildren();
  for (const a of state.agents) {
    const tr = el('tr');
    tr.dataset.agent = a.agent_name;
    const rejection = a.last_rejection
      ? `${a.last_rejection.validation_type ?? ''} ${timeText(a.last_rejection.time)}`
      : '';
    const trust = a.ek_cert_issuer ? `${a.trust_level} (${a.ek_cert_issuer})` : a.trust_level;
    const cells = [
      a.agent_name,
      a.status,
      `${a.keyid.slice(0, 12)}…`,
      trust,
      timeText(a.last_seen),
      [placeText(a.last_place), locationText(a.last_location)].filter(Boolean).join(' · '),
      rejection,
    ];
    for (const c of cells) tr.append(el('td', c));
    tr.children[1]?.classList.add(`status-${a.status}`);
    const actions = el('td');
    actions.append(actionButton(a, 'approve'), actionButton(a, 'revoke'));
    tr.append(actions);
    body.append(tr);
  }
}

async function refresh(): Promise<void> {
  const state = await api<ConsoleState>('/console/api/state');
  drawTable(state);
  drawAgents(state);
}

let refreshTimer: number | undefined;
/** Coalesces bursts of feed events into one state refresh. */
function refreshSoon(): void {
  if (refreshTimer !== undefined) return;
  refreshTimer = window.setTimeout(() => {
    refreshTimer = undefined;
    void refresh();
  }, 300);
}

// ---- feed and record detail ----------------------------------------------------------------------

function showDetail(title: string, sections: Array<[string, unknown]>): void {
  const d = byId('detail');
  d.replaceChildren(el('h3', title));
  for (const [name, value] of sections) {
    d.append(el('h4', name), el('pre', JSON.stringify(value, null, 2)));
  }
}

async function openEvent(e: FeedEvent): Promise<void> {
  byId('detail').dataset.valid = 'loading';
  if (e.record_id) {
    try {
      const r = await api<ConsoleRecord>(`/console/api/records/${encodeURIComponent(e.record_id)}`);
      const v = r.reverification;
      showDetail(`${r.record_id} — re-verification ${v.valid ? 'valid' : 'INVALID'}`, [
        ['re-verification', v.checks],
        ['payload', r.payload],
        ['verdict at ingestion', r.verdict],
      ]);
      byId('detail').dataset.valid = String(v.valid);
    } catch (err) {
      showDetail(`record ${e.record_id}`, [['error', (err as Error).message]]);
    }
    return;
  }
  showDetail(`rejected (${e.validation_type ?? 'unknown'}) — not stored`, [
    ['rejection', { validation_type: e.validation_type, rejected_by: e.rejected_by, error: e.error }],
    ['payload (unverified)', e.payload ?? null],
  ]);
  byId('detail').dataset.valid = 'rejected';
}

function addFeedItem(e: FeedEvent): void {
  const feed = byId<HTMLOListElement>('feed');
  const li = el('li', undefined, `feed-item ${e.outcome}`);
  li.dataset.outcome = e.outcome;
  li.dataset.seq = String(e.seq);
  li.tabIndex = 0;
  li.append(
    el('span', timeText(e.time), 'time'),
    el('span', e.outcome === 'accepted' ? 'accepted' : (e.validation_type ?? 'rejected'), 'validation'),
    el('span', e.rejected_by ? `by ${e.rejected_by}` : '', 'rejected-by'),
    el('span', e.agent_name ?? '(no agent name)', 'agent'),
    el('span', placeText(e.place), 'place'),
  );
  li.addEventListener('click', () => void openEvent(e));
  li.addEventListener('keydown', (k) => {
    if (k.key === 'Enter') void openEvent(e);
  });
  feed.prepend(li);
  while (feed.children.length > FEED_MAX) feed.lastElementChild?.remove();
}

function connectFeed(): void {
  const conn = byId('conn');
  const source = new EventSource('/console/api/events');
  source.addEventListener('open', () => {
    conn.textContent = 'live';
    conn.className = 'conn live';
  });
  source.addEventListener('error', () => {
    conn.textContent = 'reconnecting…';
    conn.className = 'conn down';
  });
  source.addEventListener('record', (m) => {
    const e = JSON.parse((m as MessageEvent<string>).data) as FeedEvent;
    // A reconnect replays from Last-Event-ID; skip what is already shown.
    if (document.querySelector(`#feed [data-seq="${e.seq}"]`)) return;
    addFeedItem(e);
    refreshSoon();
  });
}

async function main(): Promise<void> {
  const s = await api<ConsoleSessionInfo>('/console/api/session');
  csrfToken = s.csrf_token;
  byId('logout').addEventListener('click', async () => {
    await api('/console/logout', { method: 'POST' }).catch(() => undefined);
    location.assign('/console/');
  });
  await Promise.all([drawWorld(), refresh()]);
  connectFeed();
  document.body.dataset.ready = 'true';
}

void main();
