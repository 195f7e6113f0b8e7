"""The ResNet stem's BatchNorm -> ReLU -> 3x3 max pool (stride 2) in training mode, computed on the pooled map.

Why: in a stem these three run on the largest map of the network (a 128x64 crop gives 16 x 64 x 32 per image in
``resnet_mini``), where each, and each backward pass (BN, ReLU, the pool's zero-filled scatter), is a memory-bound
pass over the map: about a tenth of an ``ours`` step of the demo on a CPU. ``benchmarks/bench_stem.py`` measures
what the fused form saves: 1.1-2.0x on the stem itself (the demo's and ResNet-50's map), 1.0-1.09x on a whole step.

Same function, fewer full-size passes. With per-channel scale a = gamma / sqrt(var + eps) and shift b = beta - a mean
(the batch statistics, as BatchNorm trains), relu(a x + b) is monotone in x: non-decreasing where a >= 0,
non-increasing where a < 0. So the max over a window of relu(a x + b) is relu(a m + b), with m the window's max of x
(a >= 0) or its min (a < 0), taken at the same position; the affine map and the ReLU then run on the 4x smaller
pooled map. The backward is BatchNorm's own formula with the upstream gradient nonzero only at the pooled positions:
dgamma and dbeta are sums over the pooled map, and dx = c1 * g + c2 + c3 * x per channel, where g is the pooled
gradient scattered back to the max positions. Only the batch statistics, the pool, and that last affine pass touch
the full map. The gradients are those of the composition (``tests/test_model_layers.py`` compares both, and runs
``gradcheck``), except where a window holds two entries whose a x + b round to the same float: the plain pool may
then route the gradient to the other one. Entries the ReLU clips get no gradient either way.

Eval mode (running statistics), ONNX export and anything without gradients use the plain composition.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# the torchvision ResNet stem pool: 3x3, stride 2, padding 1
KERNEL, STRIDE, PADDING = 3, 2, 1


def _channel(v: torch.Tensor) -> torch.Tensor:
    return v.view(1, -1, 1, 1)


class _BNReLUMaxPool(torch.autograd.Function):
    """relu(batch_norm(x)) then max_pool2d(3, 2, 1), training-mode statistics; returns (out, mean, biased var)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # BatchNorm's own statistics kernel (mean, biased variance): torch.var_mean over (0, 2, 3) of a channels-last
        # map takes about 15x as long
        mean, var = torch.batch_norm_update_stats(x, None, None, 0.0)
        rstd = (var + eps).rsqrt()
        scale = weight * rstd
        shift = bias - scale * mean
        flip = bool((scale < 0).any())
        sign = torch.where(scale < 0, -1.0, 1.0).to(x.dtype)
        # the window's max of x where the scale is >= 0, its min where it is < 0 (max of -x, negated back)
        pooled, idx = F.max_pool2d(x * _channel(sign) if flip else x, KERNEL, STRIDE, PADDING, return_indices=True)
        if flip:
            pooled = pooled * _channel(sign)
        out = torch.relu(pooled * _channel(scale) + _channel(shift))
        ctx.eps = eps
        ctx.save_for_backward(x, weight, pooled, idx, out, mean, rstd)
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, _gm: Any, _gv: Any  # type: ignore[override]
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None]:
        x, weight, pooled, idx, out, mean, rstd = ctx.saved_tensors
        g = grad * (out > 0)  # ReLU backward on the pooled map: dL/dy at the max positions
        n = x.shape[0] * x.shape[2] * x.shape[3]
        x_hat_pooled = (pooled - _channel(mean)) * _channel(rstd)
        sum_g = g.sum(dim=(0, 2, 3))  # sum over the full map of dL/dy (it is zero off the max positions)
        sum_gx = (g * x_hat_pooled).sum(dim=(0, 2, 3))  # sum of dL/dy * x_hat
        grad_x = None
        if ctx.needs_input_grad[0]:
            # BatchNorm's backward: dx = gamma rstd (dy - mean(dy) - x_hat mean(dy x_hat)) = c1 dy + c2 + c3 x
            c1 = weight * rstd
            c3 = -c1 * rstd * sum_gx / n
            c2 = -c1 * sum_g / n - c3 * mean
            grad_x = torch.addcmul(_channel(c2).to(x.dtype), x, _channel(c3).to(x.dtype))
            # dy is g scattered back to the max positions (overlapping windows add up), scaled by c1
            scattered = torch.ops.aten.max_pool2d_with_indices_backward(
                g * _channel(c1), x, [KERNEL, KERNEL], [STRIDE, STRIDE], [PADDING, PADDING], [1, 1], False, idx)
            grad_x += scattered
        grad_w = sum_gx if ctx.needs_input_grad[1] else None
        grad_b = sum_g if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


def bn_relu_maxpool(x: torch.Tensor, bn: nn.BatchNorm2d, pool: nn.MaxPool2d) -> torch.Tensor:
    """``pool(relu(bn(x)))`` for a ResNet stem: the fused training form when ``bn`` trains on batch statistics and
    ``pool`` is the 3x3 stride-2 padding-1 max pool, the plain composition otherwise (eval, export, other pools).

    The fused form updates ``bn``'s running statistics as BatchNorm would (momentum, unbiased variance)."""
    fused = (bn.training and bn.affine and bn.track_running_stats and bn.momentum is not None
             and torch.is_grad_enabled() and not torch.jit.is_tracing() and not torch.jit.is_scripting()
             and _is_stem_pool(pool) and x.dim() == 4 and x.dtype in (torch.float32, torch.float64)
             and x.numel() > x.shape[1])
    if not fused:
        return pool(F.relu(bn(x)))
    out, mean, var = _BNReLUMaxPool.apply(x, bn.weight, bn.bias, bn.eps)
    with torch.no_grad():
        n = x.numel() / x.shape[1]
        assert bn.running_mean is not None and bn.running_var is not None and bn.num_batches_tracked is not None
        bn.running_mean.lerp_(mean, bn.momentum)
        bn.running_var.lerp_(var * (n / (n - 1)), bn.momentum)
        bn.num_batches_tracked.add_(1)
    return out


def _is_stem_pool(pool: nn.Module) -> bool:
    def pair(v: Any) -> tuple[Any, Any]:
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (isinstance(pool, nn.MaxPool2d) and pair(pool.kernel_size) == (KERNEL, KERNEL)
            and pair(pool.stride) == (STRIDE, STRIDE) and pair(pool.padding) == (PADDING, PADDING)
            and pair(pool.dilation) == (1, 1) and not pool.ceil_mode and not pool.return_indices)
