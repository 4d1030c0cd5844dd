// Layer toggles, and the overlays of capabilities that land one by one (cameras, sensors, public
// warnings, drones): each shows up once its list endpoint answers, fed by its live topic.

import type { Map as MapLibreMap } from 'maplibre-gl';
import { BASE_TOGGLES } from './basemap';
import { h, replace } from './dom';
import type { LiveEvent } from './live';
import { addOverlay, overlayLayers, point, setOverlayData, setVisible, type Feature, type OverlaySpec } from './map';
import { api } from './session';

export interface Toggle {
  label: string;
  testid: string;
  layers: () => string[];
  visible?: boolean;
}

export function renderToggles(box: HTMLElement, map: MapLibreMap | null, toggles: Toggle[]): void {
  replace(box, h('h3', {}, 'Layers'), ...toggles.map((toggle) => {
    const input = h('input', { type: 'checkbox', 'data-testid': `toggle-${toggle.testid}`, checked: toggle.visible !== false });
    input.addEventListener('change', () => map && setVisible(map, toggle.layers(), input.checked));
    if (map && toggle.visible === false) setVisible(map, toggle.layers(), false);
    return h('label', { class: 'toggle' }, input, ' ', toggle.label);
  }));
}

export function baseToggles(): Toggle[] {
  return BASE_TOGGLES.map((t) => ({ label: t.label, testid: t.layers[0], layers: () => t.layers }));
}

export function overlayToggle(map: MapLibreMap | null, spec: OverlaySpec, visible = true): Toggle {
  return { label: spec.label, testid: spec.id, layers: () => (map ? overlayLayers(map, spec.id) : []), visible };
}

interface Capability {
  spec: OverlaySpec;
  topic: string;
  list: string;
}

/** Families the platform will grow; the map shows each once the platform has it. */
export const CAPABILITIES: Capability[] = [
  { spec: { id: 'cameras', label: 'Cameras', color: '#bf5af2', radius: 4, cluster: true }, topic: 'camera', list: '/api/v1/cameras' },
  { spec: { id: 'sensors', label: 'Sensors', color: '#30d158', radius: 5, cluster: true }, topic: 'sensor', list: '/api/v1/sensors' },
  { spec: { id: 'warnings', label: 'Public warnings', color: '#ff375f', radius: 8 }, topic: 'alert', list: '/api/v1/alerts' },
  { spec: { id: 'drones', label: 'Drones', color: '#64d2ff', radius: 6, label_field: 'name' }, topic: 'drone', list: '/api/v1/drones' },
];

/** Anything with a position: `lat`/`lon`, `location: {lat, lon}`, or a GeoJSON point `geometry`. */
export function positioned(items: unknown[]): Feature[] {
  return items.flatMap((raw): Feature[] => {
    const item = raw as Record<string, unknown>;
    const location = (item.location ?? item) as Record<string, unknown>;
    let lat = location.lat;
    let lon = location.lon;
    const geometry = item.geometry as { type?: string; coordinates?: number[] } | undefined;
    if ((typeof lat !== 'number' || typeof lon !== 'number') && geometry?.type === 'Point' && geometry.coordinates) {
      [lon, lat] = geometry.coordinates;
    }
    if (typeof lat !== 'number' || typeof lon !== 'number') return [];
    const properties: Record<string, unknown> = {};
    for (const key of ['id', 'name', 'status', 'kind', 'priority']) if (key in item) properties[key] = item[key];
    return [point(lon, lat, properties)];
  });
}

export class CapabilityLayers {
  readonly present: Capability[];
  private timers = new Map<string, number>();
  private attached = false;

  constructor(private readonly map: MapLibreMap | null, paths: Set<string>) {
    this.present = CAPABILITIES.filter((c) => paths.has(c.list));
  }

  topics(): string[] {
    return this.present.map((c) => c.topic);
  }

  async attachMap(): Promise<void> {
    if (!this.map) return;
    for (const capability of this.present) addOverlay(this.map, capability.spec);
    this.attached = true;
    await Promise.all(this.present.map((c) => this.reload(c)));
  }

  toggles(): Toggle[] {
    return this.present.map((c) => overlayToggle(this.map, c.spec));
  }

  onEvent(topic: string, _event: LiveEvent): void {
    const capability = this.present.find((c) => c.topic === topic);
    if (!capability || !this.attached) return;
    window.clearTimeout(this.timers.get(topic));
    this.timers.set(topic, window.setTimeout(() => void this.reload(capability), 500));
  }

  private async reload(capability: Capability): Promise<void> {
    const answer = await api<unknown>(capability.list).catch(() => []);
    const items = Array.isArray(answer) ? answer : ((answer as { items?: unknown[] }).items ?? []);
    setOverlayData(this.map, capability.spec.id, positioned(items));
  }
}
