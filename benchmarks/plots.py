"""PNG plots (matplotlib, Agg): throughput per model x mode x precision (against batch size, or as
grouped bars where one batch was measured), the ours/reference ratios against their bound, and the
best configuration per framework. Each returns the file names written (relative to the folder)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from resnet_rosetta.common.atomic import atomic_path
from .results import framework_order, model_records, ok, paired_rows

COLORS = {"torch": "#ee4c2c", "paddle": "#2932e1", "flax": "#5e9e2e"}
EXEC_STYLE = {"eager": "o", "compiled": "s"}


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _label(fw: str, impl: str, ex: str, layout: str, paired: bool = False) -> str:
    who = " (reference)" if impl != "ours" else " (ours, beside the reference)" if paired else ""
    return f"{fw} {ex}{who}" + (" CL" if "channels_last" in layout else "")


def _iqr(recs: list[dict]) -> tuple[list[float], list[list[float]]]:
    """Medians and their [below, above] IQR whiskers."""
    ys = [r["metrics"]["img_s_median"] for r in recs]
    return ys, [[y - r["metrics"]["img_s_q25"] for y, r in zip(ys, recs)],
                [r["metrics"]["img_s_q75"] - y for y, r in zip(ys, recs)]]


def throughput_plots(records: list[dict], out_dir: Path) -> list[str]:
    """One figure per model x size x mode x precision: img/s against batch size where the sweep
    measured several, else a grouped bar chart per framework (ours alone, then both sides of the
    interleaved ours/reference pair: only those two compare fairly on a noisy host, per exec mode)
    so that configurations measured at one batch do not sit on one x position."""
    plt = _pyplot()
    groups: dict = defaultdict(lambda: defaultdict(list))
    for r in model_records(records) + paired_rows(records, "ours") + paired_rows(records, "reference"):
        if not ok(r):
            continue
        c = r["cell"]
        line = (c["framework"], c["impl"], c["exec"], c["layout"], bool(r.get("paired")))
        groups[(c["arch"], c["size"], c["mode"], c["precision"])][line].append(r)
    written = []
    for (arch, size, mode, precision), lines in sorted(groups.items()):
        ordered = sorted(lines.items(), key=lambda kv: (framework_order(kv[0][0]), kv[0][1:]))
        batches = sorted({r["cell"]["batch"] for recs in lines.values() for r in recs})
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        if len(batches) > 1:  # lines: ours alone and the reference (as the tables)
            _lines(ax, [(key, recs) for key, recs in ordered if not (key[4] and key[1] == "ours")], batches)
        else:
            _bars(ax, ordered)
            ax.set_xlabel(f"batch size {batches[0]}")
        ax.set_ylabel("images / s (median, IQR bars)")
        ax.set_title(f"{arch} {mode} {precision} ({size}px)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        name = f"plot_{arch}_{size}px_{mode}_{precision}.png"
        _save(fig, out_dir / name)
        plt.close(fig)
        written.append(name)
    return written


def _lines(ax, ordered: list, batches: list[int]) -> None:  # type: ignore[no-untyped-def]
    for (fw, impl, ex, layout, _), recs in ordered:
        recs = sorted(recs, key=lambda r: r["cell"]["batch"])
        ys, err = _iqr(recs)
        ax.errorbar([r["cell"]["batch"] for r in recs], ys, yerr=err, label=_label(fw, impl, ex, layout),
                    color=COLORS.get(fw), marker=EXEC_STYLE.get(ex, "o"), linestyle="-" if impl == "ours" else "--",
                    capsize=3, alpha=1.0 if impl == "ours" else 0.6)
    ax.set_xscale("log", base=2)
    ax.set_xticks(batches, [str(b) for b in batches])
    ax.set_xlabel("batch size")


def _bars(ax, ordered: list) -> None:  # type: ignore[no-untyped-def]
    """Framework groups on x; inside each, one bar per configuration (ours alone solid, ours beside
    the reference lighter, the reference hatched)."""
    frameworks = sorted({key[0] for key, _ in ordered}, key=framework_order)
    per_fw = {fw: [(key, recs) for key, recs in ordered if key[0] == fw] for fw in frameworks}
    width = 0.8 / max(len(v) for v in per_fw.values())
    for x, fw in enumerate(frameworks):
        configs = per_fw[fw]
        for i, ((_, impl, ex, layout, paired), recs) in enumerate(configs):
            ys, err = _iqr(recs[:1])
            alone = impl == "ours" and not paired
            ax.bar(x + (i - (len(configs) - 1) / 2) * width, ys, width * 0.95, yerr=err, capsize=3,
                   color=COLORS.get(fw), alpha=1.0 if alone else 0.7 if impl == "ours" else 0.45,
                   hatch="//" if impl != "ours" else "", edgecolor="black", linewidth=0.5,
                   label=_label(fw, impl, ex, layout, paired))
    ax.set_xticks(range(len(frameworks)), frameworks)


def ratio_plot(ratio_rows: list[dict], bound: float, out_dir: Path) -> list[str]:
    """Every measured ours/reference ratio with the IQR of its round ratios, and the bound."""
    rows = [r for r in ratio_rows if r["ratio"] is not None]
    if not rows:
        return []
    plt = _pyplot()
    rows = sorted(rows, key=lambda r: (r["cell"]["arch"], r["cell"]["mode"], framework_order(r["cell"]["framework"])))
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.35 * len(rows)))
    ys = range(len(rows))
    ratios = [r["ratio"] for r in rows]
    err = [[r["ratio"] - r["ratio_q25"] for r in rows], [r["ratio_q75"] - r["ratio"] for r in rows]]
    for y, r, lo, hi in zip(ys, rows, *err):
        ax.errorbar([r["ratio"]], [y], xerr=[[lo], [hi]], fmt="o", capsize=3, color=COLORS.get(r["cell"]["framework"]))
    ax.axvline(bound, color="black", linestyle="--", linewidth=1, label=f"bound {bound:g}")
    ax.axvline(1.0, color="gray", linewidth=0.5)
    labels = [f"{r['cell']['arch']} {r['cell']['mode']} b{r['cell']['batch']} {r['cell']['framework']} "
              f"{r['cell']['exec']}" for r in rows]
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ours / reference throughput (median of ABBA rounds, IQR bars)")
    ax.set_title("Our model against the framework's own reference")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_xlim(min(min(ratios) - 0.05, bound - 0.05), max(max(ratios) + 0.05, 1.05))
    name = "plot_ratios.png"
    _save(fig, out_dir / name)
    plt.close(fig)
    return [name]


def best_plot(best: dict, out_dir: Path) -> list[str]:
    if not best:
        return []
    plt = _pyplot()

    keys = sorted(best, key=lambda k: (k[0], k[1] != "infer"))
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        per = best[key]
        fws = sorted(per, key=framework_order)
        vals = [per[fw]["metrics"]["img_s_median"] for fw in fws]
        errs = [[v - per[fw]["metrics"]["img_s_q25"] for v, fw in zip(vals, fws)],
                [per[fw]["metrics"]["img_s_q75"] - v for v, fw in zip(vals, fws)]]
        ax.bar(fws, vals, yerr=errs, capsize=4, color=[COLORS.get(fw, "gray") for fw in fws])
        for i, fw in enumerate(fws):
            c = per[fw]["cell"]
            top = max(vals[i], per[fw]["metrics"]["img_s_q75"])  # above the error bar
            ax.annotate(f"{c['exec']}\n{c['precision']} b{c['batch']}", (i, top), ha="center", va="bottom",
                        fontsize=7, xytext=(0, 3), textcoords="offset points")
        ax.set_title(f"{key[0]} {key[1]}")
        ax.set_ylabel("images / s")
        ax.margins(y=0.25)
    fig.suptitle("Best configuration per framework (ours)")
    fig.tight_layout()
    name = "plot_best_per_framework.png"
    _save(fig, out_dir / name)
    plt.close(fig)
    return [name]
