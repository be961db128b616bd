// The audit log: query by time range, decision, tool and subject, paged; an event's detail; the
// chain verification with its result; an event's inclusion proof checked here in the browser
// against the signed tree head; and export downloads of what the query selects.

import { h, fill } from '../dom.js';
import { download, get, getOptional, post } from '../api.js';
import { checkInclusion } from '../merkle.js';
import { act, badge, button, decisionBadge, facts, field, form, input, json, pager, rfc3339, section, select, status, table, text, time } from '../ui.js';

export function render(view) {
  const { body } = view;
  const since = input({ type: 'datetime-local', name: 'since' });
  const until = input({ type: 'datetime-local', name: 'until' });
  const decision = select([['', 'any'], 'allow', 'deny', 'escalate', 'approve', 'reject'], { name: 'decision' });
  const tool = input({ name: 'tool', maxlength: '256' });
  const subject = input({ name: 'subject', maxlength: '256' });
  const limit = select(['25', '50', '100', '250'], { name: 'limit' });
  limit.value = '50';
  const line = status();
  const results = h('div');
  const detail = h('div');
  const filters = () => ({
    ...view.scope(),
    since: rfc3339(since.value),
    until: rfc3339(until.value),
    decision: decision.value,
    tool: tool.value.trim(),
    subject: subject.value.trim(),
  });

  const pages = pager((cursor) => load(cursor));
  async function load(cursor) {
    line.clear();
    try {
      const page = await get('/v1/admin/audit', { ...filters(), limit: limit.value, cursor });
      pages.update(page.next_cursor);
      fill(
        results,
        table(
          [
            { label: 'Time', cell: (e) => time(e.ts) },
            { label: 'Decision', cell: (e) => decisionBadge(e.decision) },
            { label: 'Method', cell: (e) => text(e.method) },
            { label: 'Agent', cell: (e) => text(e.agent_id || e.decided_by) },
            { label: 'Tool', cell: (e) => text(e.tool) },
            { label: 'Check / rule', cell: (e) => text([e.check, e.rule].filter(Boolean).join(' / ')) },
            { label: 'Reason', cell: (e) => h('span', { class: 'clip' }, text(e.reason)) },
            { label: '', cell: (e) => button('Details', () => showEvent(view, detail, e), { class: 'quiet', 'aria-label': `Details of event ${e.id}` }) },
          ],
          page.items,
          { empty: 'No event matches.', caption: 'Audit events, newest first' },
        ),
      );
    } catch (err) {
      line.error(err);
    }
  }

  const exportLine = status();
  const exporter = (format) => (event) =>
    act(event.currentTarget, exportLine, async () => {
      const bytes = await download('/v1/admin/audit/export', { ...filters(), format }, `audit-${view.admin.tenant || 'all'}.${format}`);
      exportLine.show(`Downloaded ${bytes} bytes (${format}).`);
    });

  fill(
    body,
    section(
      'Query',
      form({ class: 'filters', 'aria-label': 'Audit query' }, [
        field('Since', since),
        field('Until', until),
        field('Decision', decision),
        field('Tool', tool),
        field('Subject (agent)', subject),
        field('Per page', limit),
        h('button', { type: 'submit' }, 'Search'),
      ], () => {
        pages.reset();
        load(undefined);
      }),
      line,
      results,
      pages,
      h('div', { class: 'actions' }, button('Export CSV', exporter('csv')), button('Export NDJSON', exporter('ndjson'))),
      exportLine,
    ),
    detail,
    verifyCard(view),
  );
  load(undefined);
}

function showEvent(view, el, event) {
  const line = status();
  const proof = h('div', { class: 'proof' });
  const check = button('Check inclusion proof', (e) =>
    act(e.currentTarget, line, async () => {
      fill(proof, h('p', { class: 'muted' }, 'Checking…'));
      fill(proof, await proveInclusion(view, event));
    }),
  );
  fill(
    el,
    section(
      `Event ${event.id}`,
      facts(Object.entries(event).map(([key, value]) => [key, value !== null && typeof value === 'object' ? json(value) : value])),
      h('div', { class: 'actions' }, check),
      line,
      proof,
    ),
  );
  el.scrollIntoView({ block: 'start' });
}

/** Fetches the head, the proof and the published keys, then checks all of it here. An event newer
 * than the latest head gets a head signed now. */
async function proveInclusion(view, event) {
  let head = await getOptional('/v1/admin/audit/tree-head', view.scope());
  // 400: the event is not in the tree the head signed (it is newer).
  let proof = head
    ? await getOptional('/v1/admin/audit/proofs/inclusion', { ...view.scope(), event_id: event.id, tree_size: head.tree_size }, [400, 404])
    : null;
  let signedNow = false;
  if (!proof) {
    head = await post('/v1/admin/audit/tree-head', undefined, view.scope());
    signedNow = true;
    proof = await get('/v1/admin/audit/proofs/inclusion', { ...view.scope(), event_id: event.id, tree_size: head.tree_size });
  }
  const keys = await get('/v1/admin/keys');
  const result = await checkInclusion({ head, proof, keys, eventId: event.id });
  return h(
    'div',
    { class: `verdict ${result.ok ? 'good' : 'bad'}`, 'data-verified': String(result.ok) },
    h('h3', {}, result.ok ? badge('verified', 'good') : badge('NOT verified', 'bad'), ' Inclusion proof checked in this browser'),
    signedNow ? h('p', { class: 'muted' }, 'The event was newer than the latest signed tree head: a head was signed now.') : null,
    h('ol', { class: 'steps' }, result.steps.map((s) => h('li', { class: s.ok ? 'ok' : 'failed' }, badge(s.ok ? 'ok' : 'failed', s.ok ? 'good' : 'bad'), ' ', h('strong', {}, s.check), ': ', s.detail))),
  );
}

function verifyCard(view) {
  const line = status();
  const result = h('div');
  const run = button('Verify chain', (e) =>
    act(e.currentTarget, line, async () => {
      const r = await get('/v1/admin/audit/verify', view.scope());
      fill(
        result,
        h('div', { class: `verdict ${r.verified ? 'good' : 'bad'}`, 'data-verified': String(r.verified) },
          h('h3', {}, r.verified ? badge('verified', 'good') : badge('BROKEN', 'bad'), ` ${r.events_checked} events checked in ${r.duration_ms} ms`),
          facts([
            ['Chain head', r.chain_head_id],
            ['Chain head at', time(r.chain_head_at)],
            ['First broken event', r.first_broken_event_id],
            ['Reason', r.reason],
            ['Merkle tree size', r.tree_size],
            ['Merkle root', r.tree_root],
            ['Signed tree head', r.signed_tree_head ? `${r.signed_tree_head.tree_size} events, key ${r.signed_tree_head.key_id}` : null],
            ['Signed head matches', r.signed_tree_head_matches === null ? null : String(r.signed_tree_head_matches)],
          ]),
        ),
      );
    }),
  );
  return section('Chain verification', h('p', {}, 'Walks every event of the tenant and recomputes each hash link, the Merkle root and the signed tree head.'), run, line, result);
}
