"""The one TensorBoard writer of a run: scalars, sample grids, config text, hparams.

What each tab shows, and why, is docs/tensorboard.md: Custom Scalars leads with D's
Lipschitz bracket on a log10 axis, then generator quality, D's layers and the losses;
Scalars holds every number of metrics.jsonl under the same tags (constant values go to the
Text tab once); HParams has one entry per run, a run stopped by a signal included.  The
tags are fixed by what ``metrics.jsonl`` and the reports read; only the two log10 tags exist
in the event file alone.
"""

from __future__ import annotations

import json
import math
import textwrap
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from google.protobuf.struct_pb2 import Value
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.compat.proto.tensor_pb2 import TensorProto
from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hp_metadata
from tensorboard.plugins.scalar import metadata as scalar_metadata
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import custom_scalars

from gansn.nn.archs import ModelSpec

# flags that are constant over a run: text (written when they change), not curves
TEXT_TAGS = ("lipschitz/bound_valid", "lipschitz/bound_train_mode")
# the learning rates are constant unless a schedule moves them
LR_TAGS = ("lr/g", "lr/d")

# D's Lipschitz bracket on a log10 scale, derived from the two bounds when they are logged:
# an upper bound 100x the lower one leaves the lower line flat at 0 on a linear axis
LOG10_LOWER = "lipschitz/bracket_log10_lower"
LOG10_UPPER = "lipschitz/bracket_log10_upper"
_LOG10_OF = {"lipschitz/lower": LOG10_LOWER, "lipschitz/upper_operator": LOG10_UPPER}

# Custom Scalars category titles. TensorBoard merges the layouts of all runs in a logdir by
# category title, in the first run's order, so they never depend on the run.
CAT_LIPSCHITZ = "Is D's Lipschitz constant under control?"
CAT_QUALITY = "Generator quality"
CAT_LAYERS = "D layers: line = σ_matrix (what SN holds at 1), band up to σ_operator"
CAT_TRAINING = "Training"

# the generator-quality charts and HParams columns come in this order, then the rest
QUALITY_FIRST = (
    "metrics/fid",
    "metrics/recall",
    "modes/class_coverage",
    "modes/covered",
    "metrics/precision",
    "metrics/coverage",
    "modes/kl",
    "modes/class_kl",
)
# HParams: the hyperparameters TensorBoard shows first (it shows five and sorts the ones
# marked as differing first, then by name); these are what a normalization study varies
LEAD_HPARAMS = ("d_norm", "g_norm", "loss", "lr_d", "lr_g")

# (display name, (i) text) of the whole-D Lipschitz tags in the Scalars and HParams tabs
_LIPSCHITZ_DOCS = {
    LOG10_LOWER: (
        "log10 Lip(D) ≥ (measured)",
        "log10 of lipschitz/lower: D's largest input-gradient norm or finite-difference "
        "ratio on real, generated and interpolated samples. Lip(D) is at least this "
        "(0 is 1, 1 is 10, 2 is 100).",
    ),
    LOG10_UPPER: (
        "log10 Lip(D) ≤ (Π operator norms)",
        "log10 of lipschitz/upper_operator: the product of the layers' operator norms and "
        "the other layers' constants. Lip(D) is at most this once power iteration has "
        "converged (0 is 1, 1 is 10, 2 is 100).",
    ),
    "lipschitz/lower": (
        "Lip(D) ≥ (measured)",
        "The largest of the lower bounds (input-gradient norms on real, generated and "
        "interpolated samples; finite-difference ratios): Lip(D) is at least this.",
    ),
    "lipschitz/upper_operator": (
        "Lip(D) ≤ (Π operator norms)",
        "The product of each layer's operator norm (the map it applies, stride and padding "
        "included) and the other layers' constants: an upper bound on Lip(D).",
    ),
    "lipschitz/upper_matrix": (
        "σ-product (what SN assumes, not a bound)",
        "The product of each layer's sigma of its weight reshaped to a matrix: the number "
        "spectral normalization holds at 1 per layer. Not an upper bound for convolutions "
        "(a conv applies its kernel at overlapping positions, so its operator norm can be "
        "larger), so it can sit below the measured lower bound.",
    ),
}
# per-layer tags: sigma/<prefix>/<layer>/<kind> -> description
_SIGMA_DOCS = {
    "matrix": "sigma of the layer's weight reshaped to (out, in*kh*kw): the number spectral "
    "normalization holds at 1.",
    "operator": "Norm of the linear map the layer applies (stride, padding included): its "
    "Lipschitz constant, a factor of lipschitz/upper_operator. A conv's can exceed its "
    "sigma_matrix.",
    "raw_sigma": "Spectral normalization's divisor: sigma of the weight before SN divides by "
    "it (torch's running estimate). It grows when the raw weights grow; that is not SN "
    "failing, the layer's sigma_matrix stays about 1.",
    "gain_worst": "The normalization layer's worst-case gain max|gamma|/sqrt(eps): what it "
    "enters the upper bound with in train mode.",
    "gain_eval": "Eval-mode gain max |gamma|/sqrt(running_var + eps).",
    "gain_batch": "Gain of the layer's Jacobian at its input on the fixed batch: what it "
    "amplifies in practice.",
}


