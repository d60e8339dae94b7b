"""PNG images of the training curves and the evaluation plots, made to be read at a glance (DVC's
HTML plots load Vega from a CDN and stay blank offline; these render anywhere)."""
from __future__ import annotations

from pathlib import Path

from pipeline.storage.files import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    _pyplot().close(fig)


def plot_curves(history: list[dict], path: str | Path) -> None:
    """Per epoch: the training losses (and the dev loss where it was the selection metric) and both
    tasks' dev scores, with the kept (best) epoch marked; whole-number epoch ticks."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    scored = [h for h in history if h.get("dev_score") is not None]
    best = max(scored, key=lambda h: h["dev_score"])["epoch"] if scored else None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("loss", "train loss (weighted sum)"), ("loss_topic", "train topic loss"),
                       ("loss_ner", "train NER loss"), ("dev_loss", "dev loss")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax1.plot(epochs, [v if v is not None else float("nan") for v in values], marker="o", label=label)
    ax1.set(title="losses", xlabel="epoch", ylabel="cross-entropy")
    for key, label in (("dev_topic_macro_f1", "dev topic macro-F1"), ("dev_ner_f1", "dev NER F1"),
                       ("dev_score", "dev score (selects the epoch)")):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax2.plot(epochs, [v if v is not None else float("nan") for v in values], marker="o", label=label)
    ax2.set(title="dev scores", xlabel="epoch", ylim=(0, 1.02))
    for ax in (ax1, ax2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", label=f"kept: epoch {best}")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, Path(path))


def plot_confusion(counts, topics: list[str], path: Path) -> None:
    """Test topic confusion: `counts[actual][predicted]`, with row-normalised rates (recall per
    class) in each cell, text coloured to contrast with its cell (scikit-learn's
    ConfusionMatrixDisplay)."""
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    counts = np.asarray(counts, dtype=int).reshape(len(topics), len(topics))
    display = ConfusionMatrixDisplay(counts, display_labels=topics)
    display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=30)
    totals = counts.sum(axis=1)
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            rate = f"\n{n / totals[i]:.0%}" if totals[i] else ""
            display.text_[i, j].set_text(f"{n}{rate}")
    ax.set(title=f"topic confusion (test, n={counts.sum()}; % of each actual row)")
    fig.tight_layout()
    _save(fig, path)


def plot_ner_per_type(per_type: list[dict], path: Path) -> None:
    """Test NER precision, recall and F1 per entity type, each bar labelled with its value, the
    type with its support (gold mentions)."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 1.6 + 0.9 * max(1, len(per_type))))
    y = np.arange(len(per_type))
    for k, (key, colour) in enumerate((("precision", "tab:blue"), ("recall", "tab:green"), ("f1", "tab:orange"))):
        values = [r[key] or 0.0 for r in per_type]
        bars = ax.barh(y + (k - 1) * 0.27, values, height=0.26, color=colour, label=key)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=2, fontsize=8)
    ax.set_yticks(y, [f"{r['type']} (n={r['support']})" for r in per_type])
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.12), xlabel="exact-span score", title="NER per type (test)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    _save(fig, path)


def plot_images(confusion, topics: list[str], per_type: list[dict], out_dir: Path) -> None:
    """The test topic confusion matrix (counts[actual][predicted]) and the NER scores per type
    (per_type: type, precision, recall, f1, support)."""
    plot_confusion(confusion, topics, out_dir / "topic_confusion.png")
    plot_ner_per_type(per_type, out_dir / "ner_f1.png")
