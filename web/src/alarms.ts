// The alarm queue and the alarm card: claim, act, escalate to an incident, close. Life-safety (P1)
// alarms are highlighted, flown to and announced with a beep.

import type { Map as MapLibreMap } from 'maplibre-gl';
import { ago, h, replace, timeOf, toast, words } from './dom';
import type { LiveEvent } from './live';
import { point, setOverlayData, type Feature } from './map';
import { alarmBeep } from './sound';
import { api, ApiError, type Me } from './session';

export interface Alarm {
  id: string;
  account: string;
  code: string;
  zone: string | null;
  priority: number;
  status: string;
  category: string;
  received_at: string;
  last_signal_at: string;
  signal_count: number;
  claimed_by: string | null;
  incident_requested: boolean;
  resolution: string | null;
}

export interface Account {
  number: string;
  kind: string;
  name: string;
  address: string;
  lat: number;
  lon: number;
  contract_status: string;
  zones: Array<{ zone: string; name: string; type: string }>;
  contacts: Array<{ name: string; phone: string; role: string; order: number }>;
  notes: string;
  last_seen_at: string | null;
  link_failed_at: string | null;
}

interface AlarmDetail extends Alarm {
  account_details: Account;
  signals: Array<{ code: string; zone: string | null; category: string; description: string; received_at: string; is_restore: boolean }>;
  actions: Array<{ at: string; actor: string; action: string; note: string }>;
}

const ACTIONS = ['called_keyholder', 'called_object', 'dispatched_unit', 'notified_police', 'notified_fire_service', 'video_verified', 'note'];
const RESOLUTIONS = ['real_alarm', 'dispatched', 'false_alarm', 'user_error', 'technical_fault', 'test', 'cancelled_by_keyholder', 'duplicate'];

export class AlarmPanel {
  alarms: Alarm[] = [];
  readonly accounts = new Map<string, Account>();
  private seen = new Set<string>();
  private openId: string | null = null;
  private pending: number | undefined;

  constructor(
    private readonly list: HTMLElement,
    private readonly card: HTMLElement,
    private readonly map: MapLibreMap | null,
    private readonly me: Me,
    private readonly onChange: (alarms: Alarm[]) => void,
  ) {}

  /** All accounts, page by page: the map shows them and the search finds them. */
  async loadAccounts(): Promise<void> {
    let after = '';
    for (;;) {
      const page = await api<Account[]>(`/api/v1/alarm-accounts?limit=5000&after=${encodeURIComponent(after)}`);
      page.forEach((account) => this.accounts.set(account.number, account));
      if (page.length < 5000) break;
      after = page[page.length - 1].number;
    }
    setOverlayData(this.map, 'accounts', [...this.accounts.values()].map((a) =>
      point(a.lon, a.lat, { number: a.number, name: a.name, kind: a.kind })));
  }

  async refresh(): Promise<void> {
    const alarms = await api<Alarm[]>('/api/v1/alarms');
    const missing = [...new Set(alarms.map((a) => a.account))].filter((n) => !this.accounts.has(n));
    await Promise.all(missing.map(async (number) => {
      this.accounts.set(number, await api<Account>(`/api/v1/alarm-accounts/${number}`));
    }));
    const fresh = alarms.filter((a) => a.priority === 1 && a.status === 'new' && !this.seen.has(a.id));
    alarms.forEach((a) => this.seen.add(a.id));
    this.alarms = alarms;
    this.render();
    if (fresh.length > 0) this.announce(fresh[0]);
    if (this.openId && this.card.dataset.owner === 'alarm' && !alarms.some((a) => a.id === this.openId)) this.closeCard();
  }

  onEvent(event: LiveEvent): void {
    if (event.kind === 'alarm.account_changed') void this.loadAccounts();
    window.clearTimeout(this.pending); // a burst of signals becomes one reload
    this.pending = window.setTimeout(() => void this.refresh().catch(() => undefined), 120);
    const id = event.payload.alarm_id;
    if (this.openId && id === this.openId && this.card.dataset.owner === 'alarm') void this.open(this.openId);
  }

