"""PNG plots (matplotlib, Agg): img/s vs batch per model x mode x precision, and the best
configuration per framework. Returns the file names written (relative to the output folder)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from resnet_rosetta.common.atomic import atomic_path
from .results import framework_order, model_records, ok, paired_reference_rows

COLORS = {"torch": "#ee4c2c", "paddle": "#2932e1", "flax": "#5e9e2e"}
EXEC_STYLE = {"eager": "o", "compiled": "s"}


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def throughput_plots(records: list[dict], out_dir: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict = defaultdict(lambda: defaultdict(list))
    for r in model_records(records) + paired_reference_rows(records):
        if not ok(r):
            continue
        c = r["cell"]
        line = (c["framework"], c["impl"], c["exec"], c["layout"])
        groups[(c["arch"], c["size"], c["mode"], c["precision"])][line].append(r)
    written = []
    for (arch, size, mode, precision), lines in sorted(groups.items()):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for (fw, impl, ex, layout), recs in sorted(lines.items(), key=lambda kv: (framework_order(kv[0][0]), kv[0][1:])):
            recs = sorted(recs, key=lambda r: r["cell"]["batch"])
            xs = [r["cell"]["batch"] for r in recs]
            ys = [r["metrics"]["img_s_median"] for r in recs]
            lo = [y - r["metrics"]["img_s_q25"] for y, r in zip(ys, recs)]
            hi = [r["metrics"]["img_s_q75"] - y for y, r in zip(ys, recs)]
            label = f"{fw} {ex}" + ("" if impl == "ours" else " (reference)") + (" CL" if "channels_last" in layout else "")
            ax.errorbar(xs, ys, yerr=[lo, hi], label=label, color=COLORS.get(fw), marker=EXEC_STYLE.get(ex, "o"),
                        linestyle="-" if impl == "ours" else "--", capsize=3, alpha=1.0 if impl == "ours" else 0.6)
        batches = sorted({r["cell"]["batch"] for recs in lines.values() for r in recs})
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlabel("batch size")
        ax.set_ylabel("images / s (median, IQR bars)")
        ax.set_title(f"{arch} {mode} {precision} ({size}px)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        name = f"plot_{arch}_{size}px_{mode}_{precision}.png"
        _save(fig, out_dir / name)
        plt.close(fig)
        written.append(name)
    return written


def best_plot(best: dict, out_dir: Path) -> list[str]:
    if not best:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
