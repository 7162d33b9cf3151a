"""Clip- and video-level metrics.

Video-level accuracy (the paper's number) averages the softmax scores of every clip of a video
before taking the top-k; clip accuracy scores each clip on its own. Both are reported, named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class Accumulator:
    """Sums over clips, per video: works across batches and (summed) across DDP ranks."""

    n_videos: int
    n_classes: int
    loss_sum: float = 0.0
    clip_correct: float = 0.0
    n_clips: float = 0.0
    score_sum: torch.Tensor = field(init=False)
    clip_count: torch.Tensor = field(init=False)

    def __post_init__(self):
        self.score_sum = torch.zeros(self.n_videos, self.n_classes, dtype=torch.float64)
        self.clip_count = torch.zeros(self.n_videos, dtype=torch.float64)

    def add(self, logits: torch.Tensor, labels: torch.Tensor, videos: torch.Tensor) -> None:
        logits = logits.detach().float().cpu()
        labels, videos = labels.cpu(), videos.cpu()
        probs = logits.softmax(1).double()
        self.score_sum.index_add_(0, videos, probs)
        self.clip_count.index_add_(0, videos, torch.ones(len(videos), dtype=torch.float64))
        labelled = labels >= 0
        if labelled.any():
            self.loss_sum += F.cross_entropy(
                logits[labelled], labels[labelled], reduction="sum"
            ).item()
            self.clip_correct += (logits[labelled].argmax(1) == labels[labelled]).sum().item()
            self.n_clips += labelled.sum().item()

    def all_reduce(self) -> None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        scalars = torch.tensor(
            [self.loss_sum, self.clip_correct, self.n_clips], dtype=torch.float64
        )
        for t in (scalars, self.score_sum, self.clip_count):
            dist.all_reduce(t)
        self.loss_sum, self.clip_correct, self.n_clips = scalars.tolist()

    @property
    def video_scores(self) -> torch.Tensor:
        """Mean softmax scores per video [n_videos, n_classes] (NaN rows: videos never seen)."""
        return self.score_sum / self.clip_count.unsqueeze(1)


@dataclass
class Metrics:
    loss: float
    clip_top1: float
    video_top1: float
    video_top5: float
    mean_class_accuracy: float
    n_videos: int
    n_clips: int
    per_class: list[dict]
    confusion: list[list[int]]

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("per_class", "confusion")}


def compute_metrics(acc: Accumulator, labels: torch.Tensor, class_names: list[str]) -> Metrics:
    """Video top-1/top-5, clip top-1, mean class accuracy, per-class table, confusion matrix."""
    seen = (acc.clip_count > 0) & (labels >= 0)
    scores, truth = acc.video_scores[seen], labels[seen]
    n = int(seen.sum())
    k = min(5, acc.n_classes)
    top = scores.topk(k, 1).indices if n else torch.zeros(0, k, dtype=torch.long)
    top1 = (top[:, 0] == truth).double().mean().item() if n else float("nan")
    top5 = (top == truth[:, None]).any(1).double().mean().item() if n else float("nan")
    confusion = torch.zeros(acc.n_classes, acc.n_classes, dtype=torch.long)
    if n:
        confusion.index_put_((truth, top[:, 0]), torch.ones(n, dtype=torch.long), accumulate=True)
    per_class, class_accs = [], []
    for c, name in enumerate(class_names):
        total = int(confusion[c].sum())
        correct = int(confusion[c, c])
        accuracy = correct / total if total else float("nan")
        if total:
            class_accs.append(accuracy)
        per_class.append({"class": name, "videos": total, "correct": correct, "accuracy": accuracy})
    return Metrics(
        loss=acc.loss_sum / acc.n_clips if acc.n_clips else float("nan"),
        clip_top1=acc.clip_correct / acc.n_clips if acc.n_clips else float("nan"),
        video_top1=top1,
        video_top5=top5,
        mean_class_accuracy=sum(class_accs) / len(class_accs) if class_accs else float("nan"),
        n_videos=n,
        n_clips=int(acc.n_clips),
        per_class=per_class,
        confusion=confusion.tolist(),
    )


def top_k(scores: torch.Tensor, class_names: list[str], k: int) -> list[dict]:
    k = scores.numel() if k <= 0 else min(k, scores.numel())
    values, indices = scores.topk(k)
    return [
        {"label": class_names[int(i)], "score": float(v)}
        for v, i in zip(values, indices, strict=True)
    ]
