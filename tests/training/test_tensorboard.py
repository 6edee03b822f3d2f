"""What TensorBoard shows of a run, read back from the event file as TensorBoard reads it.

TensorBoard draws the newest Custom Scalars layout of a run; within a category it draws the
Multiline charts first, in order, then the Margin charts last-written first
(``gansn.training.tensorboard._as_drawn``).  HParams keeps a run's first experiment record,
sorts the hyperparameters marked as differing first (then by name) and ticks the first five
hyperparameters and the first five metrics.  scripts/tb_screenshots.py shows the same in
Chromium.
"""

from __future__ import annotations

import re

import pytest
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.hparams import plugin_data_pb2

from gansn.config import compose, to_plain
from gansn.training import build_trainer
from gansn.training.tensorboard import (
    CAT_LAYERS,
    CAT_LIPSCHITZ,
    CAT_QUALITY,
    CAT_TRAINING,
    LOG10_LOWER,
    LOG10_UPPER,
)

# a 4-step DCGAN (spectral D) with Lipschitz tracking: conv layers and a dense one
IMAGES = [
    "experiment=quick",
    "steps=4",
    "batch_size=4",
    "grid.n=4",
    "grid.nrow=2",
    "log_every=1",
    "sample_every=2",
    "ckpt_every=0",
    "dataset.n=32",
    "lipschitz_every=2",
    "lipschitz.n_samples=4",
]
# a 4-step ring-of-8 run with evaluations; class_modes declares tags that points never get
TOY = [
    "experiment=toy_ring8",
    "steps=4",
    "batch_size=16",
    "dataset.n=256",
    "grid.n=16",
    "model.options.hidden=8",
    "log_every=1",
    "ckpt_every=0",
    "lipschitz_every=2",
    "lipschitz.n_samples=8",
    "metrics=toy",
    "metrics.list=[mixture_modes,fid,prdc,class_modes]",
    "metrics.eval_every=2",
    "metrics.num_real=64",
    "metrics.num_fake=64",
]


def _run(overrides: list[str], run_dir) -> EventAccumulator:
    build_trainer(to_plain(compose(overrides)), run_dir, overrides=overrides).train()
    return _read(run_dir)


def _read(run_dir) -> EventAccumulator:
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    return acc


def _drawn(acc: EventAccumulator) -> list[tuple[str, list[tuple[str, str, list[str]]]]]:
    """The newest layout as TensorBoard draws it: [(category, [(title, kind, tags)])]."""
    layout = layout_pb2.Layout()
    newest = acc.Tensors("custom_scalars__config__")[-1]
    layout.ParseFromString(newest.tensor_proto.string_val[0])
    out = []
    for cat in layout.category:
        multi = [
            (c.title, "multiline", list(c.multiline.tag)) for c in cat.chart if c.multiline.tag
        ]
        margin = [
            (c.title, "margin", [s for x in c.margin.series for s in (x.value, x.lower, x.upper)])
            for c in cat.chart
            if c.margin.series
        ]
        out.append((cat.title, multi + margin[::-1]))
    return out


def _hparams(acc: EventAccumulator) -> plugin_data_pb2.HParamsPluginData:
    data = plugin_data_pb2.HParamsPluginData()
    data.ParseFromString(acc.SummaryMetadata("_hparams_/experiment").plugin_data.content)
    return data


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    return _run(IMAGES, tmp_path_factory.mktemp("tb") / "images")


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    return _run(TOY, tmp_path_factory.mktemp("tb") / "toy")


@pytest.mark.parametrize("run", ["image_run", "toy_run"])
def test_custom_scalars_lead_with_the_bracket_then_generator_quality(run, request):
    drawn = _drawn(request.getfixturevalue(run))
    assert [c for c, _ in drawn] == [CAT_LIPSCHITZ, CAT_QUALITY, CAT_LAYERS, CAT_TRAINING]
    charts = dict(drawn)
    # the bracket first: a line at the measured lower bound, a band up to the upper bound,
    # both log10 (an upper bound 100x the lower one flattens a linear axis)
    title, kind, tags = charts[CAT_LIPSCHITZ][0]
    assert kind == "margin" and tags == [LOG10_LOWER, LOG10_LOWER, LOG10_UPPER]
    assert "log10" in title
    # the sigma-product apart, saying why it is no bound
    title, kind, tags = charts[CAT_LIPSCHITZ][1]
    assert set(tags) == {"lipschitz/upper_matrix"} and "no bound" in title
    assert len(charts[CAT_LIPSCHITZ]) == 2