  private announce(alarm: Alarm): void {
    alarmBeep();
    document.body.classList.add('p1-flash');
    window.setTimeout(() => document.body.classList.remove('p1-flash'), 3000);
    const account = this.accounts.get(alarm.account);
    if (account && this.map) this.map.flyTo({ center: [account.lon, account.lat], zoom: Math.max(this.map.getZoom(), 15) });
  }

  /** Push the queue to the map again (once the map has drawn its first frame). */
  redraw(): void {
    this.render();
  }

  private render(): void {
    const now = Date.now();
    const items = this.alarms.map((alarm) => {
      const account = this.accounts.get(alarm.account);
      return h('li', {
        class: `alarm p${alarm.priority} ${alarm.status}${alarm.id === this.openId ? ' selected' : ''}`,
        'data-testid': 'alarm-item', 'data-alarm-id': alarm.id, tabindex: 0,
        onclick: () => void this.open(alarm.id),
        onkeydown: ((e: KeyboardEvent) => { if (e.key === 'Enter') void this.open(alarm.id); }) as EventListener,
      },
      h('span', { class: `badge p${alarm.priority}` }, `P${alarm.priority}`),
      h('div', { class: 'alarm-main' },
        h('div', { class: 'alarm-title' }, `${alarm.code} · ${words(alarm.category)}`, alarm.zone ? ` · zone ${alarm.zone}` : ''),
        h('div', { class: 'alarm-sub' }, account ? `${account.name}, ${account.address}` : alarm.account)),
      h('div', { class: 'alarm-meta' },
        h('div', { class: `status ${alarm.status}` }, words(alarm.status)),
        h('div', { class: 'muted' }, alarm.claimed_by ?? '', ' ', ago(alarm.received_at, now))));
    });
    replace(this.list, ...(items.length ? items : [h('li', { class: 'empty' }, 'No open alarms')]));
    setOverlayData(this.map, 'alarms', this.alarms.flatMap((alarm): Feature[] => {
      const account = this.accounts.get(alarm.account);
      return account ? [point(account.lon, account.lat, { id: alarm.id, priority: alarm.priority, status: alarm.status })] : [];
    }));
    this.onChange(this.alarms);
  }

  async open(id: string): Promise<void> {
    this.openId = id;
    let detail: AlarmDetail;
    try {
      detail = await api<AlarmDetail>(`/api/v1/alarms/${id}`);
    } catch (error) {
      toast(String((error as Error).message), 'error');
      return;
    }
    if (this.openId !== id) return;
    this.list.querySelectorAll('.alarm').forEach((n) => n.classList.toggle('selected', (n as HTMLElement).dataset.alarmId === id));
    this.card.dataset.owner = 'alarm'; // the incident card shares this space
    this.renderCard(detail);
    this.card.hidden = false;
  }

  closeCard(): void {
    this.openId = null;
    this.card.hidden = true;
    this.card.replaceChildren();
  }

  private async act(path: string, body: unknown, done: string): Promise<void> {
    if (!this.openId) return;
    try {
      await api(`/api/v1/alarms/${this.openId}/${path}`, 'POST', body);
      toast(done);
    } catch (error) {
      toast(error instanceof ApiError ? error.message : String(error), 'error');
    }
    await Promise.all([this.open(this.openId), this.refresh()]);
  }

