// The one electronic map: base map plus live overlays (alarms, incidents, units, …), each a GeoJSON
// source the panels feed. Dense families (units, cameras, accounts) are clustered in the worker so
// tens of thousands of points stay fluid.

import * as maplibregl from 'maplibre-gl';
import type { ExpressionSpecification, GeoJSONSource, Map as MapLibreMap } from 'maplibre-gl';
import 'maplibre-gl/dist/maplibre-gl.css';
import workerUrl from 'maplibre-gl/dist/maplibre-gl-worker.mjs?url';
import { baseStyle, FONT, protocol, type MapConfig } from './basemap';
import { accessToken, api } from './session';

maplibregl.setWorkerUrl(workerUrl);
maplibregl.addProtocol('pmtiles', protocol.tile);

export type Feature = GeoJSON.Feature<GeoJSON.Point, Record<string, unknown>>;

export interface OverlaySpec {
  id: string;
  label: string;
  color: ExpressionSpecification | string;
  radius?: ExpressionSpecification | number;
  cluster?: boolean;
  /** Draw as a heading arrow (units) instead of a dot. */
  arrow?: boolean;
  /** A short text beside the point (ETA, callsign). */
  label_field?: string;
}

export const PRIORITY_COLOR: ExpressionSpecification = [
  'match', ['get', 'priority'], 1, '#ff3b30', 2, '#ff9500', 3, '#ffd60a', '#64a8ff',
];

export const UNIT_STATUS_COLOR: ExpressionSpecification = [
  'match', ['get', 'status'],
  'available', '#34c759',
  'dispatched', '#ffd60a',
  'en_route', '#ff9500',
  'on_scene', '#ff453a',
  'returning', '#5ac8fa',
  '#8e8e93',
];

export async function loadMapConfig(): Promise<MapConfig> {
  return api<MapConfig>('/api/v1/map/config');
}

export function createMap(container: HTMLElement, config: MapConfig): MapLibreMap {
  const map = new maplibregl.Map({
    container,
    style: baseStyle(config),
    center: config.center,
    zoom: config.zoom,
    maxZoom: 19,
    attributionControl: { compact: false, customAttribution: config.attribution || undefined },
    // MapLibre fetches some resources itself: same-origin API calls carry the session's token.
    transformRequest: (url) => {
      const target = new URL(url, location.href);
      if (target.origin === location.origin && target.pathname.startsWith('/api/')) {
        return { url, headers: { Authorization: `Bearer ${accessToken()}` } };
      }
      return { url };
    },
  });
  map.addControl(new maplibregl.NavigationControl({ visualizePitch: false }), 'bottom-right');
  map.addControl(new maplibregl.ScaleControl({ unit: 'metric' }), 'bottom-left');
  return map;
}

/** An upward arrow drawn on a canvas: no sprite file to fetch. */
function arrowImage(): ImageData {
  const size = 48;
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = size;
  const g = canvas.getContext('2d') as CanvasRenderingContext2D;
  g.fillStyle = '#fff';
  g.beginPath();
  g.moveTo(size / 2, 3);
  g.lineTo(size - 8, size - 6);
  g.lineTo(size / 2, size - 16);
  g.lineTo(8, size - 6);
  g.closePath();
  g.fill();
  return g.getImageData(0, 0, size, size);
}

