// The four governance reports, with charts where looking beats reading: coverage per tenant,
// decisions per day over the last two weeks, and the most denied agents and tools. Each report
// downloads as CSV too.

import { h, fill } from '../dom.js';
import { download, get } from '../api.js';
import { activity, bars, coverage } from '../charts.js';
import { act, badge, button, field, section, select, status, table, text, time } from '../ui.js';

const DAY_MS = 86_400_000;
const DAYS = 14;

export function render(view) {
  const { body, admin } = view;
  const scope = select([['tenant', `tenant ${admin.tenant || ''}`], ['all', 'every tenant']], { name: 'report-scope' });
  const content = h('div');
  const query = () => (admin.superadmin && scope.value === 'all' ? {} : view.scope());
  const show = () => {
    fill(content, postureCard(query), activityCard(query), accessCard(query), attestationCard(query));
  };
  scope.addEventListener('change', show);
  fill(body, admin.superadmin ? field('Reports cover', scope) : null, content);
  show();
}

function card(title, kind, query, build) {
  const line = status();
  const out = h('div');
  const csv = button(`Download ${kind} CSV`, (e) =>
    act(e.currentTarget, line, async () => {
      const bytes = await download(`/api/reports/${kind}`, { ...query(), format: 'csv' }, `${kind}.csv`);
      line.show(`Downloaded ${bytes} bytes.`);
    }),
  );
  const el = section(title, out, h('div', { class: 'actions' }, csv), line);
  build(out).catch((err) => line.error(err));
  return el;
}

function postureCard(query) {
  return card('Coverage (posture)', 'posture', query, async (out) => {
    const report = await get('/api/reports/posture', query());
    fill(
      out,
      report.tenants.length ? coverage('Governed, owned and attested agents per tenant (%)', report.tenants) : null,
      table(
        [
          { label: 'Tenant', cell: (t) => t.tenant },
          { label: 'Agents', cell: (t) => String(t.agents), class: 'num' },
          { label: 'Discovered', cell: (t) => String(t.discovered), class: 'num' },
          { label: 'Governed', cell: (t) => `${t.governed} (${t.governed_pct}%)`, class: 'num' },
          { label: 'Owned', cell: (t) => `${t.owned} (${t.owned_pct}%)`, class: 'num' },
          { label: 'Attested', cell: (t) => `${t.attested} (${t.attested_pct}%)`, class: 'num' },
          { label: 'High risk', cell: (t) => String(t.high_risk), class: 'num' },
          { label: 'Sources', cell: (t) => String(t.sources), class: 'num' },
        ],
        report.tenants,
        { empty: 'No agent known yet.' },
      ),
    );
  });
}

const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function activityCard(query) {
  return card('Activity', 'activity', query, async (out) => {
    const now = Date.now();
    const end = Math.ceil(now / DAY_MS) * DAY_MS;
    const windows = Array.from({ length: DAYS }, (_, i) => end - (DAYS - i) * DAY_MS);
    const [whole, ...days] = await Promise.all([
      get('/api/reports/activity', { ...query(), since: iso(windows[0]), until: iso(end) }),
      ...windows.map((start) => get('/api/reports/activity', { ...query(), since: iso(start), until: iso(start + DAY_MS) })),
    ]);
    const sum = (report, key) => report.tenants.reduce((n, t) => n + t[key], 0);
    const perDay = days.map((report, i) => ({
      label: new Date(windows[i]).toISOString().slice(5, 10),
      allow: sum(report, 'allow') + sum(report, 'approve'),
      deny: sum(report, 'deny') + sum(report, 'reject'),
      escalate: sum(report, 'escalate'),
    }));
    const top = (key) => {
      const merged = new Map();
      for (const t of whole.tenants) for (const b of t[key]) merged.set(b.name, (merged.get(b.name) || 0) + b.denied);
      return [...merged].map(([label, value]) => ({ label, value })).sort((a, b) => b.value - a.value).slice(0, 10);
    };
    const agents = top('top_blocked_agents');
    const tools = top('top_blocked_tools');
    fill(
      out,
      h('p', {}, `From ${whole.since} to ${whole.until}: `, ['allow', 'deny', 'escalate', 'approve', 'reject'].map((k) => [badge(`${sum(whole, k)} ${k}`, { allow: 'good', approve: 'good', escalate: 'warn' }[k] || 'bad'), ' '])),
      activity(`Decisions per day, last ${DAYS} days (UTC)`, perDay),
      h('div', { class: 'two' },
        h('div', {}, h('h3', {}, 'Most denied agents'), agents.length ? bars('Most denied agents', agents) : h('p', { class: 'empty' }, 'No denial.'), table([{ label: 'Agent', cell: (b) => b.label }, { label: 'Denied', cell: (b) => String(b.value), class: 'num' }], agents, { empty: '' })),
        h('div', {}, h('h3', {}, 'Most denied tools'), tools.length ? bars('Most denied tools', tools) : h('p', { class: 'empty' }, 'No denial.'), table([{ label: 'Tool', cell: (b) => b.label }, { label: 'Denied', cell: (b) => String(b.value), class: 'num' }], tools, { empty: '' })),
      ),
    );
  });
}

function accessCard(query) {
  return card('Access', 'access', query, async (out) => {
    const report = await get('/api/reports/access', query());
    fill(
      out,
      table(
        [
          { label: 'Agent', cell: (a) => h('span', { class: 'clip' }, a.agent) },
          { label: 'Tenant', cell: (a) => a.tenant },
          { label: 'Governed', cell: (a) => (a.governed ? 'yes' : 'no') },
          { label: 'Touches', cell: (a) => h('span', { class: 'clip' }, a.touches.map((t) => `${t.name}${t.kind === 'tool' ? ` (${t.calls} calls, ${t.denied} denied)` : ''}`).join(', ') || '—') },
          { label: 'Policy', cell: (a) => text(a.policy && a.policy.name) },
          { label: 'Owner', cell: (a) => text(a.owner) },
        ],
        report.agents,
        { empty: 'No agent known yet.' },
      ),
    );
  });
}

function attestationCard(query) {
  return card('Attestation', 'attestation', query, async (out) => {
    const report = await get('/api/reports/attestation', query());
    fill(
      out,
      table(
        [
          { label: 'Campaign', cell: (c) => c.name },
          { label: 'Tenant', cell: (c) => c.tenant },
          { label: 'Status', cell: (c) => c.status },
          { label: 'Completion', cell: (c) => h('span', {}, h('meter', { min: '0', max: '100', value: String(c.completion_pct), 'aria-label': `${c.name} completion` }), ` ${c.completion_pct}%`) },
          { label: 'Certified', cell: (c) => String(c.certified), class: 'num' },
          { label: 'Revoked', cell: (c) => String(c.revoked), class: 'num' },
          { label: 'Due', cell: (c) => time(c.due_at) },
        ],
        report.campaigns,
        { empty: 'No campaign yet.' },
      ),
    );
  });
}
