import type { FlowResult } from './loadgen'

/** A plain aligned table for the terminal. */
export function table(rows: string[][]): string {
  const widths = rows.reduce<number[]>((w, r) => r.map((c, i) => Math.max(w[i] ?? 0, c.length)), [])
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n')
}

/** Throughput (deliveries/s) and p99 send→delivery against connections, project and raw Bun, as SVG. */
export function chart(sweep: { connections: number; project: FlowResult; raw: FlowResult }[]): string {
  const W = 720
  const H = 360
  const pad = { l: 70, r: 70, t: 40, b: 50 }
  const xs = sweep.map((s) => s.connections)
  const maxX = Math.max(...xs)
  const minX = Math.min(...xs)
  const maxT = Math.max(...sweep.flatMap((s) => [s.project.deliveriesPerSec, s.raw.deliveriesPerSec])) * 1.1 || 1
  const maxL = Math.max(...sweep.flatMap((s) => [s.project.delivery.p99, s.raw.delivery.p99])) * 1.1 || 1
  const x = (v: number) => pad.l + 20 + (Math.log(v / minX) / Math.log(maxX / minX || 2)) * (W - pad.l - pad.r - 40)
  const yT = (v: number) => H - pad.b - (v / maxT) * (H - pad.t - pad.b)
  const yL = (v: number) => H - pad.b - (v / maxL) * (H - pad.t - pad.b)
  const line = (pts: [number, number][], color: string, dash = '') =>
    `<polyline fill="none" stroke="${color}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ''} points="${pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>` +
    pts.map(([a, b]) => `<circle cx="${a.toFixed(1)}" cy="${b.toFixed(1)}" r="3" fill="${color}"/>`).join('')
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">e2e 1:1, closed loop: deliveries/s (solid) and p99 send→delivery (dashed) vs connections</text>`,
    `<line x1="${pad.l}" y1="${H - pad.b}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="black"/>`,
    `<line x1="${pad.l}" y1="${pad.t}" x2="${pad.l}" y2="${H - pad.b}" stroke="black"/>`,
    `<line x1="${W - pad.r}" y1="${pad.t}" x2="${W - pad.r}" y2="${H - pad.b}" stroke="black"/>`,
    ...xs.map((c) => `<text x="${x(c)}" y="${H - pad.b + 18}" text-anchor="middle">${c}</text>`),
    `<text x="${W / 2}" y="${H - 10}" text-anchor="middle">connections (log scale)</text>`,
    ...[0, 0.5, 1].map((f) => `<text x="${pad.l - 6}" y="${yT(maxT * f)}" text-anchor="end">${Math.round(maxT * f)}</text>`),
    ...[0, 0.5, 1].map((f) => `<text x="${W - pad.r + 6}" y="${yL(maxL * f)}">${(maxL * f).toFixed(1)} ms</text>`),
    line(sweep.map((s) => [x(s.connections), yT(s.raw.deliveriesPerSec)]), '#999'),
    line(sweep.map((s) => [x(s.connections), yT(s.project.deliveriesPerSec)]), '#1f6feb'),
    line(sweep.map((s) => [x(s.connections), yL(s.raw.delivery.p99)]), '#999', '5,4'),
    line(sweep.map((s) => [x(s.connections), yL(s.project.delivery.p99)]), '#1f6feb', '5,4'),
    `<text x="${pad.l + 30}" y="${yT(maxT * 0.66)}" fill="#1f6feb">project (SQLite, synchronous=FULL)</text>`,
    `<text x="${pad.l + 30}" y="${yT(maxT * 0.66) + 16}" fill="#999">raw Bun.serve pub/sub</text>`,
    '</svg>',
  ]
  return parts.join('\n') + '\n'
}
