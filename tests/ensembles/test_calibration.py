import math

import pytest
import torch

from cadence.calibration import expected_calibration_error


def logits_for(confidences: list[float], classes: int = 2) -> torch.Tensor:
    """Logits whose softmax gives class 0 the probability ``c`` and shares the rest over the others."""
    rows = []
    for c in confidences:
        rest = (1 - c) / (classes - 1)
        rows.append([math.log(c)] + [math.log(rest)] * (classes - 1))
    return torch.tensor(rows)


def test_ece_by_hand_two_bins():
    # four examples at confidence 0.9 (3 right: accuracy 0.75) and four at 0.6 (2 right: accuracy 0.5)
    outputs = logits_for([0.9] * 4 + [0.6] * 4)
    labels = torch.tensor([0, 0, 0, 1, 0, 0, 1, 1])
    expected = 0.5 * abs(0.75 - 0.9) + 0.5 * abs(0.5 - 0.6)
    assert expected_calibration_error(outputs, labels, bins=10) == pytest.approx(expected, abs=1e-6)


def test_a_perfectly_calibrated_model_has_zero_ece_and_an_overconfident_one_does_not():
    outputs = logits_for([0.8] * 10, classes=3)
    right_8_of_10 = torch.tensor([0] * 8 + [1, 2])
    assert expected_calibration_error(outputs, right_8_of_10) == pytest.approx(0.0, abs=1e-6)
    right_5_of_10 = torch.tensor([0] * 5 + [1] * 5)
    assert expected_calibration_error(outputs, right_5_of_10) == pytest.approx(0.3, abs=1e-6)


def test_log_probabilities_and_logits_give_the_same_ece():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(200, 5, generator=generator)
    labels = torch.randint(0, 5, (200,), generator=generator)
    log_probabilities = torch.log_softmax(logits, dim=-1)
    assert expected_calibration_error(logits, labels) == pytest.approx(
        expected_calibration_error(log_probabilities, labels), abs=1e-6
    )


@pytest.mark.parametrize(
    ("outputs", "labels", "bins", "message"),
    [
        (torch.zeros(3), torch.zeros(3, dtype=torch.long), 15, "must be"),
        (torch.zeros(3, 2), torch.zeros(4, dtype=torch.long), 15, "must be"),
        (torch.zeros(3, 2), torch.zeros(3, dtype=torch.long), 0, "bins"),
    ],
)
def test_bad_shapes_and_bins_are_named(outputs, labels, bins, message):
    with pytest.raises(ValueError, match=message):
        expected_calibration_error(outputs, labels, bins=bins)