def test_generator_quality_names_the_feature_space_and_drops_tags_never_logged(toy_run):
    quality = dict(_drawn(toy_run))[CAT_QUALITY]
    titles = [t for t, _, _ in quality]
    assert titles[:3] == [
        "FID (raw features), lower is better",
        "Recall (raw features), higher is better",
        "Modes, higher is better",
    ]
    # class_modes declares class and stacked tags; points never get them, and the layout
    # TensorBoard draws (the newest) was rewritten after the first evaluation without them
    assert not any("Class" in t or "Stacked" in t for t in titles)
    first = layout_pb2.Layout()
    first.ParseFromString(toy_run.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    assert any("Class" in c.title for cat in first.category for c in cat.chart)
    # a single quantity is a Margin chart without a band: drawn unsmoothed
    assert all(kind == "margin" and len(set(tags)) == 1 for _, kind, tags in quality)


@pytest.mark.parametrize("run", ["image_run", "toy_run"])
def test_every_chart_draws_logged_series(run, request):
    acc = request.getfixturevalue(run)
    scalars = set(acc.Tags()["tensors"])
    for _, charts in _drawn(acc):
        for title, kind, tags in charts:
            if kind == "margin":
                assert set(tags) <= scalars, title
            else:  # regexes: each matches at least one logged tag
                for rx in tags:
                    assert any(re.search(rx, t) for t in scalars), (title, rx)


def test_d_layer_charts_tell_sigma_matrix_from_sigma_operator(image_run, toy_run):
    layers = dict(_drawn(image_run))[CAT_LAYERS]
    # conv layers, in forward order: sigma_matrix as the line, a band up to sigma_operator
    convs = [(t, tags) for t, kind, tags in layers if kind == "margin"]
    assert convs[0] == (
        "conv1_3x3",
        ["sigma/d/conv1_3x3/matrix", "sigma/d/conv1_3x3/matrix", "sigma/d/conv1_3x3/operator"],
    )
    assert [t for t, _ in convs] == [f"conv{i}_{k}" for i, k in zip(range(1, 8), "3434343")] or (
        [int(t[4]) for t, _ in convs] == sorted(int(t[4]) for t, _ in convs)
    )
    # a spectrally normalized dense layer has sigma 1 by construction: no flat chart of it;
    # SN's divisors (raw sigma) of all layers share one chart instead
    assert not any(t.startswith("linear") for t, _ in convs)
    assert any("raw σ" in t for t, _, _ in layers)
    toy_layers = dict(_drawn(toy_run))[CAT_LAYERS]  # an MLP with SN: dense layers only
    assert [kind for _, kind, _ in toy_layers] == ["multiline", "multiline"]


def test_no_constant_charts_and_descriptions_where_a_tag_misleads(image_run, toy_run):
    tags = image_run.Tags()["tensors"]
    for constant in ("lr/g", "lr/d", "lipschitz/bound_valid", "lipschitz/bound_train_mode"):
        assert constant not in tags and f"{constant}/text_summary" in tags
    meta = image_run.SummaryMetadata("lipschitz/upper_matrix")
    assert "not an upper bound" in meta.summary_description.lower()
    raw = image_run.SummaryMetadata("sigma/d/conv1_3x3/raw_sigma").summary_description
    assert "divisor" in raw
    assert toy_run.SummaryMetadata("metrics/fid").display_name == "FID (raw features)"
    assert image_run.SummaryMetadata(LOG10_UPPER).display_name.startswith("log10 Lip(D) ≤")


def test_config_and_model_spec_texts_are_code_blocks(image_run):
    """TensorBoard renders text as Markdown: only lines indented by 4 spaces stay verbatim."""
    for tag in ("config/text_summary", "model_spec/text_summary"):
        (event,) = image_run.Tensors(tag)
        text = event.tensor_proto.string_val[0].decode()
        lines = [line for line in text.splitlines() if line.strip()]
        assert len(lines) > 3 and all(line.startswith("    ") for line in lines), tag


def test_hparams_lead_with_norms_then_fid_and_bracket(toy_run, image_run):
    exp = _hparams(toy_run).experiment
    # TensorBoard's order: marked as differing first, then by name; it ticks five
    shown = sorted(exp.hparam_infos, key=lambda h: (not h.differs, h.name))[:5]
    assert [h.name for h in shown] == ["d_norm", "g_norm", "loss", "lr_d", "lr_g"]
    metrics = [m.name.tag for m in exp.metric_infos]
    assert metrics[:5] == [
        "metrics/fid",
        "lipschitz/lower",
        "lipschitz/upper_operator",
        "metrics/recall",
        "modes/covered",
    ]
    assert not set(metrics) & {"lipschitz/bound_valid", "modes/class_coverage", "lr/g"}
    assert "_hparams_/session_end_info" in toy_run.Tags()["tensors"]
    # without an evaluation the bracket leads
    metrics = [m.name.tag for m in _hparams(image_run).experiment.metric_infos]
    assert metrics[:2] == ["lipschitz/lower", "lipschitz/upper_operator"]


def test_a_run_stopped_by_a_signal_gets_its_hparams_entry(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("steps=4", "lipschitz_every=2", "lipschitz.n_samples=4")
    t = build_trainer(cfg, tmp_path / "run", overrides=ov)
    step = t.train_step

    def stop_after_step_1():  # Ctrl-C during step 1
        out = step()
        if t.step == 1:
            t.stopped_by = "SIGINT"
        return out

    t.train_step = stop_after_step_1
    t.train()
    acc = _read(tmp_path / "run")
    tags = acc.Tags()["tensors"]
    assert "_hparams_/session_start_info" in tags and "_hparams_/session_end_info" not in tags
    metrics = [m.name.tag for m in _hparams(acc).experiment.metric_infos]
    assert metrics[:2] == ["lipschitz/lower", "lipschitz/upper_operator"]
    # resumed to the end: the entry gets its end record
    build_trainer(cfg, tmp_path / "run", overrides=ov).train()
    assert "_hparams_/session_end_info" in _read(tmp_path / "run").Tags()["tensors"]


def test_a_learning_rate_schedule_is_a_curve(tiny_cfg, tmp_path):
    cfg, ov = tiny_cfg("steps=2", "optim.lr_decay=linear")
    build_trainer(cfg, tmp_path / "run", overrides=ov).train()
    tags = _read(tmp_path / "run").Tags()["tensors"]
    assert "lr/g" in tags and "lr/g/text_summary" not in tags


_FULL_DISK = r"""
import errno, os, sys
from gansn.training.tensorboard import RunWriter
from torch.utils.tensorboard import SummaryWriter

quiet = sys.argv[2] == "gansn"
w = RunWriter(sys.argv[1]).w if quiet else SummaryWriter(sys.argv[1])
record_writer = w._get_file_writer().event_writer._async_writer._writer

def full(data):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "events.out.tfevents")

record_writer.write = full
w.add_scalar("loss/d", 1.0, 1)
try:
    w.flush()
except OSError as err:
    print("foreground:", err.strerror)
"""


@pytest.mark.parametrize("writer", ["gansn", "plain"])
def test_a_full_disk_reaches_the_training_thread_without_the_writer_threads_traceback(
    tmp_path, writer
):
    """A failed event write (ENOSPC) is raised in the training thread, which reports it in
    one line; gansn's writer leaves out the thread's traceback that the plain SummaryWriter
    prints (the control: the check can fail)."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path), writer],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "foreground: No space left on device" in out.stdout
    traceback = "Exception in thread" in out.stderr or "Traceback" in out.stderr
    assert traceback == (writer == "plain"), out.stderr
