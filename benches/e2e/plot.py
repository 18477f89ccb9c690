"""Hand-written SVG for benches/e2e.sh's scaling scenario (python3, no extra packages).

`scaling_svg(points)` takes one dict per image, `{"label", "mb", "dist_s", "floor_s",
"dist_runs", "rss_mib"}` (`dist_runs`: every run's seconds; any value may be None), and
returns an SVG with two panels: pull time against compressed size (dist, the floor, and
dist's least-squares line), and dist's peak RSS against size with the 64 MiB limit.
"""

import math

W, H = 460, 320  # one panel
ML, MR, MT, MB = 62, 16, 34, 48  # margins: left, right, top, bottom
DIST, FLOOR, FIT, LIMIT = "#1f77b4", "#7f7f7f", "#1f77b4", "#d62728"


def nice_ticks(hi, n=5):
    """Round tick values from 0 to at least `hi`."""
    if hi <= 0:
        hi = 1.0
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    count = math.ceil(hi / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def fmt(v):
    return f"{v:g}" if v < 1000 else f"{v:,.0f}"


class Panel:
    def __init__(self, x0, title, xlabel, ylabel, xmax, ymax):
        self.x0 = x0
        self.xt = nice_ticks(xmax)
        self.yt = nice_ticks(ymax)
        self.out = []
        pw, ph = W - ML - MR, H - MT - MB
        self.sx = lambda v: x0 + ML + v / self.xt[-1] * pw
        self.sy = lambda v: MT + ph - v / self.yt[-1] * ph
        o = self.out.append
        o(f'<text x="{x0 + W / 2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>')
        for t in self.xt:
            x = self.sx(t)
            o(f'<line x1="{x:.1f}" y1="{MT}" x2="{x:.1f}" y2="{MT + ph}" stroke="#eee"/>')
            o(f'<text x="{x:.1f}" y="{MT + ph + 16}" text-anchor="middle">{fmt(t)}</text>')
        for t in self.yt:
            y = self.sy(t)
            o(f'<line x1="{x0 + ML}" y1="{y:.1f}" x2="{x0 + ML + pw}" y2="{y:.1f}" stroke="#eee"/>')
            o(f'<text x="{x0 + ML - 6}" y="{y + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
        o(f'<rect x="{x0 + ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        o(f'<text x="{x0 + ML + pw / 2}" y="{H - 10}" text-anchor="middle">{xlabel}</text>')
        o(f'<text transform="translate({x0 + 16},{MT + ph / 2}) rotate(-90)" '
          f'text-anchor="middle">{ylabel}</text>')

    def series(self, pts, color, label, ly, dash=None, dots=True):
        pts = [(x, y) for x, y in pts if x is not None and y is not None]
        o = self.out.append
        if len(pts) > 1:
            d = " ".join(f"{self.sx(x):.1f},{self.sy(y):.1f}" for x, y in pts)
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            o(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="2"{extra}/>')
        if dots:
            for x, y in pts:
                o(f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="3.5" fill="{color}"/>')
        lx = self.x0 + ML + 10
        extra = f' stroke-dasharray="{dash}"' if dash else ""
        o(f'<line x1="{lx}" y1="{ly}" x2="{lx + 18}" y2="{ly}" stroke="{color}" stroke-width="2"{extra}/>')
        o(f'<text x="{lx + 24}" y="{ly + 4}">{label}</text>')

    def dots(self, pts, color):
        for x, y in pts:
            if x is not None and y is not None:
                self.out.append(f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="2" '
                                f'fill="{color}" fill-opacity="0.35"/>')


def linear_fit(xs, ys):
    """(intercept, slope, r squared) of the least-squares line, or None."""
    pts = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    if len(pts) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for _, y in pts)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in pts)
    r2 = 1 - ss_res / ss_tot if ss_tot else 1.0
    return a, b, r2


def scaling_svg(points, caption):
    xs = [p["mb"] for p in points]
    xmax = max([x for x in xs if x] or [1]) * 1.05
    tmax = max([v for p in points for v in [p["dist_s"], p["floor_s"], *p["dist_runs"]] if v]
               or [1]) * 1.1
    rmax = max([p["rss_mib"] or 0 for p in points] + [64]) * 1.15
    left = Panel(0, "cold pull time", "image size, MB compressed", "seconds", xmax, tmax)
    left.dots([(p["mb"], r) for p in points for r in p["dist_runs"]], DIST)
    left.series([(p["mb"], p["dist_s"]) for p in points], DIST, "dist pull (median)", MT + 14)
    left.series([(p["mb"], p["floor_s"]) for p in points], FLOOR, "floor (median)", MT + 32)
    fit = linear_fit(xs, [p["dist_s"] for p in points])
    if fit:
        a, b, r2 = fit
        x0 = -a / b if a < 0 < b else 0.0  # start where the line crosses 0 s
        left.series([(x0, a + b * x0), (left.xt[-1], a + b * left.xt[-1])], FIT,
                    f"fit: {a:.2f} s + {b * 1000:.2f} s/GB, R² {r2:.3f}", MT + 50,
                    dash="5,4", dots=False)
    right = Panel(W, "peak RSS of dist pull", "image size, MB compressed", "MiB", xmax, rmax)
    right.series([(0, 64), (right.xt[-1], 64)], LIMIT, "limit: 64 MiB", MT + 14, dash="6,4",
                 dots=False)
    right.series([(p["mb"], p["rss_mib"]) for p in points], DIST, "dist pull (median)", MT + 32)
    body = left.out + right.out
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 22}" '
        f'viewBox="0 0 {2 * W} {H + 22}" font-family="sans-serif" font-size="12">',
        f'<rect width="{2 * W}" height="{H + 22}" fill="white"/>',
        *body,
        f'<text x="{W}" y="{H + 14}" text-anchor="middle" font-size="11" fill="#555">'
        f'{caption}</text>',
        "</svg>",
        "",
    ])