  private renderCard(alarm: AlarmDetail): void {
    const account = alarm.account_details;
    const mine = alarm.claimed_by === this.me.username;
    const closed = alarm.status === 'closed';
    const supervisor = this.me.role === 'supervisor' || this.me.role === 'admin';
    const note = h('textarea', { rows: 2, placeholder: 'note', 'data-testid': 'alarm-note' });
    const action = h('select', { 'data-testid': 'action-kind' }, ...ACTIONS.map((a) => h('option', { value: a }, words(a))));
    const resolution = h('select', { 'data-testid': 'resolution' }, ...RESOLUTIONS.map((r) => h('option', { value: r }, words(r))));
    const button = (label: string, testid: string, enabled: boolean, run: () => void, kind = '') =>
      h('button', { type: 'button', class: kind, 'data-testid': testid, disabled: !enabled, onclick: run }, label);

    replace(this.card,
      h('div', { class: 'card-head' },
        h('span', { class: `badge p${alarm.priority}` }, `P${alarm.priority}`),
        h('h2', {}, `${alarm.code} · ${words(alarm.category)}`),
        h('button', { type: 'button', class: 'icon', title: 'close', 'aria-label': 'close', onclick: () => this.closeCard() }, '×')),
      h('div', { class: 'card-status', 'data-testid': 'alarm-status' },
        `${words(alarm.status)}`, alarm.claimed_by ? ` · claimed by ${alarm.claimed_by}` : '',
        alarm.incident_requested ? ' · incident requested' : '', alarm.resolution ? ` · ${words(alarm.resolution)}` : ''),
      h('section', { class: 'account', 'data-testid': 'account-details' },
        h('h3', {}, account.name),
        h('div', {}, account.address),
        h('div', { class: 'muted' }, `account ${account.number} · ${words(account.kind)} · contract ${account.contract_status}`),
        account.notes ? h('div', { class: 'notes' }, account.notes) : null),
      h('section', { 'data-testid': 'zones' },
        h('h3', {}, 'Zones'),
        account.zones.length
          ? h('table', { class: 'zones' }, ...account.zones.map((z) =>
            h('tr', { class: z.zone === alarm.zone ? 'hit' : '' }, h('td', {}, z.zone), h('td', {}, z.name), h('td', { class: 'muted' }, words(z.type)))))
          : h('div', { class: 'muted' }, 'no zones on file')),
      h('section', { 'data-testid': 'keyholders' },
        h('h3', {}, 'Keyholders'),
        account.contacts.length
          ? h('ol', { class: 'contacts' }, ...[...account.contacts].sort((a, b) => a.order - b.order).map((c) =>
            h('li', {}, h('strong', {}, c.name), ` (${words(c.role)}) `, h('a', { href: `tel:${c.phone}` }, c.phone))))
          : h('div', { class: 'muted' }, 'no keyholders on file')),
      h('section', { class: 'controls' },
        h('div', { class: 'row' },
          button(mine ? 'Claimed' : 'Claim', 'claim', !closed && !mine && (!alarm.claimed_by || supervisor),
            () => void this.act(alarm.claimed_by && !mine ? 'claim?take_over=true' : 'claim', undefined, 'claimed'), 'primary'),
          button('Release', 'release', mine && !closed, () => void this.act('release', undefined, 'released'))),
        note,
        h('div', { class: 'row' }, action,
          button('Record', 'record-action', mine && !closed, () => void this.act('actions', { action: action.value, note: note.value }, 'recorded'))),
        h('div', { class: 'row' },
          button(alarm.incident_requested ? 'Escalated' : 'Escalate to incident', 'escalate', mine && !closed && !alarm.incident_requested,
            () => void this.act('escalate', { note: note.value }, 'incident requested'), 'danger')),
        h('div', { class: 'row' }, resolution,
          button('Close alarm', 'close-alarm', mine && !closed, () => void this.act('close', { resolution: resolution.value, note: note.value }, 'closed')))),
      h('section', {},
        h('h3', {}, 'Signals'),
        h('ul', { class: 'log' }, ...alarm.signals.map((s) =>
          h('li', {}, h('span', { class: 'muted' }, timeOf(s.received_at)), ` ${s.code}${s.zone ? `/${s.zone}` : ''} ${s.description}`)))),
      h('section', {},
        h('h3', {}, 'Actions'),
        h('ul', { class: 'log', 'data-testid': 'alarm-actions' }, ...alarm.actions.map((a) =>
          h('li', {}, h('span', { class: 'muted' }, timeOf(a.at)), ` ${a.actor}: ${words(a.action)}`, a.note ? ` (${a.note})` : '')))),
    );
  }
}
