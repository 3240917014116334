/**
 * Two small SVG charts drawn with DOM nodes (no library, no markup strings): bars over
 * time stacked by risk level, and one bar per level. Each has a title for screen readers
 * and the page shows the same numbers as a table.
 */
import { svg } from "./dom.js";

export const LEVELS = ["LOW", "MEDIUM", "HIGH"];

/** buckets: [{label, counts: {LOW, MEDIUM, HIGH}}] */
export function stackedBars(buckets, title) {
  const width = 640;
  const height = 200;
  const left = 28;
  const bottom = 24;
  const max = Math.max(1, ...buckets.map((b) => LEVELS.reduce((n, l) => n + (b.counts[l] || 0), 0)));
  const slot = (width - left) / Math.max(1, buckets.length);
  const scale = (height - bottom - 8) / max;
  const bars = [];
  buckets.forEach((b, i) => {
    let y = height - bottom;
    for (const level of LEVELS) {
      const n = b.counts[level] || 0;
      if (!n) continue;
      const h = n * scale;
      y -= h;
      bars.push(
        svg(
          "rect",
          { x: String(left + i * slot + slot * 0.15), y: String(y), width: String(slot * 0.7), height: String(h), className: `bar-${level}` },
          svg("title", {}, `${b.label}: ${n} ${level}`),
        ),
      );
    }
  });
  const labels = buckets
    .filter((_, i) => buckets.length <= 8 || i % Math.ceil(buckets.length / 8) === 0)
    .map((b) => svg("text", { x: String(left + buckets.indexOf(b) * slot + slot / 2), y: String(height - 6), "text-anchor": "middle" }, b.label));
  return svg(
    "svg",
    { className: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title },
    svg("title", {}, title),
    svg("line", { x1: String(left), x2: String(width), y1: String(height - bottom), y2: String(height - bottom), stroke: "#9ca3af" }),
    svg("text", { x: "2", y: "14" }, String(max)),
    svg("text", { x: "2", y: String(height - bottom) }, "0"),
    ...bars,
    ...labels,
  );
}

/** counts: {LOW, MEDIUM, HIGH} as horizontal bars. */
export function levelBars(counts, title) {
  const width = 640;
  const row = 34;
  const left = 80;
  const max = Math.max(1, ...LEVELS.map((l) => counts[l] || 0));
  return svg(
    "svg",
    { className: "chart", viewBox: `0 0 ${width} ${row * LEVELS.length + 8}`, role: "img", "aria-label": title },
    svg("title", {}, title),
    ...LEVELS.flatMap((level, i) => {
      const n = counts[level] || 0;
      const w = ((width - left - 50) * n) / max;
      return [
        svg("text", { x: "4", y: String(i * row + 22) }, level),
        svg("rect", { x: String(left), y: String(i * row + 8), width: String(Math.max(w, n ? 2 : 0)), height: "20", className: `bar-${level}` }, svg("title", {}, `${level}: ${n}`)),
        svg("text", { x: String(left + w + 6), y: String(i * row + 22) }, String(n)),
      ];
    }),
  );
}
