// Policies: the active policy (rollback, clear), drafts (create, edit with the compile error shown
// at its line, delete), a dry run of the draft being edited against the tenant's recent traffic
// showing which decisions would change, promotion, and the promotion history.

import { h, fill } from '../dom.js';
import { ApiError, del, get, getOptional, post, put } from '../api.js';
import { act, badge, button, confirm, decisionBadge, facts, field, form, input, section, status, table, text, time, uid } from '../ui.js';

export function render(view) {
  const { body } = view;
  const active = h('div');
  const drafts = h('div');
  const editor = h('div');
  const history = h('div');
  fill(body, active, drafts, editor, history);

  const reload = () => Promise.all([showActive(view, active, reload), showDrafts(view, drafts, edit, reload), showHistory(view, history)]);
  const edit = (draft) => showEditor(view, editor, draft, reload);
  reload();
}

async function showActive(view, el, reload) {
  const line = status();
  let policy;
  try {
    policy = await getOptional('/v1/admin/policies/active', view.scope());
  } catch (err) {
    fill(el, section('Active policy', line));
    line.error(err);
    return;
  }
  const rollback = button('Roll back', async (event) => {
    const target = event.currentTarget;
    if (!(await confirm('Roll back the active policy?', 'The previous promotion becomes active on every filter at once.', 'Roll back'))) return;
    if (await act(target, line, () => post('/v1/admin/policies/rollback', undefined, view.scope()).then(() => true))) reload();
  });
  const clear = button('Clear', async (event) => {
    const target = event.currentTarget;
    if (!(await confirm('Clear the active policy?', 'Every tools/call of this tenant is denied (fail closed) until a policy is promoted or rolled back.', 'Clear'))) return;
    if (await act(target, line, () => del('/v1/admin/policies/active', view.scope()).then(() => true))) reload();
  }, { class: 'danger', disabled: !policy });
  fill(
    el,
    section(
      'Active policy',
      policy
        ? facts([
            ['Name', policy.name],
            ['Draft', policy.draft_id],
            ['SHA-256', policy.rego_sha256],
            ['Promoted by', policy.promoted_by],
            ['Promoted at', time(policy.promoted_at)],
          ])
        : h('p', {}, badge('none', 'bad'), ' No active policy: every tools/call of this tenant is denied.'),
      h('div', { class: 'actions' }, rollback, clear),
      line,
    ),
  );
}

async function showDrafts(view, el, edit, reload) {
  const line = status();
  fill(el, section('Drafts', line));
  let list;
  try {
    list = await get('/v1/admin/policies/drafts', view.scope());
  } catch (err) {
    line.error(err);
    return;
  }
  const open = async (summary) => {
    try {
      edit(await get(`/v1/admin/policies/drafts/${encodeURIComponent(summary.id)}`));
    } catch (err) {
      line.error(err);
    }
  };
  const remove = async (event, draft) => {
    const target = event.currentTarget;
    if (!(await confirm(`Delete draft ${draft.name}?`, 'The draft is deleted; an active policy promoted from it keeps running.', 'Delete'))) return;
    if (await act(target, line, () => del(`/v1/admin/policies/drafts/${encodeURIComponent(draft.id)}`).then(() => true))) reload();
  };
  fill(
    el,
    section(
      'Drafts',
      button('New draft', () => edit(null)),
      table(
        [
          { label: 'Name', cell: (d) => d.name },
          { label: 'Description', cell: (d) => text(d.description) },
          { label: 'Created by', cell: (d) => d.created_by },
          { label: 'Created', cell: (d) => time(d.created_at) },
          { label: 'SHA-256', cell: (d) => h('code', {}, d.rego_sha256.slice(0, 12)) },
          {
            label: 'Actions',
            cell: (d) => [
              button(`Edit ${d.name}`, () => open(d), { class: 'quiet' }),
              button(`Delete ${d.name}`, (e) => remove(e, d), { class: 'quiet danger' }),
            ],
          },
        ],
        list,
        { empty: 'No drafts.' },
      ),
      line,
    ),
  );
}

const STARTER = `package intentgate.policy
import rego.v1

default decision := {"allow": false, "reason": "no rule matched", "rule": "default"}

decision := {"allow": true, "rule": "reads"} if {
    startswith(input.tool, "read_")
}
`;

/** Where a compile error points: regorus says `--> policy.rego:LINE:COL`. */
function errorLocation(message) {
  const match = /-->\s*[^\n]*?:(\d+):(\d+)/.exec(message) || /line (\d+)(?:,? col(?:umn)? (\d+))?/i.exec(message);
  return match ? { line: Number(match[1]), column: Number(match[2] || 1) } : null;
}

