"""Fidelity to the paper's public code (DESIGN 2b): each test fails under hwnas's earlier behaviour.

1. initialisation; 2. gradients zeroed, not freed, in the weight step; 3. the triplet loss on the dropped-out
feature; 4. FBLNeck halves by ``chunk`` (odd heights); 5. the validation split and batches.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import hwnas
from hwnas.models.init import LINEAR_STD, init_weights_
from hwnas.search import SuperNet

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ---- 1. initialisation -------------------------------------------------------------------------------------
def _reference_init(module: nn.Module) -> None:
    """The official recipe written out: kaiming_normal_ (fan_in, ReLU gain) / BN2d 1, 0 / Linear N(0, 1e-3)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.fill_(1.0)
                m.bias.zero_()
        elif isinstance(m, nn.Linear):
            with torch.no_grad():
                m.weight.normal_(0.0, 1e-3)
                if m.bias is not None:
                    m.bias.zero_()


def test_init_matches_the_official_recipe_exactly() -> None:
    def net() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1, groups=2),
                             nn.Flatten(), nn.Linear(8, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))

    a, b = net(), net()
    with torch.no_grad():  # make the BN parameters differ from 1/0 so the test sees them reset
        for m in (a, b):
            m[1].weight.fill_(3.0)
            m[1].bias.fill_(2.0)
    init_weights_(a, torch.Generator().manual_seed(7))
    torch.manual_seed(7)
    _reference_init(b)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


def _check_initialised(model: nn.Module) -> None:
    convs = linears = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            if m.bias is not None:
                assert not m.bias.any(), name
            if m.weight.numel() >= 4096:  # enough samples for the std to be within a few percent
                want = math.sqrt(2.0 / m.weight[0].numel())
                assert float(m.weight.std()) == pytest.approx(want, rel=0.1), name
                convs += 1
        elif isinstance(m, nn.BatchNorm2d):
            assert (m.weight == 1).all() and not m.bias.any(), name
        elif isinstance(m, nn.Linear):
            if m.bias is not None:
                assert not m.bias.any(), name
            assert float(m.weight.std()) == pytest.approx(LINEAR_STD, rel=0.1), name
            linears += 1
    assert convs >= 3 and linears >= 1


@pytest.mark.parametrize("name,neck", [("cdnet", "fblneck"), ("cnet", "blneck"), ("cdnet", "bnneck")])
def test_trained_models_get_the_official_init(name: str, neck: str) -> None:
    torch.manual_seed(0)
    _check_initialised(hwnas.create_model(name, width_mult=0.5, num_classes=600, neck=neck))


def test_search_supernet_gets_the_official_init_and_alphas_are_untouched() -> None:
    torch.manual_seed(0)
    net = SuperNet("cdnet", num_classes=600, width_mult=0.5, alpha_init=1e-3)
    _check_initialised(net)
    assert (net.alphas == 1e-3).all()


# ---- 3. dropout on the GAP feature; the triplet loss sees the dropped-out feature ---------------------------
def _gap(x: torch.Tensor) -> torch.Tensor:
    return x.mean((2, 3))


def _assert_dropped_out(dropped: torch.Tensor, feature: torch.Tensor, p: float = 0.2) -> None:
    """``dropped`` is inverted dropout of ``feature``: zeros (a fraction of about ``p``) or ``feature / (1 - p)``."""
    live = feature != 0
    assert live.float().mean() > 0.5
    kept = dropped != 0
    assert not (kept & ~live).any()
    torch.testing.assert_close(dropped[kept], feature[kept] / (1 - p))
    assert 0.1 < 1 - float(kept[live].float().mean()) < 0.3


