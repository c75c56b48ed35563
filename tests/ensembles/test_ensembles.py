import copy

import pytest
import torch
import torch.nn.functional as F
from ensemble_helpers import Batches, make_data, make_model
from torch import nn

from cadence.ensembles import Ensemble, combine_outputs, evaluate_ensemble, greedy_select
from cadence.errors import ConfigError


@pytest.mark.parametrize("combine", ["mean_prob", "mean_logit", "vote"])
def test_ensemble_of_identical_models_equals_the_single_model(combine):
    model = make_model().eval()
    ensemble = Ensemble([model, copy.deepcopy(model), copy.deepcopy(model)], combine=combine).eval()
    x, y = make_data()
    with torch.no_grad():
        single, combined = model(x), ensemble(x)
    assert torch.equal(combined.argmax(1), single.argmax(1))
    if combine == "mean_logit":
        assert torch.allclose(combined, single, atol=1e-6)
    if combine == "mean_prob":
        assert torch.allclose(combined, single.log_softmax(1), atol=1e-5)
        assert F.cross_entropy(combined, y).item() == pytest.approx(
            F.cross_entropy(single, y).item(), abs=1e-5
        )


def test_combine_rules_by_hand():
    a = torch.tensor([[2.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 1.0, 0.0]])
    c = torch.tensor([[0.0, 1.2, 0.0]])
    mean_prob = combine_outputs([a, b], combine="mean_prob").exp()
    assert torch.allclose(mean_prob, (a.softmax(1) + b.softmax(1)) / 2)
    assert torch.allclose(combine_outputs([a, b], [3, 1], "mean_logit"), (3 * a + b) / 4)
    # Two votes for class 1 beat one confident vote for class 0.
    assert combine_outputs([a, b, c], combine="vote").argmax(1).item() == 1
    assert combine_outputs([a, b, c], [5, 1, 1], "vote").argmax(1).item() == 0


def test_members_from_paths(tmp_path):
    model = make_model(1).eval()
    torch.save(model.state_dict(), tmp_path / "snapshot-1.pt")
    ensemble = Ensemble([tmp_path / "snapshot-1.pt"], model_factory=make_model).eval()
    x, _ = make_data()
    with torch.no_grad():
        assert torch.allclose(ensemble(x), model(x).log_softmax(1), atol=1e-5)
    with pytest.raises(ConfigError, match="model_factory"):
        Ensemble([tmp_path / "snapshot-1.pt"])
    with pytest.raises(ConfigError, match="not found"):
        Ensemble([tmp_path / "missing.pt"], model_factory=make_model)
    with pytest.raises(ConfigError, match="does not match"):
        Ensemble([tmp_path / "snapshot-1.pt"], model_factory=lambda: nn.Linear(6, 3))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="combine"):
        Ensemble([make_model()], combine="median")
    with pytest.raises(ConfigError, match="one entry per member"):
        Ensemble([make_model()], weights=[1, 2])
    with pytest.raises(ConfigError, match="at least one"):
        Ensemble([])
    with pytest.raises(ConfigError, match="metrics"):
        evaluate_ensemble([make_model()], make_data(), metrics=("f1",))
    with pytest.raises(ConfigError, match="k must be"):
        greedy_select([make_model()], make_data(), k=2)


class _Guarded:
    """Test data that raises if iterated while selection runs."""

    def __init__(self, data, flag):
        self.data, self.flag = data, flag

    def __iter__(self):
        if self.flag["selecting"]:
            raise AssertionError("test data touched during selection")
        self.flag["iterated"] += 1
        return iter(self.data)


def test_greedy_selection_never_touches_test_data(monkeypatch):
    import cadence.ensembles as ensembles

    flag = {"selecting": False, "iterated": 0}
    original = ensembles._greedy_from_outputs

    def guarded(*args, **kwargs):
        flag["selecting"] = True
        try:
            return original(*args, **kwargs)
        finally:
            flag["selecting"] = False

    monkeypatch.setattr(ensembles, "_greedy_from_outputs", guarded)
    members = [make_model(seed) for seed in range(4)]
    val = Batches(*make_data(64, seed=1))
    test = _Guarded(Batches(*make_data(64, seed=2)), flag)
    report = evaluate_ensemble(members, val, test, metrics=("accuracy", "loss"), k=2)
    assert flag["iterated"] == 1  # scored once, after selection
    assert len(report.selected) == 2
    assert set(report.ensemble) == {"val", "test"}
    assert set(report.selected_metrics) == {"val", "test"}
    # The selected subset is what greedy_select picks on validation data alone.
    assert report.selected == greedy_select(members, val, 2)
    # Every member is reported on both splits.
    assert all(set(row["scores"]) == {"val", "test"} for row in report.members)


def test_greedy_selection_prefers_the_good_member():
    inputs, targets = make_data(64)
    good = nn.Linear(6, 3)
    with torch.no_grad():
        good.weight.zero_()
        good.bias.zero_()
    oracle = _Oracle(inputs, targets)
    members = [good, oracle, copy.deepcopy(good)]
    assert greedy_select(members, (inputs, targets), 1) == [1]


class _Oracle(nn.Module):
    def __init__(self, inputs, targets):
        super().__init__()
        self.lookup = {tuple(row.tolist()): int(label) for row, label in zip(inputs, targets)}

    def forward(self, x):
        labels = torch.tensor([self.lookup[tuple(row.tolist())] for row in x])
        return F.one_hot(labels, 3).float() * 5


def test_report_markdown_lists_members_ensemble_and_subset():
    members = [make_model(seed) for seed in range(3)]
    report = evaluate_ensemble(members, make_data(), metrics=("accuracy",), k=2, names=["a", "b", "c"])
    table = report.to_markdown()
    assert table.count("\n") == 2 + 3 + 2
    assert "| a |" in table
    assert "ensemble of 3 (mean_prob)" in table
    assert "greedy 2 on val" in table
    assert report.to_dict()["selected"] == report.selected
