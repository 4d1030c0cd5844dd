// The field tablet: one unit's assignment with its route, status buttons, location sharing from the
// browser's geolocation, and notes to the incident. Sized for a tablet or a phone.

import './styles.css';
import type { Map as MapLibreMap } from 'maplibre-gl';
import * as dispatchApi from './dispatch_api';
import type { IncidentDetail } from './dispatch_api';
import { byId, h, replace, timeOf, toast, words } from './dom';
import { LiveConnection } from './live';
import { addOverlay, createMap, loadMapConfig, point, PRIORITY_COLOR, reportIdle, setOverlayData } from './map';
import { apiPaths, available, hasSession, login, logout, me, onLogout, resumeSession, type Me } from './session';
import { alarmBeep, unlockAudio } from './sound';

const STATUSES: Array<[string, string]> = [
  ['en_route', 'En route'],
  ['on_scene', 'On scene'],
  ['returning', 'Returning'],
  ['available', 'Available'],
  ['out_of_service', 'Out of service'],
];
const POSITION_EVERY_MS = 5000;

let map: MapLibreMap | null = null;
let current: IncidentDetail | null = null;
let lastFix: GeolocationPosition | null = null;
let framedFix = false; // frame unit and incident once, on the first fix; then leave the crew's view alone

async function boot(): Promise<void> {
  onLogout(() => location.reload());
  byId('login').addEventListener('submit', (e) => void submitLogin(e));
  if (hasSession()) {
    resumeSession();
    const who = await me().catch(() => null);
    if (who) {
      await start(who);
      return;
    }
  }
  byId('login').hidden = false;
}

async function submitLogin(event: Event): Promise<void> {
  event.preventDefault();
  unlockAudio();
  const data = new FormData(event.target as HTMLFormElement);
  let who: Me;
  try {
    who = await login(String(data.get('username')), String(data.get('password')));
  } catch (error) {
    byId('login-error').textContent = (error as Error).message;
    return;
  }
  byId('login').hidden = true;
  await start(who).catch((error: Error) => toast(error.message, 'error'));
}

async function start(who: Me): Promise<void> {
  if (who.role !== 'field_unit' || !who.unit_id) {
    byId('wrong-role').hidden = false;
    return;
  }
  const unitId = who.unit_id;
  byId('unit-view').hidden = false;
  byId('unit-id').textContent = unitId;
  byId('logout').addEventListener('click', () => void logout());
  if (!(await available(`/api/v1/units/${unitId}`))) {
    document.querySelector<HTMLElement>('.unit-main')!.hidden = true;
    byId('unit-unavailable').hidden = false;
    return;
  }
  try {
    map = createMap(byId('unit-map'), await loadMapConfig());
    await new Promise<void>((resolve) => map?.once('load', () => resolve()));
    map.addSource('route', { type: 'geojson', data: { type: 'FeatureCollection', features: [] } });
    map.addLayer({ id: 'route', type: 'line', source: 'route',
      paint: { 'line-color': '#0a84ff', 'line-width': 4, 'line-dasharray': [2, 1.5] } });
    addOverlay(map, { id: 'target', label: 'Incident', color: PRIORITY_COLOR, radius: 10 });
    addOverlay(map, { id: 'me', label: 'Me', color: '#34c759', radius: 8 });
    reportIdle(map);
  } catch {
    map = null;
    byId('unit-map').hidden = true;
  }
  renderStatusButtons(unitId);
  setupLocation(unitId);
  if ((await apiPaths()).has(dispatchApi.NOTES_PATH)) byId('send-note').addEventListener('click', () => void sendNote());
  else {
    byId<HTMLButtonElement>('send-note').disabled = true;
    byId('send-note').title = 'this platform does not take incident notes yet';
  }
  await refresh(unitId);
  new LiveConnection(['incident', 'unit'], {
    event: (_topic, event) => {
      if (event.payload.unit_id === unitId || (current && event.payload.incident_id === current.id)) {
        if (event.kind === 'unit.assigned') alarmBeep();
        if (event.kind !== 'unit.position_reported') void refresh(unitId);
      }
    },
    state: (state, detail) => {
      byId('live').className = `live ${state}`;
      byId('live-text').textContent = detail;
    },
    resync: () => void refresh(unitId),
  }).open();
}

