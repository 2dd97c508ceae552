"""scikit-learn-compatible classifiers around the biosig networks.

Every estimator follows the scikit-learn contract: ``__init__`` only stores its arguments,
``fit(X, y)`` returns ``self``, learned state ends in ``_`` (``classes_``, ``n_features_in_``,
``mean_``, ``scale_``, ``net_``, ``n_iter_``, ``fit_time_s_``), and ``predict``,
``predict_proba``, ``decision_function`` validate their input. On top of that each has
``ood_score(X)`` (higher = further out of the training distribution) and ``inference_graph()``
(the exact torch graph :func:`biosig.nets.export.export_onnx` writes to ONNX).

Inputs are standardised (``z = (x - mean_) / scale_``, learned in ``fit``) before the network;
the standardisation is part of the inference graph. Training is seeded from ``random_state``
without touching torch's global random state, runs on the CPU by default (``device="cuda"``
or ``"auto"`` for a GPU: on an H200 beside 16 CPU threads only the full JSU network trained
faster there, 1.4-1.7x, and the SDGM 1.5-1.9x slower; ``benchmarks/train_device.py``), and
shows a tqdm progress bar with ``verbose=True``. Prediction runs the frozen graph in
float64 on the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import time

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from biosig._checks import BiosigError, check_int, check_option, check_positive
from biosig.nets.baselines import MLPNet, lda_net
from biosig.nets.export import InferenceGraph
from biosig.nets.jsu import (
    TRANSLATIONS,
    FullJSUNet,
    SharedJSUNet,
    bake_parametrizations,
    fit_shared_jsu,
    initial_translation,
)
from biosig.nets.jsu_sdgm import JSUSDGMNet
from biosig.nets.sdgm import COVARIANCES, SDGMNet

logger = logging.getLogger(__name__)

#: Rows per forward pass at prediction time (bounds memory: Reading A holds N·C·H values).
_PREDICT_CHUNK = 1024
#: A feature whose standard deviation is below this (relative to its magnitude) is constant.
_CONSTANT_RTOL = 1e-12


def resolve_device(device) -> torch.device:
    """``"auto"`` → CUDA if torch sees a GPU, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise BiosigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BiosigError("device 'cuda' was asked for but torch sees no GPU")
    return resolved


@contextlib.contextmanager
def seeded_torch(random_state, device: torch.device):
    """Seed torch from ``random_state`` inside the block, restoring its global state after."""
    seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield seed


def standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation of ``X`` (a constant feature gets scale 1)."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    constant = scale <= _CONSTANT_RTOL * np.maximum(np.abs(mean), 1.0)
    return mean, np.where(constant, 1.0, scale)


