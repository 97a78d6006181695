"""hwnas.deploy sessions: every runtime (eager, cpp, onnxruntime, openvino) gives the eval model's features, for
whole networks and for the single parts latency tables time; export to ONNX / OpenVINO IR and reload; clear errors
for bad arguments and for runtimes that are not installed. Tiny shapes (width 0.25, 32x16)."""
from __future__ import annotations

import builtins

import pytest
import torch
from test_deploy import SIZE, atol_for, trained_like

from hwnas.deploy import (
    RUNTIMES,
    available_runtimes,
    check_parity,
    compile_module,
    export,
    heap_state,
    load_session,
    runtime_status,
    session,
    steady_heap,
)
from hwnas.errors import OutputError, RuntimeUnavailableError, UsageError
from hwnas.latency.measure import HeadPath
from hwnas.models.necks import build_neck
from hwnas.space.blocks import CBlock, CDBlock, DownSample, Stem

STATUS = available_runtimes()


def usable(runtime: str):
    ok, why = STATUS[runtime]
    return pytest.param(runtime, marks=pytest.mark.skipif(not ok, reason=f"{runtime} unavailable: {why}"))


ALL = [usable(r) for r in RUNTIMES]
# Each runtime sums in its own order (cpp's own loops; onnxruntime and OpenVINO their own algorithms and blocked
# NCHWc layouts), and the eager reference itself moves by ~1e-5 of max |feature| with torch's thread count, so
# float32 rounding differs from the reference by more than eager's own (e.g. cnet-top1/bnneck at 48x16: cpp
# 4.5e-5, onnxruntime 3.8e-5, OpenVINO 4.0e-5 of max |feature| 32)
ROUNDING = {"eager": 1.0, "cpp": 2.0, "onnxruntime": 4.0, "openvino": 4.0}


def tolerance(runtime: str, model: torch.nn.Module, images: torch.Tensor) -> float:
    """Absolute tolerance for ``runtime``'s features: :func:`atol_for` of the eval model's, times the runtime's
    rounding factor."""
    with torch.no_grad():
        return ROUNDING[runtime] * atol_for(model(images))


@pytest.mark.parametrize("runtime", ALL)
@pytest.mark.parametrize("batch", [None, 3], ids=["dynamic-batch", "batch-3"])
def test_session_matches_eval_model(runtime: str, batch: int | None) -> None:
    model = trained_like("cdnet")
    sess = session(model, runtime, input_size=SIZE, batch=batch, threads=1)
    assert sess.runtime == runtime and sess.threads == 1 and sess.input_shapes == ((batch, 3, *SIZE),)
    for n in ([1, 3] if batch is None else [3]):
        images = torch.randn(n, 3, *SIZE, generator=torch.Generator().manual_seed(n))
        atol = tolerance(runtime, model, images)
        parity = check_parity(sess, model, images, atol=atol, rtol=1e-4)
        assert parity.ok and parity.max_abs < atol, parity
        out = sess(images)
        assert out.shape == (n, model.num_features) and out.dtype == torch.float32 and not out.is_inference()


@pytest.mark.parametrize("runtime", ALL)
def test_cnet_with_other_necks(runtime: str) -> None:
    model = trained_like("cnet", genotype="cnet-top1", neck="bnneck")
    images = torch.randn(2, 3, 48, 16, generator=torch.Generator().manual_seed(0))  # 3x1 final maps
    atol = tolerance(runtime, model, images)
    parity = check_parity(session(model, runtime, input_size=(48, 16), threads=2), model, images, atol=atol, rtol=1e-4)
    assert parity.ok and parity.max_abs < atol, parity


def _parts() -> list[tuple[str, torch.nn.Module, list[tuple[int, ...]]]]:
    torch.manual_seed(0)
    return [("stem", Stem(16), [(2, 3, 32, 16)]), ("downsample", DownSample(24), [(2, 24, 8, 4)]),
            ("cblock", CBlock(16, 24, 3, 7), [(1, 16, 5, 3)]), ("cdblock-r2", CDBlock(24, 24, 5, 9, 2), [(2, 24, 8, 4)]),
            ("head", HeadPath(build_neck("fblneck", (24, 32), 5)), [(2, 24, 2, 1), (2, 32, 2, 1)])]


