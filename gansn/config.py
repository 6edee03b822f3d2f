"""Where the configs live, and composing them without a Hydra app (tests, resume, notebooks).

Importing this module registers :data:`gansn.schema.TRAIN`'s defaults with Hydra's
ConfigStore as ``gansn_defaults``, the first entry of conf/train.yaml's defaults list: the
YAML files state only what differs from them, and a composed config holds every key.  A
config built in Python gets the same defaults from :func:`complete`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import gansn
from gansn import schema

DEFAULTS_NAME = "gansn_defaults"  # the ConfigStore entry train.yaml's defaults list names


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
    register_defaults()
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


def register_defaults() -> None:
    """Store :data:`gansn.schema.TRAIN`'s default tree in Hydra's ConfigStore (idempotent).

    Called when this module is imported, so that a Hydra app whose module imports it
    (``gansn.cli.train``) finds ``gansn_defaults``; Hydra hands the ConfigStore on to the
    processes of a launcher.  Environment defaults stay ``${oc.env:...}`` interpolations.
    """
    try:
        from hydra.core.config_store import ConfigStore
    except ImportError:  # Hydra-less use of the package: nothing to compose with
        return
    store = ConfigStore.instance()
    if f"{DEFAULTS_NAME}.yaml" not in store.repo:
        store.store(name=DEFAULTS_NAME, node=schema.defaults(schema.TRAIN, hydra=True))


def complete(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A training config (a ``DictConfig`` or plain dicts) -> plain dicts with every absent
    key given its declared default (:data:`gansn.schema.TRAIN`), so code reads
    ``cfg["log_every"]`` directly.  A composed config is complete already; a config built by
    hand, or one saved by an older gansn, is not."""
    return schema.complete(to_plain(cfg))


register_defaults()
