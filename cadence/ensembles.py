"""Ensemble inference and evaluation: combine members, report each member and the ensemble, pick a subset.

Snapshot ensembles (Huang et al. 2017, "Snapshot Ensembles: Train 1, get M for free") save the weights at the
end of every cycle of a cyclic schedule (:class:`cadence.callbacks.snapshot.SnapshotEnsemble`); this module
turns those files, or any list of models, into one predictor::

    ensemble = Ensemble(sorted(run_dir.glob("snapshots/snapshot-*.pt")), model_factory=make_model)
    report = evaluate_ensemble(ensemble.members, val_loader, test_loader, metrics=("accuracy", "loss"), k=3)
    print(report.to_markdown())

Member outputs are computed once per dataset and cached, so greedy subset selection (Caruana et al. 2004,
"Ensemble Selection from Libraries of Models") costs one forward pass per member, not per candidate subset.
Selection only ever sees the validation data; the test data is scored afterwards.
"""

from __future__ import annotations

import copy
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cadence.errors import ConfigError
from cadence.weights import full_state_dict, is_sharded_module, unwrap_model

__all__ = [
    "COMBINE_MODES",
    "Ensemble",
    "EnsembleReport",
    "SnapshotSaver",
    "clone_model",
    "collect_outputs",
    "combine_outputs",
    "evaluate_ensemble",
    "greedy_select",
    "load_member",
    "snapshot_steps",
    "unwrap_model",
]

COMBINE_MODES = ("mean_prob", "mean_logit", "vote")
METRICS = ("accuracy", "loss", "error")
MemberSpec = nn.Module | str | os.PathLike


def load_member(path: str | os.PathLike, model_factory: Callable[[], nn.Module] | None) -> nn.Module:
    """Build ``model_factory()`` and load the state_dict saved at ``path`` (``weights_only=True``)."""
    path = Path(path)
    if model_factory is None:
        raise ConfigError(f"loading ensemble members from files ({path.name}) needs model_factory=")
    if not path.is_file():
        raise ConfigError(f"ensemble member file not found: {path}")
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state_dict, dict) and "model" in state_dict and isinstance(state_dict["model"], dict):
        state_dict = state_dict["model"]  # a trainer checkpoint rather than a bare snapshot
    model = model_factory()
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise ConfigError(f"{path} does not match the model built by model_factory: {error}") from error
    return model