@pytest.mark.parametrize("runtime", ALL)
def test_compiled_parts_match_eager(runtime: str) -> None:
    for name, module, shapes in _parts():
        trained = trained_like_module(module)
        xs = [torch.randn(s, generator=torch.Generator().manual_seed(1)) for s in shapes]
        with torch.no_grad():
            want = trained(*xs)
        sess = compile_module(trained, xs, runtime, threads=1, name=name)
        torch.testing.assert_close(sess(*xs), want, atol=1e-5, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
        call = sess.bind(*xs)  # what latency tables time: runs without converting anything
        call()


def trained_like_module(module: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
            c = m.num_features
            m.running_mean.copy_(torch.rand(c, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
    return module.eval()


@pytest.mark.slow
@pytest.mark.parametrize("fmt,runtime", [("onnx", "onnxruntime"), ("onnx", "openvino"), ("openvino", "openvino")])
def test_export_and_reload(fmt: str, runtime: str, tmp_path) -> None:
    if not STATUS[runtime][0]:
        pytest.skip(STATUS[runtime][1])
    model = trained_like("cdnet")
    path = tmp_path / ("m.onnx" if fmt == "onnx" else "m.xml")
    assert export(model, path, format=fmt, input_size=SIZE) == path
    assert path.is_file() and (fmt == "onnx" or path.with_suffix(".bin").is_file())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({path.name, path.with_suffix(".bin").name}
                                                                if fmt == "openvino" else {path.name})
    images = torch.randn(2, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    assert check_parity(load_session(path, runtime, threads=1), model, images).ok
    with pytest.raises(OutputError, match="exists"):
        export(model, path, format=fmt, input_size=SIZE)


def test_bad_arguments_are_usage_errors(tmp_path) -> None:
    model = trained_like("cnet")
    with pytest.raises(UsageError, match="unknown runtime 'tensorrt', runtime argument, expected one of eager"):
        session(model, "tensorrt")
    with pytest.raises(UsageError, match="threads 0, threads argument"):
        session(model, "eager", threads=0)
    with pytest.raises(UsageError, match="batch 0, batch argument"):
        session(model, "eager", batch=0)
    with pytest.raises(UsageError, match=r"input size \(8, 16\)"):
        session(model, "eager", input_size=(8, 16))
    with pytest.raises(UsageError, match="expected a ReIDModel"):
        session(torch.nn.Linear(2, 2), "eager")
    sess = session(model, "eager", input_size=SIZE, batch=2)
    with pytest.raises(UsageError, match=r"input 0 of shape \(3, 3, 32, 16\).*expected a float32 CPU tensor of shape "
                                         r"2x3x32x16"):
        sess(torch.zeros(3, 3, *SIZE))
    with pytest.raises(UsageError, match="float32"):
        sess(torch.zeros(2, 3, *SIZE, dtype=torch.float64))
    with pytest.raises(UsageError, match="does not exist"):
        load_session(tmp_path / "none.onnx", "onnxruntime")
    with pytest.raises(UsageError, match="expected onnxruntime or openvino"):
        load_session(tmp_path / "none.onnx", "cpp")
    with pytest.raises(UsageError, match="unknown export format"):
        export(model, tmp_path / "m.trt", format="tensorrt")
    with pytest.raises(UsageError, match="ending in .xml"):
        export(model, tmp_path / "m.onnx", format="openvino")


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_missing_runtime_says_what_to_install(runtime: str, monkeypatch) -> None:
    real_import = builtins.__import__

    def no_runtime(name, *args, **kwargs):
        if name == runtime or name.startswith(runtime + "."):
            raise ImportError(f"No module named '{runtime}'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_runtime)
    monkeypatch.setattr("importlib.import_module", lambda name, *a: no_runtime(name))
    ok, why = runtime_status(runtime)
    assert not ok and f"pip install hwnas[{runtime}]" in why
    with pytest.raises(RuntimeUnavailableError, match=rf"{runtime} is not installed.*pip install hwnas\[{runtime}\]"):
        session(trained_like("cnet"), runtime, input_size=SIZE)


def test_steady_heap_is_recorded_and_idempotent() -> None:
    first = steady_heap()
    assert first == steady_heap() == heap_state()
    assert first["allocator"] in ("glibc", "unknown")
