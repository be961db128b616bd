// Widgets every screen shares: sections, tables, forms, status lines, confirmation dialogs. All of
// them build the page through dom.js.

import { h, fill } from './dom.js';
import { ApiError } from './api.js';

let ids = 0;
/** A unique id for label/input pairs. */
export const uid = (prefix) => `${prefix}-${++ids}`;

export function section(title, ...children) {
  const id = uid('section');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

/** A status line: errors as alerts (the API's message, never swallowed), other news politely. */
export function status() {
  const el = h('div', { class: 'status', role: 'status', 'aria-live': 'polite' });
  el.show = (message, kind = 'ok') => {
    el.className = `status ${kind}`;
    el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
    fill(el, message);
  };
  el.error = (err) => el.show(err instanceof ApiError ? err.describe() : `error: ${err.message || err}`, 'error');
  el.clear = () => {
    el.className = 'status';
    el.replaceChildren();
  };
  return el;
}

/** Runs `work` for a button: disabled meanwhile, its error shown in `line`. */
export async function act(button, line, work) {
  button.disabled = true;
  line.clear();
  try {
    return await work();
  } catch (err) {
    line.error(err);
    return undefined;
  } finally {
    button.disabled = false;
  }
}

export function button(label, onclick, attrs = {}) {
  return h('button', { type: 'button', onclick, ...attrs }, label);
}

/** A labelled control; `control` is an input, select or textarea element. */
export function field(label, control, hint) {
  const id = control.id || uid('field');
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', {}, hint) : null);
}

export const input = (attrs = {}) => h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', ...attrs });

export function select(options, attrs = {}) {
  return h(
    'select',
    attrs,
    options.map((o) => (Array.isArray(o) ? h('option', { value: o[0] }, o[1]) : h('option', { value: o }, o))),
  );
}

/** A table: `columns` are `{label, cell(row) -> text or node, class}`. */
export function table(columns, rows, { empty = 'Nothing here yet.', caption } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label)))),
      h(
        'tbody',
        {},
        rows.map((row) => h('tr', {}, columns.map((c) => h('td', { class: c.class }, c.cell(row))))),
      ),
    ),
  );
}

/** Key/value pairs as a description list; values are shown as text (objects as JSON). */
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.map(([key, value]) => [h('dt', {}, key), h('dd', {}, value instanceof Node ? value : text(value))]),
  );
}

export function text(value) {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** JSON shown as text in a scrollable block. */
export const json = (value) => h('pre', { class: 'json', tabindex: '0' }, JSON.stringify(value, null, 2));

export function badge(label, kind = 'neutral') {
  return h('span', { class: `badge ${kind}` }, label);
}

export const decisionBadge = (decision) =>
  badge(decision, { allow: 'good', approve: 'good', deny: 'bad', reject: 'bad', escalate: 'warn' }[decision] || 'neutral');

/** An ISO time as the API gives it, readable, with the full value on hover. */
export function time(iso) {
  if (!iso) return '—';
  return h('time', { datetime: iso, title: iso }, String(iso).replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC'));
}

/** Asks before an action that cannot be undone; resolves to true when confirmed. */
export function confirm(title, message, confirmLabel) {
  return new Promise((resolve) => {
    const titleId = uid('dialog');
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title),
      h('p', {}, message),
    );
    const done = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    dialog.append(
      h(
        'div',
        { class: 'actions' },
        button('Cancel', () => done(false)),
        button(confirmLabel, () => done(true), { class: 'danger' }),
      ),
    );
    dialog.addEventListener('cancel', (event) => {
      event.preventDefault();
      done(false);
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A form whose submit runs `onsubmit(event)`; the browser never submits it anywhere. */
export function form(attrs, children, onsubmit) {
  return h(
    'form',
    {
      ...attrs,
      onsubmit: (event) => {
        event.preventDefault();
        onsubmit(event);
      },
    },
    children,
  );
}

/** "Newer/older" paging over an opaque cursor list. `load(cursor)` renders one page. */
export function pager(load) {
  const stack = [];
  let current;
  const older = button('Older →', () => {
    stack.push(current);
    current = older.cursor;
    load(current);
  });
  const newer = button('← Newer', () => {
    current = stack.pop();
    load(current);
  });
  const el = h('div', { class: 'pager' }, newer, older);
  el.update = (nextCursor) => {
    older.cursor = nextCursor;
    older.disabled = !nextCursor;
    newer.disabled = stack.length === 0;
  };
  el.reset = () => {
    stack.length = 0;
    current = undefined;
  };
  return el;
}

/** RFC 3339 (UTC) from a datetime-local input, or undefined when it is empty. */
export function rfc3339(localValue) {
  if (!localValue) return undefined;
  const date = new Date(localValue);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
