// The console's shell: sign-in, who is signed in, the tenant switcher, the navigation and the
// client-side routes under /console/. Each screen is a module with `render(view)`.

import { h, fill } from './dom.js';
import { ApiError, get, session } from './api.js';
import { button, field, form, input, select, status } from './ui.js';
import * as overview from './screens/overview.js';
import * as approvals from './screens/approvals.js';
import * as policies from './screens/policies.js';
import * as audit from './screens/audit.js';
import * as tokens from './screens/tokens.js';
import * as keys from './screens/keys.js';
import * as discovery from './screens/discovery.js';
import * as reports from './screens/reports.js';

const SCREENS = [
  { path: '', label: 'Overview', screen: overview },
  { path: 'approvals', label: 'Approvals', screen: approvals },
  { path: 'policies', label: 'Policies', screen: policies },
  { path: 'audit', label: 'Audit', screen: audit },
  { path: 'tokens', label: 'Tokens', screen: tokens },
  { path: 'keys', label: 'Keys & filters', screen: keys, superadmin: true },
  { path: 'discovery', label: 'Discovery', screen: discovery },
  { path: 'reports', label: 'Reports', screen: reports },
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');

/** Who is signed in: `{superadmin, tenant, tenants}`; null before sign-in. */
let admin = null;
let leaving = [];

function currentPath() {
  return location.pathname.replace(/^\/console\/?/, '').replace(/\/$/, '');
}

function visibleScreens() {
  return SCREENS.filter((s) => !s.superadmin || admin.superadmin);
}

/** Finds out what the token may do, with the API itself: the tenants it sees, and whether it may
 * list the filters (the superadmin may, a tenant admin gets 403). */
async function identify() {
  const tenants = await get('/v1/admin/tenants');
  let superadmin = true;
  try {
    await get('/v1/admin/filters');
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 403) throw err;
    superadmin = false;
  }
  const names = tenants.map((t) => t.name).filter((n) => !n.startsWith('_'));
  let tenant = superadmin ? session.tenant() : names[0];
  if (superadmin && !tenant) tenant = names[0] || null;
  if (tenant) session.setTenant(tenant);
  return { superadmin, tenant, tenants: names };
}

function signInView(message) {
  leave();
  admin = null;
  nav.replaceChildren();
  who.replaceChildren();
  const line = status();
  const token = input({ type: 'password', name: 'token', autocomplete: 'off', required: true });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const view = form({ class: 'card signin', 'aria-labelledby': 'signin-title' }, [
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', {}, 'Paste a superadmin or tenant-admin token. It is kept in this tab only (sessionStorage) and sent as a bearer header.'),
    field('Admin token', token),
    submit,
    line,
  ], async () => {
    submit.disabled = true;
    session.signIn(token.value.trim());
    token.value = '';
    await enter((err) => line.error(err));
    submit.disabled = false;
  });
  fill(main, view);
  if (message) line.show(message, 'error');
  token.focus();
}

function switcher() {
  if (!admin.superadmin) return h('span', { class: 'role' }, `tenant admin · ${admin.tenant}`);
  const known = admin.tenants.includes(admin.tenant) || !admin.tenant ? admin.tenants : [admin.tenant, ...admin.tenants];
  const choice = select(known.length ? known : [['', 'no tenants yet']], { name: 'tenant' });
  choice.value = admin.tenant || '';
  choice.addEventListener('change', () => {
    if (!choice.value) return;
    admin.tenant = choice.value;
    session.setTenant(choice.value);
    route();
  });
  return h('span', { class: 'role' }, 'superadmin · ', field('Tenant', choice));
}

function shell() {
  fill(who, switcher(), button('Sign out', () => {
    session.signOut();
    signInView();
  }, { class: 'quiet' }));
  fill(
    nav,
    h('ul', {}, visibleScreens().map((s) => h('li', {}, h('a', { href: `/console/${s.path}`, 'data-path': s.path }, s.label)))),
  );
}

function leave() {
  for (const fn of leaving) fn();
  leaving = [];
}

/** Renders the screen for the current path (an unknown path, or one this admin may not use, is the overview). */
function route() {
  if (!admin) return;
  leave();
  const path = currentPath();
  const entry = visibleScreens().find((s) => s.path === path) || visibleScreens()[0];
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.path === entry.path) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  document.title = `${entry.label} · IntentGate console`;
  const body = h('div', { class: 'screen' });
  fill(main, h('h1', {}, entry.label), body);
  const view = {
    body,
    admin,
    /** `{tenant}` for the superadmin's single-tenant calls (a tenant admin's token names its own). */
    scope: () => (admin.superadmin && admin.tenant ? { tenant: admin.tenant } : {}),
    onLeave: (fn) => leaving.push(fn),
    go: (to) => navigate(`/console/${to}`),
    switchTenant: (tenant) => {
      admin.tenant = tenant;
      session.setTenant(tenant);
      if (!admin.tenants.includes(tenant)) admin.tenants.push(tenant);
      shell();
      route();
    },
  };
  entry.screen.render(view);
}

function navigate(to) {
  history.pushState(null, '', to);
  route();
  main.focus();
}

nav.addEventListener('click', (event) => {
  const link = event.target.closest('a');
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
  event.preventDefault();
  navigate(link.getAttribute('href'));
});
window.addEventListener('popstate', route);
window.addEventListener('console:unauthorized', (event) => {
  if (!admin) return;
  session.signOut();
  signInView(`Signed out: ${event.detail.describe()}`);
});

/** Signs in with the stored token and shows the console; on failure forgets the token. */
async function enter(failed) {
  try {
    admin = await identify();
    shell();
    route();
  } catch (err) {
    session.signOut();
    failed(err);
  }
}

if (session.token()) enter((err) => signInView(err instanceof ApiError ? err.describe() : String(err)));
else signInView();
