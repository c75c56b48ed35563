import pytest
import torch

from cadence.data import Augment, TensorLoader, cutout, random_crop, random_flip
from cadence.errors import ConfigError


def make_loader(count=103, batch_size=10, **options):
    inputs = torch.arange(count, dtype=torch.float32).reshape(count, 1)
    return TensorLoader(inputs, torch.arange(count), batch_size, **options)


def targets_of(batches):
    return [y.tolist() for _, y in batches]


def flat(lists):
    return [item for part in lists for item in part]


def test_order_is_a_pure_function_of_seed_and_epoch():
    first, second = make_loader(seed=5), make_loader(seed=5)
    assert targets_of(first.batches(3)) == targets_of(second.batches(3))
    assert targets_of(first.batches(3)) != targets_of(first.batches(4))
    assert targets_of(first.batches(3)) != targets_of(make_loader(seed=6).batches(3))
    epoch = flat(targets_of(first.batches(0)))
    assert sorted(epoch) == list(range(103))  # every example exactly once


def test_resume_equals_tail_of_the_epoch():
    loader = make_loader(seed=1)
    full = targets_of(loader.batches(2))
    for start in (0, 1, 5, 10):
        assert targets_of(loader.batches(2, start)) == full[start:]
    assert targets_of(loader.batches(2, 11)) == []


def test_length_and_drop_last():
    assert len(make_loader()) == 11
    loader = make_loader(drop_last=True)
    assert len(loader) == 10
    assert all(len(y) == 10 for y in targets_of(loader.batches(0)))
    assert [len(y) for y in targets_of(make_loader().batches(0))][-1] == 3


def test_no_shuffle_keeps_order():
    assert flat(targets_of(make_loader(shuffle=False).batches(7))) == list(range(103))


def test_iter_walks_epochs():
    loader = make_loader(seed=2)
    assert targets_of(iter(loader)) == targets_of(loader.batches(0))
    assert targets_of(iter(loader)) == targets_of(loader.batches(1))
    loader.set_epoch(5)
    assert targets_of(iter(loader)) == targets_of(loader.batches(5))


@pytest.mark.parametrize(("count", "world_size"), [(100, 4), (103, 4), (7, 3)])
def test_rank_shards_are_disjoint_equal_and_cover(count, world_size):
    shards = [
        flat(targets_of(make_loader(count, 4, seed=9, rank=rank, world_size=world_size).batches(1)))
        for rank in range(world_size)
    ]
    lengths = {len(make_loader(count, 4, rank=rank, world_size=world_size)) for rank in range(world_size)}
    assert len(lengths) == 1  # same number of batches on every rank
    union = set().union(*shards)
    assert sum(len(shard) for shard in shards) == len(union)  # disjoint
    assert len(union) == count - count % world_size  # covering up to the remainder
    # the union of the ranks' i-th batches is the i-th global batch of one permutation
    single = flat(targets_of(make_loader(count, 4 * world_size, seed=9).batches(1)))
    assert sorted(union) == sorted(single[: len(union)])


def test_no_batches_is_an_error():
    with pytest.raises(ConfigError, match="no batches"):
        make_loader(5, 10, drop_last=True)
    with pytest.raises(ConfigError, match="batch_size"):
        make_loader(5, 0)


def image_loader(**options):
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(40, 3, 8, 8, generator=generator) + 0.1
    return TensorLoader(images, torch.arange(40), 8, seed=3, **options)


def test_augmentation_is_deterministic_and_resumable():
    loader = image_loader(augment={"crop_padding": 2, "flip": True, "cutout": 3})
    first = [x for x, _ in loader.batches(1)]
    again = [x for x, _ in loader.batches(1)]
    tail = [x for x, _ in loader.batches(1, 3)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(torch.equal(a, b) for a, b in zip(first[3:], tail))
    plain = [x for x, _ in image_loader().batches(1)]
    assert not torch.equal(first[0], plain[0])
    other_epoch = [x for x, _ in loader.batches(2)]
    assert not torch.equal(first[0], other_epoch[0])


def test_random_crop_shifts_images():
    generator = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    assert torch.equal(random_crop(images, 0, generator), images)
    cropped = random_crop(images, 1, generator, padding_mode="constant")
    assert cropped.shape == images.shape
    # each output is a window of the zero-padded image: some shift of the original
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    for index in range(2):
        windows = [padded[index, :, top : top + 5, left : left + 5] for top in range(3) for left in range(3)]
        assert any(torch.equal(cropped[index], window) for window in windows)


def test_flip_and_cutout():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 6, 6, generator=generator) + 0.1
    flipped = random_flip(images, generator)
    same = [torch.equal(a, b) for a, b in zip(flipped, images)]
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(flipped, images)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(mirrored) < 54
    holes = cutout(images, 2, generator)
    zeros = (holes == 0).flatten(1).sum(1)
    assert zeros.min() >= 1
    assert zeros.max() <= 4


def test_augment_validates_and_needs_images():
    with pytest.raises(ConfigError, match="crop_padding"):
        Augment(crop_padding=-1)
    loader = make_loader(augment=Augment(flip=True))
    with pytest.raises(ConfigError, match=r"\(N, C, H, W\)"):
        next(loader.batches(0))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_data_stays_on_the_gpu():
    loader = image_loader(device="cuda", augment=Augment(crop_padding=2, flip=True, cutout=2))
    inputs, targets = next(loader.batches(0))
    assert inputs.is_cuda
    assert targets.is_cuda
    assert torch.equal(inputs, next(loader.batches(0))[0])
