// The situation centre page: login, then what the role may see. Operators, dispatchers and
// supervisors get the live map with the alarm queue (and incidents/units once dispatch is there);
// auditors get the audit log and nothing live; field units are sent to their tablet page.

import './styles.css';
import type { Map as MapLibreMap } from 'maplibre-gl';
import { AlarmPanel, type Alarm } from './alarms';
import { startAuditView } from './audit';
import { DispatchPanels } from './dispatch';
import { INCIDENTS } from './dispatch_api';
import { byId, toast } from './dom';
import { baseToggles, CapabilityLayers, overlayToggle, renderToggles, type Toggle } from './layers';
import { LiveConnection } from './live';
import { addOverlay, createMap, loadMapConfig, onOverlayClick, PRIORITY_COLOR, reportIdle, type OverlaySpec } from './map';
import { attachSearch, streetProvider, type SearchProvider } from './search';
import { apiPaths, hasSession, login, logout, me, onLogout, resumeSession, type Me } from './session';
import { unlockAudio } from './sound';

const ALARMS: OverlaySpec = {
  id: 'alarms', label: 'Alarms', color: PRIORITY_COLOR,
  radius: ['match', ['get', 'priority'], 1, 11, 2, 9, 7],
};
const ACCOUNTS: OverlaySpec = { id: 'accounts', label: 'Alarm accounts', color: '#7d8fb3', radius: 4, cluster: true };

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
  byId<HTMLInputElement>('login').querySelector('input')?.focus();
}

async function submitLogin(event: Event): Promise<void> {
  event.preventDefault();
  unlockAudio(); // the click is the gesture browsers require before audio may play
  const form = event.target as HTMLFormElement;
  const data = new FormData(form);
  let who: Me;
  try {
    who = await login(String(data.get('username')), String(data.get('password')));
  } catch (error) {
    byId('login-error').textContent = (error as Error).message;
    return;
  }
  form.hidden = true;
  await start(who).catch((error: Error) => toast(error.message, 'error'));
}

async function start(who: Me): Promise<void> {
  document.body.dataset.role = who.role;
  if (who.role === 'field_unit') {
    location.replace('/tablet');
    return;
  }
  if (who.role === 'auditor') {
    byId('audit-logout').addEventListener('click', () => void logout());
    await startAuditView(who);
    return;
  }
  await startCentre(who);
}

async function startCentre(who: Me): Promise<void> {
  byId('centre').hidden = false;
  byId('user').textContent = `${who.username} · ${who.role}`;
  byId('logout').addEventListener('click', () => void logout());
  setupTabs();

  const [config, paths] = await Promise.all([loadMapConfig(), apiPaths()]);
  let map: MapLibreMap | null = null;
  try {
    map = createMap(byId('map'), config);
  } catch (error) {
    // no WebGL (an old tablet, a locked-down browser): the panels still work without the map
    byId('map').textContent = `The map cannot be drawn here: ${(error as Error).message}`;
    document.body.dataset.map = 'unavailable';
  }
  const alarms = new AlarmPanel(byId('alarm-queue'), byId('card'), map, who, showAlarmCount);
  const dispatch = paths.has(INCIDENTS) ? new DispatchPanels(byId('incident-list'), byId('unit-list'), byId('card'), map, who) : null;
  const capabilities = new CapabilityLayers(map, paths);

  // the queue does not wait for the map to draw: alarms come first
  const live = new LiveConnection(['alarm', 'incident', 'unit', ...capabilities.topics()], {
    event: (topic, event) => {
      if (topic === 'alarm') alarms.onEvent(event);
      else if (dispatch && (topic === 'incident' || topic === 'unit')) dispatch.onEvent(topic, event);
      else capabilities.onEvent(topic, event);
    },
    state: (state, detail) => {
      const box = byId('live');
      box.className = `live ${state}`;
      box.dataset.state = state;
      byId('live-text').textContent = detail;
    },
    resync: () => {
      void alarms.refresh().catch(() => undefined);
      void dispatch?.refresh().catch(() => undefined);
    },
  });
  live.open();
  await Promise.all([alarms.loadAccounts(), alarms.refresh(), dispatch?.refresh()]);
  if (dispatch) {
    byId('tab-incidents').hidden = false;
    byId('tab-units').hidden = false;
  }
  const providers: SearchProvider[] = [accountProvider(alarms), ...(dispatch ? dispatch.searchProviders() : []), streetProvider(map)];
  attachSearch(byId<HTMLInputElement>('search'), byId('search-results'), map, providers);
  window.setInterval(() => void alarms.refresh().catch(() => undefined), 30_000); // ages in the queue, and a safety net

  const toggles: Toggle[] = [overlayToggle(map, ALARMS), overlayToggle(map, ACCOUNTS, false)];
  if (map) {
    const drawn = map;
    await new Promise<void>((resolve) => drawn.once('load', () => resolve()));
    addOverlay(drawn, ACCOUNTS);
    addOverlay(drawn, ALARMS);
    onOverlayClick(drawn, 'alarms', (p) => void alarms.open(String(p.id)));
    onOverlayClick(drawn, 'accounts', (p) => {
      const open = alarms.alarms.find((a) => a.account === p.number);
      if (open) void alarms.open(open.id);
      else toast(`${p.number}: ${p.name} (no open alarm)`);
    });
    dispatch?.attachMap();
    await capabilities.attachMap();
    alarms.redraw();
    reportIdle(drawn);
  }
  toggles.push(...(dispatch ? dispatch.toggles() : []), ...capabilities.toggles(), ...baseToggles());
  renderToggles(byId('layers'), map, toggles);
}

function accountProvider(alarms: AlarmPanel): SearchProvider {
  return (query) => [...alarms.accounts.values()]
    .filter((a) => `${a.number} ${a.name} ${a.address}`.toLowerCase().includes(query))
    .map((a) => ({
      label: `${a.name}`,
      detail: `account ${a.number} · ${a.address}`,
      lon: a.lon,
      lat: a.lat,
      open: () => {
        const open = alarms.alarms.find((alarm) => alarm.account === a.number);
        if (open) void alarms.open(open.id);
      },
    }));
}

function showAlarmCount(list: Alarm[]): void {
  byId('alarm-count').textContent = String(list.length);
  const p1 = list.filter((a) => a.priority === 1 && a.status !== 'closed' && !a.claimed_by);
  byId('p1-banner').hidden = p1.length === 0;
  byId('p1-banner').textContent = p1.length > 1 ? `${p1.length} P1 ALARMS` : 'P1 ALARM';
  document.title = list.length ? `(${list.length}) safecity · situation centre` : 'safecity · situation centre';
}

function setupTabs(): void {
  for (const tab of document.querySelectorAll<HTMLButtonElement>('.tab')) {
    tab.addEventListener('click', () => {
      document.querySelectorAll('.tab').forEach((t) => t.classList.toggle('active', t === tab));
      document.querySelectorAll<HTMLElement>('.tabpanel').forEach((panel) => {
        panel.hidden = panel.dataset.panel !== tab.dataset.tab;
      });
    });
  }
}

void boot().catch((error: Error) => toast(error.message, 'error'));
