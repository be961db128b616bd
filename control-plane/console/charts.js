// Charts as inline SVG built element by element (no library, no markup strings). Labels are text
// nodes, so an agent's name is drawn as written. Colours come from console.css classes. Each chart
// is an image with a label for screen readers, and a table beside it carries the same numbers.

import { h, s } from './dom.js';

const WIDTH = 640;

function frame(label, height, children) {
  return h(
    'figure',
    { class: 'chart' },
    s('svg', { viewBox: `0 0 ${WIDTH} ${height}`, width: '100%', role: 'img', 'aria-label': label, preserveAspectRatio: 'xMinYMin meet' }, s('title', {}, label), children),
    h('figcaption', {}, label),
  );
}

const clip = (label, max = 28) => (label.length > max ? `${label.slice(0, max - 1)}…` : label);

/** Horizontal bars: `items` are `{label, value}`; `series` names the colour class. */
export function bars(label, items, { series = 'deny', max } = {}) {
  const top = Math.max(1, max ?? Math.max(0, ...items.map((i) => i.value)));
  const row = 26;
  const left = 200;
  const height = Math.max(1, items.length) * row + 10;
  return frame(
    label,
    height,
    items.map((item, i) => {
      const y = 5 + i * row;
      const w = Math.round(((WIDTH - left - 60) * item.value) / top);
      return s(
        'g',
        {},
        s('text', { x: String(left - 8), y: String(y + 15), 'text-anchor': 'end', class: 'axis' }, clip(item.label)),
        s('rect', { x: String(left), y: String(y + 3), width: String(Math.max(w, 1)), height: String(row - 8), class: `bar ${series}` }, s('title', {}, `${item.label}: ${item.value}`)),
        s('text', { x: String(left + w + 6), y: String(y + 15), class: 'value' }, String(item.value)),
      );
    }),
  );
}

/** Percentages per tenant, one bar per measure. */
export function coverage(label, tenants) {
  const measures = [
    ['governed_pct', 'governed'],
    ['owned_pct', 'owned'],
    ['attested_pct', 'attested'],
  ];
  return bars(
    label,
    tenants.flatMap((t) => measures.map(([key, name]) => ({ label: `${t.tenant} · ${name}`, value: t[key] }))),
    { series: 'coverage', max: 100 },
  );
}

/** Stacked columns over time: `days` are `{label, allow, deny, escalate}`. */
export function activity(label, days) {
  const series = ['allow', 'deny', 'escalate'];
  const height = 220;
  const bottom = 190;
  const left = 40;
  const top = Math.max(1, ...days.map((d) => series.reduce((n, k) => n + d[k], 0)));
  const step = (WIDTH - left - 10) / Math.max(1, days.length);
  const columns = days.map((day, i) => {
    let y = bottom;
    const x = left + i * step + 4;
    const parts = series.map((k) => {
      const hgt = ((bottom - 20) * day[k]) / top;
      y -= hgt;
      return day[k] ? s('rect', { x: String(x), y: String(y), width: String(step - 8), height: String(hgt), class: `bar ${k}` }, s('title', {}, `${day.label}: ${day[k]} ${k}`)) : null;
    });
    return s('g', {}, parts, s('text', { x: String(x + (step - 8) / 2), y: String(bottom + 16), 'text-anchor': 'middle', class: 'axis' }, day.label));
  });
  const legend = series.map((k, i) => s('g', {}, s('rect', { x: String(left + i * 110), y: '2', width: '12', height: '12', class: `bar ${k}` }), s('text', { x: String(left + i * 110 + 18), y: '13', class: 'axis' }, k)));
  return frame(label, height, [
    s('line', { x1: String(left), x2: String(WIDTH - 10), y1: String(bottom), y2: String(bottom), class: 'rule' }),
    s('text', { x: '4', y: '30', class: 'axis' }, String(top)),
    legend,
    columns,
  ]);
}
