"""Tests of `rrlyrae_metallicity.manifest.ModelManifest`: manifests round-trip byte for byte."""

import ast
import json
import sys
from importlib.resources import files
from pathlib import Path

import pytest

from rrlyrae_metallicity.manifest import MANIFEST_VERSION, ModelManifest

MODELS = Path(str(files("rrlyrae_metallicity") / "data" / "models"))
SHIPPED = sorted(MODELS.glob("*/manifest.json"))


def test_every_model_is_checked():
    assert len(SHIPPED) >= 2
    assert any(ModelManifest.read(path).is_composite for path in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_shipped_manifest_round_trips_byte_for_byte(path, tmp_path):
    manifest = ModelManifest.read(path)
    assert manifest.name == path.parent.name
    assert manifest.manifest_version == MANIFEST_VERSION
    assert manifest.to_dict() == json.loads(path.read_text())
    manifest.write(tmp_path / "manifest.json")
    assert (tmp_path / "manifest.json").read_bytes() == path.read_bytes()


def test_a_plain_ensemble_and_a_composite():
    plain = ModelManifest.from_dict({"name": "a", "members": [{"file": "f.onnx"}]})
    composite = ModelManifest.from_dict({"name": "b", "components": [{"name": "a", "weight": 1}]})
    assert not plain.is_composite and plain.components is None
    assert composite.is_composite and composite.members is None


def test_unknown_keys_nulls_and_order_round_trip(tmp_path):
    content = {"preprocessing_notes": "kept", "name": "x", "future": {"a": [1, 2.5]},
               "uncertainty_calibration": None, "preprocessing": {"n_phases": 80}}
    manifest = ModelManifest.from_dict(content)
    assert manifest.extra == {"preprocessing_notes": "kept", "future": {"a": [1, 2.5]}}
    assert list(manifest.to_dict().items()) == list(content.items())
    manifest.write(tmp_path / "m.json")
    assert (tmp_path / "m.json").read_text() == json.dumps(content, indent=2) + "\n"
    assert ModelManifest.read(tmp_path / "m.json") == manifest


def test_new_keys_follow_the_file_in_field_order():
    manifest = ModelManifest.from_dict({"training_domain": {}, "name": "x"})
    manifest.uncertainty_calibration = {"scale": 1.0}
    manifest.output_stretch = {"factor": 1.1}
    manifest.extra["later"] = 3
    assert list(manifest.to_dict()) == ["training_domain", "name", "output_stretch",
                                        "uncertainty_calibration", "later"]
    # Without a recorded order: field order, absent (None) fields left out.
    assert list(ModelManifest(created="2024-01-01", name="y").to_dict()) == ["name", "created"]


def test_a_listed_field_is_written_even_when_none():
    manifest = ModelManifest(name="x", key_order=("name", "training_commit"))
    assert manifest.to_dict() == {"name": "x", "training_commit": None}


def test_drop_removes_a_key_wherever_it_was():
    manifest = ModelManifest.from_dict({"name": "x", "output_stretch": {"factor": 1.1},
                                        "created": "2024-01-01", "note": 1})
    manifest.drop("output_stretch")
    manifest.drop("note")
    manifest.drop("absent")
    assert manifest.to_dict() == {"name": "x", "created": "2024-01-01"}
    # Set again, it goes after the keys of the file.
    manifest.output_stretch = {"factor": 1.2}
    assert list(manifest.to_dict()) == ["name", "created", "output_stretch"]


def test_only_json_objects_are_manifests():
    with pytest.raises(TypeError, match="JSON object"):
        ModelManifest.from_dict([1, 2])


def test_the_module_imports_only_the_standard_library_and_numpy():
    # It ships in the package and is read by the training module: nothing heavy.
    tree = ast.parse(Path(sys.modules[ModelManifest.__module__].__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= set(sys.stdlib_module_names) | {"numpy"}
