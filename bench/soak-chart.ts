/** The soak's chart: one panel per figure against time, stacked, so that a line that is not flat shows. */

export interface Series {
  label: string
  values: number[]
  color: string
  dash?: string
}

export interface Panel {
  title: string
  unit: string
  series: Series[]
  /** Horizontal reference lines: a goal's bound, say. */
  references?: { label: string; value: number }[]
}

const W = 720
const PANEL = 150
const GAP = 40
const pad = { l: 70, r: 30, t: 50, b: 40 }

/** `minutes`: each window's end, in minutes since the load started (the x of every series' points). */
export function soakChart(title: string, minutes: number[], panels: Panel[]): string {
  const H = pad.t + panels.length * (PANEL + GAP) - GAP + pad.b
  const maxX = Math.max(...minutes, 1)
  const x = (m: number) => pad.l + (m / maxX) * (W - pad.l - pad.r)
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14">${escape(title)}</text>`,
  ]
  panels.forEach((panel, i) => {
    const top = pad.t + i * (PANEL + GAP)
    const bottom = top + PANEL
    const values = [...panel.series.flatMap((s) => s.values), ...(panel.references ?? []).map((r) => r.value)].filter(Number.isFinite)
    const maxY = Math.max(...values, 0) * 1.1 || 1
    const y = (v: number) => bottom - (v / maxY) * PANEL
    parts.push(
      `<text x="${pad.l}" y="${top - 8}" font-size="13">${escape(panel.title)}</text>`,
      `<line x1="${pad.l}" y1="${bottom}" x2="${W - pad.r}" y2="${bottom}" stroke="black"/>`,
      `<line x1="${pad.l}" y1="${top}" x2="${pad.l}" y2="${bottom}" stroke="black"/>`,
      ...[0, 0.5, 1].map((f) => `<text x="${pad.l - 6}" y="${y(maxY * f) + 4}" text-anchor="end">${format(maxY * f)} ${panel.unit}</text>`),
    )
    for (const ref of panel.references ?? [])
      parts.push(
        `<line x1="${pad.l}" y1="${y(ref.value).toFixed(1)}" x2="${W - pad.r}" y2="${y(ref.value).toFixed(1)}" stroke="#d1242f" stroke-dasharray="2,3"/>`,
        `<text x="${W - pad.r}" y="${(y(ref.value) - 4).toFixed(1)}" text-anchor="end" fill="#d1242f">${ref.label}</text>`,
      )
    panel.series.forEach((s, k) => {
      const points = s.values.map((v, j) => [x(minutes[j]!), y(v)] as const).filter(([, b]) => Number.isFinite(b))
      parts.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="2" ${s.dash ? `stroke-dasharray="${s.dash}"` : ''} points="${points.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(' ')}"/>`,
        `<text x="${pad.l + 10 + k * 200}" y="${top + 14}" fill="${s.color}">${s.label}</text>`,
      )
    })
  })
  const axis = pad.t + panels.length * (PANEL + GAP) - GAP
  const step = maxX > 10 ? 5 : 1
  for (let m = 0; m <= maxX; m += step) parts.push(`<text x="${x(m).toFixed(1)}" y="${axis + 16}" text-anchor="middle">${m}</text>`)
  parts.push(`<text x="${W / 2}" y="${H - 8}" text-anchor="middle">minutes since the load started</text>`, '</svg>')
  return parts.join('\n') + '\n'
}

/** Titles name things like /proc/<pid>/io: text in SVG is XML. */
const escape = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
const format = (v: number) => (v >= 100 ? String(Math.round(v)) : v.toFixed(v >= 10 ? 0 : 1))
