"""The report's figures: matplotlib (Agg), embedded as PNG data URIs, one colour per engine throughout."""

import base64
import io
import itertools
import re

import numpy as np

from workbench.engines import registry

ENGINE_ORDER = (*registry.NAMES, registry.REMOTE)


def colour(engine: str) -> str:
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    index = ENGINE_ORDER.index(engine) if engine in ENGINE_ORDER else len(ENGINE_ORDER) + hash(engine) % 2
    return palette[index % len(palette)]


def _figure(width: float = 7.5, height: float = 4.0, ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), dpi=110, squeeze=False)
    return fig, list(axes[0])


def _log_y(ax) -> None:
    """A log y axis labelled in plain numbers. Latencies often span less than a decade, where
    matplotlib's default formatter labels the minor ticks as 1.3 x 10^1; this one labels the same
    ticks 13."""
    from matplotlib.ticker import LogFormatter

    class PlainLogFormatter(LogFormatter):  # matplotlib's choice of ticks to label, printed as %g
        def _num_to_string(self, x, vmin, vmax):
            return f"{x:g}"

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(PlainLogFormatter())
    ax.yaxis.set_minor_formatter(PlainLogFormatter())


def _encode(fig) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


Series = tuple[str, str | None]  # (engine, --dims combination "seq=8"; None without --dims)
DIMS_STYLES = ("-", "--", ":", "-.")  # one line style per --dims combination, the engine's colour throughout


def _sizes(dims: str | None) -> list[int]:
    """A --dims label's sizes in order, to sort "seq=8" before "seq=16"."""
    return [int(size) for size in re.findall(r"=(\d+)", dims or "")]


def _name(series: Series) -> str:
    engine, dims = series
    return f"{engine} {dims}" if dims else engine


def _styles(all_series) -> dict[str | None, str]:
    """A line style per --dims combination, by size; a run without --dims draws solid lines."""
    dims = sorted({d for _, d in all_series}, key=_sizes)
    return dict(zip(dims, itertools.cycle(DIMS_STYLES)))


def direct_latency(rows: list[dict]) -> str | None:
    """Grouped bars: p50 per engine per batch size and --dims combination, with a tick at p99."""
    if not rows:
        return None
    engines = list(dict.fromkeys(r["engine"] for r in rows))
    groups = sorted({(r["batch"], r.get("dims")) for r in rows}, key=lambda g: (g[0], _sizes(g[1])))
    fig, (ax,) = _figure()
    width = 0.8 / len(engines)
    for i, engine in enumerate(engines):
        labelled = False
        for j, (batch, dims) in enumerate(groups):
            row = next((r for r in rows if r["engine"] == engine and (r["batch"], r.get("dims")) == (batch, dims)),
                       None)
            if row is None:
                continue
            x = j + (i - (len(engines) - 1) / 2) * width
            ax.bar(x, row["p50_ms"], width, color=colour(engine), label=None if labelled else engine)
            ax.plot([x - width / 2, x + width / 2], [row["p99_ms"]] * 2, color="black", linewidth=1.5)
            labelled = True
    ax.set_xticks(range(len(groups)), [f"b{b} {d}" if d else f"batch {b}" for b, d in groups])
    _log_y(ax)
    ax.set_ylabel("latency per call (ms, log scale)")
    ax.set_title("Direct latency: bar = p50, black tick = p99")
    ax.legend(fontsize=8)
    return _encode(fig)


