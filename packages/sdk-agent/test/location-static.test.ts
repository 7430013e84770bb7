import { describe, expect, it } from 'vitest';
import { staticLocation } from '../src/location/static.js';

describe('staticLocation', () => {
  it('returns the configured place with quality static', async () => {
    const obs = await staticLocation({ region: 'US', state: 'California', city: 'Santa Clara' }).current();
    expect(obs).toEqual({
      geographicRegion: { region: 'US', state: 'California', city: 'Santa Clara' },
      quality: 'static',
      locationType: 'geographic-region',
    });
  });

  it('adds a static reading when lat/lon are configured', async () => {
    const obs = await staticLocation({
      region: 'EU',
      state: 'Germany',
      city: 'Berlin',
      lat: 52.52,
      lon: 13.405,
    }).current();
    expect(obs.reading).toEqual({ lat: 52.52, lon: 13.405, quality: 'static' });
    const withAcc = await staticLocation({ region: 'EU', lat: 52.52, lon: 13.405, accuracy: 30 }).current();
    expect(withAcc.reading).toEqual({ lat: 52.52, lon: 13.405, accuracy: 30, quality: 'static' });
  });

  it('rejects incomplete or invalid configuration', () => {
    expect(() => staticLocation({ region: '' })).toThrow();
    expect(() => staticLocation({ region: 'US', lat: 1 })).toThrow(/both lat and lon/);
    expect(() => staticLocation({ region: 'US', lat: 91, lon: 0 })).toThrow(RangeError);
    expect(() => staticLocation({ region: 'US', accuracy: 5 })).toThrow(RangeError);
  });
});
