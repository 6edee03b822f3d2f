"""Several seeds' MLPs as one batched computation: the arithmetic of multi-seed training.

S trainers built as ordinary single-seed runs hold S copies of the same architecture.
:class:`StackedNet` stacks their layers' parameters along a new leading seed dimension and
computes all S forward passes at once: linear layers as one ``baddbmm``, batch norm as one
``batch_norm`` call in which every seed's features are channels of their own (batch norm
never mixes channels, so each seed keeps its own batch statistics and running statistics),
ReLU and maxout elementwise.  :class:`StackedStep` adds the losses and the optimizers: the
sum of the S per-seed losses has, for each seed's parameters, exactly that seed's gradient,
and Adam is elementwise, so one Adam over the stacked tensors is S independent Adams.

Nothing here knows about run dirs; :mod:`gansn.training.multiseed` keeps each seed's run.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from gansn.errors import ConfigError
from gansn.losses import build_loss
from gansn.nn.layers import Maxout
from gansn.schema import OPTIMIZER, complete
from gansn.training.build import build_optimizer

# optimizers whose update is elementwise given its hyperparameters: on stacked tensors
# they are one independent optimizer per seed (a per-tensor norm, as LAMB's, would not be)
ELEMENTWISE_OPTIMIZERS = ("torch.optim.Adam", "torch.optim.AdamW")


def check_supported(cfg: dict[str, Any]) -> None:
    """Raise a one-line ``ConfigError`` for a config multi-seed training does not run.

    Supported: ``model=mlp`` with batch norm or no norm, ``update=simultaneous`` with
    ``n_dis=1``, Adam/AdamW, no EMA, no AMP, no compile, on the CPU in one process, and a
    loss without a gradient penalty: PacGAN's MLP pair and its relatives.
    """
    cfg = complete(cfg)
    problems = []
    if cfg["model"]["name"] != "mlp":
        problems.append(f"model={cfg['model']['name']} (only model=mlp)")
    if cfg["update"] != "simultaneous":
        problems.append(f"update={cfg['update']} (only update=simultaneous)")
    if int(cfg["n_dis"]) != 1:
        problems.append(f"n_dis={cfg['n_dis']} (only n_dis=1)")
    if str(cfg["amp"]) != "off":
        problems.append(f"amp={cfg['amp']} (only amp=off)")
    if cfg["compile"]:
        problems.append("compile=true")
    if cfg["ema"]["enabled"]:
        problems.append("ema.enabled=true")
    if str(cfg["device"]) not in ("auto", "cpu"):
        problems.append(f"device={cfg['device']} (only the CPU)")
    # the built loss says: gp_weight has no config default (only some losses take one)
    if getattr(build_loss(cfg["loss"]), "gp_weight", 0):
        problems.append("a gradient penalty (loss.gp_weight)")
    if cfg["g_batch_size"] not in (None, cfg["batch_size"]):
        problems.append("g_batch_size (simultaneous updates use batch_size)")
    for side in ("g", "d"):
        target = str(cfg["optim"][side]["_target_"])
        if target not in ELEMENTWISE_OPTIMIZERS:
            problems.append(f"optim.{side}={target} (only {', '.join(ELEMENTWISE_OPTIMIZERS)})")
    if problems:
        raise ConfigError(
            "multi-seed training does not support " + "; ".join(problems) + "; train these "
            "seeds one run each with gansn-train"
        )


def generator_from_global() -> torch.Generator:
    """A CPU generator in the global torch RNG's current state: it draws what the global
    RNG would (``torch.randn(n, d, generator=g)`` equals ``torch.randn(n, d)``)."""
    g = torch.Generator()
    g.set_state(torch.get_rng_state())
    return g


class _Op:
    """One layer of a stacked net: ``(S, f_in, B) -> (S, f_out, B)``.

    Feature-major: a linear layer is then ``W @ x`` with every seed's weight as stored, and
    batch norm's channels are ``S * f`` rows of ``B`` samples, so neither copies a transpose.
    """

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def params(self) -> list[torch.Tensor]:
        return []

    def sources(self, s: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(stacked slice, seed s's own tensor)`` pairs: parameters and buffers."""
        return []


