// The auditor's view: the hash-chained audit log, newest first, with a chain check. No live controls.

import { byId, h, replace, toast } from './dom';
import { api, type Me } from './session';

interface AuditRecord {
  seq: number;
  at: string;
  actor: string;
  actor_role: string;
  action: string;
  resource: string;
  outcome: string;
  client: string | null;
}

const PAGE = 1000;
const SHOWN = 300;
const MAX_PAGES = 50;

export async function startAuditView(me: Me): Promise<void> {
  const view = byId('audit-view');
  view.hidden = false;
  byId('audit-user').textContent = `${me.username} · ${me.role}`;
  const actor = byId<HTMLInputElement>('audit-actor');
  const action = byId<HTMLInputElement>('audit-action');
  const body = byId('audit-rows');
  const summary = byId('audit-summary');

  const load = async () => {
    // the log reads oldest first from a sequence number: walk to its end, show the newest
    const records: AuditRecord[] = [];
    let after = 0;
    for (let page = 0; page < MAX_PAGES; page++) {
      const query = new URLSearchParams({ after_seq: String(after), limit: String(PAGE) });
      if (actor.value.trim()) query.set('actor', actor.value.trim());
      if (action.value.trim()) query.set('action', action.value.trim());
      const batch = await api<AuditRecord[]>(`/api/v1/audit?${query}`);
      records.push(...batch);
      if (batch.length < PAGE) break;
      after = batch[batch.length - 1].seq;
    }
    const newest = records.slice(-SHOWN).reverse();
    summary.textContent = `${records.length} records${records.length > SHOWN ? `, newest ${SHOWN} shown` : ''}`;
    replace(body, ...newest.map((r) =>
      h('tr', { class: r.outcome === 'ok' ? '' : 'denied', 'data-testid': 'audit-row' },
        h('td', {}, String(r.seq)), h('td', {}, new Date(r.at).toLocaleString('sv-SE')), h('td', {}, r.actor),
        h('td', {}, r.actor_role), h('td', {}, r.action), h('td', {}, r.resource), h('td', {}, r.outcome),
        h('td', { class: 'muted' }, r.client ?? ''))));
  };
  const verify = async () => {
    const report = await api<{ ok: boolean; checked: number; problems: Array<{ seq: number; message: string }> }>('/api/v1/audit/verify');
    const verdict = byId('audit-verdict');
    verdict.className = report.ok ? 'verdict ok' : 'verdict bad';
    verdict.textContent = report.ok
      ? `chain intact: ${report.checked} records checked`
      : `chain BROKEN: ${report.problems.map((p) => `#${p.seq} ${p.message}`).join('; ')}`;
  };
  byId('audit-filter').addEventListener('submit', (e) => {
    e.preventDefault();
    void load().catch((error: Error) => toast(error.message, 'error'));
  });
  byId('audit-verify').addEventListener('click', () => void verify().catch((error: Error) => toast(error.message, 'error')));
  await load();
  await verify(); // after the read: the read itself appends to the chain
}