async function refresh(unitId: string): Promise<void> {
  const [job, unit] = await Promise.all([
    dispatchApi.assignment(unitId),
    dispatchApi.unit(unitId).catch(() => null),
  ]);
  current = job ? await dispatchApi.incident(job.incident_id) : null;
  if (unit) {
    byId('unit-status').textContent = words(unit.status);
    byId('unit-status').className = `status ${unit.status}`;
    document.body.dataset.unitStatus = unit.status;
    if (unit.last_lat !== null && unit.last_lon !== null && !lastFix) {
      setOverlayData(map, 'me', [point(unit.last_lon, unit.last_lat, {})]);
    }
  }
  const box = byId('assignment');
  if (!job || !current) {
    replace(box, h('h3', {}, 'Assignment'), h('p', { class: 'muted', 'data-testid': 'no-assignment' }, 'No assignment. Stand by.'));
    setOverlayData(map, 'target', []);
    setOverlayData(map, 'route', []);
    return;
  }
  const incident = current;
  replace(box,
    h('div', { class: 'card-head' },
      h('span', { class: `badge p${incident.priority}` }, `P${incident.priority}`),
      h('h2', {}, words(incident.type)),
      h('span', { class: 'muted' }, words(job.status))),
    h('div', { class: 'address', 'data-testid': 'assignment-address' }, incident.address || 'no address'),
    job.eta_s ? h('div', { class: 'muted' }, `ETA ${Math.round(job.eta_s / 60)} min when assigned`) : null,
    incident.narrative ? h('p', {}, incident.narrative) : null,
    h('button', { type: 'button', class: 'primary big', 'data-testid': 'acknowledge', disabled: job.acknowledged_at !== null,
      onclick: () => void dispatchApi.acknowledge(unitId).then(() => refresh(unitId), (e: Error) => toast(e.message, 'error')) },
    job.acknowledged_at ? 'Acknowledged' : 'Acknowledge'),
    h('ul', { class: 'log' }, ...incident.timeline.slice(-5).map((t) =>
      h('li', {}, h('span', { class: 'muted' }, timeOf(t.at)), ` ${words(t.kind)}`, t.detail ? ` (${t.detail})` : ''))));
  setOverlayData(map, 'target', [point(incident.lon, incident.lat, { priority: incident.priority })]);
  drawRoute(incident, unit);
  const road = await dispatchApi.unitRoute(unitId).catch(() => null);
  if (road && current?.id === incident.id) {
    (map?.getSource('route') as { setData?: (d: unknown) => void } | undefined)?.setData?.(
      { type: 'FeatureCollection', features: [road] });
    document.body.dataset.route = 'road';
  }
}

/** From where the unit is to the incident: a straight guide line, replaced by the road route when it arrives. */
function drawRoute(incident: IncidentDetail, unit: dispatchApi.Unit | null, frame = true): void {
  const from = lastFix ? [lastFix.coords.longitude, lastFix.coords.latitude]
    : unit && unit.last_lon !== null && unit.last_lat !== null ? [unit.last_lon, unit.last_lat] : null;
  const features = from ? [{
    type: 'Feature' as const, properties: {},
    geometry: { type: 'LineString' as const, coordinates: [from, [incident.lon, incident.lat]] },
  }] : [];
  (map?.getSource('route') as { setData?: (d: unknown) => void } | undefined)?.setData?.({ type: 'FeatureCollection', features });
  if (!frame) return;
  if (map && from) {
    map.fitBounds([[Math.min(from[0], incident.lon), Math.min(from[1], incident.lat)],
      [Math.max(from[0], incident.lon), Math.max(from[1], incident.lat)]], { padding: 60, maxZoom: 16 });
  } else {
    map?.flyTo({ center: [incident.lon, incident.lat], zoom: 15 });
  }
}

function renderStatusButtons(unitId: string): void {
  replace(byId('status-buttons'), ...STATUSES.map(([status, label]) =>
    h('button', { type: 'button', class: `status-button ${status}`, 'data-testid': `status-${status}`,
      onclick: () => void dispatchApi.reportStatus(unitId, status)
        .then(() => { toast(label); return refresh(unitId); }, (e: Error) => toast(e.message, 'error')) }, label)));
}

function setupLocation(unitId: string): void {
  const toggle = byId<HTMLInputElement>('share-location');
  let watch: number | null = null;
  let lastSent = 0;
  toggle.addEventListener('change', () => {
    if (!toggle.checked) {
      if (watch !== null) navigator.geolocation.clearWatch(watch);
      watch = null;
      byId('fix').textContent = 'not sharing';
      return;
    }
    if (!('geolocation' in navigator)) {
      toast('this browser has no geolocation', 'error');
      toggle.checked = false;
      return;
    }
    watch = navigator.geolocation.watchPosition((fix) => {
      lastFix = fix;
      byId('fix').textContent = `${fix.coords.latitude.toFixed(5)}, ${fix.coords.longitude.toFixed(5)} ±${Math.round(fix.coords.accuracy)} m at ${timeOf(new Date(fix.timestamp).toISOString())}`;
      setOverlayData(map, 'me', [point(fix.coords.longitude, fix.coords.latitude, {})]);
      if (current) drawRoute(current, null, !framedFix);
      framedFix = current !== null;
      if (fix.timestamp - lastSent < POSITION_EVERY_MS) return;
      lastSent = fix.timestamp;
      void dispatchApi.reportPosition(unitId, {
        lat: fix.coords.latitude,
        lon: fix.coords.longitude,
        recorded_at: new Date(fix.timestamp).toISOString(),
        accuracy_m: fix.coords.accuracy,
        speed_mps: fix.coords.speed ?? undefined,
        heading_deg: fix.coords.heading ?? undefined,
      }).catch((e: Error) => toast(`position not sent: ${e.message}`, 'error'));
    }, (error) => {
      toast(`location: ${error.message}`, 'error');
      toggle.checked = false;
    }, { enableHighAccuracy: true, maximumAge: 2000, timeout: 20000 });
  });
}

async function sendNote(): Promise<void> {
  const note = byId<HTMLTextAreaElement>('note');
  if (!current || !note.value.trim()) {
    toast(current ? 'write a note first' : 'no assignment to add a note to', 'error');
    return;
  }
  try {
    await dispatchApi.addNote(current.id, note.value.trim());
    note.value = '';
    toast('note sent');
  } catch (error) {
    toast((error as Error).message, 'error');
  }
}

void boot().catch((error: Error) => toast(error.message, 'error'));
