// One search box for the map: alarm accounts (number, name, address), units, incidents, and street
// names from the base map's tiles. Everything is searched in the browser, nothing is sent out.

import type { Map as MapLibreMap } from 'maplibre-gl';
import { h, replace } from './dom';

export interface SearchHit {
  label: string;
  detail: string;
  lon: number;
  lat: number;
  open?: () => void;
}

export type SearchProvider = (query: string) => SearchHit[];

const MAX_HITS = 12;

export function streetProvider(map: MapLibreMap | null): SearchProvider {
  return (query) => {
    if (!map || !map.getSource('basemap')) return [];
    const seen = new Set<string>();
    const hits: SearchHit[] = [];
    for (const feature of map.querySourceFeatures('basemap', { sourceLayer: 'transportation' })) {
      const name = String(feature.properties?.name ?? '');
      if (!name || seen.has(name) || !name.toLowerCase().includes(query)) continue;
      seen.add(name);
      const line = feature.geometry.type === 'LineString' ? feature.geometry.coordinates
        : feature.geometry.type === 'MultiLineString' ? feature.geometry.coordinates[0] : null;
      if (!line) continue;
      const [lon, lat] = line[Math.floor(line.length / 2)];
      hits.push({ label: name, detail: 'street', lon, lat });
    }
    return hits;
  };
}

export function attachSearch(input: HTMLInputElement, results: HTMLElement, map: MapLibreMap | null,
  providers: SearchProvider[]): void {
  const choose = (hit: SearchHit) => {
    results.hidden = true;
    input.value = hit.label;
    map?.flyTo({ center: [hit.lon, hit.lat], zoom: Math.max(map.getZoom(), 16) });
    hit.open?.();
  };
  const run = () => {
    const query = input.value.trim().toLowerCase();
    if (query.length < 2) {
      results.hidden = true;
      return;
    }
    const hits = providers.flatMap((provider) => provider(query)).slice(0, MAX_HITS);
    replace(results, ...(hits.length
      ? hits.map((hit) => h('li', { 'data-testid': 'search-hit', tabindex: 0, onclick: () => choose(hit),
        onkeydown: ((e: KeyboardEvent) => { if (e.key === 'Enter') choose(hit); }) as EventListener },
      h('span', {}, hit.label), h('span', { class: 'muted' }, hit.detail)))
      : [h('li', { class: 'muted' }, 'nothing found')]));
    results.hidden = false;
  };
  input.addEventListener('input', run);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      const first = results.querySelector<HTMLElement>('[data-testid="search-hit"]');
      first?.click();
    } else if (e.key === 'Escape') {
      results.hidden = true;
    }
  });
  document.addEventListener('click', (e) => {
    if (!results.contains(e.target as Node) && e.target !== input) results.hidden = true;
  });
}
