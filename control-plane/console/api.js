// The admin API, and the one place the admin token is read. The token lives in sessionStorage
// (gone when the tab closes), is sent only as a bearer header to this origin, and is never put in
// a URL, a log or the page.

const TOKEN = 'intentgate.console.token';
const TENANT = 'intentgate.console.tenant';

export class ApiError extends Error {
  constructor(status, message, method, path) {
    super(message);
    this.status = status;
    this.method = method;
    this.path = path;
  }

  /** What the operator reads: the API's own message, with the request that got it. */
  describe() {
    const status = this.status ? `${this.status}` : 'no answer';
    return `${this.method} ${this.path} → ${status}: ${this.message}`;
  }
}

export const session = {
  token: () => sessionStorage.getItem(TOKEN),
  signIn(token) {
    sessionStorage.setItem(TOKEN, token);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN);
    sessionStorage.removeItem(TENANT);
  },
  tenant: () => sessionStorage.getItem(TENANT),
  setTenant(tenant) {
    sessionStorage.setItem(TENANT, tenant);
  },
};

function url(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function send(method, path, { query, body } = {}) {
  const headers = { authorization: `Bearer ${session.token() || ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(url(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  } catch (err) {
    throw new ApiError(0, `the gateway could not be reached (${err.message})`, method, path);
  }
  if (!response.ok) {
    let message = response.statusText || 'request failed';
    const text = await response.text();
    try {
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed.error === 'string') message = parsed.error;
    } catch {
      if (text) message = text.slice(0, 500);
    }
    const error = new ApiError(response.status, message, method, path);
    if (response.status === 401) window.dispatchEvent(new CustomEvent('console:unauthorized', { detail: error }));
    throw error;
  }
  return response;
}

/** A JSON answer (`null` for 204). */
export async function api(method, path, options) {
  const response = await send(method, path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path, query) => api('GET', path, { query });

/** A GET whose answer may be absent: `null` for one of the `absent` statuses (404 by default), which
 * the caller shows as such; any other error is thrown. */
export async function getOptional(path, query, absent = [404]) {
  try {
    return await get(path, query);
  } catch (err) {
    if (err instanceof ApiError && absent.includes(err.status)) return null;
    throw err;
  }
}
export const post = (path, body, query) => api('POST', path, { body, query });
export const put = (path, body, query) => api('PUT', path, { body, query });
export const del = (path, query) => api('DELETE', path, { query });

/** Fetches a file with the token and hands it to the browser as a download. */
export async function download(path, query, filename) {
  const response = await send('GET', path, { query });
  const blob = await response.blob();
  const href = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.setAttribute('href', href);
  link.setAttribute('download', filename);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
  return blob.size;
}

/** Every page of a cursor list, up to `max` items. */
export async function all(path, query, max = 5000) {
  const items = [];
  let cursor;
  do {
    const page = await get(path, { ...query, limit: 1000, cursor });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
