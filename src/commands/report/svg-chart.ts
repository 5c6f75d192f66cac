import { escapeHtml } from './html-escape.js';

/** Inline SVG charts drawn here (no chart library: the page must stand alone and load nothing). */

export interface ChartPoint {
  readonly x: number;
  readonly y: number;
  /** Tooltip text (escaped). */
  readonly label: string;
  /** Drawn in the alert colour (outside the band, a failed run). */
  readonly alert?: boolean;
}

export interface ChartSeries {
  readonly name: string;
  readonly color: string;
  readonly points: readonly ChartPoint[];
}

/** A shaded range around the series, e.g. the ±BACKUP_SIZE_DEVIATION band of the size alert. */
export interface ChartBand {
  readonly name: string;
  readonly color: string;
  readonly points: ReadonlyArray<{ readonly x: number; readonly low: number; readonly high: number }>;
}

export interface TimeChartSpec {
  /** Stable name for the page and tests (data-chart). */
  readonly id: string;
  readonly title: string;
  /** Time axis range (ms since epoch). */
  readonly from: number;
  readonly to: number;
  readonly series: readonly ChartSeries[];
  readonly band?: ChartBand;
  readonly formatY: (value: number) => string;
}

export interface Bar {
  readonly label: string;
  /** null: nothing measured (drawn as a gap, not as zero). */
  readonly value: number | null;
  readonly tooltip: string;
  readonly alert?: boolean;
}

export interface BarChartSpec {
  readonly id: string;
  readonly title: string;
  readonly color: string;
  readonly bars: readonly Bar[];
  readonly formatY: (value: number) => string;
}

export const ALERT_COLOR = '#dc2626';
const WIDTH = 880;
const HEIGHT = 240;
const MARGIN = { left: 78, right: 16, top: 14, bottom: 34 };
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom;
const DAY_MS = 86_400_000;

const n = (value: number): string => (Math.round(value * 10) / 10).toString();

