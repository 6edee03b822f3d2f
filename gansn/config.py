"""Where the configs live, and composing them without a Hydra app (tests, resume, notebooks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gansn


def config_dir() -> Path:
    """The ``conf/`` directory: inside the installed package, or at the checkout's top.

    A wheel ships ``conf/`` as ``gansn/conf`` (see pyproject.toml); an editable install or a
    plain checkout has it beside the package.  Resolving it here, not by a path relative to
    the working directory, keeps the console scripts working wherever they are run.
    """
    pkg = Path(gansn.__file__).resolve().parent
    for candidate in (pkg / "conf", pkg.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"gansn's conf/ with train.yaml not found beside {pkg}")


def compose(overrides: list[str] = (), config_name: str = "train") -> Any:
    """Compose ``conf/<config_name>.yaml`` with overrides -> an OmegaConf ``DictConfig``.

    Works inside a running Hydra app (re-composes in its context) and outside one.
    """
    # imported here: the package stays importable without Hydra (CONVENTIONS); only
    # composing a config needs it
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        return hydra_compose(config_name, overrides=list(overrides))
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        return hydra_compose(config_name, overrides=list(overrides))


def to_plain(cfg: Any) -> dict[str, Any]:
    """A resolved ``DictConfig`` (or dict) -> plain dicts/lists, checkpoint-safe."""
    # imported here: the package stays importable without Hydra/OmegaConf
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    return dict(cfg)
