"""Real inputs for validate: image folders, module:callable, saved tensors (trtexec raw, Polygraphy JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simam_deploy import inputs as inp
from simam_deploy.errors import InputError
from tests.real_images import make_photo_folder

SPEC = [("input", ("batch", 3, 32, 32), np.dtype(np.float32))]


def iter_arrays():
    """module:callable source yielding bare arrays (one input)."""
    rng = np.random.default_rng(3)
    for _ in range(3):
        yield rng.standard_normal((2, 3, 32, 32))


def iter_dicts():
    import torch

    return [{"input": torch.ones(4, 3, 32, 32)}]


def iter_wrong_name():
    return [{"image": np.zeros((1, 3, 32, 32), np.float32)}]


def not_iterable():
    return 42


# -- images -------------------------------------------------------------------------------------------


def test_solid_colour_image_is_normalised_exactly(tmp_path):
    Image.new("RGB", (40, 50), (200, 100, 0)).save(tmp_path / "a.png")
    got = inp.load_inputs(tmp_path, SPEC, reference="cifar-resnet20")
    x = got.batches[0]["input"]
    assert x.shape == (1, 3, 32, 32) and x.dtype == np.float32
    want = (np.array([200, 100, 0]) / 255.0 - np.array(inp.CIFAR_MEAN)) / np.array(inp.CIFAR_STD)
    np.testing.assert_allclose(x[0, :, 5, 7], want, rtol=1e-6)
    assert got.kind == "images" and got.files == ["a.png"] and got.count == 1


def test_real_photos_are_batched_and_look_like_images(tmp_path):
    folder = make_photo_folder(tmp_path / "photos", count=40, crop=64)
    got = inp.load_inputs(folder, SPEC, reference="cifar-resnet20", batch_size=16)
    assert [b["input"].shape[0] for b in got.batches] == [16, 16, 8]
    x = np.concatenate([b["input"] for b in got.batches])
    # normalised natural images: centred near 0, unit-ish spread, and all different from each other
    assert abs(float(x.mean())) < 1.0 and 0.3 < float(x.std()) < 2.0
    assert len({x[i].tobytes() for i in range(len(x))}) == 40


def test_fixed_batch_files_get_full_batches(tmp_path):
    for i in range(5):
        Image.new("RGB", (32, 32), (i * 40, 0, 0)).save(tmp_path / f"{i}.png")
    spec = [("input", (2, 3, 32, 32), np.dtype(np.float32))]
    got = inp.load_inputs(tmp_path, spec, reference="cifar-resnet20")
    assert [b["input"].shape[0] for b in got.batches] == [2, 2, 2]
    np.testing.assert_array_equal(got.batches[2]["input"][0], got.batches[2]["input"][1])


def test_imagenet_zoo_default_resizes_then_crops(tmp_path):
    Image.new("RGB", (300, 600), (10, 20, 30)).save(tmp_path / "tall.jpg")
    spec = [("input", ("batch", 3, 224, 224), np.dtype(np.float32))]
    got = inp.load_inputs(tmp_path, spec, reference="resnet50")
    assert got.preprocess.resize == 256 and got.batches[0]["input"].shape == (1, 3, 224, 224)


def test_explicit_options_override_zoo_defaults(tmp_path):
    Image.new("RGB", (64, 64), (255, 255, 255)).save(tmp_path / "w.png")
    got = inp.load_inputs(tmp_path, SPEC, reference="cifar-resnet20", mean="0,0,0", std="1,1,1", size="16")
    x = got.batches[0]["input"]
    assert x.shape == (1, 3, 16, 16)
    np.testing.assert_allclose(x, 1.0)


def test_unknown_model_needs_mean_and_std(tmp_path):
    Image.new("RGB", (32, 32)).save(tmp_path / "a.png")
    with pytest.raises(InputError, match="--mean"):
        inp.load_inputs(tmp_path, SPEC, reference="my.module:net")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "holds no images"),
        (lambda d: (d / "broken.png").write_bytes(b"not a png"), "cannot read image"),
    ],
)
def test_bad_image_folders_are_clear_errors(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(InputError, match=message):
        inp.load_inputs(tmp_path, SPEC, reference="cifar-resnet20")


@pytest.mark.parametrize("size", ["0", "3x", "axb", "1x2x3"])
def test_bad_size_is_refused(size):
    with pytest.raises(InputError, match="--size"):
        inp.parse_size(size)


# -- module:callable ----------------------------------------------------------------------------------


def test_callable_yielding_arrays():
    got = inp.load_inputs("tests.test_inputs:iter_arrays", SPEC)
    assert got.kind == "callable" and len(got.batches) == 3 and got.count == 6
    assert got.batches[0]["input"].dtype == np.float32  # float64 cast to the model's type


def test_callable_yielding_dicts_of_tensors():
    got = inp.load_inputs("tests.test_inputs:iter_dicts", SPEC)
    assert got.batches[0]["input"].shape == (4, 3, 32, 32)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.test_inputs:iter_wrong_name", "missing inputs"),
        ("tests.test_inputs:not_iterable", "iterable"),
        ("tests.test_inputs:nothing_here", "not a callable"),
        ("no_such_module_xyz:f", "cannot import"),
    ],
)
def test_bad_callables_are_clear_errors(spec, message):
    with pytest.raises(InputError, match=message):
        inp.load_inputs(spec, SPEC)


def test_unknown_source_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="neither"):
        inp.load_inputs(tmp_path / "missing.bin", SPEC)


# -- saved tensors --------------------------------------------------------------------------------------


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "input": rng.standard_normal((3, 3, 8, 8)).astype(np.float32),
        "mask/with:odd name": rng.integers(-5, 5, (2, 7)).astype(np.int64),
        "half": rng.standard_normal((4,)).astype(np.float16),
    }


@pytest.mark.parametrize("fmt", ["raw", "polygraphy"])
def test_saved_tensors_load_back_identically(tmp_path, fmt):
    tensors = _tensors()
    outputs = {"logits": np.linspace(-3, 3, 20, dtype=np.float32).reshape(2, 10)}
    inp.save_tensors(tmp_path / "io", inputs=tensors, outputs=outputs)
    got_in = inp.load_tensors(tmp_path / "io", "inputs", fmt)
    got_out = inp.load_tensors(tmp_path / "io", "outputs", fmt)
    for want, got in ((tensors, got_in), (outputs, got_out)):
        assert list(got) == list(want)
        for name in want:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
            assert got[name].tobytes() == want[name].tobytes()


def test_raw_files_are_what_trtexec_reads(tmp_path):
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    inp.save_tensors(tmp_path / "io", inputs={"input": x}, outputs={"output": x[:, :1]})
    assert (tmp_path / "io" / "input.bin").read_bytes() == x.astype("<f4").tobytes()
    manifest = json.loads((tmp_path / "io" / "inputs.manifest.json").read_text())
    assert manifest["trtexec"] == "--loadInputs=input:input.bin --shapes=input:1x2x3x4"
    out_manifest = json.loads((tmp_path / "io" / "outputs.manifest.json").read_text())
    assert out_manifest["trtexec"].startswith("--loadRefOutputs=output:output.bin")


def test_polygraphy_reads_our_json(tmp_path):
    polygraphy_json = pytest.importorskip("polygraphy.json", reason="polygraphy is not installed")
    tensors = _tensors()
    outputs = {"logits": np.ones((2, 10), np.float32)}
    inp.save_tensors(tmp_path / "io", inputs=tensors, outputs=outputs)
    feeds = polygraphy_json.load_json(str(tmp_path / "io" / "inputs.json"))
    assert len(feeds) == 1 and all(np.array_equal(feeds[0][k], v) for k, v in tensors.items())
    from polygraphy.comparator import RunResults

    results = RunResults.load(str(tmp_path / "io" / "outputs.json"))
    ((_runner, iterations),) = results.items()
    np.testing.assert_array_equal(iterations[0]["logits"], outputs["logits"])


def test_saved_folder_is_accepted_as_inputs(tmp_path):
    tensors = {"input": np.random.default_rng(1).standard_normal((5, 3, 32, 32)).astype(np.float32)}
    inp.save_tensors(tmp_path / "io", inputs=tensors)
    got = inp.load_inputs(tmp_path / "io", SPEC)
    assert got.kind == "saved" and got.batches[0]["input"].tobytes() == tensors["input"].tobytes()


def test_save_refuses_a_non_empty_folder_and_leaves_nothing_behind(tmp_path):
    (tmp_path / "io").mkdir()
    (tmp_path / "io" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        inp.save_tensors(tmp_path / "io", inputs=_tensors())
    assert [p.name for p in (tmp_path / "io").iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["io"]


def test_save_refuses_to_write_into_its_input(tmp_path):
    with pytest.raises(InputError, match="also an input"):
        inp.save_tensors(tmp_path / "new", inputs=_tensors(), protect=[tmp_path / "new"])


def test_truncated_raw_file_is_refused(tmp_path):
    inp.save_tensors(tmp_path / "io", inputs=_tensors())
    raw = tmp_path / "io" / "input.bin"
    raw.write_bytes(raw.read_bytes()[:-4])
    with pytest.raises(InputError, match="truncated"):
        inp.load_tensors(tmp_path / "io", "inputs")


def test_manifest_cannot_point_outside_its_folder(tmp_path):
    inp.save_tensors(tmp_path / "io", inputs=_tensors())
    manifest_path = tmp_path / "io" / "inputs.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["tensors"][0]["file"] = "../secret.bin"
    (tmp_path / "secret.bin").write_bytes(b"\0" * 4 * 3 * 3 * 8 * 8)
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="inside"):
        inp.load_tensors(tmp_path / "io", "inputs")


def test_concat_needs_one_shape():
    a = {"input": np.zeros((1, 3, 8, 8), np.float32)}
    b = {"input": np.zeros((1, 3, 9, 8), np.float32)}
    with pytest.raises(InputError, match="differ in shape"):
        inp.concat_batches([a, b])
    assert inp.concat_batches([a, a])["input"].shape == (2, 3, 8, 8)


def test_saved_paths_are_relative(tmp_path):
    inp.save_tensors(tmp_path / "io", inputs=_tensors())
    text = (tmp_path / "io" / "inputs.manifest.json").read_text()
    assert str(Path(tmp_path)) not in text
