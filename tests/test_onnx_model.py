"""ONNX Runtime scores the shipped quality model as TorchScript does (imaging/onnx_model.py)."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from imaging.onnx_model import ONNX_FILE, OnnxQualityModel, available_providers, onnx_version_dir
from imaging.preprocess import INPUT_SHAPE, preprocess_frame
from imaging.quality_model import ModelLoadError, QualityModel, model_version_dir
from imaging.shipped_models import SHIPPED_QUALITY_MODEL_DIR
from site_agent.agent_parts import load_predictor
from site_agent.settings import SiteAgentSettings


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """The shipped model's version folder, with a `model.onnx` (exported here if none ships)."""
    version_dir = model_version_dir(SHIPPED_QUALITY_MODEL_DIR)
    if (version_dir / ONNX_FILE).is_file():
        return version_dir
    import torch

    from training.export import export_onnx

    copy = tmp_path_factory.mktemp("model") / version_dir.name
    shutil.copytree(version_dir, copy)
    module = torch.jit.load(str(copy / "model.pt"), map_location="cpu").eval()
    export_onnx(module, copy / ONNX_FILE, np.zeros((1, *INPUT_SHAPE), np.float32))
    return copy


def _frames() -> np.ndarray:
    """Preprocessed star fields (clear, cloudy, trailed) and noise: what a site scores."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:512, :512]
    frames = []
    for sigma, sky, stretch in ((1.5, 200.0, 1.0), (3.0, 900.0, 1.0), (1.5, 300.0, 6.0)):
        image = rng.normal(sky, np.sqrt(sky), size=(512, 512))
        for x, y, flux in zip(
            rng.uniform(20, 492, 60),
            rng.uniform(20, 492, 60),
            rng.uniform(2e3, 5e4, 60),
            strict=True,
        ):
            image += (
                flux
                * np.exp(-(((xx - x) / (sigma * stretch)) ** 2 + ((yy - y) / sigma) ** 2) / 2)
                / (2 * np.pi * sigma**2 * stretch)
            )
        frames.append(preprocess_frame(image.astype(np.float32)))
    noise = rng.normal(0.0, 0.5, size=(5, *INPUT_SHAPE)).astype(np.float32)
    return np.concatenate([np.stack(frames).reshape(-1, *INPUT_SHAPE), noise])


def test_onnx_runtime_gives_torchscripts_probabilities_on_the_shipped_model(shipped):
    batch = _frames()
    torchscript = QualityModel.load(shipped)
    onnx = OnnxQualityModel.load(shipped, providers=["CPUExecutionProvider"], threads=1)
    expected = torchscript.predict(batch)
    got = onnx.predict(batch)
    assert got.shape == (len(batch), 3) and got.dtype == np.float64
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    for size in (1, 2, 7):  # the batch axis is dynamic
        np.testing.assert_allclose(onnx.predict(batch[:size]), expected[:size], atol=1e-4)
    assert onnx.agrees_with(torchscript, batch) <= 1e-4
    assert onnx.ref.name == torchscript.ref.name and onnx.ref.version == torchscript.ref.version
    assert onnx.ref.sha256 != torchscript.ref.sha256, "the ref names the file that scores"


def test_the_best_available_provider_is_chosen_and_cpu_is_always_there(shipped):
    providers = available_providers()
    assert providers[-1] == "CPUExecutionProvider"
    assert OnnxQualityModel.load(shipped).providers[0] == providers[0]


def test_a_repository_loads_its_newest_version():
    assert onnx_version_dir(SHIPPED_QUALITY_MODEL_DIR) == model_version_dir(
        SHIPPED_QUALITY_MODEL_DIR
    )


def test_a_file_that_is_not_the_released_one_is_refused(shipped, tmp_path):
    copy = tmp_path / shipped.name
    shutil.copytree(shipped, copy)
    good = OnnxQualityModel.load(copy, providers=["CPUExecutionProvider"])
    (copy / (ONNX_FILE + ".sha256")).write_text("0" * 64 + "\n")
    with pytest.raises(ModelLoadError, match="sha256"):
        OnnxQualityModel.load(copy)
    assert OnnxQualityModel.load(copy, expected_sha256=good.sha256).sha256 == good.sha256


def test_an_onnx_file_of_other_weights_disagrees_with_the_torchscript_model(shipped, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    copy = tmp_path / shipped.name
    shutil.copytree(shipped, copy)
    graph = onnx.load(str(copy / ONNX_FILE))
    largest = max(graph.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(largest)
    largest.CopyFrom(numpy_helper.from_array(weights[::-1].copy(), largest.name))
    onnx.save(graph, str(copy / ONNX_FILE))
    impostor = OnnxQualityModel.load(copy, providers=["CPUExecutionProvider"])
    with pytest.raises(ModelLoadError, match="not the same network"):
        impostor.agrees_with(QualityModel.load(copy), _frames())


def test_a_batch_of_the_wrong_shape_is_refused(shipped):
    onnx = OnnxQualityModel.load(shipped, providers=["CPUExecutionProvider"])
    with pytest.raises(ValueError, match=r"\[N, 1, 128, 128\]"):
        onnx.predict(np.zeros((2, 128, 128), np.float32))


def test_a_site_set_to_onnx_scores_with_onnx_runtime_as_the_verified_model_does(tmp_path):
    settings = SiteAgentSettings(
        site_id="edge",
        watch_dir=tmp_path / "in",
        work_dir=tmp_path / "work",
        quality_runtime="onnx",
    )
    predictor = load_predictor(settings)
    assert isinstance(predictor, OnnxQualityModel)
    batch = _frames()
    reference = QualityModel.load(SHIPPED_QUALITY_MODEL_DIR).predict(batch)
    assert np.allclose(predictor.predict(batch), reference, atol=1e-5)
    assert predictor.ref.version == QualityModel.load(SHIPPED_QUALITY_MODEL_DIR).ref.version