function showEditor(view, el, draft, reload) {
  let saved = draft;
  let dirty = false;
  const line = status();
  const name = input({ name: 'name', maxlength: '200', required: true, value: draft ? draft.name : '' });
  const description = input({ name: 'description', maxlength: '4096', value: draft ? draft.description : '' });
  const source = h('textarea', { id: uid('rego'), name: 'rego', rows: '18', spellcheck: 'false', wrap: 'off', class: 'code', 'aria-describedby': 'rego-error' });
  source.value = draft ? draft.rego_source : STARTER;
  const gutter = h('pre', { class: 'gutter', 'aria-hidden': 'true' });
  const problem = h('div', { id: 'rego-error', class: 'compile-error', role: 'alert' });
  const sample = input({ type: 'number', name: 'sample', min: '1', max: '1000', value: '100' });
  const result = h('div', { class: 'dry-run' });
  const title = h('h2', {});

  const numberLines = (errorLine) => {
    const count = source.value.split('\n').length;
    fill(gutter, Array.from({ length: count }, (_, i) => h('span', { class: i + 1 === errorLine ? 'error' : null }, `${i + 1}\n`)));
    gutter.scrollTop = source.scrollTop;
  };
  const setTitle = () => fill(title, saved ? `Draft ${saved.name}${dirty ? ' (unsaved changes)' : ''}` : 'New draft');
  const changed = () => {
    dirty = true;
    promote.disabled = true;
    setTitle();
    numberLines(null);
  };
  source.addEventListener('input', changed);
  name.addEventListener('input', changed);
  description.addEventListener('input', changed);
  source.addEventListener('scroll', () => {
    gutter.scrollTop = source.scrollTop;
  });

  const showProblem = (err) => {
    const where = err instanceof ApiError && err.status === 400 ? errorLocation(err.message) : null;
    if (!where) {
      problem.replaceChildren();
      line.error(err);
      return;
    }
    source.setAttribute('aria-invalid', 'true');
    numberLines(where.line);
    fill(problem, h('strong', {}, `Line ${where.line}, column ${where.column}: `), h('pre', {}, err.message.trim()));
    const lines = source.value.split('\n');
    const start = lines.slice(0, where.line - 1).reduce((n, l) => n + l.length + 1, 0);
    source.focus();
    source.setSelectionRange(start, start + (lines[where.line - 1] || '').length);
  };

  const save = h('button', { type: 'submit' }, 'Save draft');
  const promote = button('Promote', async (event) => {
    const target = event.currentTarget;
    if (!saved) return;
    if (!(await confirm(`Promote ${saved.name}?`, 'It becomes the active policy of this tenant on every filter at once.', 'Promote'))) return;
    const done = await act(target, line, () => post('/v1/admin/policies/active', { draft_id: saved.id, ...view.scope() }));
    if (done) {
      line.show(`Promoted ${done.name} (${done.rego_sha256.slice(0, 12)}…).`);
      reload();
    }
  }, { disabled: !draft });
  const dryRun = button('Dry run', (event) =>
    act(event.currentTarget, line, async () => {
      const answer = await post('/v1/admin/policies/dry-run', { rego_source: source.value, sample: String(sample.value || '100'), ...view.scope() });
      showDryRun(result, answer.decisions);
    }),
  );

  const editorForm = form({ class: 'editor', 'aria-label': 'Draft editor' }, [
    field('Name', name),
    field('Description', description),
    h('div', { class: 'field' }, h('label', { for: source.id }, 'Rego source'), h('div', { class: 'code-wrap' }, gutter, source)),
    problem,
    h('div', { class: 'actions' }, save, field('Replay the last', sample, 'recorded tool calls'), dryRun, promote),
    line,
  ], () =>
    act(save, line, async () => {
      source.removeAttribute('aria-invalid');
      problem.replaceChildren();
      numberLines(null);
      const fields = { name: name.value.trim(), description: description.value, rego_source: source.value };
      try {
        saved = saved
          ? await put(`/v1/admin/policies/drafts/${encodeURIComponent(saved.id)}`, fields)
          : await post('/v1/admin/policies/drafts', { ...fields, ...view.scope() });
      } catch (err) {
        showProblem(err);
        return;
      }
      dirty = false;
      promote.disabled = false;
      setTitle();
      line.show(`Saved: compiled, sha256 ${saved.rego_sha256.slice(0, 12)}….`);
      reload();
    }),
  );
  setTitle();
  numberLines(null);
  fill(el, h('section', { class: 'card', 'aria-label': 'Draft editor' }, title, editorForm, result));
  name.focus();
}

function showDryRun(el, decisions) {
  const changed = decisions.filter((d) => d.candidate_decision !== d.actual_decision);
  const columns = [
    { label: 'Tool', cell: (d) => text(d.input && d.input.tool) },
    { label: 'Agent', cell: (d) => text(d.input && d.input.agent_id) },
    { label: 'Recorded', cell: (d) => decisionBadge(d.actual_decision) },
    { label: 'With this draft', cell: (d) => decisionBadge(d.candidate_decision) },
    { label: 'Rule', cell: (d) => text(d.rule) },
    { label: 'Reason', cell: (d) => text(d.reason) },
  ];
  const everything = h('details', {}, h('summary', {}, `All ${decisions.length} replayed calls`), table(columns, decisions));
  fill(
    el,
    h('h3', {}, 'Dry run'),
    h('p', { class: 'summary' }, `${decisions.length} recorded calls replayed; ${changed.length} would be decided differently.`),
    table(columns, changed, { empty: 'No decision would change.', caption: 'Decisions that would change' }),
    decisions.length ? everything : null,
  );
}

async function showHistory(view, el) {
  const line = status();
  fill(el, section('Promotion history', line));
  try {
    const page = await get('/v1/admin/policies/history', { ...view.scope(), limit: 100 });
    fill(
      el,
      section(
        'Promotion history',
        table(
          [
            { label: 'Name', cell: (p) => p.name },
            { label: 'State', cell: (p) => (p.active ? badge('active', 'good') : p.rolled_back_at ? badge('rolled back', 'warn') : badge('earlier')) },
            { label: 'Promoted by', cell: (p) => p.promoted_by },
            { label: 'Promoted', cell: (p) => time(p.promoted_at) },
            { label: 'Rolled back', cell: (p) => time(p.rolled_back_at) },
            { label: 'SHA-256', cell: (p) => h('code', {}, p.rego_sha256.slice(0, 12)) },
          ],
          page.items,
          { empty: 'Nothing promoted yet.' },
        ),
        page.next_cursor ? h('p', { class: 'muted' }, 'Showing the latest 100 promotions.') : null,
      ),
    );
  } catch (err) {
    line.error(err);
  }
}
