"""Every registered model at the paper's four resolutions, in train and eval mode."""
import pytest
import torch

import hwnas
from hwnas.errors import UsageError
from hwnas.models import ReIDOutput, model_options
from hwnas.space import PRESETS

SIZES = [(256, 128), (192, 96), (128, 64), (64, 32)]
CONFIGS = [("cnet", {"genotype": g}) for g in ("cnet-top1", "cnet-top2", "cnet-top3", "cnet-top4")] + [
    ("cdnet", {"genotype": g}) for g in ("cdnet-top1", "cdnet-top2", "cdnet-top3", "cdnet-top4")] + [
    ("osnet", {"width_mult": w}) for w in (1.0, 0.75, 0.5, 0.25)] + [
    ("osnet", {"neck": "fblneck"}), ("resnet50_bot", {})]


def _expected_outputs(model):
    neck = model.config.get("neck")
    return 2 if neck == "fblneck" else 1


@pytest.mark.parametrize("name,options", CONFIGS, ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())))
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_train_and_eval(name, options, size):
    torch.manual_seed(0)
    model = hwnas.create_model(name, num_classes=7, **options)
    x = torch.randn(2, 3, *size)
    out = model.train()(x)
    assert isinstance(out, ReIDOutput)
    n = _expected_outputs(model)
    assert len(out.logits) == n and len(out.features) == n
    assert all(lg.shape == (2, 7) for lg in out.logits)
    with torch.no_grad():
        feat = model.eval()(x)
    assert isinstance(feat, torch.Tensor) and feat.shape == (2, model.num_features)


def test_registry_covers_all_models():
    for name in hwnas.list_models():
        assert "num_classes" in model_options(name)


def test_unknown_model_lists_names():
    with pytest.raises(UsageError, match="unknown model 'cdnet2', model name, expected one of .*cdnet"):
        hwnas.create_model("cdnet2")


def test_unknown_option():
    with pytest.raises(UsageError, match="unknown option.*widht.*expected"):
        hwnas.create_model("cdnet", widht_mult=1.0)


def test_unknown_neck():
    with pytest.raises(UsageError, match="unknown neck.*expected"):
        hwnas.create_model("cdnet", neck="bn")


@pytest.mark.parametrize("neck,dim", [("bnneck", 512), ("blneck", 512), ("fblneck", 768)])
def test_neck_inference_dims(neck, dim):
    model = hwnas.create_model("cdnet", neck=neck).eval()
    assert model.num_features == dim


def test_eval_does_not_run_training_only_parts():
    model = hwnas.create_model("cdnet").eval()
    called = []
    for part in (model.neck.global_head, model.neck.local_head):
        part.register_forward_hook(lambda *a: called.append(1))
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 32))
    assert not called


def test_fblneck_local_feature_is_two_halves():
    torch.manual_seed(0)
    model = hwnas.create_model("cdnet").eval()
    mid, last = [torch.randn(1, 384, 16, 8), torch.randn(1, 512, 16, 8)]
    feat = model.forward_head([mid, last])
    local = model.neck.local_conv(mid)
    top, bottom = local[:, :, :8].mean((2, 3)), local[:, :, 8:].mean((2, 3))
    torch.testing.assert_close(feat[:, 512:], torch.cat([top, bottom], 1))


def test_genotype_object_path_and_string(tmp_path):
    g = PRESETS["cdnet-top3"]
    path = g.save(tmp_path / "g.json")
    for spec in (g, str(path), g.tostr()):
        assert hwnas.create_model("cdnet", genotype=spec).config["genotype"] == g.tostr()
