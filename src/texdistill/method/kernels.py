"""The per-step kernels of `remat` and `first-order` (method/matching.py): pure functions of tensors.

Written twice: with autograd, which is the faster one eagerly (CPU, demo scale: grad 11 vs 17 ms, Hessian
product 42–48 vs 50 ms), and with torch.func, which torch.compile takes (it does not take
autograd.grad(create_graph=True)) and makes ~1.5–2× faster. tests/test_matching.py checks that both agree.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import grad, jvp, vjp

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # ℓ(θ, view, targets)


def _soft(targets: torch.Tensor) -> bool:
    """Soft-label targets (B, K) are learned, so the kernels differentiate through them too."""
    return targets.is_floating_point()


def _autograd_grad(loss: LossFn, theta, view, targets):
    with torch.enable_grad():
        theta = theta.detach().requires_grad_(True)
        return torch.autograd.grad(loss(theta, view, targets), theta)[0]


def gradient_with_graph(loss: LossFn, theta, view, targets):
    """g = ∇_θ ℓ with the graph of its computation, the θ leaf, and the other leaves a product of g
    differentiates: the view, and soft-label targets. Call under enable_grad."""
    theta, view = theta.detach().requires_grad_(True), view.detach().requires_grad_(True)
    targets = targets.detach().requires_grad_(_soft(targets))
    g, = torch.autograd.grad(loss(theta, view, targets), theta, create_graph=True)
    return g, theta, [view, targets] if _soft(targets) else [view]


def graph_products(g, theta, leaves, lam, with_theta: bool):
    """(g, H_θθ λ or None, H_xθ λ, H_yθ λ or None) from the graph of g = gradient_with_graph(…)[0]: the
    vector–Hessian products ∂⟨g, λ⟩/∂(θ, view, targets), H_θθ λ only `with_theta` (first-order needs none)."""
    products = list(torch.autograd.grad(g, [theta, *leaves] if with_theta else leaves, lam))
    h_theta = products.pop(0) if with_theta else None
    return g.detach(), h_theta, products[0], products[1] if len(products) == 2 else None


def _autograd_hessian_product(loss: LossFn, theta, view, targets, lam):
    with torch.enable_grad():
        return graph_products(*gradient_with_graph(loss, theta, view, targets), lam, with_theta=True)


def _autograd_cross_product(loss: LossFn, theta, view, targets, lam):
    with torch.enable_grad():
        return graph_products(*gradient_with_graph(loss, theta, view, targets), lam, with_theta=False)[2:]


def _func_grad(loss: LossFn, theta, view, targets):
    return grad(loss)(theta, view, targets)


def _func_hessian_product(loss: LossFn, theta, view, targets, lam):
    if _soft(targets):
        g, pullback = vjp(grad(loss), theta, view, targets)  # reverse-over-reverse
        return (g, *pullback(lam))
    g, pullback = vjp(lambda t, v: grad(loss)(t, v, targets), theta, view)
    return (g, *pullback(lam), None)


def _func_cross_product(loss: LossFn, theta, view, targets, lam):
    # forward-over-reverse: the derivative of ∇_view ℓ (and ∇_targets ℓ) along θ + ελ (the fastest compiled)
    if _soft(targets):
        return jvp(lambda t: grad(loss, argnums=(1, 2))(t, view, targets), (theta,), (lam,))[1]
    return jvp(lambda t: grad(loss, argnums=1)(t, view, targets), (theta,), (lam,))[1], None


EAGER_KERNELS = {"grad": _autograd_grad, "hessian_product": _autograd_hessian_product,
                 "cross_product": _autograd_cross_product}
COMPILABLE_KERNELS = {"grad": _func_grad, "hessian_product": _func_hessian_product,
                      "cross_product": _func_cross_product}
