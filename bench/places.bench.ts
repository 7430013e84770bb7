/**
 * @geofence/verifier: cost of the place table (issue 16) per point — the agent's label of a fix
 * (`labelPoint`: country from @rapideditor/country-coder, then first-level subdivision) and the
 * verifier's decision of a region/state policy with the whole accuracy circle
 * (`evaluateGeoPolicy` with a claim and a point: region_mismatch check + containment).
 * Points are uniformly random around the border towns of the tests (Strasbourg/Kehl, Reno/Truckee,
 * El Paso/Ciudad Juárez, Basel/Lörrach), ±0.5°. Also the one-off cost of loading the table.
 *
 * Run: node --import tsx bench/places.bench.ts [--json[=DIR]]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluateGeoPolicy, type GeoPolicy, labelPoint } from '@geofence/verifier';

const results: Record<string, { value: number; unit: string }> = {};
const report = (name: string, value: number, unit: string, digits = 1) => {
  results[name] = { value, unit };
  console.log(`${name}: ${value.toFixed(digits)} ${unit}`);
};

const centres = [
  [48.57, 7.78],
  [39.43, -120.0],
  [31.72, -106.45],
  [47.59, 7.62],
] as const;
let seed = 1;
const rnd = () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
  return seed / 2 ** 31;
};
const N = 20_000;
const points = Array.from({ length: N }, (_, i) => {
  const [lat, lon] = centres[i % centres.length]!;
  return { lat: lat + rnd() - 0.5, lon: lon + rnd() - 0.5, accuracy: 10 };
});

let t = process.hrtime.bigint();
labelPoint(points[0]!.lat, points[0]!.lon);
report('places.load', Number(process.hrtime.bigint() - t) / 1e6, 'ms');

const labels = points.map((p) => labelPoint(p.lat, p.lon)); // warm-up (and the claims)
t = process.hrtime.bigint();
for (let r = 0; r < 3; r++) for (const p of points) labelPoint(p.lat, p.lon);
report('places.label_per_point', Number(process.hrtime.bigint() - t) / 1e3 / (3 * N), 'µs');

const policy: GeoPolicy = {
  allow: [
    { region: 'EU', state: 'Germany' },
    { region: 'US', state: 'California' },
    { region: 'US', state: 'Texas' },
    { region: 'CH' },
  ],
};
for (let i = 0; i < N; i++) evaluateGeoPolicy(policy, { region: labels[i], point: points[i] });
t = process.hrtime.bigint();
for (let r = 0; r < 3; r++)
  for (let i = 0; i < N; i++) evaluateGeoPolicy(policy, { region: labels[i], point: points[i] });
report('places.policy_decision_per_point', Number(process.hrtime.bigint() - t) / 1e3 / (3 * N), 'µs');

const jsonArg = process.argv.find((a) => a === '--json' || a.startsWith('--json='));
if (jsonArg !== undefined) {
  const out = jsonArg.includes('=') ? jsonArg.slice('--json='.length) : 'bench-results';
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'places.json'),
    `${JSON.stringify({ bench: 'places', node: process.version, results }, null, 2)}\n`,
  );
}
