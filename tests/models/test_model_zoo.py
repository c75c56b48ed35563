import pytest
import torch
from torch import nn

from cadence import models
from cadence.errors import ConfigError


def count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


@pytest.mark.parametrize(
    ("name", "options", "input_shape", "parameters"),
    [
        # Greydanus' ConvBase: 1*25*5+25 + 2*(25*25*3+25) + 125*10+10
        ("cnn1d", {}, (40,), 5210),
        # TF tutorial: 16*25+16 + 32*16*25+32 + 32*128+128 + 128*10+10
        ("cnn28", {}, (1, 28, 28), 18762),
        ("mlp", {"input_shape": (40,)}, (40,), 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10),
        ("resnet-small", {}, (3, 32, 32), None),
    ],
)
def test_output_shapes_and_parameter_counts(name, options, input_shape, parameters):
    torch.manual_seed(0)
    model = models.create(name, **options)
    outputs = model(torch.randn(3, *input_shape))
    assert outputs.shape == (3, 10)
    if parameters is not None:
        assert count(model) == parameters


def test_cnn1d_accepts_channel_dimension_and_other_lengths():
    model = models.create("cnn1d", input_shape=(1, 72), num_classes=4)
    assert model(torch.randn(2, 1, 72)).shape == (2, 4)


def test_cnn28_options_and_dropout_is_spatial():
    model = models.create("cnn28", input_shape=(3, 28, 28), filters=[8, 12], num_classes=5)
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 5)
    assert any(isinstance(module, nn.Dropout2d) for module in model.modules())


def test_resnet_small_width_and_depth():
    small = models.create("resnet-small", width=8, blocks=[1, 1, 1], in_channels=1, num_classes=3)
    deeper = models.create("resnet-small", width=16, blocks=[3, 3, 3])  # ResNet-20
    assert small(torch.randn(2, 1, 32, 32)).shape == (2, 3)
    convolutions = [m for m in deeper.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convolutions) == 19  # stem + 18 in the blocks (+ the linear head = 20 layers)
    assert 260_000 < count(deeper) < 280_000  # ResNet-20 has about 0.27M parameters


def test_unknown_model_and_option():
    with pytest.raises(ConfigError, match="did you mean 'cnn1d'"):
        models.create("cnn1")
    with pytest.raises(ConfigError, match=r"unknown option 'chanels'.*did you mean 'channels'"):
        models.create("cnn1d", chanels=3)
    with pytest.raises(ConfigError, match="input_size or input_shape"):
        models.create("mlp")


def test_register_model_and_prefix_family():
    models.register_model("tiny-test", lambda num_classes=2: nn.Linear(3, num_classes))
    assert models.create("tiny-test", num_classes=4).out_features == 4
    models.register_model("zoo-test:", lambda variant, width=1: nn.Linear(width, len(variant)))
    assert models.create("zoo-test:abcd", width=2).out_features == 4
    assert models.model_options("zoo-test:x") == ["width"]


def test_pretrained_names_import_the_pretrained_module_lazily(monkeypatch):
    factories = {name: factory for name, factory in models._FACTORIES.items() if not name.endswith(":")}
    monkeypatch.setattr(models, "_FACTORIES", factories)
    imported = []

    def import_module(name):
        imported.append(name)
        models.register_model("timm:", lambda variant, num_classes=10: nn.Linear(2, num_classes))

    monkeypatch.setattr(models.importlib, "import_module", import_module)
    assert models.create("cnn1d") is not None
    assert imported == []  # built-in names never import it
    assert models.create("timm:resnet18", num_classes=3).out_features == 3
    assert imported == ["cadence.transfer.pretrained"]
