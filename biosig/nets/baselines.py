"""Baselines behind the same interface: LDA (as a linear layer) and a small MLP.

Both give class log-scores. LDA is a generative model (Gaussian classes with a shared
covariance), so its out-of-distribution score is its own ``-log p(x)``; the MLP has no density
and uses the energy ``-logsumexp_c(logit_c)`` (Liu et al. 2020). (LDA's energy would be useless:
its logits are linear, so the energy falls without bound far from the data.)
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from biosig.nets.sdgm import FrozenNet, GaussianMixtureDensity, with_floor


def lda_log_joint_weights(means: np.ndarray, covariance: np.ndarray,
                          priors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weights of the LDA class log-joints ``log P(c) + log N(z; μ_c, Σ)`` minus shared terms.

    ``logit_c(z) = zᵀ Σ⁻¹ μ_c - ½ μ_cᵀ Σ⁻¹ μ_c + log P(c)``; the quadratic ``-½ zᵀ Σ⁻¹ z`` and
    the normaliser are the same for every class and left out.

    Parameters
    ----------
    means : ndarray, shape (C, D)
    covariance : ndarray, shape (D, D)
        Shared (possibly shrunk) within-class covariance.
    priors : ndarray, shape (C,)

    Returns
    -------
    weight : ndarray, shape (C, D)
    bias : ndarray, shape (C,)
    """
    # lstsq, as scikit-learn's "lsqr" solver, copes with a singular covariance.
    weight = np.linalg.lstsq(covariance, means.T, rcond=None)[0].T
    bias = -0.5 * np.sum(means * weight, axis=1) + np.log(priors)
    return weight, bias


def lda_net(means: np.ndarray, covariance: np.ndarray, priors: np.ndarray) -> FrozenNet:
    """LDA as an inference network: a constant linear layer for the class log-scores and the
    shared-covariance Gaussian mixture for the log-density.

    Parameters
    ----------
    means : ndarray, shape (C, D)
    covariance : ndarray, shape (D, D)
    priors : ndarray, shape (C,)
    """
    weight, bias = lda_log_joint_weights(means, covariance, priors)
    linear = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight))
        linear.bias.copy_(torch.as_tensor(bias))
    linear.requires_grad_(False)
    shared = np.repeat(with_floor(covariance)[None], len(priors), axis=0)
    density = GaussianMixtureDensity(np.log(priors), means, shared)
    return FrozenNet(linear, density=density)


class MLPNet(nn.Module):
    """Fully connected ReLU network ``z`` (N, D) → logits (N, C).

    Parameters
    ----------
    n_features, n_classes : int
    hidden_layer_sizes : sequence of int
        Width of each hidden layer (none: multinomial logistic regression).
    """

    def __init__(self, n_features: int, n_classes: int, hidden_layer_sizes=(64,)):
        super().__init__()
        layers: list[nn.Module] = []
        previous = n_features
        for size in hidden_layer_sizes:
            layers += [nn.Linear(previous, int(size)), nn.ReLU()]
            previous = int(size)
        layers.append(nn.Linear(previous, n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)

    def frozen(self) -> FrozenNet:
        layers = copy.deepcopy(self.layers).requires_grad_(False).eval()
        return FrozenNet(layers)
