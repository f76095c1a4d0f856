"""Charts of a simulation result as standalone SVG text (no plotting library in the platform's environment).

Both charts take the result's JSON (`SimulationResult.to_dict()`), so the API can draw them from a
stored result without rerunning anything. Labels are escaped: element and resource ids come from
uploaded models.
"""

from __future__ import annotations

from html import escape
from typing import Any

_WIDTH, _HEIGHT = 640, 360
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 36, 48
_FONT = 'font-family="sans-serif" font-size="11"'


def _frame(title: str, body: list[str]) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
            f'viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{escape(title)}">',
            f'<rect width="{_WIDTH}" height="{_HEIGHT}" fill="white"/>',
            f'<text x="{_WIDTH / 2}" y="20" text-anchor="middle" font-family="sans-serif" font-size="14">'
            f"{escape(title)}</text>",
            *body,
            "</svg>",
        ]
    )


def _duration_label(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def cycle_time_histogram_svg(result: dict[str, Any]) -> str:
    """Bars of the pooled cycle-time histogram, with the p50, p90 and p99 marked."""
    edges: list[float] = result["histogram"]["edges"]
    counts: list[float] = result["histogram"]["counts"]
    title = f"Cycle time of {result['process_id']} ({result['instances']:,} instances)"
    if not counts:
        return _frame(
            title,
            [f'<text x="{_WIDTH / 2}" y="{_HEIGHT / 2}" text-anchor="middle" {_FONT}>no instance completed</text>'],
        )
    plot_w, plot_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    low, high = edges[0], edges[-1]
    span = (high - low) or 1.0
    top = max(counts) or 1.0
    body: list[str] = []
    bar_w = plot_w / len(counts)
    for i, c in enumerate(counts):
        h = plot_h * c / top
        body.append(
            f'<rect x="{_LEFT + i * bar_w:.2f}" y="{_TOP + plot_h - h:.2f}" width="{max(bar_w - 1, 0.5):.2f}" '
            f'height="{h:.2f}" fill="#4e79a7"><title>{_duration_label(edges[i])}-{_duration_label(edges[i + 1])}: '
            f"{int(c):,}</title></rect>"
        )
    body.append(f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_LEFT + plot_w}" y2="{_TOP + plot_h}" stroke="black"/>')
    for i in range(5):
        value = low + span * i / 4
        x = _LEFT + plot_w * i / 4
        body.append(
            f'<text x="{x:.2f}" y="{_TOP + plot_h + 16}" text-anchor="middle" {_FONT}>{_duration_label(value)}</text>'
        )
    body.append(f'<text x="{_LEFT - 8}" y="{_TOP + 8}" text-anchor="end" {_FONT}>{int(top):,}</text>')
    body.append(f'<text x="{_LEFT - 8}" y="{_TOP + plot_h}" text-anchor="end" {_FONT}>0</text>')
    pooled = result.get("cycle_time_pooled_s") or {}
    for name, colour in (("p50", "#59a14f"), ("p90", "#f28e2b"), ("p99", "#e15759")):
        marked = pooled.get(name)
        if marked is None or not low <= marked <= high:
            continue
        x = _LEFT + plot_w * (marked - low) / span
        body.append(
            f'<line x1="{x:.2f}" y1="{_TOP}" x2="{x:.2f}" y2="{_TOP + plot_h}" stroke="{colour}" '
            'stroke-dasharray="4 3"/>'
        )
        body.append(
            f'<text x="{x + 3:.2f}" y="{_TOP + 10}" fill="{colour}" {_FONT}>{name} {_duration_label(marked)}</text>'
        )
    body.append(f'<text x="{_LEFT + plot_w / 2}" y="{_HEIGHT - 8}" text-anchor="middle" {_FONT}>cycle time</text>')
    return _frame(title, body)


def utilisation_svg(result: dict[str, Any]) -> str:
    """One horizontal bar per finite resource: its mean utilisation, with the 95 % interval as a whisker."""
    rows = [
        (name, info["utilisation"])
        for name, info in result["resources"].items()
        if isinstance(info.get("utilisation"), dict) and info["utilisation"].get("mean") is not None
    ]
    title = f"Utilisation per resource: {result['process_id']}"
    if not rows:
        return _frame(
            title,
            [
                f'<text x="{_WIDTH / 2}" y="{_HEIGHT / 2}" text-anchor="middle" {_FONT}>'
                "no resource with a finite capacity</text>"
            ],
        )
    left = 160
    plot_w = _WIDTH - left - _RIGHT - 40
    row_h = min(36.0, (_HEIGHT - _TOP - _BOTTOM) / len(rows))
    body: list[str] = []
    for i, (name, estimate) in enumerate(rows):
        y = _TOP + i * row_h
        mean = min(max(float(estimate["mean"]), 0.0), 1.0)
        colour = "#e15759" if mean >= 0.85 else "#f28e2b" if mean >= 0.7 else "#4e79a7"
        body.append(f'<text x="{left - 8}" y="{y + row_h * 0.6:.2f}" text-anchor="end" {_FONT}>{escape(name)}</text>')
        body.append(
            f'<rect x="{left}" y="{y + row_h * 0.2:.2f}" width="{plot_w * mean:.2f}" '
            f'height="{row_h * 0.6:.2f}" fill="{colour}"/>'
        )
        low, high = estimate.get("ci95") or [None, None]
        if low is not None and high is not None:
            x1, x2 = left + plot_w * min(max(low, 0), 1), left + plot_w * min(max(high, 0), 1)
            body.append(
                f'<line x1="{x1:.2f}" y1="{y + row_h / 2:.2f}" x2="{x2:.2f}" y2="{y + row_h / 2:.2f}" stroke="black"/>'
            )
        body.append(f'<text x="{left + plot_w * mean + 6:.2f}" y="{y + row_h * 0.6:.2f}" {_FONT}>{mean:.0%}</text>')
    bottom = _TOP + len(rows) * row_h
    body.append(f'<line x1="{left}" y1="{bottom:.2f}" x2="{left + plot_w}" y2="{bottom:.2f}" stroke="black"/>')
    for i in range(5):
        x = left + plot_w * i / 4
        body.append(f'<text x="{x:.2f}" y="{bottom + 16:.2f}" text-anchor="middle" {_FONT}>{i * 25}%</text>')
    return _frame(title, body)
