// The approvals inbox: calls a policy escalated, held until a human decides. Each shows the agent,
// the tool, its arguments and the escalating rule; approve or reject it with a reason. The list
// refreshes itself every few seconds without losing what is being typed.

import { h, fill } from '../dom.js';
import { all, post } from '../api.js';
import { act, button, facts, field, input, json, section, status, time } from '../ui.js';

const REFRESH_MS = 3000;

export function render(view) {
  const { body } = view;
  const line = status();
  const refreshed = h('p', { class: 'muted' });
  const decidedBy = input({ name: 'decided-by', maxlength: '256', placeholder: 'optional, e.g. joe@example.com' });
  const list = h('div', { class: 'approvals' });
  const cards = new Map();
  fill(
    body,
    section('Held calls', field('Your name (recorded as decided_by)', decidedBy), refreshed, line, list),
  );

  async function refresh() {
    try {
      const items = await all('/v1/admin/approvals', view.scope());
      const seen = new Set(items.map((a) => a.id));
      for (const [id, card] of cards) {
        if (!seen.has(id)) {
          card.remove();
          cards.delete(id);
        }
      }
      for (const approval of items.slice().reverse()) {
        if (!cards.has(approval.id)) {
          const card = approvalCard(approval, decidedBy, () => {
            card.remove();
            cards.delete(approval.id);
            refresh();
          });
          cards.set(approval.id, card);
          list.prepend(card);
        }
      }
      if (!cards.size) fill(list, h('p', { class: 'empty' }, 'No call is waiting for a decision.'));
      else list.querySelector('.empty')?.remove();
      fill(refreshed, `${cards.size} waiting · refreshed ${new Date().toLocaleTimeString()}`);
      line.clear();
    } catch (err) {
      line.error(err);
    }
  }

  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  view.onLeave(() => clearInterval(timer));
}

function approvalCard(approval, decidedBy, decided) {
  const line = status();
  const reason = input({ name: 'reason', maxlength: '1024' });
  const decide = (decision) => async (event) => {
    const body = { decision };
    if (reason.value.trim()) body.reason = reason.value.trim();
    if (decidedBy.value.trim()) body.decided_by = decidedBy.value.trim();
    const done = await act(event.currentTarget, line, async () => {
      await post(`/v1/admin/approvals/${encodeURIComponent(approval.id)}/decide`, body);
      return true;
    });
    if (done) decided();
  };
  const title = `${approval.agent_id} → ${approval.tool}`;
  return h(
    'article',
    { class: 'approval card', 'data-id': approval.id, 'aria-label': `Held call ${title}` },
    h('h3', {}, title),
    facts([
      ['Agent', approval.agent_id],
      ['Tool', approval.tool],
      ['Escalating rule', approval.escalating_rule],
      ['Held since', time(approval.created_at)],
      ['Token', approval.capability_token_id],
      ['Approval id', approval.id],
    ]),
    h('h4', {}, 'Arguments'),
    json(approval.arguments),
    field('Reason', reason),
    h(
      'div',
      { class: 'actions' },
      button('Approve', decide('approve'), { class: 'good' }),
      button('Reject', decide('reject'), { class: 'danger' }),
    ),
    line,
  );
}