@dataclass(frozen=True)
class DLayer:
    """One weighted layer of D as the Lipschitz tracker names it (``conv1_3x3``)."""

    name: str
    dense: bool  # a linear layer: its operator norm is its matrix norm, one series
    spectral: bool  # spectrally normalized: it logs raw_sigma


@dataclass(frozen=True)
class QualityTag:
    """One generator-quality tag a run's evaluation logs, with its registered label."""

    tag: str
    label: str
    direction: str | None  # "min" / "max": which way is better


@dataclass(frozen=True)
class Plan:
    """What a run logs, known before its first step: the Custom Scalars layout and the
    HParams columns follow from it.  ``quality``: every table tag the configured metrics
    declare (some appear only for some data: the writer charts them all until an evaluation
    shows which ones are logged)."""

    lipschitz: bool = False
    d_layers: tuple[DLayer, ...] = ()
    features: str | None = None  # the evaluation's feature space, None without one
    quality: tuple[QualityTag, ...] = ()
    text_tags: frozenset[str] = field(default_factory=lambda: frozenset(TEXT_TAGS))
    in_space: frozenset[str] = frozenset()  # tags computed in the feature space: named with it

    def label(self, tag: str) -> str:
        """A tag's registered label, with the feature space where the number lives in one."""
        name = next((q.label for q in self.quality if q.tag == tag), tag)
        in_space = tag in self.in_space and self.features
        return f"{name} ({self.features} features)" if in_space else name

    def title(self, q: QualityTag) -> str:
        """A quality chart's title: its :meth:`label` and which way is better."""
        better = {"min": "lower is better", "max": "higher is better"}.get(q.direction or "")
        return f"{self.label(q.tag)}, {better}" if better else self.label(q.tag)

    def metric_columns(self, quality: Sequence[QualityTag]) -> list[tuple[str, str]]:
        """HParams metric columns (tag, display name): FID, the bracket, recall and coverage
        first (TensorBoard ticks the first five), then the other scores and the losses.

        FID's column is "FID" alone: TensorBoard takes one run's column list for the whole
        logdir, and runs may differ in feature space (the ``features`` hyperparameter).
        """
        lip = ("lipschitz/lower", "lipschitz/upper_operator") if self.lipschitz else ()
        cols = {q.tag: q.label for q in quality if q.tag == "metrics/fid"}
        cols |= {tag: _LIPSCHITZ_DOCS[tag][0] for tag in lip}
        for q in quality:
            cols.setdefault(q.tag, q.label)
        if self.lipschitz:
            cols["lipschitz/upper_matrix"] = _LIPSCHITZ_DOCS["lipschitz/upper_matrix"][0]
        return [*cols.items(), *((tag, tag) for tag in ("loss/d", "loss/g", "d/real", "d/fake"))]


def build_plan(D: nn.Module, hooks: Iterable[Any], *, constant_lr: bool) -> Plan:
    """The :class:`Plan` of a run with discriminator ``D`` and these hooks; ``constant_lr``:
    no schedule moves the learning rates, so they are text, not curves."""
    from gansn.lipschitz import layer_names
    from gansn.lipschitz.operators import WEIGHTED
    from gansn.lipschitz.sn import spectral_norm_view
    from gansn.metrics.core import feature_tags
    from gansn.training.hooks import EvalHook, LipschitzHook

    hooks = list(hooks)
    lipschitz = any(isinstance(h, LipschitzHook) for h in hooks)
    layers = tuple(
        DLayer(name, isinstance(m, nn.Linear), _spectral(m, spectral_norm_view))
        for path, name in (layer_names(D).items() if lipschitz else ())
        if isinstance(m := D.get_submodule(path), WEIGHTED)
    )
    evaluator = next((h.evaluator for h in hooks if isinstance(h, EvalHook)), None)
    quality = _quality_tags(evaluator) if evaluator is not None else ()
    text = frozenset(TEXT_TAGS + (LR_TAGS if constant_lr else ()))
    feats = getattr(evaluator, "features", None)
    return Plan(lipschitz, layers, feats, quality, text, frozenset(feature_tags()))