export function addOverlay(map: MapLibreMap, spec: OverlaySpec): void {
  map.addSource(spec.id, {
    type: 'geojson',
    data: { type: 'FeatureCollection', features: [] },
    cluster: spec.cluster ?? false,
    clusterRadius: 48,
    clusterMaxZoom: 14,
  });
  const single: ExpressionSpecification = ['!', ['has', 'point_count']];
  if (spec.cluster) {
    map.addLayer({
      id: `${spec.id}-clusters`, type: 'circle', source: spec.id, filter: ['has', 'point_count'],
      paint: {
        'circle-color': typeof spec.color === 'string' ? spec.color : '#5e7fb8',
        'circle-opacity': 0.75,
        'circle-radius': ['step', ['get', 'point_count'], 12, 50, 16, 500, 22, 5000, 28],
        'circle-stroke-color': '#0b0f17', 'circle-stroke-width': 1.5,
      },
    });
    map.addLayer({
      id: `${spec.id}-count`, type: 'symbol', source: spec.id, filter: ['has', 'point_count'],
      layout: { 'text-field': ['get', 'point_count_abbreviated'], 'text-font': FONT, 'text-size': 11, 'text-allow-overlap': true },
      paint: { 'text-color': '#ffffff' },
    });
  }
  if (spec.arrow) {
    if (!map.hasImage('unit-arrow')) map.addImage('unit-arrow', arrowImage(), { sdf: true, pixelRatio: 2 });
    map.addLayer({
      id: `${spec.id}-points`, type: 'symbol', source: spec.id, filter: single,
      layout: {
        'icon-image': 'unit-arrow', 'icon-size': 1.1, 'icon-allow-overlap': true,
        'icon-rotate': ['coalesce', ['get', 'heading'], 0], 'icon-rotation-alignment': 'map',
      },
      paint: { 'icon-color': spec.color, 'icon-halo-color': '#0b0f17', 'icon-halo-width': 1.5 },
    });
  } else {
    map.addLayer({
      id: `${spec.id}-points`, type: 'circle', source: spec.id, filter: single,
      paint: {
        'circle-color': spec.color,
        'circle-radius': spec.radius ?? 6,
        'circle-stroke-color': '#0b0f17',
        'circle-stroke-width': 1.5,
      },
    });
  }
  if (spec.label_field) {
    map.addLayer({
      id: `${spec.id}-labels`, type: 'symbol', source: spec.id, filter: single, minzoom: 13,
      layout: {
        'text-field': ['get', spec.label_field], 'text-font': FONT, 'text-size': 11,
        'text-offset': [0, 1.4], 'text-anchor': 'top', 'text-optional': true,
      },
      paint: { 'text-color': '#e8ecf3', 'text-halo-color': '#0b0f17', 'text-halo-width': 1.5 },
    });
  }
}

export function overlayLayers(map: MapLibreMap, id: string): string[] {
  return ['clusters', 'count', 'points', 'labels'].map((part) => `${id}-${part}`).filter((layer) => map.getLayer(layer));
}

export function setOverlayData(map: MapLibreMap | null, id: string, features: Feature[]): void {
  const source = map?.getSource(id) as GeoJSONSource | undefined;
  source?.setData({ type: 'FeatureCollection', features });
}

export function setVisible(map: MapLibreMap, layers: string[], visible: boolean): void {
  for (const layer of layers) {
    if (map.getLayer(layer)) map.setLayoutProperty(layer, 'visibility', visible ? 'visible' : 'none');
  }
}

/** Tells a watcher (and the browser tests) when the map is drawn, and how many roads it shows. */
export function reportIdle(map: MapLibreMap): void {
  const roads = ['road-major', 'road-secondary', 'road-minor', 'road-service'].filter((id) => map.getLayer(id));
  map.on('idle', () => {
    document.body.dataset.mapIdle = 'true';
    document.body.dataset.roads = String(roads.length ? map.queryRenderedFeatures({ layers: roads }).length : 0);
  });
  map.on('dataloading', () => {
    document.body.dataset.mapIdle = 'false';
  });
  document.body.dataset.map = 'ready';
}

export function point(lon: number, lat: number, properties: Record<string, unknown>): Feature {
  return { type: 'Feature', geometry: { type: 'Point', coordinates: [lon, lat] }, properties };
}

/** Zoom into a cluster on click; call `open` with a single feature's properties. */
export function onOverlayClick(map: MapLibreMap, id: string, open: (properties: Record<string, unknown>) => void): void {
  map.on('click', `${id}-points`, (e) => {
    const feature = e.features?.[0];
    if (feature) open(feature.properties as Record<string, unknown>);
  });
  if (map.getLayer(`${id}-clusters`)) {
    map.on('click', `${id}-clusters`, async (e) => {
      const feature = e.features?.[0];
      if (!feature) return;
      const source = map.getSource(id) as GeoJSONSource;
      const zoom = await source.getClusterExpansionZoom(feature.properties.cluster_id as number);
      map.easeTo({ center: (feature.geometry as GeoJSON.Point).coordinates as [number, number], zoom });
    });
  }
  for (const layer of [`${id}-points`, `${id}-clusters`]) {
    map.on('mouseenter', layer, () => (map.getCanvas().style.cursor = 'pointer'));
    map.on('mouseleave', layer, () => (map.getCanvas().style.cursor = ''));
  }
}
