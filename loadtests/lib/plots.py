"""One PNG per section: labelled axes, units in the labels, the figure's ratio in the title."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt

COLORS = {"async": "tab:green", "sync": "tab:orange", "blocking": "tab:red"}
DPI = 80  # small files: they are copied into docs/img


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def handler_styles(s: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for style in ("async", "sync", "blocking"):
        rows = [r for r in s["rows"] if r["style"] == style]
        measured = [r for r in rows if not r["extrapolated"]]
        guessed = [r for r in rows if r["extrapolated"]]
        ax.plot(
            [r["n"] for r in measured],
            [r["wall_s"] for r in measured],
            "o-",
            color=COLORS[style],
            label=f"/demo/{style} (measured)",
        )
        if guessed:
            line = [measured[-1], *guessed]
            ax.plot(
                [r["n"] for r in line],
                [r["wall_s"] for r in line],
                "o--",
                color=COLORS[style],
                mfc="none",
                label=f"/demo/{style} (extrapolated from N={guessed[0]['from_n']})",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent requests N (each sleeps 1 s)")
    ax.set_ylabel("completion time of all N (s, log scale)")
    ax.set_title(f"1. Handler styles on one io worker — thread limiter: {s['thread_tokens']} tokens")
    ax.axhline(2.0, color="grey", lw=0.8, ls=":", label="goal for async at N=1000: < 2 s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _bars(ax: plt.Axes, labels: list[str], values: list[float], ylabel: str, title: str) -> None:
    bars = ax.bar(labels, values, color=["tab:blue", "tab:purple", "tab:gray", "tab:olive"][: len(values)])
    ax.bar_label(bars, fmt="%.4g", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)


def gateway_overhead(s: dict[str, Any], clients: dict[str, Any] | None, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3 if clients else 2, figsize=(12 if clients else 8, 4.5))
    names = ["gateway", "io_direct"]
    _bars(
        axes[0],
        names,
        [s[n]["rps"] for n in names],
        "throughput (requests/s)",
        f"2. GET /users/{{id}}, c={s['concurrency']}: gateway keeps {s['gateway_share_of_direct_rps']:.0%}",
    )
    x = range(len(names))
    axes[1].bar([i - 0.2 for i in x], [s[n]["p50_ms"] for n in names], 0.4, label="p50")
    axes[1].bar([i + 0.2 for i in x], [s[n]["p99_ms"] for n in names], 0.4, label="p99")
    axes[1].set_xticks(list(x), names)
    axes[1].set_ylabel("latency (ms)")
    axes[1].set_title("latency at the same concurrency", fontsize=10)
    axes[1].legend()
    if clients:
        cs = sorted({r["concurrency"] for r in clients["rows"]})
        kinds = ["aiohttp", "httpx", "httpx-aiohttp"]
        width = 0.8 / len(cs)
        for j, c in enumerate(cs):
            by = {r["client"]: r for r in clients["rows"] if r["concurrency"] == c}
            axes[2].bar(
                [i + j * width for i in range(len(kinds))], [by[k]["rps"] for k in kinds], width, label=f"c={c}"
            )
        axes[2].set_xticks([i + width * (len(cs) - 1) / 2 for i in range(len(kinds))], kinds)
        axes[2].set_ylabel("throughput against io (requests/s)")
        axes[2].set_title("client library as the load generator", fontsize=10)
        axes[2].legend()
    return _save(fig, path)


def database_paths(s: dict[str, Any], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    cs = sorted({r["concurrency"] for r in s["rows"]})
    paths = [("cache_hit", "Redis cache hit"), ("async_db", "async SQLAlchemy+asyncpg"), ("sync_db", "def + psycopg")]
    width = 0.27
    for j, (key, label) in enumerate(paths):
        by = {r["concurrency"]: r for r in s["rows"] if r["path"] == key}
        axes[0].bar([i + j * width for i in range(len(cs))], [by[c]["rps"] for c in cs], width, label=label)
        axes[1].bar([i + j * width for i in range(len(cs))], [by[c]["p99_ms"] for c in cs], width, label=label)
    for ax, ylabel in ((axes[0], "throughput (requests/s)"), (axes[1], "p99 latency (ms)")):
        ax.set_xticks([i + width for i in range(len(cs))], [f"c={c}" for c in cs])
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title(f"3. GET /users/{{id}} on one io worker: cache/async DB >= {s['goal']['value']}x", fontsize=10)
    axes[1].set_title("tail latency", fontsize=10)
    return _save(fig, path)


def worker_scaling(s: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    names = ["1_worker", "2_workers"]
    _bars(
        ax,
        names,
        [s[n]["rps"] for n in names],
        "throughput (requests/s)",
        f"4. io workers on this machine, c={s['concurrency']}: x{s['two_over_one_rps']}",
    )
    ax.set_xlabel("gunicorn workers (uvicorn event loops)")
    return _save(fig, path)


def compute(s: dict[str, Any], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    names = ["process", "thread", "inline"]
    ratio = s["ratios"]["process_over_thread_throughput"]
    _bars(
        axes[0],
        names,
        [s[n]["throughput_rps"] for n in names],
        "CPU tasks completed per second",
        f"5. compute pools, ~{s['task_seconds_target']} s tasks: process/thread x{ratio:.2f}",
    )
    axes[0].set_xlabel(f"where the loop runs (pool {s['pool_size']} processes / {s['thread_pool_size']} threads)")
    _bars(
        axes[1],
        names,
        [s[n]["loop_lag_p99_s"] * 1000 for n in names],
        "event-loop lag p99 (ms, log scale)",
        "loop lag while saturated (goal < 10 ms)",
    )
    axes[1].set_yscale("log")
    axes[1].axhline(10, color="grey", ls=":", lw=0.8)
    return _save(fig, path)


def video(s: dict[str, Any], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    names = ["direct ffmpeg", "through the worker"]
    _bars(
        ax,
        names,
        [s["direct_median_s"], s["worker_end_to_end_median_s"]],
        "transcode time per job (s, median)",
        f"6. video: overhead {s['overhead_end_to_end']:+.1%}, {s['jobs_per_minute']:.1f} jobs/min "
        f"(concurrency {s['concurrency']})",
    )
    ax.set_xlabel(s["clip"])
    return _save(fig, path)