def _spectral(m: nn.Module, view: Any) -> bool:
    try:
        return view(m) is not None
    except Exception:  # torch renamed SN's internals: the tracker logs no raw_sigma then
        return False


def _quality_tags(evaluator: Any) -> tuple[QualityTag, ...]:
    """The table tags of the evaluator's metrics, in :data:`QUALITY_FIRST` order, then the
    evaluator's; labels and directions as the metrics registered them."""
    from gansn.metrics import METRICS

    found: list[QualityTag] = []
    # an evaluator of another kind (a user's callable) declares nothing: no quality charts
    for name, opts in getattr(evaluator, "metrics", ()):
        feats = opts.get("features")
        for tag, info in getattr(METRICS.get(name), "tags", {}).items():
            if not info.table:
                continue
            if feats and feats != getattr(evaluator, "features", None):
                # the Evaluator's suffix for a metric run on another feature space
                tag, label = f"{tag}_{feats}", f"{info.label} ({feats} features)"
            else:
                label = info.label
            if tag not in (q.tag for q in found):
                found.append(QualityTag(tag, label, info.direction))
    rank = {t: i for i, t in enumerate(QUALITY_FIRST)}
    return tuple(sorted(found, key=lambda q: rank.get(q.tag, len(rank))))  # stable: then found


def _margin(line: str, upper: str | None = None) -> list:
    """A Margin chart: a line at ``line`` and a band from it up to ``upper`` (None: one
    quantity, no band; see :meth:`RunWriter.layout_dict`)."""
    return ["Margin", [line, line, upper or line]]


def _as_drawn(charts: dict[str, list]) -> dict[str, list]:
    """``charts`` (in the order they should appear, Multiline before Margin) in the order to
    write them: TensorBoard (2.x) draws a category's Multiline charts first, in order, then
    its Margin charts last-written first."""
    kinds = [spec[0] for spec in charts.values()]
    if "Margin" in kinds and "Multiline" in kinds[kinds.index("Margin") :]:
        raise ValueError(f"Multiline charts must come before Margin charts: {list(charts)}")
    multi = {t: c for t, c in charts.items() if c[0] != "Margin"}
    margins = [(t, c) for t, c in charts.items() if c[0] == "Margin"]
    return {**multi, **dict(reversed(margins))}


