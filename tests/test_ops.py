"""The torch.library op and the numpy entry point: contract, graph capture, module integration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from simam_deploy import ops
from simam_deploy.errors import InputError
from simam_deploy.nn import SimAM, set_simam_fused, simam_decomposed, simam_reference

pytestmark = pytest.mark.skipif(not ops.native_available(), reason="simam_deploy._C is not built")

SIMAM_OP = torch.ops.simam_deploy.simam.default


def _net(fused: bool) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), SimAM(fused=fused), nn.ReLU()).eval()


# ---- the op's contract ---------------------------------------------------------------------
def test_op_is_registered_under_the_shared_name():
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(torch.ops.simam_deploy.simam(x, 0.1, False), ops.simam(x, 0.1, False))


@pytest.mark.parametrize(
    "make", [lambda x: x.to(memory_format=torch.channels_last), lambda x: x.transpose(2, 3)]
)
def test_non_contiguous_input_is_made_contiguous(make):
    x = make(torch.randn(2, 4, 9, 7))
    assert not x.is_contiguous()
    y = ops.simam(x)
    assert y.is_contiguous()
    assert torch.equal(y, ops.simam(x.contiguous()))


@pytest.mark.parametrize("shape", [(0, 3, 4, 4), (2, 0, 4, 4), (2, 3, 0, 4)])
def test_empty_tensor_is_a_no_op(shape):
    y = ops.simam(torch.empty(shape))
    assert y.shape == shape and y.numel() == 0


@pytest.mark.parametrize(
    ("x", "words"),
    [
        (torch.randn(3, 4, 4), "4-D NCHW"),
        (torch.randn(1, 2, 3, 4, 4), "4-D NCHW"),
        (torch.randn(1, 2, 4, 4, dtype=torch.float64), "float32, float16 and bfloat16"),
        (torch.ones(1, 2, 4, 4, dtype=torch.int32), "float32, float16 and bfloat16"),
        (torch.randn(2, 3, 1, 1), "1x1 planes"),
    ],
)
def test_bad_tensors_raise_input_error(x, words):
    with pytest.raises(InputError, match=words):
        ops.simam(x)


@pytest.mark.parametrize("e_lambda", [0.0, -1e-4, float("nan"), float("inf")])
def test_bad_lambda_raises_input_error(e_lambda):
    with pytest.raises(InputError, match="e_lambda"):
        ops.simam(torch.randn(1, 2, 4, 4), e_lambda)


def test_input_error_carries_a_hint():
    with pytest.raises(InputError) as info:
        ops.simam(torch.randn(1, 2, 4, 4, dtype=torch.float64))
    assert info.value.hint and "x.float()" in info.value.hint


def test_backward_matches_the_decomposed_gradient():
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    g = torch.randn(2, 3, 6, 5)
    (grad_fused,) = torch.autograd.grad(ops.simam(x, 0.1), x, g)
    (grad_ref,) = torch.autograd.grad(simam_decomposed(x, 0.1), x, g)
    torch.testing.assert_close(grad_fused, grad_ref, rtol=1e-4, atol=1e-5)


# ---- modules ------------------------------------------------------------------------------
def test_fused_module_equals_reference():
    x = torch.randn(2, 5, 13, 11) * 3 + 2
    y = SimAM(e_lambda=0.1, fused=True)(x)
    ref = simam_reference(x, 0.1)
    assert ((y.double() - ref).abs() <= 1e-5 * ref.abs()).all()


def test_set_simam_fused_swaps_every_module_and_keeps_outputs():
    model = nn.Sequential(_net(False), SimAM(), nn.Conv2d(8, 4, 1), SimAM(unbiased=False))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        assert set_simam_fused(model, True) == 3
        after = model(x)
    assert all(m.fused for m in model.modules() if isinstance(m, SimAM))
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


# ---- graph capture: one op ------------------------------------------------------------------
def test_torch_compile_fullgraph_sees_one_simam_op():
    graphs: list[torch.fx.GraphModule] = []

    def recording_backend(gm: torch.fx.GraphModule, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    model = _net(fused=True)
    x = torch.randn(2, 3, 12, 12)
    compiled = torch.compile(model, backend=recording_backend, fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x))
    assert len(graphs) == 1
    targets = [node.target for node in graphs[0].graph.nodes if node.op == "call_function"]
    simam_targets = (torch.ops.simam_deploy.simam, SIMAM_OP)  # dynamo records the overload packet
    assert sum(t in simam_targets for t in targets) == 1
    assert torch.sigmoid not in targets and torch.mean not in targets


def test_torch_export_sees_one_simam_op():
    model = _net(fused=True)
    x = torch.randn(2, 3, 12, 12)
    exported = torch.export.export(model, (x,))
    targets = [node.target for node in exported.graph.nodes if node.op == "call_function"]
    assert targets.count(SIMAM_OP) == 1
    assert not any("sigmoid" in str(t) or "mean" in str(t) for t in targets)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x))


def test_fake_tensor_propagation_gives_shape_and_dtype():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        y = ops.simam(torch.empty(4, 8, 10, 10, dtype=torch.float16))
    assert y.shape == (4, 8, 10, 10) and y.dtype == torch.float16


# ---- numpy ----------------------------------------------------------------------------------
def _numpy_dtypes():
    out = [np.float32, np.float16]
    try:
        import ml_dtypes

        out.append(ml_dtypes.bfloat16)
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("dtype", _numpy_dtypes(), ids=lambda d: np.dtype(d).name)
def test_numpy_entry_equals_the_torch_op(dtype):
    x = (np.random.default_rng(0).standard_normal((2, 3, 10, 9)) * 2).astype(dtype)
    y = ops.simam_numpy(x, 0.1, True)
    assert y.dtype == x.dtype and y.shape == x.shape
    as_torch = (
        torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16)
        if x.dtype.name == "bfloat16"
        else torch.from_numpy(x)
    )
    expected = ops.simam(as_torch, 0.1, True)
    got = (
        torch.from_numpy(y.view(np.uint16)).view(torch.bfloat16)
        if y.dtype.name == "bfloat16"
        else torch.from_numpy(y)
    )
    assert torch.equal(got, expected)


def test_numpy_entry_leaves_input_alone_and_accepts_views():
    base = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)
    x = base.transpose(0, 1, 3, 2)
    copy = x.copy()
    y = ops.simam_numpy(x)
    assert np.array_equal(x, copy)
    assert np.array_equal(y, ops.simam_numpy(np.ascontiguousarray(x)))


@pytest.mark.parametrize(
    ("x", "words"),
    [
        (np.zeros((2, 3, 4, 4), np.float64), "float32, float16 and bfloat16"),
        (np.zeros((3, 4, 4), np.float32), "4-D NCHW"),
        ([[1.0]], "numpy array"),
    ],
)
def test_numpy_entry_rejects_bad_input(x, words):
    with pytest.raises(InputError, match=words):
        ops.simam_numpy(x)


# ---- the CPU worker pool survives fork() (DataLoader workers) ---------------------------------
def _simam_in_child(x: torch.Tensor, expected: torch.Tensor, queue) -> None:
    # As DataLoader workers do: torch's own OpenMP pool is not usable after fork.
    torch.set_num_threads(1)
    queue.put(bool(np.array_equal(ops.simam(x).numpy(), expected.numpy())))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork()")
def test_forked_child_can_run_the_op_after_the_parent_did():
    import multiprocessing

    x = torch.randn(4, 64, 32, 32)  # big enough to be split across the pool
    expected = ops.simam(x)  # the parent's pool now has live worker threads
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_simam_in_child, args=(x, expected, queue))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the forked child hung or crashed"
    assert queue.get(timeout=5) is True
