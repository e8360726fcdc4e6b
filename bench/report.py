"""The benchmark's outputs for people: a table (rich, or Markdown with --plain) and a chart of
the latency distributions (matplotlib)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.stats import summarize


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table_rows(rows: Sequence[dict[str, Any]], targets: Sequence[str]) -> list[list[str]]:
    out = []
    for row in rows:
        cells = [row["label"], row["unit"]]
        for t in targets:
            values = row["values"].get(t, [])
            cells.append(_fmt(row["median"].get(t)) + (f" (n={len(values)})" if values else ""))
        if len(targets) > 1:
            r = row.get("ratio")
            cells.append("-" if r is None else f"{r:.2f}x")
        out.append(cells)
    return out


def print_table(
    rows: Sequence[dict[str, Any]],
    goals: Sequence[dict[str, Any]],
    targets: Sequence[str],
    *,
    plain: bool,
) -> None:
    header = ["measure", "unit", *[f"{t} (median)" for t in targets]]
    if len(targets) > 1:
        header.append("reflectd/original")
    body = table_rows(rows, targets)
    goal_rows = [
        [
            g["goal"],
            _fmt(g["value"]),
            {True: "met", False: "MISSED", None: g.get("note", "-")}[g["met"]],
        ]
        for g in goals
    ]
    if plain:
        print(markdown_table(header, body))
        if goal_rows:
            print()
            print(markdown_table(["goal", "value", "status"], goal_rows))
        return
    console = Console()
    table = Table(title="reflectd benchmark (medians over repetitions)")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for cells in body:
        table.add_row(*cells)
    console.print(table)
    if goal_rows:
        goals_table = Table(title="goals")
        for h in ("goal", "value", "status"):
            goals_table.add_column(h)
        for cells in goal_rows:
            goals_table.add_row(*cells)
        console.print(goals_table)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- chart


def ensure_matplotlib(log: Callable[[str], None]) -> bool:
    """Whether the chart can be drawn (matplotlib is in reflectd's dev extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log("no chart: matplotlib is missing (scripts/bootstrap installs it; or --no-chart)")
        return False
    return True


def _cdf(values: Sequence[float]) -> tuple[list[float], list[float]]:
    ordered = sorted(values)
    n = len(ordered)
    return ordered, [100 * (i + 1) / n for i in range(n)]


def draw_chart(
    runs: Sequence[dict[str, Any]],
    targets: Sequence[str],
    path: Path,
    log: Callable[[str], None],
) -> bool:
    if not ensure_matplotlib(log):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    panels: list[tuple[str, str, Callable[[dict[str, Any]], list[float] | None]]] = [
        ("closed", "(a) round trip to server confirmation",
         lambda r: r.get("samples", {}).get("roundTripMs")),
        ("closed", "(a) time until another client sees it",
         lambda r: r.get("samples", {}).get("visibilityMs")),
        ("connect", "(d) connect time", lambda r: r.get("samples", {}).get("connectMs")),
        ("open", "(b) one room open loop: mutate to confirmation",
         lambda r: r.get("confirmLatencySketch")),
        ("proto-rooms", "protocol, many rooms: push to confirmation",
         lambda r: r.get("confirmLatencySketch")),
        ("fanout", "protocol, big room: push to each client's poke",
         lambda r: r.get("pokeLatencySketch")),
    ]  # fmt: skip
    present = [p for p in panels if any(r["workload"] == p[0] for r in runs)]
    if not present:
        return False
    cols = 2
    rows_n = (len(present) + 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(12, 3.6 * rows_n), squeeze=False)
    colors = {"reflectd": "tab:blue", "reflectd-ts": "tab:green", "original": "tab:orange"}
    for ax, (workload, title, pick) in zip(axes.flat, present, strict=False):
        for target in targets:
            values: list[float] = []
            for run in runs:
                if run["workload"] == workload and run["target"] == target:
                    values += pick(run["result"]) or []
            if not values:
                continue
            xs, ys = _cdf(values)
            p50 = summarize(values)["p50"]
            ax.plot(xs, ys, label=f"{target} (p50 {p50:.0f} ms)", color=colors.get(target))
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("ms")
        ax.set_ylabel("% of samples ≤ x")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    fig.suptitle("Latency distributions (CDF, all repetitions pooled)", fontsize=12)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log(f"chart: {path}")
    return True
