"""Winograd F(2x2, 3x3): the transforms' arithmetic, and which convolutions the pass leaves direct."""

import numpy as np
import pytest

from workbench.compiler import winograd


def test_one_tile_through_the_sparse_input_transform_equals_the_direct_convolution():
    A, B, _ = winograd._transform_matrices()
    rng = np.random.default_rng(0)
    tile, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    # B^T d B from the 2 x 2 nonzero terms data_pack sums, as it indexes them
    terms = winograd._nonzeros(B)
    packed = np.array([[sum(rc[eps] * cc[nu] * tile[rr[eps], rcol[nu]] for rr, rc in terms for rcol, cc in terms)
                        for nu in range(4)] for eps in range(4)])
    assert np.allclose(packed, B.T @ tile @ B)
    weights = winograd.transformed_weights(g.reshape(3, 3, 1, 1).astype(np.float32))[:, 0, 0].reshape(4, 4)
    out = A.T @ (weights * packed) @ A
    direct = [[np.sum(tile[y:y + 3, x:x + 3] * g) for x in range(2)] for y in range(2)]
    assert np.allclose(out, direct, atol=1e-5)


def _one_conv(channels=128, size=14, groups=1, strides=(1, 1), padding=(1, 1, 1, 1), dtype="float32"):
    from tvm import relax

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, size, size, channels), dtype))
    weights = np.zeros((3, 3, channels // groups, channels), dtype)
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit_output(bb.emit(relax.op.nn.conv2d(
                x, relax.const(weights), strides=strides, padding=padding, groups=groups,
                data_layout="NHWC", kernel_layout="HWIO", out_layout="NHWC")))
        bb.emit_func_output(y)
    return bb.get()


def _rewritten(mod) -> bool:
    return "winograd_data_pack" in winograd.winograd_pass()(mod).script()


def test_the_shapes_measured_to_pay_are_rewritten():
    assert _rewritten(_one_conv(128, 28)) and _rewritten(_one_conv(256, 14)) and _rewritten(_one_conv(128, 7))


@pytest.mark.parametrize("conv", [
    dict(channels=64, size=56),  # the input transform costs more than the multiply saves
    dict(channels=512, size=7),  # transformed weights 16/9 the size, on layers waiting on weights
    dict(strides=(2, 2)),
    dict(groups=2),
    dict(padding=(0, 1, 1, 1)),
    dict(dtype="float16"),
])
def test_other_convolutions_stay_direct(conv):
    assert not _rewritten(_one_conv(**conv))
