// The base map: the platform's own vector tiles (one PMTiles archive cut from the city's OSM
// extract, see safecity.geo.basemap), drawn without a single request leaving the platform.
// Labels are drawn by MapLibre from local fonts: the style names no glyph server.

import type { LayerSpecification, SourceSpecification, StyleSpecification } from 'maplibre-gl';
import { FetchSource, PMTiles, Protocol } from 'pmtiles';
import { accessToken, refresh } from './session';

export interface MapConfig {
  center: [number, number];
  zoom: number;
  minzoom: number;
  maxzoom: number;
  bounds: [number, number, number, number] | null;
  basemap_url: string | null;
  tile_url: string | null;
  attribution: string;
}

export const FONT = ['DejaVu Sans', 'Liberation Sans', 'Arial', 'sans-serif'];

/** Range requests with the session's current bearer token; one refresh-and-retry on 401. */
class AuthorizedSource extends FetchSource {
  async getBytes(offset: number, length: number, signal?: AbortSignal, etag?: string) {
    this.setHeaders(new Headers({ Authorization: `Bearer ${accessToken()}` }));
    try {
      return await super.getBytes(offset, length, signal, etag);
    } catch (error) {
      if (!String(error).includes('401') || !(await refresh())) throw error;
      this.setHeaders(new Headers({ Authorization: `Bearer ${accessToken()}` }));
      return super.getBytes(offset, length, signal, etag);
    }
  }
}

export const protocol = new Protocol({ metadata: true });

export function baseSources(config: MapConfig): Record<string, SourceSpecification> {
  const sources: Record<string, SourceSpecification> = {};
  if (config.basemap_url) {
    const url = new URL(config.basemap_url, location.origin).href;
    protocol.add(new PMTiles(new AuthorizedSource(url)));
    sources.basemap = { type: 'vector', url: `pmtiles://${url}` };
  }
  if (config.tile_url) {
    sources.external = { type: 'raster', tiles: [config.tile_url], tileSize: 256, attribution: 'external tiles' };
  }
  return sources;
}

const C = {
  land: '#1b2230',
  water: '#0e3350',
  waterLine: '#1b4f78',
  park: '#1d3327',
  wood: '#1a3024',
  building: '#262e3d',
  buildingLine: '#313b4e',
  boundary: '#9a7fd1',
  minor: '#3b4558',
  service: '#323b4b',
  path: '#4a5468',
  major: '#c9a35a',
  secondary: '#8f98a8',
  rail: '#5d6573',
  label: '#c3cad6',
  halo: '#10151f',
};

const roadWidth = (base: number): unknown => ['interpolate', ['exponential', 1.6], ['zoom'], 10, base * 0.4, 14, base * 1.4, 18, base * 8];

function road(id: string, classes: string[], color: string, width: number, dashed = false): LayerSpecification {
  return {
    id,
    type: 'line',
    source: 'basemap',
    'source-layer': 'transportation',
    filter: ['in', ['get', 'class'], ['literal', classes]],
    layout: { 'line-cap': dashed ? 'butt' : 'round', 'line-join': 'round' },
    paint: {
      'line-color': color,
      'line-width': roadWidth(width) as never,
      ...(dashed ? { 'line-dasharray': [2, 1.5] } : {}),
    },
  };
}

export function baseLayers(config: MapConfig): LayerSpecification[] {
  const layers: LayerSpecification[] = [{ id: 'background', type: 'background', paint: { 'background-color': C.land } }];
  if (config.tile_url) {
    // an external map draws the ground itself: of our own tiles only district lines and street names stay on top
    layers.push({ id: 'external', type: 'raster', source: 'external', paint: { 'raster-opacity': 0.9 } });
    return config.basemap_url ? [...layers, ...ownLayers().filter((l) => OVER_EXTERNAL.has(l.id))] : layers;
  }
  if (!config.basemap_url) return layers;
  return [...layers, ...ownLayers()];
}

const OVER_EXTERNAL = new Set(['boundary', 'road-label']);

function ownLayers(): LayerSpecification[] {
  const layers: LayerSpecification[] = [];
  const v = { source: 'basemap' } as const;
  layers.push(
    { id: 'landcover', type: 'fill', ...v, 'source-layer': 'landcover',
      paint: { 'fill-color': ['match', ['get', 'class'], 'wood', C.wood, C.park], 'fill-opacity': 0.9 } },
    { id: 'water', type: 'fill', ...v, 'source-layer': 'water', paint: { 'fill-color': C.water } },
    { id: 'waterway', type: 'line', ...v, 'source-layer': 'waterway', paint: { 'line-color': C.waterLine, 'line-width': 1.2 } },
    { id: 'building', type: 'fill', ...v, 'source-layer': 'building', minzoom: 14,
      paint: { 'fill-color': C.building, 'fill-outline-color': C.buildingLine } },
    road('road-path', ['path'], C.path, 0.5, true),
    road('road-service', ['service'], C.service, 0.8),
    road('road-minor', ['minor'], C.minor, 1.2),
    road('road-secondary', ['secondary', 'tertiary'], C.secondary, 1.6),
    road('road-major', ['motorway', 'trunk', 'primary'], C.major, 2.2),
    road('rail', ['rail', 'subway'], C.rail, 0.6, true),
    road('tram', ['tram'], C.rail, 0.4),
    { id: 'boundary', type: 'line', ...v, 'source-layer': 'boundary',
      paint: { 'line-color': C.boundary, 'line-width': ['match', ['get', 'admin_level'], [9, 10, 11], 1.2, 2], 'line-dasharray': [3, 2], 'line-opacity': 0.8 } },
    { id: 'road-label', type: 'symbol', ...v, 'source-layer': 'transportation', minzoom: 15,
      filter: ['all', ['has', 'name'], ['in', ['get', 'class'], ['literal', ['primary', 'secondary', 'tertiary', 'minor', 'trunk', 'motorway']]]],
      layout: { 'symbol-placement': 'line', 'text-field': ['get', 'name'], 'text-font': FONT, 'text-size': 11 },
      paint: { 'text-color': C.label, 'text-halo-color': C.halo, 'text-halo-width': 1.4 } },
  );
  return layers;
}

export function baseStyle(config: MapConfig): StyleSpecification {
  return { version: 8, sources: baseSources(config), layers: baseLayers(config) };
}

/** The base-map layers an operator may switch off (roads stay: they are the map). */
export const BASE_TOGGLES: Array<{ label: string; layers: string[] }> = [
  { label: 'Buildings', layers: ['building'] },
  { label: 'District boundaries', layers: ['boundary'] },
  { label: 'Street names', layers: ['road-label'] },
];
