// Incidents and units: lists, the incident card with recommended units, routes and assignment, and
// the map layers (incidents by priority; units by status and heading, clustered, with ETA labels).
// Shown only where the platform has the dispatch capability (`/api/v1/incidents` answers).

import type { Map as MapLibreMap } from 'maplibre-gl';
import * as dispatchApi from './dispatch_api';
import type { Incident, Recommendation, Unit } from './dispatch_api';
import { ago, h, replace, timeOf, toast, words } from './dom';
import { overlayToggle, type Toggle } from './layers';
import type { LiveEvent } from './live';
import { addOverlay, onOverlayClick, point, PRIORITY_COLOR, setOverlayData, UNIT_STATUS_COLOR, type OverlaySpec } from './map';
import type { SearchProvider } from './search';
import { ApiError, type Me } from './session';

const INCIDENTS: OverlaySpec = {
  id: 'incidents', label: 'Incidents', color: PRIORITY_COLOR,
  radius: ['match', ['get', 'priority'], 1, 10, 2, 8, 6], label_field: 'type',
};
const UNITS: OverlaySpec = { id: 'units', label: 'Units', color: UNIT_STATUS_COLOR, cluster: true, arrow: true, label_field: 'label' };
const ROUTE = 'route';
const DISPATCH_ROLES = new Set(['dispatcher', 'supervisor', 'admin']);
const FREE = new Set(['available', 'out_of_service']);

export class DispatchPanels {
  incidents: Incident[] = [];
  units = new Map<string, Unit>();
  /** What the position stream adds to the unit list: heading, and when the unit should arrive. */
  private heading = new Map<string, number>();
  private arrival = new Map<string, number>();
  private openId: string | null = null;
  private pending: number | undefined;
  private unitsTimer: number | undefined;

  constructor(
    private readonly incidentList: HTMLElement,
    private readonly unitList: HTMLElement,
    private readonly card: HTMLElement,
    private readonly map: MapLibreMap | null,
    private readonly me: Me,
  ) {}

