"""The quality CNN takes the contract's input, answers one logit per class, and is small enough
to ship to a site and to script for TorchScript."""

import warnings

import torch

from imaging.preprocess import INPUT_SHAPE
from protos import QualityLabel
from training.quality_net import CLASS_NAMES, PanelSymmetricNet, QualityNet, count_parameters


def test_classes_are_the_contract_labels_in_order():
    assert list(CLASS_NAMES) == [label.value for label in QualityLabel]


def test_a_batch_of_frames_gives_one_logit_per_class():
    model = QualityNet().eval()
    logits = model(torch.zeros(5, *INPUT_SHAPE))
    assert logits.shape == (5, len(CLASS_NAMES))
    assert logits.dtype == torch.float32


def test_the_model_is_a_fraction_of_the_seed_classifier():
    seed_dense_layer_weights = 128 * 8 * 8 * 256  # the seed's Linear(8192, 256) alone
    parameters = count_parameters(QualityNet())
    assert parameters < seed_dense_layer_weights / 10
    assert parameters * 4 < 1_000_000  # float32 weights under 1 MB


def test_scripted_model_matches_eager_model():
    torch.manual_seed(0)
    model = QualityNet().eval()
    batch = torch.randn(3, *INPUT_SHAPE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.testing.assert_close(scripted(batch), model(batch))


def test_one_training_step_lowers_the_loss_on_a_batch():
    torch.manual_seed(0)
    model = QualityNet(dropout=0.0)
    images = torch.randn(3, *INPUT_SHAPE)
    labels = torch.tensor([0, 1, 2])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def _turn_panels(images: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """Each 64x64 mosaic panel rotated (and flipped) in place, as a turned camera would see."""
    panels = [
        [images[:, :, r * 64 : (r + 1) * 64, c * 64 : (c + 1) * 64] for c in range(2)]
        for r in range(2)
    ]
    turned = [[torch.rot90(p, turns, dims=[2, 3]) for p in row] for row in panels]
    if flip:
        turned = [[torch.flip(p, dims=[3]) for p in row] for row in turned]
    return torch.cat([torch.cat(row, dim=3) for row in turned], dim=2)


def test_the_served_net_gives_a_turned_camera_the_same_probabilities():
    torch.manual_seed(3)
    plain = QualityNet().eval()
    served = PanelSymmetricNet(plain).eval()
    frames = torch.randn(4, *INPUT_SHAPE)
    turned = _turn_panels(frames, turns=1, flip=True)

    with torch.no_grad():
        probabilities = torch.exp(served(frames))
        torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(4))
        torch.testing.assert_close(torch.exp(served(turned)), probabilities, atol=1e-5, rtol=0)
        assert not torch.allclose(
            torch.softmax(plain(turned), dim=1), torch.softmax(plain(frames), dim=1), atol=1e-3
        )
