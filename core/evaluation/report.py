"""A self-contained HTML report of a run, to send to a colleague: config, dataset version, loss curves (inline
SVG drawn here, no plotting library), the metric table with confidence intervals, the forgetting check, the
blind review results with notes, and a sample of examples. No external file, script or font is referenced.
"""

from __future__ import annotations

import html
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_text
from core.evaluation.evaluate import current_wording
from core.evaluation.forgetting import forgetting_sentence
from core.evaluation.metrics import METRIC_LABELS, format_metric
from core.runs import RunFolder

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:960px;color:#1d2430;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #d9dee6;padding-bottom:.2em}
table{border-collapse:collapse;width:100%;font-size:.92em}th,td{border:1px solid #d9dee6;padding:.35em .55em;text-align:left;vertical-align:top}
th{background:#f2f4f7}td.num{text-align:right;font-variant-numeric:tabular-nums}.pos{color:#1a7f37}.neg{color:#c62828}
.muted{color:#66707d}pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em;white-space:pre-wrap}
.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.4em .8em;margin:.3em 0}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def loss_curve_svg(events: Sequence[dict[str, Any]], width: int = 640, height: int = 260) -> str:
    """Training (and validation) loss against step as an inline SVG; a note when there are no losses."""
    series = {
        "training loss": [
            (e["step"], e["loss"])
            for e in events
            if e.get("type") == "step" and _num(e.get("loss")) and _num(e.get("step"))
        ],
        "validation loss": [
            (e["step"], e["eval_loss"]) for e in events if _num(e.get("eval_loss")) and _num(e.get("step"))
        ],
    }
    series = {k: v for k, v in series.items() if v}
    if not series:
        return '<p class="muted">No losses were recorded for this run.</p>'
    points = [p for s in series.values() for p in s]
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = (max(0.0, y0 - pad) if y0 >= 0 else y0 - pad), y1 + pad
    left, right, top, bottom = 52, 16, 30, 34
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    colors = {"training loss": "#2f6fde", "validation loss": "#e0782a"}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="loss curves" font-family="sans-serif" font-size="11">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fbfcfd" stroke="#c9d0da"/>',
    ]
    for i in range(5):
        yv = y0 + (y1 - y0) * i / 4
        y = sy(yv)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e6e9ee"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{yv:.3g}</text>')
    ticks = sorted({round(x0 + (x1 - x0) * i / 4) for i in range(5)})
    for xv in ticks:
        x = sx(xv)
        parts.append(
            f'<text x="{x:.1f}" y="{top + ph + 16}" text-anchor="middle" fill="#555">{xv:.0f}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2:.0f}" y="{height - 3}" text-anchor="middle" fill="#333">step</text>'
    )
    for k, (name, pts) in enumerate(series.items()):
        pts = sorted(pts)
        color = colors.get(name, "#444")
        if len(pts) == 1:
            x, y = sx(pts[0][0]), sy(pts[0][1])
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
        else:
            coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{coords}"/>')
        lx = left + k * 130
        parts.append(f'<line x1="{lx}" y1="12" x2="{lx + 18}" y2="12" stroke="{color}" stroke-width="3"/>')
        parts.append(f'<text x="{lx + 24}" y="16" fill="#333">{_e(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _metric_table(summary: dict[str, Any]) -> str:
    rows = []
    level = int(round(100 * float(summary.get("ci_level", 0.95))))
    for metric, base in summary.get("base", {}).items():
        tuned = summary.get("tuned", {}).get(metric)
        delta = summary.get("delta", {}).get(metric)
        if delta:
            d = delta.get("value")
            ci = (
                f"[{format_metric(metric, delta['ci_low'])}, {format_metric(metric, delta['ci_high'])}]"
                if delta.get("ci_low") is not None
                else "–"
            )
        else:
            d = tuned - base if tuned is not None and base is not None else None
            ci = "–"
        better_low = metric == "perplexity"
        cls = ""
        if isinstance(d, float) and d and metric != "length_ratio":
            cls = "pos" if (d > 0) != better_low else "neg"
        rows.append(
            f"<tr><td>{_e(METRIC_LABELS.get(metric, metric))}</td><td class=num>{format_metric(metric, base)}</td>"
            f"<td class=num>{format_metric(metric, tuned)}</td><td class='num {cls}'>{format_metric(metric, d)}</td>"
            f"<td class=num>{ci}</td></tr>"
        )
    return (
        f"<table><tr><th>Metric</th><th>Base</th><th>Tuned</th><th>Difference</th><th>{level}% CI of the difference</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _review_section(review: dict[str, Any] | None) -> str:
    if not review or not review.get("overall", {}).get("votes"):
        return '<p class="muted">No blind review votes yet.</p>'
    o = review["overall"]
    rate = "–" if o["win_rate"] is None else f"{100 * o['win_rate']:.0f}%"
    p = "–" if o["p_value"] is None else f"{o['p_value']:.3g}"
    out = [
        f"<p>{o['votes']} votes on {review.get('items', 0)} examples. Tuned preferred in <b>{rate}</b> of the "
        f"decisive votes ({o['tuned_wins']} tuned, {o['base_wins']} base; binomial test p = {p}); "
        f"{o['ties']} ties, {o['both_bad']} both bad.</p>",
        "<table><tr><th>Reviewer</th><th>Votes</th><th>Tuned wins</th><th>Base wins</th><th>Ties</th>"
        "<th>Both bad</th><th>Win rate</th><th>p</th></tr>",
    ]
    for name, c in review.get("reviewers", {}).items():
        wr = "–" if c["win_rate"] is None else f"{100 * c['win_rate']:.0f}%"
        pv = "–" if c["p_value"] is None else f"{c['p_value']:.3g}"
        out.append(
            f"<tr><td>{_e(name)}</td><td class=num>{c['votes']}</td><td class=num>{c['tuned_wins']}</td>"
            f"<td class=num>{c['base_wins']}</td><td class=num>{c['ties']}</td><td class=num>{c['both_bad']}</td>"
            f"<td class=num>{wr}</td><td class=num>{pv}</td></tr>"
        )
    out.append("</table>")
    if review.get("agreement"):
        out.append(
            "<h3>Agreement between reviewers</h3><table><tr><th>Reviewers</th><th>Shared items</th>"
            "<th>Percent agreement</th><th>Cohen's kappa</th></tr>"
        )
        for a in review["agreement"]:
            pa = "–" if a["percent_agreement"] is None else f"{100 * a['percent_agreement']:.0f}%"
            kappa = "–" if a["kappa"] is None else f"{a['kappa']:.2f}"
            out.append(
                f"<tr><td>{_e(' & '.join(a['reviewers']))}</td><td class=num>{a['items']}</td>"
                f"<td class=num>{pa}</td><td class=num>{kappa}</td></tr>"
            )
        out.append("</table>")
    if review.get("notes"):
        out.append(
            "<h3>Reviewer notes</h3><table><tr><th>Example</th><th>Reviewer</th><th>Preferred</th><th>Note</th></tr>"
        )
        for n in review["notes"]:
            out.append(
                f"<tr><td>{_e(n['example_id'])}</td><td>{_e(n['reviewer'])}</td>"
                f"<td>{_e(n['outcome'].replace('_', ' '))}</td><td>{_e(n['note'])}</td></tr>"
            )
        out.append("</table>")
    return "".join(out)


def _examples_section(rows: Sequence[dict[str, Any]], limit: int = 20) -> str:
    if not rows:
        return ""
    out = [
        f"<h2>Examples (first {min(limit, len(rows))} of {len(rows)})</h2><table><tr><th>Prompt</th><th>Reference</th>"
        "<th>Base</th><th>Tuned</th><th>EM base → tuned</th></tr>"
    ]
    for r in rows[:limit]:
        em_b = r.get("base_scores", {}).get("exact_match")
        em_t = r.get("tuned_scores", {}).get("exact_match")
        out.append(
            f"<tr><td>{_e(r.get('prompt'))}</td><td>{_e(r.get('reference'))}</td><td>{_e(r.get('base'))}</td>"
            f"<td>{_e(r.get('tuned'))}</td><td class=num>{format_metric('exact_match', em_b)} → {format_metric('exact_match', em_t)}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def _forgetting_table(run: RunFolder) -> str:
    file = run.eval_dir / "forgetting.jsonl"
    if not file.exists():
        return ""
    import orjson

    rows = [orjson.loads(line) for line in file.read_bytes().splitlines() if line.strip()]
    flagged = [r for r in rows if r.get("tuned_flags")]
    if not flagged:
        return ""
    out = ["<table><tr><th>General prompt</th><th>Base</th><th>Tuned</th><th>Flags (tuned)</th></tr>"]
    for r in flagged:
        out.append(
            f"<tr><td>{_e(r['prompt'])}</td><td>{_e(r['base'])}</td><td>{_e(r['tuned'])}</td>"
            f"<td>{_e(', '.join(r['tuned_flags']))}</td></tr>"
        )
    out.append("</table>")
    return "".join(out)


def build_report(
    run_dir: str | Path,
    summary: dict[str, Any] | None,
    rows: Sequence[dict[str, Any]] = (),
    review: dict[str, Any] | None = None,
) -> str:
    run = RunFolder(Path(run_dir))
    config_text = (
        run.config_file.read_text(encoding="utf-8") if run.config_file.exists() else "(no config.yaml)"
    )
    events = run.curve()  # as the Train page draws it: a resume's re-run steps replace the ones they re-ran
    sha = run.dataset_sha256() or "unknown"
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f"<title>Whetstone report – {_e(run.path.name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Run {_e(run.path.name)}</h1>",
        f"<p class=muted>Report written {_e(time.strftime('%Y-%m-%d %H:%M'))} by Whetstone. "
        f"Dataset version (sha256 of dataset.jsonl): <code>{_e(sha)}</code></p>",
    ]
    if summary:
        source = summary.get("source", {})
        where = f"file {source['data']}" if "data" in source else f"the {source.get('split', 'test')} split"
        parts.append(
            f"<h2>Base vs tuned</h2><p>{summary.get('n', 0)} examples from {_e(where)}, base model "
            f"<code>{_e(summary.get('base_model'))}</code>, greedy decoding up to "
            f"{_e(summary.get('decoding', {}).get('max_new_tokens'))} new tokens."
            + (" <b>Partial results (evaluation was cancelled).</b>" if summary.get("partial") else "")
            + "</p>"
        )
        parts.append(_metric_table(summary))
        for warning in summary.get("warnings", []):
            parts.append(f"<div class=warn>{_e(current_wording(warning))}</div>")
        forgetting = summary.get("forgetting")
        if forgetting:
            parts.append(f"<h2>Forgetting check</h2><p>{_e(forgetting_sentence(forgetting))}</p>")
            parts.append(_forgetting_table(run))
    else:
        parts.append('<h2>Base vs tuned</h2><p class="muted">This run has not been evaluated yet.</p>')
    parts.append("<h2>Blind review</h2>" + _review_section(review))
    parts.append("<h2>Loss curves</h2>" + loss_curve_svg(events))
    parts.append(_examples_section(rows))
    parts.append(f"<h2>Training configuration</h2><pre>{_e(config_text)}</pre>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(
    run_dir: str | Path,
    out: str | Path,
    summary: dict[str, Any] | None,
    rows: Sequence[dict[str, Any]] = (),
    review: dict[str, Any] | None = None,
) -> Path:
    target = Path(out)
    atomic_write_text(target, build_report(run_dir, summary, rows, review))
    return target
