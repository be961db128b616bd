// Discovery: the agent inventory with its risk signals, owner assignment, and attestation
// campaigns (start one, answer each agent with evidence).

import { h, fill } from '../dom.js';
import { get, post, put } from '../api.js';
import { act, badge, button, facts, field, form, input, pager, rfc3339, section, select, status, table, text, time } from '../ui.js';

const RISK = { high: 'bad', medium: 'warn', low: 'good' };

export function render(view) {
  const inventory = h('div');
  const campaigns = h('div');
  const campaign = h('div');
  fill(view.body, inventory, campaigns, campaign);
  showInventory(view, inventory);
  showCampaigns(view, campaigns, campaign);
}

function showInventory(view, el) {
  const line = status();
  const governed = select([['', 'all agents'], ['true', 'governed'], ['false', 'not governed']], { name: 'governed' });
  const rows = h('div');
  const editor = h('div');
  const pages = pager((cursor) => load(cursor));
  governed.addEventListener('change', () => {
    pages.reset();
    load(undefined);
  });
  fill(el, section('Agent inventory', field('Show', governed), line, rows, pages, editor));
  async function load(cursor) {
    try {
      const page = await get('/v1/admin/discovery/agents', { ...view.scope(), governed: governed.value, limit: 50, cursor });
      pages.update(page.next_cursor);
      fill(
        rows,
        table(
          [
            { label: 'Agent', cell: (a) => h('span', { class: 'clip' }, a.agent) },
            { label: 'Kind', cell: (a) => a.kind },
            { label: 'Risk', cell: (a) => badge(a.risk, RISK[a.risk]) },
            { label: 'Signals', cell: (a) => a.risk_signals.map((s) => [badge(s, 'neutral'), ' ']) },
            { label: 'Governed', cell: (a) => (a.governed ? 'yes' : 'no') },
            { label: 'Owner', cell: (a) => text(a.owner) },
            { label: 'Services', cell: (a) => h('span', { class: 'clip' }, a.services.map((s) => s.name).join(', ') || '—') },
            { label: 'Gateway calls', cell: (a) => `${a.gateway.allow} allowed, ${a.gateway.deny} denied, ${a.gateway.escalate} escalated`, class: 'num' },
            { label: 'Last seen', cell: (a) => time(a.last_seen) },
            { label: '', cell: (a) => button('Assign an owner', () => ownerForm(view, editor, a, () => load(cursor)), { class: 'quiet', 'aria-label': `Assign an owner to ${a.agent}` }) },
          ],
          page.items,
          { empty: 'No agent discovered or seen by the gateway yet.' },
        ),
      );
    } catch (err) {
      line.error(err);
    }
  }
  load(undefined);
}

function ownerForm(view, el, agent, reload) {
  const owner = input({ name: 'owner', maxlength: '256', value: agent.owner || '' });
  const link = input({ name: 'gateway-agent-id', maxlength: '256', value: agent.gateway_agent_id || '' });
  const line = status();
  const submit = h('button', { type: 'submit' }, 'Save');
  fill(
    el,
    h('div', { class: 'card inset' },
      h('h3', {}, 'Owner of ', h('span', { class: 'clip' }, agent.agent)),
      facts([
        ['User', agent.user],
        ['Device', agent.device],
        ['Client address', agent.client_ip],
        ['First seen', time(agent.first_seen)],
        ['Sightings', agent.sightings],
      ]),
      form({ class: 'grid', 'aria-label': 'Assign an owner' }, [
        field('Owner', owner, 'empty clears it'),
        field('Gateway agent id', link, 'the name the gateway knows it by; empty clears it'),
        submit,
      ], () =>
        act(submit, line, async () => {
          const tenant = view.admin.superadmin ? { tenant: agent.tenant } : {};
          await put(`/v1/admin/discovery/agents/${encodeURIComponent(agent.agent)}`, { owner: owner.value.trim(), gateway_agent_id: link.value.trim(), ...tenant });
          line.show('Saved.');
          reload();
        }),
      ),
      line,
    ),
  );
  owner.focus();
}