class _Linear(_Op):
    def __init__(self, layers: Sequence[nn.Linear]) -> None:
        self.layers = layers
        self.weight = _stack([m.weight for m in layers])  # (S, out, in)
        self.bias = _stack([m.bias for m in layers]) if layers[0].bias is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.bmm(self.weight, x)
        return torch.baddbmm(self.bias.unsqueeze(2), self.weight, x)

    def params(self) -> list[torch.Tensor]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])

    def sources(self, s: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        m = self.layers[s]
        pairs = [(self.weight[s], m.weight)]
        if self.bias is not None:
            pairs.append((self.bias[s], m.bias))
        return pairs


class _BatchNorm(_Op):
    """Training-mode batch norm with per-seed statistics: the S seeds' ``C`` features are
    the ``S * C`` channels of one ``F.batch_norm`` call, the kernel ``nn.BatchNorm1d``
    runs for one seed."""

    def __init__(self, layers: Sequence[nn.BatchNorm1d]) -> None:
        self.layers = layers
        m = layers[0]
        self.momentum, self.eps = m.momentum, m.eps
        self.weight = _stack([m.weight for m in layers]) if m.affine else None
        self.bias = _stack([m.bias for m in layers]) if m.affine else None
        self.running_mean = _stack([m.running_mean for m in layers], grad=False)
        self.running_var = _stack([m.running_var for m in layers], grad=False)
        self.num_batches_tracked = _stack([m.num_batches_tracked for m in layers], grad=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        S, C, B = x.shape
        self.num_batches_tracked.add_(1)
        # as nn.BatchNorm: momentum=None is the cumulative average over the batches seen
        factor = self.momentum
        if factor is None:
            factor = 1.0 / float(self.num_batches_tracked[0])
        # (1, S * C, B): statistics per channel over the B samples, as BatchNorm1d's over
        # its batch of (B, C)
        y = F.batch_norm(
            x.view(1, S * C, B),
            self.running_mean.view(-1),
            self.running_var.view(-1),
            None if self.weight is None else self.weight.reshape(-1),
            None if self.bias is None else self.bias.reshape(-1),
            training=True,
            momentum=factor,
            eps=self.eps,
        )
        return y.view(S, C, B)

    def params(self) -> list[torch.Tensor]:
        return [] if self.weight is None else [self.weight, self.bias]

    def sources(self, s: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        m = self.layers[s]
        pairs = [
            (self.running_mean[s], m.running_mean),
            (self.running_var[s], m.running_var),
            (self.num_batches_tracked[s], m.num_batches_tracked),
        ]
        if self.weight is not None:
            pairs += [(self.weight[s], m.weight), (self.bias[s], m.bias)]
        return pairs


class _Amax(torch.autograd.Function):
    """``x.amax(dim)`` with amax's gradient (split evenly among tied maxima), computed
    without counting the ties where there are none.

    torch's backward divides by ``(x == max).sum(dim)`` always; over the middle dimension
    of a feature-major ``(S, H, pieces, B)`` tensor that count (a strided reduction of a
    bool tensor, converted to int64 first) cost ~30 % of a stacked step.  Without ties the
    count is 1 and the gradient is the incoming one where ``x`` is the max, 0 elsewhere.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int) -> torch.Tensor:
        y = x.amax(dim)
        ctx.save_for_backward(x, y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, y = ctx.saved_tensors
        mask = x == y.unsqueeze(ctx.dim)
        g = grad.unsqueeze(ctx.dim)
        if int(torch.count_nonzero(mask)) != y.numel():  # ties: amax's even split
            g = g / mask.sum(ctx.dim, keepdim=True)
        return torch.where(mask, g, 0.0), None


class _Elementwise(_Op):
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _stack(tensors: Sequence[torch.Tensor], grad: bool = True) -> torch.Tensor:
    out = torch.stack([t.detach() for t in tensors]).contiguous()
    return out.requires_grad_(grad and out.is_floating_point())


def _op(layers: Sequence[nn.Module], where: str) -> _Op | None:
    first = layers[0]
    # first: a parametrized module's class is made per instance (ParametrizedLinear)
    if parametrize.is_parametrized(first):
        raise ConfigError(
            f"{where}: a reparametrized layer ({type(first).__name__} with "
            f"{', '.join(first.parametrizations)}) cannot be stacked; multi-seed training "
            "supports MLPs with batch norm or no norm"
        )
    kind = type(first)
    if any(type(m) is not kind for m in layers):
        raise ConfigError(f"{where}: the seeds' models differ in layer types")
    if kind is nn.Linear:
        return _Linear(layers)
    if kind is nn.BatchNorm1d and first.track_running_stats:
        return _BatchNorm(layers)
    if kind is nn.ReLU:
        return _Elementwise(F.relu)
    if kind is nn.LeakyReLU:
        slope = first.negative_slope
        return _Elementwise(lambda x: F.leaky_relu(x, slope))
    if kind is Maxout:
        pieces = first.pieces
        return _Elementwise(lambda x: _Amax.apply(x.unflatten(1, (-1, pieces)), 2))
    if kind is nn.Identity:
        return None
    raise ConfigError(
        f"{where}: layer {kind.__name__} cannot be stacked; multi-seed training supports "
        "Linear, BatchNorm1d, ReLU, LeakyReLU and Maxout layers"
    )


class StackedNet:
    """S copies of one ``nn.Sequential``-based G or D (``module.net``) as one computation.

    ``(S, B, f_in) -> (S, B, f_out)`` (feature-major inside); the stacked tensors are new
    leaves (parameters) and buffers, independent of the S modules until :meth:`write_back`
    copies them there.
    """

    def __init__(self, modules: Sequence[nn.Module], who: str) -> None:
        nets = [getattr(m, "net", None) for m in modules]
        if any(not isinstance(n, nn.Sequential) for n in nets):
            raise ConfigError(f"{who} is not a sequential network; it cannot be stacked")
        if len({len(n) for n in nets}) != 1:
            raise ConfigError(f"{who}: the seeds' models differ in depth")
        self.ops: list[_Op] = []
        for i in range(len(nets[0])):
            op = _op([n[i] for n in nets], f"{who}.net.{i}")
            if op is not None:
                self.ops.append(op)
        own = [list(m.parameters()) for m in modules]
        stacked = self.params()
        if len(stacked) != len(own[0]):
            raise ConfigError(f"{who} has parameters outside its layers; it cannot be stacked")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        for op in self.ops:
            x = op(x)
        return x.transpose(1, 2)

    def params(self) -> list[torch.Tensor]:
        return [p for op in self.ops for p in op.params()]

    def pairs(self, s: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Seed ``s``'s ``(stacked slice, own tensor)`` pairs."""
        return [pair for op in self.ops for pair in op.sources(s)]

    @torch.no_grad()
    def write_back(self, s: int) -> None:
        """Copy seed ``s``'s parameters and buffers into its own module."""
        for stacked, own in self.pairs(s):
            own.copy_(stacked)

    @torch.no_grad()
    def read_from(self, s: int) -> None:
        """Copy seed ``s``'s own module into the stacked tensors (after a hook changed it)."""
        for stacked, own in self.pairs(s):
            stacked.copy_(own)


def stacked_optimizer(
    opt_cfg: dict[str, Any], params: list[torch.Tensor], build: Any
) -> torch.optim.Optimizer:
    """The optimizer of ``opt_cfg`` over stacked parameters; refused unless elementwise."""
    target = str(complete(opt_cfg, OPTIMIZER)["_target_"])
    if target not in ELEMENTWISE_OPTIMIZERS:
        raise ConfigError(
            f"optimizer {target}: multi-seed training supports {', '.join(ELEMENTWISE_OPTIMIZERS)}"
            " (elementwise updates, so one optimizer over stacked seeds is one per seed)"
        )
    return build(opt_cfg, params)


def gather_optimizer_state(
    stacked: torch.optim.Optimizer,
    stacked_params: list[torch.Tensor],
    own: Sequence[torch.optim.Optimizer],
    own_params: Sequence[list[torch.Tensor]],
) -> None:
    """Load the S seeds' optimizer states (after a resume) into the stacked optimizer."""
    for j, p in enumerate(stacked_params):
        states = [opt.state.get(params[j]) for opt, params in zip(own, own_params)]
        if all(not st for st in states):
            continue
        if any(not st for st in states):
            raise ConfigError("the seeds' optimizers are at different steps; resume them apart")
        steps = {float(st["step"]) for st in states}
        if len(steps) != 1:
            raise ConfigError("the seeds' optimizers are at different steps; resume them apart")
        merged: dict[str, Any] = {}
        for key, value in states[0].items():
            if key == "step":
                merged[key] = value.clone() if torch.is_tensor(value) else value
            else:
                merged[key] = torch.stack([st[key] for st in states]).contiguous()
        stacked.state[p] = merged


@torch.no_grad()
def scatter_optimizer_state(
    stacked: torch.optim.Optimizer,
    stacked_params: list[torch.Tensor],
    own: torch.optim.Optimizer,
    params: list[torch.Tensor],
    s: int,
) -> None:
    """Write seed ``s``'s slice of the stacked optimizer's state into its own optimizer."""
    for j, p in enumerate(stacked_params):
        st = stacked.state.get(p)
        if not st:
            continue
        own.state[params[j]] = {
            key: (value.clone() if key == "step" else value[s].clone())
            if torch.is_tensor(value)
            else value
            for key, value in st.items()
        }


class StackedStep:
    """One simultaneous G/D update of S seeds at once (the ``update=simultaneous`` step of
    :meth:`gansn.training.Trainer.simultaneous_step`, seed by seed the same arithmetic).

    ``trainers``: S single-seed trainers, built as their runs would be; their data streams
    are read in place, and ``generators[s]`` replaces seed s's global torch RNG for the
    training latents (its state is the one that trainer's run would have).  Their modules
    and optimizers are read once here; :meth:`write_back` brings them up to date.
    """

    def __init__(self, trainers: Sequence[Any], generators: Sequence[torch.Generator]) -> None:
        self.trainers, self.generators = list(trainers), list(generators)
        first = self.trainers[0]
        for t in self.trainers:
            check_supported(t.cfg)
            if t.device.type != "cpu" or t.rank.world_size != 1:
                raise ConfigError(
                    "multi-seed training runs on the CPU in one process (not on "
                    f"{t.device}, not under torchrun)"
                )
        if len({t.step for t in self.trainers}) != 1:
            raise ConfigError(
                "the seeds' runs are at different steps ("
                + ", ".join(f"{t.run_dir}: {t.step}" for t in self.trainers)
                + "); resume them apart"
            )
        self.S, self.batch_size, self.z_dim = len(trainers), first.batch_size, first.spec.z_dim
        self.loss = first.loss
        self.G = StackedNet([t.G for t in trainers], "G")
        self.D = StackedNet([t.D for t in trainers], "D")
        self.g_params, self.d_params = self.G.params(), self.D.params()
        optim = first.cfg["optim"]
        self.opt_g = stacked_optimizer(optim["g"], self.g_params, build_optimizer)
        self.opt_d = stacked_optimizer(optim["d"], self.d_params, build_optimizer)
        for opt, params, own in (
            (self.opt_g, self.g_params, [(t.opt_g, t._g_params) for t in trainers]),
            (self.opt_d, self.d_params, [(t.opt_d, t._d_params) for t in trainers]),
        ):
            gather_optimizer_state(opt, params, [o for o, _ in own], [p for _, p in own])
        self._d_loss = torch.func.vmap(self.loss.d_loss)
        self._g_loss = torch.func.vmap(self.loss.g_loss)

    def step(self) -> list[dict[str, torch.Tensor]]:
        """One update of every seed, with what ``Trainer.train_step`` does around it
        (schedulers, step count); returns each seed's ``simultaneous_step`` dict."""
        lead = self.trainers[0]
        for opt, own in ((self.opt_g, lead.opt_g), (self.opt_d, lead.opt_d)):
            # one learning rate for all: every seed's scheduler is at the same step
            opt.param_groups[0]["lr"] = own.param_groups[0]["lr"]
        real = torch.stack([t._real() for t in self.trainers])  # (S, B, *shape)
        z = torch.stack(
            [torch.randn(self.batch_size, self.z_dim, generator=g) for g in self.generators]
        )
        S, B = self.S, self.batch_size
        fake = self.G(z)
        d_real, d_fake = self.D(real).view(S, B), self.D(fake).view(S, B)
        d_loss = self._d_loss(d_real, d_fake)  # (S,)
        g_loss = self._g_loss(d_fake)
        self.opt_d.zero_grad(set_to_none=True)
        self.opt_g.zero_grad(set_to_none=True)
        # a sum of independent per-seed losses: each seed's slice of the gradient is its own
        # (inputs= as in the single-seed step: D's loss stops at D, G's at G)
        d_loss.sum().backward(inputs=self.d_params, retain_graph=True)
        g_loss.sum().backward(inputs=self.g_params)
        self.opt_d.step()
        self.opt_g.step()
        values = torch.stack([d_loss, d_real.mean(1), d_fake.mean(1), g_loss], dim=1).detach()
        with warnings.catch_warnings():
            # the seeds' own optimizers never step (this one does their updates), so torch's
            # "scheduler stepped before its optimizer" warning does not apply
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step")
            for t in self.trainers:
                t.sched_g.step()
                t.sched_d.step()
                t.step += 1
        keys = ("loss/d", "d/real", "d/fake", "loss/g")
        return [dict(zip(keys, row)) for row in values.unbind(0)]

    def write_back(self, s: int) -> None:
        """Seed ``s``'s models and optimizer states into its own trainer."""
        t = self.trainers[s]
        self.G.write_back(s)
        self.D.write_back(s)
        scatter_optimizer_state(self.opt_g, self.g_params, t.opt_g, t._g_params, s)
        scatter_optimizer_state(self.opt_d, self.d_params, t.opt_d, t._d_params, s)

    def read_from(self, s: int) -> None:
        """Seed ``s``'s own modules' parameters and buffers into the stacked ones."""
        self.G.read_from(s)
        self.D.read_from(s)