def snapshot_steps(
    schedule: Callable[[int], float] | None,
    total_steps: int,
    *,
    num_snapshots: int | None = None,
    at_steps: Sequence[int] | None = None,
) -> list[int]:
    """The 0-based steps after whose update a snapshot is taken: the cycle ends of ``schedule``
    (``schedule.cycle_ends(total_steps)``: ``snapshot_cosine``, ``cosine_restarts``, ``cyclic``), or
    ``at_steps`` when given; only the last ``num_snapshots`` of them when given.

    >>> from cadence.schedules import snapshot_cosine
    >>> snapshot_steps(snapshot_cosine(0.1, total_steps=20, num_snapshots=4), 20)
    [4, 9, 14, 19]
    """
    if at_steps is not None:
        steps = sorted(int(step) for step in at_steps)
        source = "at_steps"
    else:
        if schedule is None:
            raise ConfigError(
                "SnapshotEnsemble does not know the Trainer's LR schedule: pass "
                "SnapshotEnsemble(schedule=the_lr_schedule) (the same object as schedules['lr']) or "
                "at_steps=[...]"
            )
        if not callable(getattr(schedule, "cycle_ends", None)):
            raise ConfigError(
                "SnapshotEnsemble needs a cyclic LR schedule with cycle_ends (snapshot_cosine, "
                f"cosine_restarts, cyclic) or at_steps=[...]; the LR schedule is {schedule!r}"
            )
        steps = sorted(int(step) for step in schedule.cycle_ends(total_steps))  # type: ignore[attr-defined]
        source = f"the cycle ends of {schedule!r}"
    beyond = [step for step in steps if step >= total_steps]
    if beyond:
        raise ConfigError(f"SnapshotEnsemble steps {beyond} lie beyond total_steps={total_steps}")
    if num_snapshots is not None:
        if num_snapshots > len(steps):
            raise ConfigError(
                f"SnapshotEnsemble num_snapshots={num_snapshots} but {source} give only "
                f"{len(steps)} snapshot steps {steps} in {total_steps} steps"
            )
        steps = steps[-num_snapshots:]
    if not steps:
        raise ConfigError(f"SnapshotEnsemble: {source} give no snapshot step within {total_steps} steps")
    return steps


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename: no reader sees a partial file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class SnapshotSaver:
    """Save the model after the updates in ``steps`` (see :func:`snapshot_steps`): the plain-loop form of
    :class:`cadence.callbacks.SnapshotEnsemble`, which calls it. In a hand-written loop::

        snapshots = SnapshotSaver("runs/a/snapshots", snapshot_steps(schedule, total_steps))
        for step, (x, y) in enumerate(batches):
            ...; optimizer.step()
            snapshots.save_if_due(model, step)          # writes snapshot-k.pt after the k-th cycle end
        ensemble = snapshots.ensemble(make_model)

    Files are ``directory/snapshot-{k}.pt`` (k = 1..M, the position of the step in ``steps``; a plain
    ``state_dict``, written atomically, loadable by :class:`Ensemble`). ``directory=None`` records the steps
    without writing (a process that does not write files). ``taken`` lists the steps saved; it is the
    :meth:`state_dict`, so a resumed run keeps counting where it left off. A model sharded by FSDP is
    gathered whole onto rank 0 (:func:`cadence.weights.full_state_dict`): call :meth:`save_if_due` on every
    rank, with ``directory=None`` on all but rank 0.
    """

    def __init__(
        self,
        directory: str | os.PathLike | None,
        steps: Sequence[int],
        *,
        save: Callable[[Any, Path], Any] | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.steps = [int(step) for step in steps]
        if len(set(self.steps)) != len(self.steps) or any(step < 0 for step in self.steps):
            raise ConfigError(f"snapshot steps must be distinct steps >= 0, got {list(steps)}")
        self._save = save or _atomic_torch_save
        self.taken: list[int] = []

    def path(self, k: int) -> Path:
        """The file of the ``k``-th snapshot (1-based)."""
        if self.directory is None:
            raise ConfigError("this SnapshotSaver writes no files (directory=None)")
        return self.directory / f"snapshot-{k}.pt"

    @property
    def paths(self) -> list[Path]:
        """The files written so far, in step order."""
        return [self.path(self.steps.index(step) + 1) for step in sorted(self.taken)]

    def save_if_due(self, model: nn.Module, step: int) -> Path | None:
        """Call after update ``step`` (0-based): save ``model`` if ``step`` is a snapshot step not yet taken.
        Returns the file written (``None`` when nothing was due or nothing is written)."""
        if step not in self.steps or step in self.taken:
            return None
        self.taken.append(step)
        model = unwrap_model(model)
        # a sharded (FSDP) model is gathered on rank 0 by every rank, also by those that write nothing
        weights = full_state_dict(model) if is_sharded_module(model) else None
        if self.directory is None:
            return None
        path = self.path(self.steps.index(step) + 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._save(weights if weights is not None else model.state_dict(), path)
        return path

    def ensemble(self, model_factory: Callable[[], nn.Module], **options: Any) -> Ensemble:
        """The snapshots written so far as an :class:`Ensemble` (``options``: ``weights``, ``combine``)."""
        return Ensemble(self.paths, model_factory=model_factory, **options)

    def state_dict(self) -> dict[str, Any]:
        return {"taken": list(self.taken)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.taken = [int(step) for step in state_dict.get("taken", [])]


def combine_outputs(
    logits: Sequence[torch.Tensor],
    weights: Sequence[float] | torch.Tensor | None = None,
    combine: str = "mean_prob",
) -> torch.Tensor:
    """Combine member logits ``(N, K)`` into one ``(N, K)`` output usable like logits.

    - ``mean_prob``: ``log Σ_m w_m softmax(z_m)`` — the log of the averaged probabilities (the snapshot
      ensemble paper's rule). ``cross_entropy`` on it is the ensemble's negative log-likelihood.
    - ``mean_logit``: ``Σ_m w_m z_m`` — averaged logits (a geometric mean of probabilities).
    - ``vote``: ``log`` of the weighted vote share of each class (plurality vote), ties broken by the
      averaged probabilities; classes without a vote get a share of ``1e-6``.

    Weights are normalized to sum to one; ``None`` means equal weights.
    """
    if combine not in COMBINE_MODES:
        raise ConfigError(f"combine must be one of {', '.join(COMBINE_MODES)}, got {combine=}")
    if not logits:
        raise ConfigError("an ensemble needs at least one member")
    stacked = torch.stack([output.float() for output in logits])  # (M, N, K)
    w = _normalized_weights(weights, len(logits), stacked.device).view(-1, 1, 1)
    if combine == "mean_logit":
        return (w * stacked).sum(0)
    probabilities = (w * stacked.softmax(dim=-1)).sum(0)
    if combine == "mean_prob":
        return probabilities.clamp_min(1e-12).log()
    votes = (w * F.one_hot(stacked.argmax(dim=-1), stacked.shape[-1]).float()).sum(0)
    shares = votes + 1e-3 * probabilities / len(logits)  # tie-break below any single vote's weight
    shares = shares.clamp_min(1e-6)
    return (shares / shares.sum(dim=-1, keepdim=True)).log()


def _normalized_weights(weights: Any, count: int, device: torch.device) -> torch.Tensor:
    if weights is None:
        return torch.full((count,), 1.0 / count, device=device)
    tensor = torch.as_tensor(weights, dtype=torch.float32, device=device).flatten()
    if tensor.numel() != count:
        raise ConfigError(f"ensemble weights must have one entry per member ({count}), got {tensor.numel()}")
    if bool((tensor < 0).any()) or float(tensor.sum()) <= 0:
        raise ConfigError(f"ensemble weights must be >= 0 with a positive sum, got {tensor.tolist()}")
    return tensor / tensor.sum()


class Ensemble(nn.Module):
    """Several models behind one ``forward``: ``Ensemble([model_a, model_b], combine="mean_prob")``.

    Args:
        models_or_paths: ``nn.Module`` members and/or paths to saved state_dicts (for example the
            ``snapshots/snapshot-k.pt`` files of a run), loaded with ``weights_only=True`` into fresh models
            from ``model_factory``.
        weights: optional non-negative weight per member (normalized); equal by default.
        combine: ``"mean_prob"`` (default), ``"mean_logit"`` or ``"vote"``; see :func:`combine_outputs`.
        model_factory: a zero-argument callable that builds the architecture, needed for paths.

    ``forward`` returns log-probabilities (``mean_prob``, ``vote``) or logits (``mean_logit``): ``argmax``
    gives the prediction and ``cross_entropy`` the loss in every mode. Members are put in eval mode by
    :meth:`eval` like any submodule; the inference cost is the sum of the members' costs.
    """

    def __init__(
        self,
        models_or_paths: Iterable[MemberSpec],
        *,
        weights: Sequence[float] | None = None,
        combine: str = "mean_prob",
        model_factory: Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__()
        if combine not in COMBINE_MODES:
            raise ConfigError(f"combine must be one of {', '.join(COMBINE_MODES)}, got {combine=}")
        members = []
        for item in models_or_paths:
            if isinstance(item, nn.Module):
                members.append(item)
            elif isinstance(item, (str, os.PathLike)):
                members.append(load_member(item, model_factory))
            else:
                raise ConfigError(f"ensemble members must be nn.Module objects or file paths, got {item!r}")
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.combine = combine
        normalized = _normalized_weights(weights, len(members), torch.device("cpu"))
        self.register_buffer("weights", normalized, persistent=False)

    def member_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's logits for ``x``."""
        return [member(x) for member in self.members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return combine_outputs(self.member_outputs(x), self.weights, self.combine)


# --- evaluation -------------------------------------------------------------------------------------------


def _batches(data: Any) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(data, "inputs") and hasattr(data, "targets"):  # a TensorPair of a whole split
        inputs, targets = data.inputs, data.targets
        return [(inputs[i : i + 1024], targets[i : i + 1024]) for i in range(0, len(inputs), 1024)]
    if isinstance(data, tuple) and len(data) == 2 and all(isinstance(part, torch.Tensor) for part in data):
        inputs, targets = data
        return [(inputs[i : i + 1024], targets[i : i + 1024]) for i in range(0, len(inputs), 1024)]
    return data


@torch.no_grad()
def collect_outputs(
    members: Sequence[nn.Module], data: Any, *, device: torch.device | str | None = None
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Run every member over ``data`` once: (list of ``(N, K)`` logits per member, ``(N,)`` labels).

    ``data`` is an iterable of ``(inputs, targets)`` batches, a ``TensorPair`` or an ``(inputs, targets)``
    tuple of tensors. Soft targets are reduced to their argmax class.
    """
    outputs: list[list[torch.Tensor]] = [[] for _ in members]
    labels: list[torch.Tensor] = []
    modes = [member.training for member in members]
    for member in members:
        member.eval()
    try:
        for x, y in _batches(data):
            if device is not None:
                x = x.to(device)
            for index, member in enumerate(members):
                outputs[index].append(member(x).float().cpu())
            labels.append((y.argmax(dim=-1) if y.is_floating_point() else y).cpu())
    finally:
        for member, mode in zip(members, modes):
            member.train(mode)
    if not labels:
        raise ConfigError("the evaluation data yielded no batches")
    return [torch.cat(parts) for parts in outputs], torch.cat(labels)


def _score(output: torch.Tensor, labels: torch.Tensor, metrics: Sequence[str]) -> dict[str, float]:
    result = {}
    for name in metrics:
        if name == "accuracy":
            result[name] = float((output.argmax(dim=-1) == labels).float().mean())
        elif name == "error":
            result[name] = float((output.argmax(dim=-1) != labels).float().mean())
        elif name == "loss":
            result[name] = float(F.cross_entropy(output, labels))
    return result


def _check_metrics(metrics: Sequence[str]) -> tuple[str, ...]:
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    unknown = [name for name in metrics if name not in METRICS]
    if unknown or not metrics:
        raise ConfigError(f"ensemble metrics must be among {', '.join(METRICS)}, got {metrics!r}")
    return metrics


def _greedy_from_outputs(
    outputs: Sequence[torch.Tensor], labels: torch.Tensor, k: int, combine: str, select_by: str
) -> list[int]:
    if select_by not in ("loss", "accuracy"):
        raise ConfigError(f"select_by must be 'loss' or 'accuracy', got {select_by=}")
    if not 1 <= k <= len(outputs):
        raise ConfigError(f"k must be between 1 and the number of members ({len(outputs)}), got {k=}")
    chosen: list[int] = []
    for _ in range(k):
        best_index, best_key = -1, (math.inf, math.inf)
        for index in range(len(outputs)):
            if index in chosen:
                continue
            combined = combine_outputs([outputs[i] for i in [*chosen, index]], None, combine)
            scores = _score(combined, labels, ("loss", "accuracy"))
            # Lower is better; the other metric breaks ties, then the lower index (earlier snapshot).
            key = (
                (scores["loss"], -scores["accuracy"])
                if select_by == "loss"
                else (-scores["accuracy"], scores["loss"])
            )
            if key < best_key:
                best_index, best_key = index, key
        chosen.append(best_index)
    return chosen


def greedy_select(
    members: Sequence[nn.Module],
    val_data: Any,
    k: int,
    *,
    combine: str = "mean_prob",
    select_by: str = "loss",
    device: torch.device | str | None = None,
) -> list[int]:
    """Greedy forward selection of ``k`` members (without replacement) on validation data only.

    Starting from the empty set, repeatedly add the member whose inclusion gives the best validation
    ``select_by`` (``"loss"``: the ensemble's negative log-likelihood, smoother than accuracy on small
    validation sets; or ``"accuracy"``). Returns member indices in the order chosen.
    """
    outputs, labels = collect_outputs(members, val_data, device=device)
    return _greedy_from_outputs(outputs, labels, k, combine, select_by)


@dataclass
class EnsembleReport:
    """Metrics of every member, of the whole ensemble and of the greedily selected subset."""

    combine: str
    metrics: tuple[str, ...]
    members: list[dict[str, Any]]
    ensemble: dict[str, dict[str, float]]
    selected: list[int] | None = None
    selected_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    select_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "combine": self.combine,
            "metrics": list(self.metrics),
            "members": self.members,
            "ensemble": self.ensemble,
            "selected": self.selected,
            "selected_metrics": self.selected_metrics,
            "select_by": self.select_by,
        }

    def rows(self) -> list[tuple[str, dict[str, dict[str, float]]]]:
        """(label, {split: {metric: value}}) for every table row."""
        rows = [(member["name"], member["scores"]) for member in self.members]
        rows.append((f"ensemble of {len(self.members)} ({self.combine})", self.ensemble))
        if self.selected is not None:
            names = ", ".join(self.members[i]["name"] for i in self.selected)
            rows.append((f"greedy {len(self.selected)} on val: {names}", self.selected_metrics))
        return rows

    def to_markdown(self) -> str:
        splits = [split for split in ("val", "test") if split in self.ensemble]
        header = [f"{split} {metric}" for split in splits for metric in self.metrics]
        lines = ["| model | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
        for label, scores in self.rows():
            cells = [
                _format(scores.get(split, {}).get(metric), metric)
                for split in splits
                for metric in self.metrics
            ]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def _format(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.2f}%" if metric in ("accuracy", "error") else f"{value:.4f}"


def evaluate_ensemble(
    members: Sequence[nn.Module] | Ensemble,
    val_data: Any,
    test_data: Any = None,
    *,
    metrics: Sequence[str] = ("accuracy", "loss"),
    combine: str = "mean_prob",
    weights: Sequence[float] | None = None,
    k: int | None = None,
    select_by: str = "loss",
    names: Sequence[str] | None = None,
    device: torch.device | str | None = None,
) -> EnsembleReport:
    """Score every member and the ensemble on ``val_data`` (and ``test_data``); optionally select ``k``.

    The greedy subset (``k`` given) is chosen from validation outputs alone, *before* the test data is
    touched; the test data is then only scored. ``metrics`` are among ``accuracy``, ``error``, ``loss``
    (cross-entropy of the combined output). ``val_data``/``test_data``: iterables of ``(x, y)`` batches,
    ``TensorPair`` objects or ``(inputs, targets)`` tuples.
    """
    if isinstance(members, Ensemble):
        weights = members.weights.tolist() if weights is None else weights
        combine = members.combine
        members = list(members.members)
    members = list(members)
    metrics = _check_metrics(metrics)
    if not members:
        raise ConfigError("an ensemble needs at least one member")
    names = list(names) if names is not None else [f"member {i + 1}" for i in range(len(members))]
    if len(names) != len(members):
        raise ConfigError(f"names must have one entry per member ({len(members)}), got {len(names)}")

    val_outputs, val_labels = collect_outputs(members, val_data, device=device)
    selected = None
    if k is not None:
        selected = _greedy_from_outputs(val_outputs, val_labels, k, combine, select_by)
    splits = {"val": (val_outputs, val_labels)}
    if test_data is not None:  # touched only now, after selection
        splits["test"] = collect_outputs(members, test_data, device=device)

    member_rows = [{"name": name, "scores": {}} for name in names]
    ensemble: dict[str, dict[str, float]] = {}
    selected_metrics: dict[str, dict[str, float]] = {}
    for split, (outputs, labels) in splits.items():
        for row, output in zip(member_rows, outputs):
            row["scores"][split] = _score(output, labels, metrics)
        ensemble[split] = _score(combine_outputs(outputs, weights, combine), labels, metrics)
        if selected is not None:
            subset = combine_outputs([outputs[i] for i in selected], None, combine)
            selected_metrics[split] = _score(subset, labels, metrics)
    return EnsembleReport(
        combine=combine,
        metrics=metrics,
        members=member_rows,
        ensemble=ensemble,
        selected=selected,
        selected_metrics=selected_metrics,
        select_by=select_by if selected is not None else None,
    )


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy of the plain module inside any wrapper (used as an ensemble member template)."""
    return copy.deepcopy(unwrap_model(model))
