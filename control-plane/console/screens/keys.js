// Signing keys and filters (superadmin): rotate the key that signs, retire one that no longer
// does, and every filter VM's acknowledged state version and how far behind it is.

import { h, fill } from '../dom.js';
import { del, get, post } from '../api.js';
import { act, badge, button, confirm, section, status, table, time } from '../ui.js';

export function render(view) {
  const keys = h('div');
  const filters = h('div');
  fill(view.body, keys, filters);
  showKeys(keys);
  showFilters(filters);
}

async function showKeys(el) {
  const line = status();
  const reload = () => showKeys(el);
  let list = [];
  try {
    list = await get('/v1/admin/keys');
  } catch (err) {
    line.error(err);
  }
  const rotate = button('Rotate signing key', async (event) => {
    const target = event.currentTarget;
    if (!(await confirm('Rotate the signing key?', 'A new key signs from now on; the current one stays trusted until you retire it.', 'Rotate'))) return;
    if (await act(target, line, () => post('/v1/admin/keys/rotate'))) reload();
  });
  const retire = (key) => async (event) => {
    const target = event.currentTarget;
    if (!(await confirm(`Retire key ${key.kid}?`, 'Filters stop trusting it: every token it signed is refused from then on.', 'Retire'))) return;
    if (await act(target, line, () => del(`/v1/admin/keys/${encodeURIComponent(key.kid)}`).then(() => true))) reload();
  };
  fill(
    el,
    section(
      'Signing keys',
      rotate,
      table(
        [
          { label: 'Key id', cell: (k) => h('code', {}, k.kid) },
          { label: 'Status', cell: (k) => badge(k.status, { active: 'good', trusted: 'warn', retired: 'neutral' }[k.status]) },
          { label: 'Public key', cell: (k) => h('code', { class: 'clip' }, k.public_key) },
          { label: 'Created', cell: (k) => time(k.created_at) },
          { label: 'Retired', cell: (k) => time(k.retired_at) },
          { label: '', cell: (k) => (k.status === 'trusted' ? button(`Retire ${k.kid}`, retire(k), { class: 'quiet danger' }) : null) },
        ],
        list,
      ),
      line,
    ),
  );
}

async function showFilters(el) {
  const line = status();
  fill(el, section('Filters', line));
  try {
    const { state_version: version, filters } = await get('/v1/admin/filters');
    fill(
      el,
      section(
        'Filters',
        h('p', {}, `Current state version: ${version}. A filter at that version enforces the current keys, policies, settings and revocations.`),
        table(
          [
            { label: 'Filter VM', cell: (f) => f.filter_id },
            { label: 'Connected', cell: (f) => (f.connected ? badge('connected', 'good') : badge('gone', 'neutral')) },
            { label: 'Acknowledged version', cell: (f) => String(f.acked_version), class: 'num' },
            { label: 'Lag', cell: (f) => (version - f.acked_version === 0 ? badge('current', 'good') : badge(`${version - f.acked_version} behind`, 'warn')) },
            { label: 'Acknowledged', cell: (f) => time(f.acked_at) },
            { label: 'Last seen', cell: (f) => time(f.last_seen) },
            { label: 'Events received', cell: (f) => String(f.events_received), class: 'num' },
            { label: 'Events dropped', cell: (f) => String(f.events_dropped), class: 'num' },
            { label: 'Last batch', cell: (f) => time(f.last_batch_at) },
          ],
          filters,
          { empty: 'No filter has subscribed.' },
        ),
      ),
    );
  } catch (err) {
    line.error(err);
  }
}