/** An upper bound a little above max, rounded to 1, 2 or 5 × 10^k so the ticks read well. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const step = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * step >= max * 1.05) return m * step;
  return 10 * step;
}

function frame(spec: { id: string; title: string }, yMax: number, formatY: (v: number) => string, body: string, xAxis: string): string {
  const ticks = [0, 0.25, 0.5, 0.75, 1]
    .map((f) => {
      const y = MARGIN.top + PLOT_H - f * PLOT_H;
      return `<line class="grid" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${n(y)}" y2="${n(y)}"/><text class="tick" x="${MARGIN.left - 6}" y="${n(y + 4)}" text-anchor="end">${escapeHtml(formatY(f * yMax))}</text>`;
    })
    .join('');
  return `<svg class="chart" data-chart="${escapeHtml(spec.id)}" role="img" aria-label="${escapeHtml(spec.title)}" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title>${escapeHtml(spec.title)}</title>${ticks}<line class="axis" x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${MARGIN.top + PLOT_H}" y2="${MARGIN.top + PLOT_H}"/>${xAxis}${body}</svg>`;
}

function empty(spec: { id: string; title: string }): string {
  return `<svg class="chart" data-chart="${escapeHtml(spec.id)}" data-empty="true" role="img" aria-label="${escapeHtml(spec.title)}" viewBox="0 0 ${WIDTH} 60" width="${WIDTH}" height="60" xmlns="http://www.w3.org/2000/svg"><title>${escapeHtml(spec.title)}</title><text class="tick" x="${WIDTH / 2}" y="34" text-anchor="middle">nothing to draw this month</text></svg>`;
}

/** Points over a time axis, each series a line with dots, an optional band behind them. */
export function timeChart(spec: TimeChartSpec): string {
  const all = spec.series.flatMap((s) => s.points);
  if (all.length === 0) return empty(spec);
  const yMax = niceMax(Math.max(...all.map((p) => p.y), ...(spec.band?.points.map((p) => p.high) ?? [])));
  const span = Math.max(1, spec.to - spec.from);
  const x = (t: number): number => MARGIN.left + ((Math.min(Math.max(t, spec.from), spec.to) - spec.from) / span) * PLOT_W;
  const y = (v: number): number => MARGIN.top + PLOT_H - (Math.min(v, yMax) / yMax) * PLOT_H;
  let band = '';
  if (spec.band && spec.band.points.length > 0) {
    const pts = spec.band.points;
    const d =
      pts.length === 1
        ? `M${n(x(pts[0]!.x) - 4)},${n(y(pts[0]!.high))}H${n(x(pts[0]!.x) + 4)}V${n(y(pts[0]!.low))}H${n(x(pts[0]!.x) - 4)}Z`
        : `M${pts.map((p) => `${n(x(p.x))},${n(y(p.high))}`).join('L')}L${[...pts]
            .reverse()
            .map((p) => `${n(x(p.x))},${n(y(p.low))}`)
            .join('L')}Z`;
    band = `<path class="band" fill="${escapeHtml(spec.band.color)}" d="${d}"><title>${escapeHtml(spec.band.name)}</title></path>`;
  }
  const series = spec.series
    .map((s) => {
      const line =
        s.points.length > 1
          ? `<polyline class="series-line" fill="none" stroke="${escapeHtml(s.color)}" stroke-width="2" points="${s.points.map((p) => `${n(x(p.x))},${n(y(p.y))}`).join(' ')}"/>`
          : '';
      const dots = s.points
        .map(
          (p) =>
            `<circle class="point${p.alert ? ' alert' : ''}" data-series="${escapeHtml(s.name)}" cx="${n(x(p.x))}" cy="${n(y(p.y))}" r="4.5" fill="${p.alert ? ALERT_COLOR : escapeHtml(s.color)}"><title>${escapeHtml(p.label)}</title></circle>`,
        )
        .join('');
      return `<g class="series" data-series="${escapeHtml(s.name)}">${line}${dots}</g>`;
    })
    .join('');
  // A tick per day is too dense for a month: every few days, labelled with the day of the month.
  const days = Math.max(1, Math.round(span / DAY_MS));
  const every = days > 16 ? 5 : days > 7 ? 2 : 1;
  const xTicks: string[] = [];
  for (let d = 0; d <= days; d += every) {
    const t = spec.from + d * DAY_MS;
    if (t > spec.to) break;
    xTicks.push(
      `<text class="tick" x="${n(x(t))}" y="${HEIGHT - 12}" text-anchor="middle">${escapeHtml(new Date(t).toISOString().slice(5, 10))}</text>`,
    );
  }
  const legend = [...spec.series.map((s) => ({ name: s.name, color: s.color })), ...(spec.band ? [spec.band] : [])]
    .map(
      (s, i) =>
        `<rect x="${MARGIN.left + 8 + i * 210}" y="${MARGIN.top}" width="10" height="10" fill="${escapeHtml(s.color)}"/><text class="legend" x="${MARGIN.left + 22 + i * 210}" y="${MARGIN.top + 9}">${escapeHtml(s.name)}</text>`,
    )
    .join('');
  return frame(spec, yMax, spec.formatY, `${band}${series}${legend}`, xTicks.join(''));
}

/** One bar per label (a day of the month), null values left blank. */
export function barChart(spec: BarChartSpec): string {
  const values = spec.bars.map((b) => b.value).filter((v): v is number => v !== null);
  if (values.length === 0) return empty(spec);
  const yMax = niceMax(Math.max(...values));
  const slot = PLOT_W / Math.max(1, spec.bars.length);
  const width = Math.max(2, slot * 0.7);
  const body = spec.bars
    .map((b, i) => {
      const cx = MARGIN.left + slot * i + slot / 2;
      const label =
        i % (spec.bars.length > 16 ? 5 : 1) === 0
          ? `<text class="tick" x="${n(cx)}" y="${HEIGHT - 12}" text-anchor="middle">${escapeHtml(b.label)}</text>`
          : '';
      if (b.value === null) return label;
      const h = (Math.min(b.value, yMax) / yMax) * PLOT_H;
      return `${label}<rect class="bar${b.alert ? ' alert' : ''}" x="${n(cx - width / 2)}" y="${n(MARGIN.top + PLOT_H - h)}" width="${n(width)}" height="${n(Math.max(h, 1))}" fill="${b.alert ? ALERT_COLOR : escapeHtml(spec.color)}"><title>${escapeHtml(b.tooltip)}</title></rect>`;
    })
    .join('');
  return frame(spec, yMax, spec.formatY, body, '');
}
