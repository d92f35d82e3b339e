"""Exporting the quality model: a Triton model repository whose TorchScript and ONNX files
reproduce the eager model, with a manifest whose sha256 is the file's, loadable by a site."""

import numpy as np
import pytest
import torch
import tritonclient.grpc.model_config_pb2 as triton_config_pb2
from google.protobuf import text_format

from imaging.fits_reader import sha256_of_file
from imaging.preprocess import INPUT_SHAPE
from imaging.quality_model import QualityModel, read_manifest
from training.export import (
    ExportedModel,
    ExportError,
    export_to_repository,
    onnx_logits,
    torchscript_logits,
)
from training.quality_net import CLASS_NAMES, QualityNet


@pytest.fixture(scope="module")
def model() -> QualityNet:
    torch.manual_seed(11)
    return QualityNet().eval()


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(2).uniform(-0.1, 1.0, size=(4, *INPUT_SHAPE)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(model, batch, tmp_path_factory) -> ExportedModel:
    repository = tmp_path_factory.mktemp("repository")
    return export_to_repository(model, repository, version=3, verification_batch=batch)


def _eager(model: QualityNet, batch: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(batch)).numpy()


def test_repository_has_triton_layout(exported):
    model_dir = exported.version_dir.parent
    assert exported.version_dir.name == "3"
    assert sorted(p.name for p in model_dir.iterdir()) == ["3", "config.pbtxt"]
    assert sorted(p.name for p in exported.version_dir.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "model.pt",
        "model.py",
    ]


def test_published_version_is_readable_by_a_server_running_as_another_user(exported):
    assert exported.version_dir.stat().st_mode & 0o755 == 0o755
    for path in exported.version_dir.iterdir():
        assert path.stat().st_mode & 0o444 == 0o444


def test_triton_config_declares_the_contract(exported):
    config = text_format.Parse(exported.config_path.read_text(), triton_config_pb2.ModelConfig())
    assert config.name == "quality"
    assert config.backend == "python"
    assert config.max_batch_size > 0
    (model_input,) = config.input
    (model_output,) = config.output
    assert (model_input.name, list(model_input.dims)) == ("input", list(INPUT_SHAPE))
    assert (model_output.name, list(model_output.dims)) == ("probabilities", [len(CLASS_NAMES)])
    float32 = triton_config_pb2.DataType.Value("TYPE_FP32")
    assert model_input.data_type == model_output.data_type == float32


def test_manifest_sha256_is_the_model_files(exported):
    manifest = read_manifest(exported.version_dir)
    assert (
        manifest.sha256 == sha256_of_file(exported.torchscript_path) == exported.torchscript_sha256
    )
    assert (manifest.name, manifest.version) == ("quality", "3")
    assert list(manifest.class_names) == list(CLASS_NAMES)
    assert exported.onnx_sha256 == sha256_of_file(exported.onnx_path)


def test_torchscript_reproduces_the_eager_model(exported, model):
    other_batch = np.random.default_rng(9).normal(0, 0.3, size=(7, *INPUT_SHAPE)).astype(np.float32)
    np.testing.assert_allclose(
        torchscript_logits(exported.torchscript_path, other_batch),
        _eager(model, other_batch),
        atol=1e-5,
    )


def test_onnx_reproduces_the_eager_model_for_any_batch_size(exported, model, batch):
    np.testing.assert_allclose(
        onnx_logits(exported.onnx_path, batch[:3]), _eager(model, batch[:3]), atol=1e-4
    )


def test_site_loads_the_export_and_gets_softmax_of_the_eager_logits(exported, model, batch):
    site_model = QualityModel.load(exported.version_dir.parent)
    expected = torch.softmax(torch.from_numpy(_eager(model, batch)), dim=1).numpy()
    np.testing.assert_allclose(site_model.predict(batch), expected, atol=1e-5)


def test_a_released_version_is_never_overwritten(exported, model, batch):
    before = sha256_of_file(exported.torchscript_path)
    repository = exported.version_dir.parent.parent
    with pytest.raises(ExportError, match="never overwritten"):
        export_to_repository(QualityNet().eval(), repository, version=3, verification_batch=batch)
    assert sha256_of_file(exported.torchscript_path) == before