def _quiet_writer_thread_oserrors() -> None:
    """Keep a failed TensorBoard write (a full disk) to gansn's one line.

    TensorBoard's writer thread stores the error of a failed write for the training thread
    (which reports it in one line, exit code 74) and re-raises it, so Python's default
    thread hook would print its traceback first.  This hook drops only that ``OSError`` and
    hands everything else to the hook it replaces; installed once."""
    previous = threading.excepthook
    if getattr(previous, "gansn_tensorboard", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        thread = args.thread
        if (
            isinstance(args.exc_value, OSError)
            and type(thread).__name__ == "_AsyncWriterThread"
            and getattr(thread, "exception", None) is args.exc_value
        ):
            return
        previous(args)

    hook.gansn_tensorboard = True  # type: ignore[attr-defined]
    threading.excepthook = hook


class RunWriter:
    """Thin wrapper over ``SummaryWriter`` that knows gansn's tags.

    ``purge_step``: when resuming at step k, events at steps >= k from the interrupted run
    are hidden, so curves do not double back.  ``plan``: what the run logs (layout, columns,
    which tags are text).
    """

    def __init__(
        self, run_dir: str | Path, purge_step: int | None = None, plan: Plan | None = None
    ) -> None:
        _quiet_writer_thread_oserrors()
        self.w = SummaryWriter(str(run_dir), purge_step=purge_step)
        self.plan = plan or Plan()
        self._text: dict[str, float] = {}
        self._described: set[str] = set()
        self._quality = {q.tag for q in self.plan.quality}
        self._logged: set[str] = set()  # the plan's quality tags seen logged so far

    def scalars(self, values: dict[str, Any], step: int) -> None:
        new = False
        for tag, v in values.items():
            if not (isinstance(v, (int, float)) or (torch.is_tensor(v) and v.numel() == 1)):
                continue
            v = float(v)
            if tag in self.plan.text_tags:
                if self._text.get(tag) != v:
                    self._text[tag] = v
                    self.w.add_text(tag, f"{tag} = {v:g} (from step {step})", step)
                continue
            self._scalar(tag, v, step)
            if tag in _LOG10_OF and math.isfinite(v) and v > 0:
                self._scalar(_LOG10_OF[tag], math.log10(v), step)
            if tag in self._quality and tag not in self._logged:
                self._logged.add(tag)
                new = True
        if new:
            # an evaluation has shown which declared tags this data gives: chart only those
            self.layout(step)

    def _scalar(self, tag: str, value: float, step: int) -> None:
        # display name and description go with a tag's first event of this writer (TensorBoard
        # keeps the first metadata it sees per tag)
        name, description = "", ""
        if tag not in self._described:
            self._described.add(tag)
            name, description = self.describe(tag) or ("", "")
        meta = scalar_metadata.create_summary_metadata(display_name=name, description=description)
        tensor = TensorProto(dtype="DT_FLOAT", float_val=[value], tensor_shape=TensorShapeProto())
        summary = Summary(value=[Summary.Value(tag=tag, tensor=tensor, metadata=meta)])
        self.w._get_file_writer().add_summary(summary, step)

    def describe(self, tag: str) -> tuple[str, str] | None:
        """(display name, description) TensorBoard shows for ``tag``, None for the tag alone."""
        if tag in _LIPSCHITZ_DOCS:
            return _LIPSCHITZ_DOCS[tag]
        parts = tag.split("/")
        if len(parts) == 4 and parts[0] == "sigma" and parts[3] in _SIGMA_DOCS:
            return tag, f"{parts[2]}: {_SIGMA_DOCS[parts[3]]}"
        if tag in self.plan.in_space and self.plan.features:
            return self.plan.label(tag), (
                f"{tag}, computed in the {self.plan.features} feature space; numbers from "
                "different feature spaces or sample counts do not compare."
            )
        return None

    def quality(self) -> list[QualityTag]:
        """The quality tags to chart: those logged so far, or all declared before any is."""
        return [q for q in self.plan.quality if not self._logged or q.tag in self._logged]

    def layout(self, step: int = 0, logged: Iterable[str] = ()) -> None:
        """Write the Custom Scalars layout at ``step``; ``logged``: tags an earlier session
        of this run logged (its metrics.jsonl keys).  TensorBoard draws the newest layout,
        so the writer rewrites it once an evaluation shows which quality tags exist."""
        self._logged |= self._quality & set(logged)
        self.w._get_file_writer().add_summary(custom_scalars(self.layout_dict()), step)

    def layout_dict(self) -> dict[str, dict[str, list]]:
        """``{category: {chart title: [kind, tags]}}`` as ``add_custom_scalars`` takes it,
        each category's charts in the order TensorBoard draws them (see :func:`_as_drawn`).

        Two quantities of one run are a line and a band (a Margin chart), never two lines of
        one colour, and a single quantity is a Margin chart without a band, drawn unsmoothed;
        Multiline (regexes) is for many series of one kind: why, docs/tensorboard.md.
        """
        p = self.plan
        layout: dict[str, dict[str, list]] = {}
        if p.lipschitz:
            layout[CAT_LIPSCHITZ] = {
                "Lip(D), log10 axis: line = measured lower bound, band up to the "
                "operator-norm upper bound": _margin(LOG10_LOWER, LOG10_UPPER),
                "σ-product Π σ_matrix (what SN assumes): no bound for convs, so it may "
                "sit below the lower bound": _margin("lipschitz/upper_matrix"),
            }
        # present even without evaluation: merged logdirs then keep this category's place
        layout[CAT_QUALITY] = {p.title(q): _margin(q.tag) for q in self.quality()}
        if p.lipschitz:
            charts: dict[str, list] = {
                "lower-bound probes: max gradient norm on real, fake, interpolated; "
                "finite-difference ratio": [
                    "Multiline",
                    # anchored: TensorBoard searches, so unanchored metrics/fid would also
                    # draw metrics/fid_inf
                    [r"^lipschitz/grad_(real|fake|interp)_max$", r"^lipschitz/fd_ratio$"],
                ],
            }
            if any(d.spectral for d in p.d_layers):
                charts["raw σ of each SN layer (SN's divisor), one line per layer"] = [
                    "Multiline",
                    [r"^sigma/d/.*/raw_sigma$"],
                ]
            for d in p.d_layers:
                matrix, operator = f"sigma/d/{d.name}/matrix", f"sigma/d/{d.name}/operator"
                if not d.dense:
                    charts[d.name] = _margin(matrix, operator)
                elif not d.spectral:
                    charts[f"{d.name} (dense: σ_operator = σ_matrix)"] = _margin(matrix)
                # a spectrally normalized dense layer has sigma 1 by construction: its flat
                # chart would say nothing its raw sigma above does not
            layout[CAT_LAYERS] = charts
        layout[CAT_TRAINING] = {
            "loss/d": _margin("loss/d"),
            "loss/g": _margin("loss/g"),
            "D outputs: line = mean D(fake), band up to mean D(real)": _margin("d/fake", "d/real"),
        }
        return {cat: _as_drawn(charts) for cat, charts in layout.items()}

    def image(self, tag: str, img: torch.Tensor, step: int) -> None:
        self.w.add_image(tag, img, step)

    def config(self, cfg: dict[str, Any], spec: ModelSpec) -> None:
        text = json.dumps(cfg, indent=2, default=str)
        for tag, body in (("config", text), ("model_spec", json.dumps(spec.to_dict(), indent=2))):
            self.w.add_text(tag, textwrap.indent(body, "    "), 0)  # Markdown: a code block

    def hparams(self, cfg: dict[str, Any], spec: ModelSpec, *, finished: bool = True) -> None:
        """The run's HParams entry: the knobs a normalization study varies -> its metrics
        (scalar tags: the tab shows their latest values).  A run stopped by a signal
        (``finished=False``) gets one too, without an end record (the resumed run's end adds
        it).  TensorBoard keeps a run's first entry, so the columns are the plan's, not
        whatever a stop before the first evaluation happens to have."""
        opt = cfg["optim"]
        # betas is an optimizer's own keyword with no config default (SGD has none): 0 then
        betas = opt["d"].get("betas", [0, 0])
        hp: dict[str, Any] = {
            "d_norm": spec.d_norm["name"],
            "g_norm": spec.g_norm["name"],
            "loss": cfg["loss"]["name"],
            "lr_d": float(opt["d"]["lr"]),
            "lr_g": float(opt["g"]["lr"]),
            "arch": spec.arch,
            "dataset": cfg["dataset"]["name"],
            "beta1": float(betas[0]),
            "beta2": float(betas[1]),
            "n_dis": int(cfg["n_dis"]),
            "seed": int(cfg["seed"]),
            "setting": str(cfg["setting"]),
            "features": str(self.plan.features),  # the feature space of FID and the rest
        }
        metrics = [
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=name)
            for tag, name in self.plan.metric_columns(self.quality())
        ]
        experiment = api_pb2.Experiment(
            hparam_infos=[_hparam_info(k, v) for k, v in hp.items()], metric_infos=metrics
        )
        self._hparams_record(hp_metadata.EXPERIMENT_TAG, experiment=experiment)
        values = {
            k: Value(string_value=v) if isinstance(v, str) else Value(number_value=v)
            for k, v in hp.items()
        }
        start = plugin_data_pb2.SessionStartInfo(hparams=values, start_time_secs=time.time())
        self._hparams_record(hp_metadata.SESSION_START_INFO_TAG, session_start_info=start)
        if finished:
            end = plugin_data_pb2.SessionEndInfo(
                status=api_pb2.STATUS_SUCCESS, end_time_secs=time.time()
            )
            self._hparams_record(hp_metadata.SESSION_END_INFO_TAG, session_end_info=end)
        self.w.flush()

    def _hparams_record(self, tag: str, **data: Any) -> None:
        content = plugin_data_pb2.HParamsPluginData(version=hp_metadata.PLUGIN_DATA_VERSION, **data)
        plugin = SummaryMetadata.PluginData(
            plugin_name=hp_metadata.PLUGIN_NAME, content=content.SerializeToString()
        )
        # with an empty tensor, as TensorBoard's own hparams summaries (readers that list
        # tensors, not only metadata, then see the record)
        null = TensorProto.FromString(hp_metadata.NULL_TENSOR.SerializeToString())
        value = Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin), tensor=null)
        self.w._get_file_writer().add_summary(Summary(value=[value]))

    def close(self) -> None:
        self.w.close()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DIFFERS = "differs" in api_pb2.HParamInfo.DESCRIPTOR.fields_by_name


def _hparam_info(name: str, value: Any) -> api_pb2.HParamInfo:
    kind = api_pb2.DATA_TYPE_STRING if isinstance(value, str) else api_pb2.DATA_TYPE_FLOAT64
    info = api_pb2.HParamInfo(name=name, type=kind)
    if _DIFFERS and name in LEAD_HPARAMS:
        # TensorBoard (>= 2.15) sorts hyperparameters marked as differing first, then by
        # name, and ticks the first five; older versions keep this list's order
        info.differs = True
    return info


class Silent:
    """A :class:`RunWriter` that writes nothing: what ranks other than 0 log to."""

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None
