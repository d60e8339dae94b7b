"""PNG images of the training curves and the evaluation plots (DVC's HTML plots load Vega from a
CDN and stay blank offline; these render anywhere)."""
from __future__ import annotations

from pathlib import Path

from pipeline.storage.files import atomic_path


def plot_curves(history: list[dict], path: str | Path) -> None:
    """Training losses and dev scores per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key in ("loss", "loss_topic", "loss_ner"):
        ax1.plot(epochs, [h[key] for h in history], marker="o", label=key)
    ax1.set(title="training loss", xlabel="epoch")
    ax1.legend()
    for key in ("dev_topic_macro_f1", "dev_ner_f1", "dev_score"):
        values = [h.get(key) for h in history]
        if any(v is not None for v in values):
            ax2.plot(epochs, [v if v is not None else float("nan") for v in values], marker="o", label=key)
    ax2.set(title="dev scores", xlabel="epoch", ylim=(0, 1))
    ax2.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_images(confusion: list[dict], topics: list[str], per_type: list[dict], out_dir: Path) -> None:
    """The test topic confusion matrix and the NER F1 per type."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    grid = [[sum(1 for c in confusion if c["actual"] == a and c["predicted"] == b) for b in topics] for a in topics]
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(topics)), topics, rotation=30)
    ax.set_yticks(range(len(topics)), topics)
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center")
    ax.set(xlabel="predicted", ylabel="actual", title="topic confusion (test)")
    fig.tight_layout()
    with atomic_path(out_dir / "topic_confusion.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([r["type"] for r in per_type], [r["f1"] for r in per_type], color="tab:orange")
    ax.set(ylim=(0, 1), ylabel="exact-span F1", title="NER F1 per type (test)")
    fig.tight_layout()
    with atomic_path(out_dir / "ner_f1.png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
