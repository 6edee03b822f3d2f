"""The generic Registry and the names each built-in registry holds."""

from __future__ import annotations

import pytest

from gansn.errors import ConfigError, UnknownNameError
from gansn.losses import LOSSES
from gansn.nn import ARCHS, NORMS
from gansn.registry import Registry, split_kwargs


@pytest.fixture
def reg() -> Registry:
    return Registry("widget")


def test_register_get_build_names(reg):
    @reg.register("b")
    def make_b(x, *, scale=1):
        return ("b", x * scale)

    reg.register("a", obj=lambda: "a!")

    assert reg.get("b") is make_b
    assert reg.build("b", 2, scale=3) == ("b", 6)
    assert reg.build("a") == "a!"
    assert reg.names() == ["a", "b"]
    assert list(reg) == ["a", "b"]
    assert len(reg) == 2
    assert "a" in reg and "c" not in reg


def test_decorator_returns_the_object_unchanged(reg):
    class Thing:
        pass

    assert reg.register("thing")(Thing) is Thing


def test_name_defaults_to_dunder_name(reg):
    @reg.register()
    def my_factory():
        return 1

    assert reg.names() == ["my_factory"]


def test_duplicate_registration_raises_and_override_replaces(reg):
    reg.register("x", obj=int)
    with pytest.raises(ConfigError, match=r"'x' is already registered.*override=True"):
        reg.register("x", obj=float)
    assert reg.get("x") is int  # the failed attempt changed nothing
    reg.register("x", obj=float, override=True)
    assert reg.get("x") is float


def test_registering_the_same_object_twice_is_idempotent(reg):
    reg.register("x", obj=int)
    reg.register("x", obj=int)
    assert reg.names() == ["x"]


def test_unknown_name_lists_sorted_valid_names(reg):
    for name in ("zeta", "alpha", "mid"):
        reg.register(name, obj=object)
    with pytest.raises(UnknownNameError) as info:
        reg.get("nope")
    err = info.value
    assert isinstance(err, ConfigError) and isinstance(err, KeyError)
    assert str(err) == "unknown widget 'nope'; valid names: alpha, mid, zeta"


def test_build_of_unknown_name_raises_unknown_name(reg):
    reg.register("a", obj=dict)
    with pytest.raises(UnknownNameError, match=r"valid names: a$"):
        reg.build("b")


def test_build_of_non_callable_entry_raises_type_error(reg):
    reg.register("const", obj=42)
    with pytest.raises(TypeError, match="not callable"):
        reg.build("const")


def test_split_kwargs():
    assert split_kwargs({"name": "group", "num_groups": 4}) == ("group", {"num_groups": 4})
    with pytest.raises(ConfigError, match="no 'name' key"):
        split_kwargs({"num_groups": 4})


BUILTIN = {
    "NORMS": (NORMS, ["batch", "group", "instance", "layer", "none", "spectral", "weight"]),
    "ARCHS": (ARCHS, ["dcgan", "mlp", "resnet"]),
    "LOSSES": (LOSSES, ["hinge", "lsgan", "nonsaturating", "wasserstein"]),
}


@pytest.mark.parametrize("which", sorted(BUILTIN))
def test_builtin_registry_names(which):
    registry, expected = BUILTIN[which]
    assert registry.names() == expected
    with pytest.raises(UnknownNameError) as info:
        registry.get("does_not_exist")
    assert str(info.value).endswith("valid names: " + ", ".join(expected))


def test_dataset_registry_names():
    data = pytest.importorskip("gansn.data")
    expected = ["cifar10", "fake", "fashion_mnist", "folder", "grid25", "mnist", "ring8", "stl10"]
    assert data.DATASETS.names() == expected
    with pytest.raises(UnknownNameError) as info:
        data.build_dataset({"name": "imagenet"})
    assert str(info.value) == "unknown dataset 'imagenet'; valid names: " + ", ".join(expected)


def test_unknown_names_fail_through_the_public_builders():
    from gansn.losses import build_loss
    from gansn.nn import ModelSpec, build_generator, build_norm

    with pytest.raises(UnknownNameError, match="valid names: batch, group, instance"):
        build_norm("spectrall")
    with pytest.raises(UnknownNameError, match="valid names: hinge, lsgan"):
        build_loss("hing")
    with pytest.raises(UnknownNameError, match="valid names: dcgan, mlp, resnet"):
        build_generator(ModelSpec(arch="stylegan", shape=(3, 32, 32), z_dim=8))