def train_minibatch(net, z, y, loss_fn, *, epochs: int, batch_size: int, learning_rate: float,
                    weight_decay: float = 0.0, verbose: bool = False, desc: str = "") -> dict:
    """Train ``net`` with Adam on shuffled mini-batches for a fixed number of epochs.

    Parameters
    ----------
    net : nn.Module
    z : Tensor, shape (N, D)
        Standardised inputs (on the training device).
    y : Tensor of int64, shape (N,)
        Class indices.
    loss_fn : callable
        ``loss_fn(net, z_batch, y_batch, epoch) -> scalar Tensor``.
    epochs, batch_size : int
    learning_rate, weight_decay : float
        Adam settings.
    verbose : bool
        Show a progress bar (one tick per epoch, with the epoch's mean loss).
    desc : str
        Progress bar label.

    Returns
    -------
    dict
        ``n_iter`` (epochs run) and ``loss`` (mean loss of the last epoch).
    """
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    n_samples = len(y)
    n_batches = max(1, int(np.ceil(n_samples / batch_size)))
    epoch_loss = torch.zeros((), device=z.device)
    with tqdm(total=epochs, disable=not verbose, desc=desc, unit="epoch") as progress:
        for epoch in range(epochs):
            net.train()
            epoch_loss = torch.zeros((), device=z.device)
            order = torch.randperm(n_samples, device=z.device)
            # Near-equal batches: no tiny last batch with a noisy gradient.
            for batch in torch.tensor_split(order, n_batches):
                loss = loss_fn(net, z[batch], y[batch], epoch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                epoch_loss = epoch_loss + loss.detach() * len(batch)
            if verbose:
                progress.set_postfix(loss=f"{float(epoch_loss) / n_samples:.4f}", refresh=False)
            progress.update(1)
    net.eval()
    return {"n_iter": epochs, "loss": float(epoch_loss) / n_samples}


def _check_real(value, name: str) -> float:
    """Return ``value`` as a finite float (any sign)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise BiosigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise BiosigError(f"{name} must be finite, got {value!r}")
    return out


def cross_entropy_loss(net, z, y, epoch):
    """Mean cross-entropy of ``net(z)``: the loss of the plain discriminative nets."""
    return torch.nn.functional.cross_entropy(net(z), y)


class _NetClassifier(ClassifierMixin, BaseEstimator):
    """Shared machinery: validation, standardisation, seeding, devices, the inference graph.

    Subclasses implement ``_check_hyperparameters()``, ``_fit_net(z, y, device)`` returning
    ``(net, info)`` where ``net.frozen()`` gives the constant-only network, and set
    ``_density`` (True if the network's log-marginal is a log-density of its input).
    """

    _density = True

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, X, y):
        """Fit the classifier.

        Parameters
        ----------
        X : array_like, shape (n_samples, n_features)
            Feature vectors (raw; standardised internally).
        y : array_like, shape (n_samples,)
            Class labels (any hashable, sortable type); at least two classes.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise BiosigError(
                f"{type(self).__name__} needs samples of at least 2 classes; got 1 class "
                f"({classes[0]!r})"
            )
        self._check_hyperparameters()
        device = resolve_device(getattr(self, "device", "cpu"))
        self.classes_ = classes
        self.mean_, self.scale_ = standardisation(X)
        z = (X - self.mean_) / self.scale_
        started = time.perf_counter()
        with seeded_torch(getattr(self, "random_state", None), device):
            net, info = self._fit_net(z, y_index.astype(np.int64), device)
        self.fit_time_s_ = time.perf_counter() - started
        # The trained network, with its positive parameters baked to values (picklable).
        self.net_ = bake_parametrizations(net.cpu().eval())
        self.n_iter_ = int(info.get("n_iter", 1))
        self.graph_ = InferenceGraph(self.mean_, self.scale_, self.net_.frozen(),
                                     density=self._density).copy_as(torch.float64)
        logger.info("fitted %s on %d samples × %d features, %d classes, in %.2f s (%s)",
                    type(self).__name__, X.shape[0], X.shape[1], len(classes),
                    self.fit_time_s_, device)
        return self

    def _check_hyperparameters(self) -> None:
        pass

    def _fit_net(self, z: np.ndarray, y: np.ndarray, device: torch.device):
        raise NotImplementedError

    @staticmethod
    def _tensors(z, y, device, dtype=torch.float32):
        return (torch.as_tensor(z, dtype=dtype, device=device),
                torch.as_tensor(y, dtype=torch.long, device=device))

    # -- inference -----------------------------------------------------------------------------
    def inference_graph(self) -> InferenceGraph:
        """The fitted graph ``raw features → (logits, ood_score)`` (float64, CPU), as exported."""
        check_is_fitted(self, "graph_")
        return self.graph_

    def _forward(self, X) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "graph_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        logits, ood = [], []
        with torch.no_grad():
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                chunk = torch.from_numpy(np.ascontiguousarray(X[start:start + _PREDICT_CHUNK]))
                out_logits, out_ood = self.graph_(chunk)
                logits.append(out_logits.numpy())
                ood.append(out_ood.numpy())
        if not logits:
            return np.zeros((0, len(self.classes_))), np.zeros(0)
        return np.concatenate(logits), np.concatenate(ood)

    def decision_function(self, X) -> np.ndarray:
        """Class log-scores, shape (n_samples, n_classes); for two classes the log-odds of
        ``classes_[1]``, shape (n_samples,)."""
        logits, _ = self._forward(X)
        if len(self.classes_) == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_log_proba(self, X) -> np.ndarray:
        """Log-posteriors, shape (n_samples, n_classes)."""
        logits, _ = self._forward(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict_proba(self, X) -> np.ndarray:
        """Posteriors ``P(c | x)``, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """Most probable class label per sample."""
        logits, _ = self._forward(X)
        return self.classes_[np.argmax(logits, axis=1)]

    def ood_score(self, X) -> np.ndarray:
        """Out-of-distribution score per sample, shape (n_samples,); higher = less typical.

        JSU, SDGM, JSU-SDGM and LDA: ``-log p(x)`` of the model's normalised density (for the
        discriminative networks their generative reading: maximum-likelihood Gaussians of the
        training data in the network's own translated space, one per class or live component,
        with the translation's Jacobian). MLP: the energy ``-logsumexp_c(logit_c)``.
        """
        _, ood = self._forward(X)
        return ood


class _SDGMFamily(_NetClassifier):
    """Training shared by the SDGM and JSU-SDGM classifiers (ELBO with KL warm-up, pruning)."""

    def _check_sdgm_hyperparameters(self) -> None:
        check_int(self.n_components, "n_components", minimum=1)
        check_option(self.covariance, "covariance", COVARIANCES)
        check_positive(self.kl_weight, "kl_weight", allow_zero=True)
        warmup = check_positive(self.kl_warmup, "kl_warmup", allow_zero=True)
        if warmup > 1:
            raise BiosigError(f"kl_warmup is a fraction of the epochs in [0, 1], got {warmup:g}")
        _check_real(self.prune_threshold, "prune_threshold")
        threshold = check_positive(self.component_threshold, "component_threshold", allow_zero=True)
        if threshold >= 1:
            raise BiosigError(f"component_threshold must be < 1, got {threshold:g}")
        check_int(self.max_iter, "max_iter", minimum=1)
        check_positive(self.learning_rate, "learning_rate")
        check_int(self.batch_size, "batch_size", minimum=1)

    def _elbo_loss(self, n_samples: int):
        """Per-sample negative ELBO: ``CE + kl_weight · ramp(epoch) · KL / N``."""
        warmup_epochs = self.kl_warmup * self.max_iter

        def loss(net, z, y, epoch):
            ramp = 1.0 if warmup_epochs <= 0 else min(1.0, (epoch + 1) / warmup_epochs)
            data_term = torch.nn.functional.cross_entropy(net(z), y)
            if self.kl_weight == 0:
                return data_term
            return data_term + (self.kl_weight * ramp / n_samples) * net.kl()

        return loss

    def _train_sdgm(self, net, z, y, device, desc):
        z_t, y_t = self._tensors(z, y, device)
        net = net.to(device)
        with torch.no_grad():
            net.head.fit_scaling(net.features(z_t))
        info = train_minibatch(net, z_t, y_t, self._elbo_loss(len(y)), epochs=self.max_iter,
                               batch_size=self.batch_size, learning_rate=self.learning_rate,
                               verbose=self.verbose, desc=desc)
        with torch.no_grad():
            net.head.prune_components(net.features(z_t), y_t, self.component_threshold)
        net.fit_density(z_t, y_t)
        self.sparsity_ = net.head.sparsity()
        logger.info("%s sparsity: %d of %d weights live (%.1f %% pruned), %d of %d components",
                    type(self).__name__, self.sparsity_["n_live_weights"],
                    self.sparsity_["n_weights"], 100 * self.sparsity_["fraction_pruned"],
                    self.sparsity_["n_components_live"], self.sparsity_["n_components_initial"])
        return net, info


class JSUClassifier(_NetClassifier):
    """Johnson SU network classifier (Hayashi, Shibanoki & Tsuji 2021).

    Parameters
    ----------
    variant : {"shared", "full"}
        "shared" (Reading B, default): ξ, λ shared and fixed from the pooled training data;
        convex training by full-batch L-BFGS with a unique optimum. "full" (Reading A):
        class-specific ξ_c, λ_c learned with Adam together with the weights, started from the
        fitted shared model.
    alpha : float
        L2 penalty ``½ α ‖W‖²`` on the quadratic-form weights, added to the mean cross-entropy
        (``α N`` = 1 / C of scikit-learn's LogisticRegression). Keeps the optimum unique and
        finite on separable data. On Myo data with full covariance (train session 1, validate
        on session 2, participant 12345) accuracy is flat from 1e-3 to 0.3 (0.778–0.788) while NLL falls from
        1.06 (1e-3) to 0.73 (1e-2) and 0.60 (0.1); 1 underfits. 1e-2 is the default; 0.1 is
        worth trying when calibration matters more than the last half point of accuracy.
    translation : {"johnsonsu", "robust"}
        How the shared ξ, λ are set: a pooled ``scipy.stats.johnsonsu`` fit per feature
        (default; ~0.5–1 % more accurate on the same validation) or the per-feature median and
        IQR / 1.349 (instant). δ, γ then standardise each translated feature.
    covariance : {"diag", "full"}
        Quadratic expansion of the translated features: squares only (a diagonal correlation
        matrix R per class; default) or all products (a full R). Full costs D(D+1)/2 weights per
        class: 1176 for the 48 Myo features, which overfit to the training sessions. Chosen on
        the Myo protocol's validation split (train session 1, validate on session 2, three
        participants, α = 1e-2): diag reached mean NLL 0.412 and accuracy 0.875, full 0.482 and
        0.872 (diag with α = 1e-3: 0.442 / 0.876; 1e-1: 0.462 / 0.867). Full pays off when the
        features are few relative to the windows.
    max_iter : int
        L-BFGS iterations (the shared fit, also the start of "full").
    tol : float
        L-BFGS stops when the largest gradient entry is below this.
    epochs : int
        Adam epochs of the "full" variant.
    learning_rate : float
        Adam learning rate of the "full" variant.
    batch_size : int
        Mini-batch size of the "full" variant.
    random_state : int, RandomState or None
        Seeds the "full" variant's shuffling.
    device : str
        "cpu" (default), "cuda[:N]" or "auto" (CUDA if torch sees a GPU).
    verbose : bool
        Show training progress.
    """

    def __init__(self, variant="shared", *, alpha=1e-2, translation="johnsonsu", covariance="diag",
                 max_iter=500, tol=1e-5, epochs=30, learning_rate=3e-4, batch_size=512,
                 random_state=None, device="cpu", verbose=False):
        self.variant = variant
        self.alpha = alpha
        self.translation = translation
        self.covariance = covariance
        self.max_iter = max_iter
        self.tol = tol
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_hyperparameters(self) -> None:
        check_option(self.variant, "variant", ("shared", "full"))
        check_positive(self.alpha, "alpha", allow_zero=True)
        check_option(self.translation, "translation", TRANSLATIONS)
        check_option(self.covariance, "covariance", COVARIANCES)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_positive(self.tol, "tol")
        check_int(self.epochs, "epochs", minimum=0)
        check_positive(self.learning_rate, "learning_rate")
        check_int(self.batch_size, "batch_size", minimum=1)

    def _fit_net(self, z, y, device):
        translation = initial_translation(z, self.translation)
        # float64 for L-BFGS: the convex optimum is then reproducible to ~tol.
        z64, y_t = self._tensors(z, y, device, dtype=torch.float64)
        shared = SharedJSUNet(translation, len(self.classes_), self.covariance)
        shared = shared.to(device=device, dtype=torch.float64)
        with tqdm(total=2 * self.max_iter, disable=not self.verbose, desc="JSU (L-BFGS)",
                  unit="eval") as progress:
            info = fit_shared_jsu(shared, z64, y_t, alpha=self.alpha, max_iter=self.max_iter,
                                  tol=self.tol, progress=progress)
        if not info["converged"]:
            logger.warning("JSU L-BFGS stopped after %d iterations before the gradient reached "
                           "tol=%g; raise max_iter", info["n_iter"], self.tol)
        self.converged_ = bool(info["converged"])
        if self.variant == "shared":
            shared.fit_density(z64, y_t)
            return shared.float(), info
        full = FullJSUNet.from_shared(shared.cpu()).to(device)
        z32 = z64.float()
        alpha = self.alpha

        def loss(net, zb, yb, epoch):
            ce = torch.nn.functional.cross_entropy(net(zb), yb)
            return ce + alpha * net.weight_penalty()

        adam = train_minibatch(full, z32, y_t, loss, epochs=self.epochs,
                               batch_size=self.batch_size, learning_rate=self.learning_rate,
                               verbose=self.verbose, desc="JSU-full (Adam)")
        full.fit_density(z32, y_t)
        return full, {"n_iter": info["n_iter"] + adam["n_iter"], "loss": adam["loss"]}


class SDGMClassifier(_SDGMFamily):
    """Sparse discriminative Gaussian mixture classifier (Hayashi & Uchida 2021).

    The defaults were chosen on validation splits only: Myo (train session 1, validate on
    session 2, participants 12345 / 21547 / 45612, ~9200 windows × 48 features), UCI CTG
    (stratified 3-fold CV, seed 1, within CTG_train.csv, ~1130 rows × 21) and the GRABMyo
    subset (trials 1-2 train, trial 3 validates, 776 windows × 168); seed 0, 100 epochs of
    512-sample batches. Myo accuracy per participant and mean NLL (no temperature scaling),
    CTG macro-F1, GRABMyo accuracy, and the share of weights left live:

    ========================== ============== ======= ====== ===== ===========================
    covariance, kl_weight      Myo accuracy   Myo NLL CTG F1 GRAB  live weights Myo/CTG/GRAB
    ========================== ============== ======= ====== ===== ===========================
    full, 10, raw φ (earlier)  .794/.921/.916 0.69    0.754  0.820 2.7 % / 0.6 % / 0.01 %
    full, 1                    .799/.905/.903 1.13    0.819  0.845 18 % / 3.5 % / 0.1 %
    diag, 1, raw φ             .802/.921/.910 0.55    0.805  0.948 27 % / 17 % / 1.4 %
    diag, 0.3                  .818/.921/.908 0.55    0.837  0.977 46 % / 33 % / 2.5 %
    **diag, 1 (default)**      .812/.917/.915 0.49    0.828  0.954 26 % / 15 % / 1.2 %
    diag, 3                    .817/.910/.920 0.46    0.792  0.923 13 % / 7 % / 0.6 %
    diag, 10                   .787/.900/.919 0.47    0.753  0.863 5 % / 1.9 % / 0.4 %
    ========================== ============== ======= ====== ===== ===========================

    "raw φ": without the standardisation of the expanded features (:mod:`biosig.nets.sdgm`).
    Myo accuracy is flat for kl_weight 0.3-3 (seeds 0-2 on 12345 span 0.799-0.820); the two
    small sets lose 3-9 points at 3-10, where the prior is counted several times against
    ~1000 samples. 1, the ELBO itself, is the default; 0.3 is a little better on the small
    sets but keeps twice the weights and has a higher Myo NLL. The full quadratic form
    (D(D+3)/2 weights per component) is overconfident across sessions. Also checked, and
    left as they were: 128-sample batches (4x the Adam steps: CTG macro-F1 +0.012, GRABMyo
    -0.008, Myo accuracy +0.001 at NLL 0.58 instead of 0.49); 300 epochs (CTG +0.011);
    ``prune_threshold`` 1-6 (CTG macro-F1 within 0.01: pruned weights are near zero);
    ``n_components`` 1 / 3 / 5 (CTG macro-F1 0.808 / 0.828 / 0.818, 13 of 15 components
    alive at 5). Live components at the default: 15-16 of 24 (Myo), 8-9 of 9 (CTG), 5 of 12
    (GRABMyo).

    Parameters
    ----------
    n_components : int
        Initial components per class; components whose mixing weight on the training data
        ends below ``component_threshold`` are pruned.
    covariance : {"diag", "full"}
        Quadratic expansion: squares only (default; a diagonal covariance per component) or
        all products (a full covariance per component).
    hidden_layer_sizes : tuple of int
        Empty (default): SDGM on the standardised features. Otherwise an MLP trunk (Linear +
        tanh per layer) trained end to end with the SDGM as its last layer.
    kl_weight : float
        Multiplier of the ELBO's KL term ``KL / N``: 1 (default) = the ELBO, whose prior pull
        per sample falls as ``1 / N``; 0 = no sparsity prior (as the public demo effectively
        does); above 1 the prior is counted several times.
    kl_warmup : float
        Fraction of the epochs over which the KL weight rises linearly from 0.
    prune_threshold : float
        ``log α`` at and above which a weight is pruned (3 ≈ dropout rate 0.95).
    component_threshold : float
        Minimum estimated mixing weight ``π_cm`` for a component to be kept.
    max_iter : int
        Training epochs.
    learning_rate : float
        Adam learning rate.
    batch_size : int
        Mini-batch size.
    random_state : int, RandomState or None
        Seeds initialisation, shuffling and the variational noise.
    device : str
        "cpu" (default), "cuda[:N]" or "auto" (CUDA if torch sees a GPU).
    verbose : bool
        Show training progress.
    """

    def __init__(self, n_components=3, *, covariance="diag", hidden_layer_sizes=(),
                 kl_weight=1.0, kl_warmup=0.3, prune_threshold=3.0, component_threshold=0.01,
                 max_iter=100, learning_rate=1e-2, batch_size=512, random_state=None,
                 device="cpu", verbose=False):
        self.n_components = n_components
        self.covariance = covariance
        self.hidden_layer_sizes = hidden_layer_sizes
        self.kl_weight = kl_weight
        self.kl_warmup = kl_warmup
        self.prune_threshold = prune_threshold
        self.component_threshold = component_threshold
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    @property
    def _density(self) -> bool:
        # Behind a trunk the head's density is over trunk features, not over x.
        return not self.hidden_layer_sizes

    def _check_hyperparameters(self) -> None:
        self._check_sdgm_hyperparameters()
        for size in self.hidden_layer_sizes:
            check_int(size, "hidden_layer_sizes entry", minimum=1)

    def _fit_net(self, z, y, device):
        net = SDGMNet(z.shape[1], len(self.classes_), int(self.n_components), self.covariance,
                      float(self.prune_threshold), tuple(self.hidden_layer_sizes))
        return self._train_sdgm(net, z, y, device, desc="SDGM")


class JSUSDGMClassifier(_SDGMFamily):
    """Johnson SU translation layer (learned ξ, λ, δ, γ) feeding an SDGM head.

    Each class is a sparse mixture of multivariate Johnson SU densities (with the default
    ``covariance="diag"``, each with a diagonal correlation matrix). Parameters as
    :class:`SDGMClassifier`, plus ``translation`` (initial ξ, λ: "robust" or "johnsonsu",
    as :class:`JSUClassifier`). ``ood_score`` includes the translation's Jacobian.

    Defaults as :class:`SDGMClassifier` (diagonal, ``kl_weight=1``), on the same validation
    splits (Myo accuracy mean of three participants / mean NLL, CTG macro-F1, GRABMyo
    accuracy): full, 10, raw φ (earlier default) 0.888 / 0.46, 0.699, 0.954; full, 1 0.873 /
    1.11, 0.807; diag, 10 0.888 / 0.45, 0.687; **diag, 1** 0.873 / 0.63, 0.819, 0.974. On Myo a
    prior counted ten times is ~1.5 points better (12345, seeds 0-2: 0.812 vs 0.793); on CTG
    it is 13 points worse (GRABMyo: the earlier default 2 points). The default is the ELBO;
    ``kl_weight=10`` is worth trying on EMG sets of ~10 000 windows that must carry over to a
    new session.
    """

    def __init__(self, n_components=3, *, covariance="diag", translation="johnsonsu",
                 kl_weight=1.0, kl_warmup=0.3, prune_threshold=3.0, component_threshold=0.01,
                 max_iter=100, learning_rate=1e-2, batch_size=512, random_state=None,
                 device="cpu", verbose=False):
        self.n_components = n_components
        self.covariance = covariance
        self.translation = translation
        self.kl_weight = kl_weight
        self.kl_warmup = kl_warmup
        self.prune_threshold = prune_threshold
        self.component_threshold = component_threshold
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_hyperparameters(self) -> None:
        self._check_sdgm_hyperparameters()
        check_option(self.translation, "translation", TRANSLATIONS)

    def _fit_net(self, z, y, device):
        translation = initial_translation(z, self.translation)
        net = JSUSDGMNet(translation, len(self.classes_), int(self.n_components),
                         self.covariance, float(self.prune_threshold))
        return self._train_sdgm(net, z, y, device, desc="JSU-SDGM")


class LDAClassifier(_NetClassifier):
    """Linear discriminant analysis (scikit-learn's, "lsqr" solver) as a linear layer.

    ``ood_score`` is ``-log p(x)`` of LDA's own Gaussian mixture (shared covariance).

    Parameters
    ----------
    shrinkage : None, "auto" or float in [0, 1]
        Covariance shrinkage (Ledoit-Wolf for "auto").
    """

    def __init__(self, shrinkage=None):
        self.shrinkage = shrinkage

    def _check_hyperparameters(self) -> None:
        if self.shrinkage is None or self.shrinkage == "auto":
            return
        value = check_positive(self.shrinkage, "shrinkage", allow_zero=True)
        if value > 1:
            raise BiosigError(f"shrinkage must be None, 'auto' or in [0, 1], got {value:g}")

    def _fit_net(self, z, y, device):
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=self.shrinkage).fit(z, y)
        return _FrozenWrapper(lda_net(lda.means_, lda.covariance_, lda.priors_)), {"n_iter": 1}


class _FrozenWrapper(torch.nn.Module):
    """Holds an already constant-only network (LDA) so it fits the ``frozen()`` protocol."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, z):
        return self.net(z)

    def frozen(self):
        return self.net


class MLPClassifier(_NetClassifier):
    """Small fully connected ReLU network trained with Adam (the neural baseline).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Width of each hidden layer.
    alpha : float
        Adam weight decay (L2).
    max_iter : int
        Training epochs.
    learning_rate : float
        Adam learning rate.
    batch_size : int
        Mini-batch size.
    random_state : int, RandomState or None
        Seeds initialisation and shuffling.
    device : str
        "cpu" (default), "cuda[:N]" or "auto" (CUDA if torch sees a GPU).
    verbose : bool
        Show training progress.
    """

    _density = False

    def __init__(self, hidden_layer_sizes=(64,), *, alpha=1e-4, max_iter=200,
                 learning_rate=1e-3, batch_size=256, random_state=None, device="cpu",
                 verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def _check_hyperparameters(self) -> None:
        for size in self.hidden_layer_sizes:
            check_int(size, "hidden_layer_sizes entry", minimum=1)
        check_positive(self.alpha, "alpha", allow_zero=True)
        check_int(self.max_iter, "max_iter", minimum=1)
        check_positive(self.learning_rate, "learning_rate")
        check_int(self.batch_size, "batch_size", minimum=1)

    def _fit_net(self, z, y, device):
        net = MLPNet(z.shape[1], len(self.classes_), tuple(self.hidden_layer_sizes)).to(device)
        z_t, y_t = self._tensors(z, y, device)
        info = train_minibatch(net, z_t, y_t, cross_entropy_loss, epochs=self.max_iter,
                               batch_size=self.batch_size, learning_rate=self.learning_rate,
                               weight_decay=self.alpha, verbose=self.verbose, desc="MLP")
        return net, info