  /** Add the dispatch layers once the map has loaded its style, and draw what is known. */
  attachMap(): void {
    if (this.map) {
      this.map.addSource(ROUTE, { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
      this.map.addLayer({ id: ROUTE, type: 'line', source: ROUTE, layout: { 'line-cap': 'round', 'line-join': 'round' },
        paint: { 'line-color': '#0a84ff', 'line-width': 5, 'line-opacity': 0.85 } });
      addOverlay(this.map, INCIDENTS);
      addOverlay(this.map, UNITS);
      onOverlayClick(this.map, 'incidents', (p) => void this.openIncident(String(p.id)));
      onOverlayClick(this.map, 'units', (p) => toast(`${p.label}: ${words(String(p.status))}`));
    }
    this.render();
  }

  toggles(): Toggle[] {
    return [overlayToggle(this.map, INCIDENTS), overlayToggle(this.map, UNITS)];
  }

  searchProviders(): SearchProvider[] {
    return [
      (query) => [...this.units.values()]
        .filter((u) => `${u.id} ${u.callsign}`.toLowerCase().includes(query) && u.last_lat !== null && u.last_lon !== null)
        .map((u) => ({ label: u.callsign || u.id, detail: `unit · ${words(u.status)}`, lon: u.last_lon as number, lat: u.last_lat as number })),
      (query) => this.incidents
        .filter((i) => `${i.address} ${i.type} ${i.id}`.toLowerCase().includes(query))
        .map((i) => ({ label: i.address || words(i.type), detail: `incident · ${words(i.type)}`, lon: i.lon, lat: i.lat,
          open: () => void this.openIncident(i.id) })),
    ];
  }

  async refresh(): Promise<void> {
    const [incidents, units] = await Promise.all([dispatchApi.incidents(), dispatchApi.units()]);
    this.incidents = incidents;
    this.units = new Map(units.map((u) => [u.id, u]));
    this.render();
  }

  onEvent(topic: string, event: LiveEvent): void {
    const p = event.payload as Record<string, unknown>;
    const unitId = typeof p.unit_id === 'string' ? p.unit_id : null;
    if (unitId && event.kind === 'unit.assigned' && typeof p.eta_s === 'number') {
      this.arrival.set(unitId, new Date(event.occurred_at ?? Date.now()).getTime() + p.eta_s * 1000);
    }
    if (topic === 'unit' && event.kind === 'unit.position_reported' && unitId) {
      // fixes stream in: move the unit in place instead of reloading every list
      const unit = this.units.get(unitId);
      if (typeof p.heading_deg === 'number') this.heading.set(unitId, p.heading_deg);
      if (unit) {
        Object.assign(unit, { last_lat: p.lat, last_lon: p.lon, last_position_at: p.recorded_at, stale: false });
        this.scheduleUnits();
        return;
      }
    }
    window.clearTimeout(this.pending);
    this.pending = window.setTimeout(() => {
      void this.refresh().catch(() => undefined);
      if (this.openId && p.incident_id === this.openId && this.card.dataset.owner === 'incident') {
        void this.openIncident(this.openId);
      }
    }, 150);
  }

  private eta(unit: Unit): string {
    const at = this.arrival.get(unit.id);
    if (!at || FREE.has(unit.status) || unit.status === 'on_scene') return '';
    return `${Math.max(0, Math.round((at - Date.now()) / 60_000))} min`;
  }

  private render(): void {
    const now = Date.now();
    replace(this.incidentList, ...(this.incidents.length ? this.incidents.map((i) =>
      h('li', { class: `alarm p${i.priority} ${i.status}${i.id === this.openId ? ' selected' : ''}`, 'data-testid': 'incident-item',
        tabindex: 0, onclick: () => void this.openIncident(i.id) },
      h('span', { class: `badge p${i.priority}` }, `P${i.priority}`),
      h('div', { class: 'alarm-main' }, h('div', { class: 'alarm-title' }, words(i.type)), h('div', { class: 'alarm-sub' }, i.address)),
      h('div', { class: 'alarm-meta' }, h('div', { class: `status ${i.status}` }, words(i.status)),
        h('div', { class: 'muted' }, ago(i.created_at, now))))) : [h('li', { class: 'empty' }, 'No open incidents')]));
    const units = [...this.units.values()].sort((a, b) => Number(b.on_shift) - Number(a.on_shift) || a.id.localeCompare(b.id));
    replace(this.unitList, ...(units.length ? units.map((u) =>
      h('li', { class: `unit ${u.status}`, 'data-testid': 'unit-item' },
        h('span', { class: `unit-dot ${u.status}` }),
        h('div', { class: 'alarm-main' }, h('div', { class: 'alarm-title' }, u.callsign || u.id),
          h('div', { class: 'alarm-sub' }, `${words(u.kind)}${u.on_shift ? '' : ' · off shift'}${u.stale ? ' · position stale' : ''}`)),
        h('div', { class: 'alarm-meta' }, h('div', { class: `status ${u.status}` }, words(u.status)),
          h('div', { class: 'muted' }, this.eta(u) ? `ETA ${this.eta(u)}` : '')))) : [h('li', { class: 'empty' }, 'No units')]));
    document.getElementById('incident-count')!.textContent = String(this.incidents.length);
    document.getElementById('unit-count')!.textContent = String(units.filter((u) => u.on_shift).length);
    setOverlayData(this.map, 'incidents', this.incidents.map((i) =>
      point(i.lon, i.lat, { id: i.id, priority: i.priority, status: i.status, type: words(i.type) })));
    this.renderUnitsOnMap();
  }

  /** Thousands of units report every few seconds: redraw them at most twice a second, not per fix. */
  private scheduleUnits(): void {
    if (this.unitsTimer !== undefined) return;
    this.unitsTimer = window.setTimeout(() => {
      this.unitsTimer = undefined;
      this.renderUnitsOnMap();
    }, 500);
  }

  private renderUnitsOnMap(): void {
    setOverlayData(this.map, 'units', [...this.units.values()].flatMap((u) => {
      if (u.last_lat === null || u.last_lon === null || !u.on_shift) return [];
      const eta = this.eta(u);
      return [point(u.last_lon, u.last_lat, {
        id: u.id, status: u.stale ? 'stale' : u.status, heading: this.heading.get(u.id) ?? 0,
        label: eta ? `${u.callsign || u.id} · ${eta}` : u.callsign || u.id,
      })];
    }));
  }

  async openIncident(id: string): Promise<void> {
    this.openId = id;
    const dispatcher = DISPATCH_ROLES.has(this.me.role);
    try {
      const [detail, recommendations] = await Promise.all([
        dispatchApi.incident(id),
        dispatcher && !['closed', 'cancelled'].includes(this.incidents.find((i) => i.id === id)?.status ?? '')
          ? dispatchApi.recommendations(id).catch((): Recommendation[] => [])
          : Promise.resolve<Recommendation[]>([]),
      ]);
      if (this.openId !== id) return;
      const showRoute = (r: Recommendation) => setOverlayData(this.map, ROUTE, r.route ? [r.route as never] : []);
      const assign = async (r: Recommendation) => {
        try {
          await dispatchApi.assign(id, r.unit_id, r.eta_s);
          toast(`${r.unit_id} assigned`);
        } catch (error) {
          toast(error instanceof ApiError ? error.message : String(error), 'error');
        }
        await this.refresh();
        await this.openIncident(id);
      };
      this.card.dataset.owner = 'incident'; // the alarm card shares this space
      replace(this.card,
        h('div', { class: 'card-head' },
          h('span', { class: `badge p${detail.priority}` }, `P${detail.priority}`),
          h('h2', {}, words(detail.type)),
          h('button', { type: 'button', class: 'icon', 'aria-label': 'close', onclick: () => this.closeCard() }, '×')),
        h('div', { class: 'card-status', 'data-testid': 'incident-status' }, `${words(detail.status)} · from ${detail.source}`),
        h('section', { class: 'account' }, h('h3', {}, detail.address || 'no address'),
          detail.narrative ? h('div', { class: 'notes' }, detail.narrative) : null),
        h('section', {}, h('h3', {}, 'Units on this incident'),
          h('ul', { class: 'log', 'data-testid': 'incident-units' }, ...detail.assignments.map((a) =>
            h('li', {}, `${a.unit_id}: ${words(a.status)}`, a.eta_s ? ` · ETA ${Math.round(a.eta_s / 60)} min` : '',
              a.acknowledged_at ? ' · acknowledged' : '')))),
        recommendations.length ? h('section', {}, h('h3', {}, 'Recommended units'),
          h('ol', { class: 'log recommendations' }, ...recommendations.map((r) =>
            h('li', { onmouseenter: () => showRoute(r) },
              h('strong', {}, r.unit_id), ` ${words(r.kind)} · ${Math.round(r.eta_s / 60)} min by road`,
              r.stale ? ' · stale position' : '', r.missing_capabilities.length ? ` · lacks ${r.missing_capabilities.join(', ')}` : '', ' ',
              h('button', { type: 'button', 'data-testid': 'assign', onclick: () => void assign(r) }, 'Assign'))))) : null,
        h('section', {}, h('h3', {}, 'Timeline'),
          h('ul', { class: 'log' }, ...detail.timeline.map((t) =>
            h('li', {}, h('span', { class: 'muted' }, timeOf(t.at)), ` ${t.actor}: ${words(t.kind)}`, t.unit_id ? ` ${t.unit_id}` : '',
              t.detail ? ` (${t.detail})` : '')))),
      );
      this.card.hidden = false;
      if (recommendations[0]) showRoute(recommendations[0]);
      this.map?.flyTo({ center: [detail.lon, detail.lat], zoom: Math.max(this.map.getZoom(), 15) });
    } catch (error) {
      toast((error as Error).message, 'error');
    }
  }

  closeCard(): void {
    this.openId = null;
    this.card.hidden = true;
    setOverlayData(this.map, ROUTE, []);
  }
}
