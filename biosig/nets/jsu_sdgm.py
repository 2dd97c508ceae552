"""JSU-SDGM: a learned Johnson SU translation layer feeding an SDGM head.

``t = γ + δ ⊙ asinh((z - ξ) / λ)`` (ξ, λ > 0, δ > 0, γ learned per feature) is shared by all
classes; the SDGM head on ``t`` makes each class a sparse mixture of Gaussians in ``t``, i.e. of
multivariate Johnson SU densities in ``z`` (a Gaussian in ``t`` with any mean and covariance is a
Johnson SU density with correspondingly shifted γ and scaled δ). So the model is skew- and
kurtosis-aware like the JSU network, multimodal like SDGM, and keeps SDGM's sparsity.

The translation's log-Jacobian ``Σ_d [log δ_d - ½ log(λ_d² + (z_d - ξ_d)²)]`` is the same for
every class, so it cancels in the posterior; it is added to the log-marginal so that the
out-of-distribution score is a density of ``z``, not of ``t``.

Note that in the posterior δ and γ are redundant with the head's quadratic weights (an affine
map per feature); they matter for the density and for which weights ARD finds worth keeping.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from biosig.nets.jsu import JohnsonSUTranslation
from biosig.nets.sdgm import FrozenNet, GaussianMixtureDensity, SDGMHead


class JSUSDGMNet(nn.Module):
    """Johnson SU translation (learned ξ, λ, δ, γ) → SDGM head.

    Parameters
    ----------
    translation : dict
        Initial ``location``, ``scale``, ``tailweight``, ``skewness`` (each shape (D,),
        standardised units), as :func:`~biosig.nets.jsu.initial_translation` returns.
    n_classes : int
        Number of classes ``C``.
    n_components : int
        Initial components per class.
    covariance : {"full", "diag"}
        Quadratic expansion of ``t``.
    prune_threshold : float
        ``log α`` at which an ARD weight is pruned.
    """

    def __init__(self, translation: dict, n_classes: int, n_components: int = 3,
                 covariance: str = "full", prune_threshold: float = 3.0):
        super().__init__()
        self.translation = JohnsonSUTranslation(**translation, learn=True)
        n_features = self.translation.location.shape[0]
        self.head = SDGMHead(n_features, n_classes, n_components, covariance, prune_threshold)
        self.density: GaussianMixtureDensity | None = None

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """Inputs of the SDGM head: the translated features ``t``."""
        return self.translation(z)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Class log-scores (N, C) (class-independent Jacobian omitted)."""
        return self.head(self.translation(z))

    def kl(self) -> torch.Tensor:
        return self.head.kl()

    @torch.no_grad()
    def fit_density(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the generative reading: one Gaussian in ``t`` per live component, weighted by
        its responsibilities — each a multivariate Johnson SU density in ``z``."""
        t = self.translation(z)
        weights = self.head.responsibilities(t, y).reshape(len(y), -1)
        self.density = GaussianMixtureDensity.fit(t, weights, self.head.expansion.covariance)

    def frozen(self) -> FrozenNet:
        density = None if self.density is None else copy.deepcopy(self.density)
        return FrozenNet(self.head.frozen(), translation=self.translation.frozen(),
                         density=density)
