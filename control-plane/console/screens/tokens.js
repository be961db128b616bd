// Capability tokens: mint one (shown once, with a copy button, never stored), revoke one by its
// id, and the revocations.

import { h, fill } from '../dom.js';
import { get, post } from '../api.js';
import { act, button, facts, field, form, input, pager, section, status, table, text, time } from '../ui.js';

export function render(view) {
  const { body } = view;
  const revocations = h('div');
  const list = revocationList(view, revocations);
  fill(body, mintCard(view), revokeCard(view, list), revocations);
  list();
}

function mintCard(view) {
  const subject = input({ name: 'subject', required: true, maxlength: '256', placeholder: 'agent-finance-bot-7' });
  const tools = input({ name: 'tools', placeholder: 'read_invoice, list_*' });
  const ttl = input({ type: 'number', name: 'ttl', min: '1', max: '2592000', value: '3600' });
  const maxCalls = input({ type: 'number', name: 'max-calls', min: '1' });
  const stepUp = input({ type: 'checkbox', name: 'step-up' });
  const memoryKey = input({ type: 'checkbox', name: 'memory-key' });
  const line = status();
  const shown = h('div');
  const submit = h('button', { type: 'submit' }, 'Mint token');
  return section(
    'Mint a capability token',
    form({ class: 'grid', 'aria-label': 'Mint a token' }, [
      field('Subject (agent)', subject),
      field('Tools', tools, 'comma-separated names or globs; empty: every tool'),
      field('Lifetime (seconds)', ttl),
      field('Max calls', maxCalls, 'empty: no budget'),
      field('Stamp step-up', stepUp),
      field('With a memory signing key', memoryKey),
      submit,
    ], () =>
      act(submit, line, async () => {
        const request = { subject: subject.value.trim(), ttl_seconds: Number(ttl.value || 3600), ...view.scope() };
        const names = tools.value.split(',').map((t) => t.trim()).filter(Boolean);
        if (names.length) request.tools = names;
        if (maxCalls.value) request.max_calls = Number(maxCalls.value);
        if (stepUp.checked) request.step_up = true;
        if (memoryKey.checked) request.with_memory_signing_key = true;
        const minted = await post('/v1/admin/mint', request);
        fill(shown, oneTimeToken(minted));
      }),
    ),
    line,
    shown,
  );
}

/** The token, shown this once: it is not kept anywhere by the console. */
function oneTimeToken(minted) {
  const line = status();
  const secret = h('textarea', { readonly: true, rows: '3', class: 'code', 'aria-label': 'Minted token' });
  secret.value = minted.token;
  const copy = button('Copy token', async () => {
    try {
      await navigator.clipboard.writeText(minted.token);
      line.show('Copied to the clipboard.');
    } catch {
      secret.focus();
      secret.select();
      line.show('The clipboard is not available here: the token is selected, copy it with Ctrl+C.', 'warn');
    }
  });
  const box = h(
    'div',
    { class: 'once', role: 'group', 'aria-label': 'Minted token' },
    h('p', {}, h('strong', {}, 'Copy this token now: it is not shown again.')),
    secret,
    facts([
      ['Token id (jti)', minted.jti],
      ['Expires', time(minted.expires_at)],
      ...(minted.memory_signing_key ? [['Memory signing key', minted.memory_signing_key]] : []),
    ]),
    h('div', { class: 'actions' }, copy, button('Done, hide it', () => box.remove(), { class: 'quiet' })),
    line,
  );
  return box;
}

function revokeCard(view, reload) {
  const jti = input({ name: 'jti', required: true, maxlength: '128' });
  const reason = input({ name: 'reason', maxlength: '1024' });
  const line = status();
  const submit = h('button', { type: 'submit', class: 'danger' }, 'Revoke');
  return section(
    'Revoke a token',
    form({ class: 'grid', 'aria-label': 'Revoke a token' }, [field('Token id (jti)', jti), field('Reason', reason), submit], () =>
      act(submit, line, async () => {
        const request = { jti: jti.value.trim() };
        if (reason.value.trim()) request.reason = reason.value.trim();
        await post('/v1/admin/revoke', request);
        line.show(`Revoked ${request.jti}: every filter refuses it from its next sync.`);
        jti.value = '';
        reason.value = '';
        reload();
      }),
    ),
    line,
  );
}

function revocationList(view, el) {
  const line = status();
  const rows = h('div');
  const pages = pager((cursor) => load(cursor));
  fill(el, section('Revocations', line, rows, pages));
  async function load(cursor) {
    try {
      const page = await get('/v1/admin/revocations', { ...view.scope(), limit: 50, cursor });
      pages.update(page.next_cursor);
      fill(
        rows,
        table(
          [
            { label: 'Token id', cell: (r) => h('code', {}, r.jti) },
            { label: 'Tenant', cell: (r) => r.tenant },
            { label: 'Revoked', cell: (r) => time(r.revoked_at) },
            { label: 'Reason', cell: (r) => text(r.reason) },
          ],
          page.items,
          { empty: 'No token has been revoked.' },
        ),
      );
    } catch (err) {
      line.error(err);
    }
  }
  return () => {
    pages.reset();
    load(undefined);
  };
}
