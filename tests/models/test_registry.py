from __future__ import annotations

import pytest
import torch

from deploykit.errors import InvalidInput, ModelNotFound
from deploykit.models import ModelSpec, create_model, get_model_spec, list_models, parse_shape, register_model


def test_list_models_pattern() -> None:
    assert list_models("resnet*") == ["resnet101", "resnet152", "resnet18", "resnet34", "resnet50"]
    assert list_models("nothing-matches-*") == []


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelNotFound, match="did you mean resnet18"):
        get_model_spec("resnt18")


def test_duplicate_registration_raises() -> None:
    spec = get_model_spec("resnet18")
    with pytest.raises(ValueError, match="already registered"):
        register_model(spec)(lambda s: torch.nn.Identity())


def test_overrides_change_spec_and_model() -> None:
    model, spec = create_model("resnet18", num_classes=10, image_size=128)
    assert spec.input_shape == (3, 128, 128)
    assert spec.num_classes == 10
    assert model.fc.out_features == 10
    assert not model.training
    assert next(model.parameters()).device.type == "meta"


def test_refused_override_names_what_is_allowed() -> None:
    with pytest.raises(InvalidInput, match="does not take in_channels"):
        create_model("vgg16", in_channels=1)


@pytest.mark.parametrize(("text", "shape"), [("3x224x224", (3, 224, 224)), ("1,40", (1, 40)), ([2, 5], (2, 5))])
def test_parse_shape(text: object, shape: tuple[int, ...]) -> None:
    assert parse_shape(text) == shape  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["3xax4", "0x3", "", "-1x2"])
def test_parse_shape_rejects(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_shape(text)


def test_spec_batch_shape() -> None:
    spec = ModelSpec(name="x", family="f", source="s", input_shape=(1, 28, 28), num_classes=10)
    assert spec.batch_shape(4) == (4, 1, 28, 28)


def test_default_sweeps_cover_every_family() -> None:
    # the registry-wide sweeps run one model per family unless --full-zoo is given (tests/zoo_selection.py)
    from zoo_selection import PER_FAMILY, families_covered

    from deploykit.models import get_model_spec, list_models

    assert set(list_models()) >= PER_FAMILY
    assert families_covered() == {get_model_spec(n).family for n in list_models()}