function showCampaigns(view, el, detail) {
  const line = status();
  const rows = h('div');
  const name = input({ name: 'campaign-name', required: true, maxlength: '200' });
  const description = input({ name: 'campaign-description', maxlength: '4096' });
  const scope = select(['all', 'governed', 'ungoverned'], { name: 'campaign-scope' });
  const due = input({ type: 'datetime-local', name: 'campaign-due' });
  const submit = h('button', { type: 'submit' }, 'Start campaign');
  fill(
    el,
    section(
      'Attestation campaigns',
      form({ class: 'grid', 'aria-label': 'Start a campaign' }, [field('Name', name), field('Description', description), field('Agents', scope), field('Due', due), submit], () =>
        act(submit, line, async () => {
          const request = { name: name.value.trim(), scope: scope.value, ...view.scope() };
          if (description.value.trim()) request.description = description.value.trim();
          if (due.value) request.due_at = rfc3339(due.value);
          const created = await post('/v1/admin/attestations', request);
          name.value = '';
          load();
          openCampaign(view, detail, created.id);
        }),
      ),
      line,
      rows,
    ),
  );
  async function load() {
    try {
      const page = await get('/v1/admin/attestations', { ...view.scope(), limit: 100 });
      fill(
        rows,
        table(
          [
            { label: 'Campaign', cell: (c) => c.name },
            { label: 'Status', cell: (c) => badge(c.status, { complete: 'good', overdue: 'bad', open: 'warn' }[c.status]) },
            { label: 'Completion', cell: (c) => h('span', {}, h('meter', { min: '0', max: '100', value: String(c.completion_pct), 'aria-label': `${c.name} completion` }), ` ${c.completion_pct}% (${c.answered}/${c.total})`) },
            { label: 'Certified', cell: (c) => String(c.certified), class: 'num' },
            { label: 'Revoked', cell: (c) => String(c.revoked), class: 'num' },
            { label: 'Due', cell: (c) => time(c.due_at) },
            { label: '', cell: (c) => button(`Open ${c.name}`, () => openCampaign(view, detail, c.id, load), { class: 'quiet' }) },
          ],
          page.items,
          { empty: 'No campaign yet.' },
        ),
      );
    } catch (err) {
      line.error(err);
    }
  }
  load();
}

async function openCampaign(view, el, id, reloadList) {
  const line = status();
  fill(el, section('Campaign', line));
  let campaign;
  try {
    campaign = await get(`/v1/admin/attestations/${encodeURIComponent(id)}`);
  } catch (err) {
    line.error(err);
    return;
  }
  const answer = (item, decision, evidence) => async (event) =>
    act(event.currentTarget, line, async () => {
      await post(`/v1/admin/attestations/${encodeURIComponent(id)}/responses`, { agent: item.agent, decision, evidence: evidence.value.trim() });
      openCampaign(view, el, id, reloadList);
      if (reloadList) reloadList();
    });
  fill(
    el,
    section(
      `Campaign ${campaign.name}`,
      facts([
        ['Description', campaign.description],
        ['Created by', campaign.created_by],
        ['Status', campaign.status],
        ['Completion', `${campaign.completion_pct}% (${campaign.answered} of ${campaign.total})`],
      ]),
      table(
        [
          { label: 'Agent', cell: (i) => h('span', { class: 'clip' }, i.agent) },
          { label: 'Owner', cell: (i) => text(i.owner) },
          { label: 'Answer', cell: (i) => (i.decision ? badge(i.decision, i.decision === 'certify' ? 'good' : 'bad') : '—') },
          { label: 'Evidence', cell: (i) => text(i.evidence) },
          { label: 'By', cell: (i) => text(i.attested_by) },
          {
            label: 'Attest',
            cell: (i) => {
              if (i.decision) return time(i.attested_at);
              const evidence = input({ name: 'evidence', maxlength: '4096', 'aria-label': `Evidence for ${i.agent}` });
              return h('div', { class: 'inline' }, evidence, button('Certify', answer(i, 'certify', evidence), { class: 'good' }), button('Revoke', answer(i, 'revoke', evidence), { class: 'danger' }));
            },
          },
        ],
        campaign.items || [],
      ),
      line,
    ),
  );
}
