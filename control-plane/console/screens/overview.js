// The tenant overview: active policy, pending approvals, events of the last 24 hours, whether the
// filters run the current state (superadmin), and the health of the SIEM integrations. The
// superadmin also sees every tenant and can switch to one, or name a new one.

import { h, fill } from '../dom.js';
import { get, getOptional } from '../api.js';
import { badge, button, facts, field, form, input, section, status, table, text, time } from '../ui.js';

const short = (sha) => (sha ? `${sha.slice(0, 12)}…` : null);

export async function render(view) {
  const { body, admin } = view;
  const line = status();
  fill(body, line);
  try {
    const tenants = await get('/v1/admin/tenants');
    if (admin.superadmin) body.append(tenantsCard(view, tenants));
    if (!admin.tenant) {
      body.append(section('No tenant selected', h('p', {}, 'Name a tenant above to manage it.')));
      return;
    }
    const here = tenants.find((t) => t.name === admin.tenant) || { name: admin.tenant, pending_approvals: 0, recent_event_count: 0 };
    const [active, filters, integrations] = await Promise.all([
      getOptional('/v1/admin/policies/active', view.scope()),
      admin.superadmin ? get('/v1/admin/filters') : null,
      get('/v1/admin/integrations'),
    ]);
    body.append(
      section(
        `Tenant ${admin.tenant}`,
        facts([
          ['Active policy', active ? `${active.name} (${short(active.rego_sha256)}), promoted by ${active.promoted_by}` : h('strong', {}, 'none: every tools/call is denied')],
          ['Pending approvals', h('a', { href: '/console/approvals' }, String(here.pending_approvals))],
          ['Events in the last 24 h', h('a', { href: '/console/audit' }, String(here.recent_event_count))],
          ...(filters ? [['Filters in sync', syncSummary(filters)]] : []),
        ]),
      ),
      section('Integrations', integrationsTable(integrations)),
    );
  } catch (err) {
    line.error(err);
  }
}

function syncSummary({ state_version: version, filters }) {
  const connected = filters.filter((f) => f.connected);
  const current = connected.filter((f) => f.acked_version === version);
  const label = `${current.length} of ${connected.length} connected filter VMs at state version ${version}`;
  const kind = connected.length && current.length === connected.length ? 'good' : 'warn';
  return h('span', {}, badge(kind === 'good' ? 'in sync' : 'behind', kind), ' ', label, ' ', h('a', { href: '/console/keys' }, 'details'));
}

function integrationsTable(integrations) {
  return table(
    [
      { label: 'Destination', cell: (i) => i.name },
      { label: 'State', cell: (i) => (!i.configured ? badge('not configured') : i.last_error ? badge('failing', 'bad') : badge('healthy', 'good')) },
      { label: 'Endpoint', cell: (i) => text(i.endpoint) },
      { label: 'Last flush', cell: (i) => time(i.last_flush_ts) },
      { label: 'Flushed', cell: (i) => String(i.events_flushed), class: 'num' },
      { label: 'Dropped', cell: (i) => String(i.events_dropped), class: 'num' },
      { label: 'Lag', cell: (i) => text(i.lag), class: 'num' },
      { label: 'Last error', cell: (i) => text(i.last_error) },
    ],
    integrations,
  );
}

function tenantsCard(view, tenants) {
  const visible = tenants.filter((t) => !t.name.startsWith('_'));
  const name = input({ name: 'new-tenant', pattern: '[A-Za-z0-9._\\-]{1,128}', required: true });
  const line = status();
  return section(
    'Tenants',
    table(
      [
        { label: 'Tenant', cell: (t) => (t.name === view.admin.tenant ? h('strong', {}, t.name) : t.name) },
        { label: 'Active policy', cell: (t) => text(short(t.active_policy_sha)) },
        { label: 'Pending approvals', cell: (t) => String(t.pending_approvals), class: 'num' },
        { label: 'Events (24 h)', cell: (t) => String(t.recent_event_count), class: 'num' },
        { label: '', cell: (t) => button(`Open ${t.name}`, () => view.switchTenant(t.name), { class: 'quiet' }) },
      ],
      visible,
      { empty: 'No tenant has any state yet.' },
    ),
    form({ class: 'inline' }, [field('Manage another tenant', name), h('button', { type: 'submit' }, 'Switch'), line], () => {
      if (!name.checkValidity()) {
        line.show('A tenant name is 1 to 128 letters, digits, dots, dashes or underscores.', 'error');
        return;
      }
      view.switchTenant(name.value.trim());
    }),
  );
}