def _feats(batch: int = 32, mid: int = 96, last: int = 128, h: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return [torch.rand(batch, mid, h, 4, generator=g), torch.rand(batch, last, 3, 2, generator=g)]


@pytest.mark.parametrize("neck", ["blneck", "fblneck"])
def test_neck_triplet_features_are_dropped_out_and_inference_feature_is_not(neck: str) -> None:
    torch.manual_seed(0)
    model = hwnas.create_model("cdnet", width_mult=0.25, num_classes=7, neck=neck)  # mid 96, last 128 channels
    feats = _feats()
    with torch.no_grad():
        wanted = [_gap(feats[1])]
        if neck == "fblneck":
            local = model.neck.local_conv(feats[0])
            wanted.append(torch.cat([local[:, :, :3].mean((2, 3)), local[:, :, 3:].mean((2, 3))], 1))
        out = model.train().forward_head(feats)
        eval_feature = model.eval().forward_head(feats)
    assert len(out.features) == len(wanted)
    for dropped, feature in zip(out.features, wanted):
        _assert_dropped_out(dropped, feature)
    torch.testing.assert_close(eval_feature, torch.cat(wanted, 1))  # inference: no dropout


def test_classifier_and_triplet_see_the_same_dropout_draw() -> None:
    torch.manual_seed(0)
    model = hwnas.create_model("cnet", width_mult=0.25, num_classes=7, neck="blneck").train()
    out = model.forward_head(_feats())
    head = model.neck.head
    torch.testing.assert_close(out.softmax_features[0], head.fc(out.features[0]))
    torch.testing.assert_close(out.logits[0], head.classifier(out.softmax_features[0]))


def test_search_head_triplet_feature_is_dropped_out() -> None:
    torch.manual_seed(0)
    net = SuperNet("cdnet", num_classes=7, width_mult=0.125).train()
    x = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    maps = {}
    net.head.conv.register_forward_hook(lambda m, i, o: maps.setdefault("conv", o))
    out = net(x)
    _assert_dropped_out(out.features[0].detach(), _gap(maps["conv"]).detach())
    torch.testing.assert_close(out.softmax_features[0], net.head.fc(out.features[0]))
    with torch.no_grad():
        net.eval()
        maps.clear()
        f = net(x).features[0]
    torch.testing.assert_close(f, _gap(maps["conv"]))  # eval mode: the plain GAP feature


# ---- 4. FBLNeck halves by chunk --------------------------------------------------------------------------
@pytest.mark.parametrize("height", [2, 3, 13, 16])
def test_fblneck_local_halves_are_chunks(height: int) -> None:
    torch.manual_seed(0)
    model = hwnas.create_model("cdnet", width_mult=0.25, num_classes=7).eval()
    mid, last = torch.randn(2, 96, height, 6), torch.randn(2, 128, 3, 2)
    with torch.no_grad():
        feature = model.forward_head([mid, last])
        local = model.neck.local_conv(mid)
    top = (height + 1) // 2  # chunk: the first half gets ceil(H/2) rows
    want = torch.cat([local[:, :, :top].mean((2, 3)), local[:, :, top:].mean((2, 3))], 1)
    torch.testing.assert_close(feature[:, 128:], want)


def test_fblneck_refuses_a_map_lower_than_its_parts() -> None:
    model = hwnas.create_model("cdnet", width_mult=0.25, num_classes=7).eval()
    with pytest.raises(hwnas.errors.UsageError, match="height 1, FBLNeck input, expected at least 2 rows"):
        model.forward_head([torch.randn(1, 96, 1, 4), torch.randn(1, 128, 1, 1)])


# ---- 2. gradients zeroed, not freed ----------------------------------------------------------------------
def _searcher(tmp_path, **changes):
    from hwnas.search import SearchConfig, Searcher
    from hwnas.search._data import SearchData, TensorBatches

    g = torch.Generator().manual_seed(0)
    pids = torch.arange(4).repeat_interleave(8)
    images = torch.randn(32, 3, 32, 32, generator=g) + pids.view(-1, 1, 1, 1) * 0.3
    data = SearchData(TensorBatches(images, pids, 8, 4, seed=0, stream=0),
                      TensorBatches(images, pids, 8, 4, seed=0, stream=1), 4, "tiny in-memory data")
    settings = {"width_mult": 0.125, "image_size": (32, 32), "epochs": 1, "ids_per_batch": 2, "images_per_id": 4,
                "checkpoint_every": 0, **changes}
    config = SearchConfig(**settings)
    return Searcher(config, data, tmp_path, progress=False), data


def test_an_unselected_candidate_keeps_moving_by_momentum_and_weight_decay(tmp_path) -> None:
    searcher, data = _searcher(tmp_path)
    layer = searcher.model.layers[0]
    x, y = data.train.batch(0, 0)
    searcher._weight_step(x, y)  # all alphas equal: candidates 0 and 1 run
    xv, yv = data.val.batch(0, 0)
    searcher._alpha_step(xv, yv)
    with torch.no_grad():  # now select candidates 2 and 3 in every layer
        searcher.model.alphas.zero_()
        searcher.model.alphas[:, 2:4] = 1.0
    before = {i: layer.candidates[i][0].restore[0].weight.detach().clone() for i in (0, 5)}
    searcher._weight_step(x, y)
    # candidate 0 ran before: its gradient is zero, not None, so momentum and weight decay still move it
    assert layer.candidates[0][0].restore[0].weight.grad is not None
    assert not torch.equal(layer.candidates[0][0].restore[0].weight, before[0])
    # candidate 5 never ran: no gradient, unchanged
    assert layer.candidates[5][0].restore[0].weight.grad is None
    assert torch.equal(layer.candidates[5][0].restore[0].weight, before[5])


def test_training_zeroes_gradients_without_freeing_them(tmp_path, monkeypatch) -> None:
    from hwnas.data.datasets import Market1501
    from hwnas.data.synthetic import generate_synthetic_market
    from hwnas.training import ReIDData, TrainConfig, Trainer

    root = generate_synthetic_market(tmp_path / "m", num_ids=2, images_per_id=4, num_cameras=2, image_size=(32, 16),
                                     seed=1)
    config = TrainConfig(epochs=1, batch_size=8, num_instances=4, height=32, width=16, eval_every=0,
                         milestones=(1,))
    options = {"width_mult": 0.25, "num_classes": 2}
    trainer = Trainer(hwnas.create_model("cdnet", **options), ReIDData.from_dataset(Market1501(root)), config,
                      tmp_path / "out", model_name="cdnet", model_options=options, progress=False)
    calls = []
    original = trainer.optimizer.zero_grad
    monkeypatch.setattr(trainer.optimizer, "zero_grad",
                        lambda set_to_none=True: (calls.append(set_to_none), original(set_to_none=set_to_none)))
    trainer.train_epoch(1)
    assert calls == [False]


# ---- 5. validation split and batches -----------------------------------------------------------------------
def _items(counts: list[int]) -> list[tuple[str, int, int]]:
    return [(f"{pid}_{i}.jpg", pid, i % 2) for pid, n in enumerate(counts) for i in range(n)]


# n -> (train images, validation images found only in validation, validation images also in train), k = 4;
# n < 4: 4 + 4 draws with replacement
OFFICIAL_RULE = {1: None, 2: None, 3: None, 4: (4, 0, 4), 5: (4, 1, 3), 6: (4, 2, 2), 7: (4, 3, 1),
                 8: (4, 4, 0), 9: (8, 1, 3), 11: (8, 3, 1), 12: (8, 4, 0), 13: (12, 1, 3)}


@pytest.mark.parametrize("seed", [0, 1])
def test_official_split_follows_the_papers_code(seed: int) -> None:
    from hwnas.data.split import split_validation_official

    counts = list(OFFICIAL_RULE)
    items = _items(counts)
    train, val = split_validation_official(items, 4, generator=torch.Generator().manual_seed(seed))
    for pid, n in enumerate(counts):
        t = [it for it in train if it[1] == pid]
        v = [it for it in val if it[1] == pid]
        mine = {it for it in items if it[1] == pid}
        assert set(t) <= mine and set(v) <= mine
        if n < 4:  # both drawn with replacement from the identity's images
            assert len(v) == 4 and len(t) == 4
            continue
        only_val = [it for it in v if it not in set(t)]
        assert (len(t), len(only_val), len(v) - len(only_val)) == OFFICIAL_RULE[n], n
        # drawn without replacement: no repeats; the train split keeps the original order
        assert len(set(t)) == len(t) and len(set(v)) == len(v)
        assert t == sorted(t, key=items.index)
    again = split_validation_official(items, 4, generator=torch.Generator().manual_seed(seed))
    assert again == (train, val)


def test_official_split_small_identities_draw_with_replacement() -> None:
    from hwnas.data.split import split_validation_official

    items = _items([2] * 50)
    train, val = split_validation_official(items, 4, generator=torch.Generator().manual_seed(0))
    assert len(train) == len(val) == 200
    assert len(set(val)) == 100 - sum(1 for pid in range(50) if len({it for it in val if it[1] == pid}) == 1)
    assert any(len({it for it in val if it[1] == pid}) == 1 for pid in range(50))  # both draws hit one image


def test_search_data_defaults_to_the_official_split_and_augments_validation_batches(tmp_path) -> None:
    from hwnas.data.loaders import read_image
    from hwnas.data.synthetic import generate_synthetic_market
    from hwnas.data.transforms import build_transforms
    from hwnas.search import SearchConfig
    from hwnas.search.runner import prepare_data

    root = generate_synthetic_market(tmp_path / "m", num_ids=4, images_per_id=6, num_cameras=2, image_size=(32, 16),
                                     seed=1)
    config = SearchConfig(image_size=(32, 32), ids_per_batch=2, images_per_id=4)
    assert config.val_split == "official"
    data = prepare_data(config, root, threads=1)
    train_pids = [pid for _, pid, _ in data.train.items]
    val_pids = [pid for _, pid, _ in data.val.items]
    assert all(train_pids.count(p) == 4 and val_pids.count(p) == 4 for p in range(4))  # n = 6: 4 + 4, 2 shared
    assert len(set(data.train.items) & set(data.val.items)) == 8
    assert data.val.augment and not data.val_eval.augment and data.val_eval.items == data.val.items

    images, pids = data.val.batch(0, 0)
    plain, plain_pids = data.val_eval.batch(0, 0)  # same P x K order (same seed and stream), no augmentation
    assert torch.equal(pids, plain_pids)
    order = data.val.plan.batches(0)[0]
    test_tf = build_transforms(32, 32, train=False)
    for i, idx in enumerate(order):
        torch.testing.assert_close(plain[i], test_tf(read_image(data.val.items[idx][0])))
    assert not torch.equal(images, plain)  # flip / crop / erasing applied

    disjoint = prepare_data(config.replace(val_split="disjoint"), root, threads=1)
    assert not set(disjoint.train.items) & set(disjoint.val.items) and not disjoint.val.augment


@pytest.mark.parametrize("val_split", ["official", "disjoint"])
def test_each_alpha_step_draws_from_a_fresh_pk_pass(tmp_path, val_split: str) -> None:
    searcher, data = _searcher(tmp_path, val_split=val_split, epochs=2)
    calls = []
    batch = data.val.batch
    data.val.batch = lambda epoch, index: (calls.append((epoch, index)), batch(epoch, index))[1]
    assert searcher.run(stop_after_steps=6) is None
    steps = searcher.state.global_step
    assert steps == 6
    if val_split == "official":  # step g: the first batch of pass g (the paper: next(iter(val_loader)))
        assert calls[:steps] == [(g, 0) for g in range(steps)]
    else:  # the batches of pass 0 in order, then pass 1, ...
        in_order = [(p, i) for p in range(steps) for i in range(data.val.num_batches(p))]
        assert calls[:steps] == in_order[:steps] and data.val.num_batches(0) < steps