def served_vs_concurrency(rows: list[dict]) -> str | None:
    """Throughput, p50 and p99 against closed-loop concurrency, a line per engine and --dims combination."""
    if not rows:
        return None
    fig, axes = _figure(11, 3.8, ncols=3)
    all_series = list(dict.fromkeys((r["engine"], r.get("dims")) for r in rows))
    styles = _styles(all_series)
    for series in all_series:
        mine = sorted((r for r in rows if (r["engine"], r.get("dims")) == series), key=lambda r: r["concurrency"])
        c = [r["concurrency"] for r in mine]
        kw = {"color": colour(series[0]), "linestyle": styles[series[1]], "marker": "o", "label": _name(series)}
        axes[0].plot(c, [r["throughput"] for r in mine], **kw)
        axes[1].plot(c, [r["p50_ms"] for r in mine], **kw)
        axes[2].plot(c, [r["p99_ms"] for r in mine], **kw)
    for ax, title, label in zip(axes, ("Throughput", "p50 latency", "p99 latency"),
                                ("requests/s", "ms (log scale)", "ms (log scale)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency (requests outstanding)")
        ax.set_ylabel(label)
        ax.set_title(title)
    _log_y(axes[1])
    _log_y(axes[2])
    axes[0].legend(fontsize=8)
    return _encode(fig)


def percentile_curves(series: dict[Series, np.ndarray], concurrency: int) -> str | None:
    """HDR-style: latency against percentile on a 1/(1-p) axis, so the tail is readable; a curve per
    engine and --dims combination."""
    if not series:
        return None
    fig, (ax,) = _figure()
    styles = _styles(series)
    for key, latencies_ms in series.items():
        values = np.sort(latencies_ms)
        p = (np.arange(1, len(values) + 1) - 0.5) / len(values)
        ax.plot(1 / (1 - p), values, color=colour(key[0]), linestyle=styles[key[1]],
                label=f"{_name(key)} (n={len(values)})")
    ticks = [1, 2, 10, 100, 1000]
    ax.set_xscale("log")
    _log_y(ax)
    ax.set_xticks(ticks, ["0%", "50%", "90%", "99%", "99.9%"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(f"Latency by percentile at concurrency {concurrency}")
    ax.legend(fontsize=8)
    return _encode(fig)


def rate_vs_p99(points: dict[Series, list[tuple[float, float]]], bound_ms: float | None) -> str | None:
    """Open-loop runs: offered rate against p99, a line per engine and --dims combination, with the
    SLO bound where a search ran."""
    if not points:
        return None
    fig, (ax,) = _figure()
    styles = _styles(points)
    for key, pairs in points.items():
        pairs = sorted(pairs)
        ax.plot([r for r, _ in pairs], [p for _, p in pairs], color=colour(key[0]), linestyle=styles[key[1]],
                marker="o", label=_name(key))
    if bound_ms is not None:
        ax.axhline(bound_ms, color="red", linestyle="--", label=f"p99 bound {bound_ms:g} ms")
    _log_y(ax)
    ax.set_xlabel("offered rate (requests/s, Poisson arrivals)")
    ax.set_ylabel("p99 latency (ms, log scale)")
    ax.set_title("Open loop: rate against p99")
    ax.legend(fontsize=8)
    return _encode(fig)


def tuning_curve(curves: dict[int, list[tuple[float, int, float]]],
                 lines: dict[str, tuple[float, str, int]]) -> str | None:
    """Estimated end-to-end latency per batch size against cumulative trials and minutes, with
    measured lines (value, engine, batch size): one line style per batch size."""
    if not curves:
        return None
    styles = dict(zip(sorted(curves), itertools.cycle([("--", "."), (":", "x"), ("-.", "+")])))
    fig, axes = _figure(11, 3.8, ncols=2)
    for ax, column, label in ((axes[0], 1, "tuning trials (cumulative)"), (axes[1], 0, "tuning minutes (cumulative)")):
        for batch, curve in curves.items():
            ax.plot([p[column] for p in curve], [p[2] for p in curve], color=colour(registry.TVM),
                    marker=styles[batch][1], markersize=4, label=f"TVM estimate, batch {batch} (sum of best kernels)")
        for name, (value, engine, batch) in lines.items():
            ax.axhline(value, color=colour(engine), linestyle=styles[batch][0], label=name)
        _log_y(ax)
        ax.set_xlabel(label)
        ax.set_ylabel("latency (ms, log scale)")
        ax.set_title(f"Tuning progress by {label.split()[1]}")
    axes[0].legend(fontsize=8)
    return _encode(fig)


def roofline(peak_gflops: float, bandwidth_gbs: float, points: list[tuple[str, str, float, float]]) -> str | None:
    """The measured roof (min of peak and bandwidth x intensity) and each engine's achieved GFLOP/s."""
    if not points:
        return None
    fig, (ax,) = _figure()
    intensities = [i for _, _, i, _ in points]
    x = np.logspace(np.log10(min(intensities) / 4),
                    np.log10(max(max(intensities) * 4, 4 * peak_gflops / bandwidth_gbs)), 200)
    ax.plot(x, np.minimum(peak_gflops, bandwidth_gbs * x), color="black", label="measured roof")
    for engine, label, intensity, achieved in points:
        ax.scatter([intensity], [achieved], color=colour(engine), s=40, zorder=3)
        ax.annotate(label, (intensity, achieved), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set_xscale("log")
    _log_y(ax)
    ax.set_xlabel("arithmetic intensity (FLOP per byte of weights read)")
    ax.set_ylabel("GFLOP/s (log scale)")
    ax.set_title(f"Roofline: peak {peak_gflops:.0f} GFLOP/s, {bandwidth_gbs:.0f} GB/s")
    ax.legend(fontsize=8)
    return _encode(fig)
