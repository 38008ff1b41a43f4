"""DiveAdapter: residual adapter + projection heads that reduce frozen embeddings."""

import contextlib
import hashlib
import io
import json

import numpy as np

from ._numpy import as_float32_rows, exact_knn, l2_normalize, labelled_pairs, residual_mlp

FORMAT = "spherecodec.dive/1"
_PARAM_NAMES = ("w1", "b1", "ln_gamma", "ln_beta", "w2", "b2", "head_w", "head_b")
_CONFIG_KEYS = ("dim_in", "dim_out", "heads", "hidden", "margin", "seed", "init", "init_noise")
#: training settings that differ between the self-supervised and the labelled (queries=) mode
_MODE_DEFAULTS = {
    "self-supervised": dict(epochs=6, batch_size=64, lr=3e-5, head_lr=1e-3, nt_xent_weight=0.01,
                            temperature=0.1, steps_per_epoch=50, val_fraction=0.1),
    "labelled": dict(epochs=8, batch_size=512, lr=1e-4, head_lr=1e-3, nt_xent_weight=1.0,
                     temperature=0.05, steps_per_epoch=None, val_fraction=0.05, margin=0.1),
}
#: the residual MLP's width when the constructor is not given one, by the mode ``fit`` runs:
#: labelled fits chose 4096 on held-out training pairs (docs/dive.md, "More capacity")
_DEFAULT_HIDDEN = {"self-supervised": 2048, "labelled": 4096}


def _positive_int(name, value, minimum=1):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return int(value)


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        return contextlib.nullcontext()
    return threadpool_limits(1)


def pca_basis(x, dim_out):
    """Top ``dim_out`` right singular vectors of the *uncentred* rows, as a (dim_in, dim_out) matrix.

    Uncentred: cosine search compares raw vectors, and the mean direction carries part of
    every inner product (measured: centring costs 0.01-0.07 recall@10 on MiniLM). Signs are
    fixed (largest-magnitude entry of each vector positive) so the basis is reproducible.
    """
    x = np.asarray(x, dtype=np.float64)
    # eigenvectors of the (dim, dim) Gram matrix: the SVD's right vectors, far cheaper;
    # one BLAS thread: a threaded LAPACK eigh on a small matrix is 10x slower on a busy machine
    with _one_blas_thread():
        eigval, eigvec = np.linalg.eigh(x.T @ x)
    basis = eigvec[:, np.argsort(-eigval, kind="stable")[:dim_out]]
    pivot = np.argmax(np.abs(basis), axis=0)
    signs = np.sign(basis[pivot, np.arange(basis.shape[1])])
    signs[signs == 0] = 1
    return np.ascontiguousarray((basis * signs).astype(np.float32))


class DiveAdapter:
    """DIVE: a residual MLP on frozen embeddings, then ``heads`` linear projection heads to
    ``dim_out``; the output is the L2-normalised mean of the L2-normalised head outputs.

    ``transform`` is pure numpy; only ``fit`` needs torch (the ``dive`` extra).

    Parameters
    ----------
    dim_in, dim_out : int
        Input (frozen) and reduced dimensions, ``dim_out <= dim_in``.
    heads : int
        Projection heads (the implicit view ensemble).
    hidden : int or None
        Width of the residual MLP ``x + Linear(GELU(LayerNorm(Linear(x))))``. None
        (default): 4096 for a labelled fit, 2048 otherwise (``fit`` settles it; until then
        2048).
    margin : float
        Hinge triplet margin (an upper bound on the per-triplet margin when self-supervised).
    seed : int
        Seeds the initialisation, the held-out split, the mining and torch.
    init : {"pca", "random"}
        Heads start at the uncentred PCA basis of the training data (plus ``init_noise``
        per head so the views differ) or at a random orthonormal basis.
    init_noise : float
        Standard deviation of the per-head perturbation of the initial basis.
    """

    def __init__(self, dim_in, dim_out, *, heads=4, hidden=None, margin=0.2, seed=0, init="pca",
                 init_noise=0.01):
        self.dim_in = _positive_int("dim_in", dim_in)
        self.dim_out = _positive_int("dim_out", dim_out)
        if self.dim_out > self.dim_in:
            raise ValueError(f"dim_out={dim_out} exceeds dim_in={dim_in}: DIVE reduces")
        self.heads = _positive_int("heads", heads)
        self._hidden_given = hidden is not None
        self.hidden = _DEFAULT_HIDDEN["self-supervised"] if hidden is None else _positive_int("hidden", hidden)
        if not isinstance(margin, (int, float, np.floating)) or isinstance(margin, bool) \
                or not 0 < float(margin) < 2:
            raise ValueError(f"margin must be a number in (0, 2), not {margin!r}")
        self.margin = float(margin)
        self.seed = _positive_int("seed", seed, minimum=0)
        if init not in ("pca", "random"):
            raise ValueError(f"init must be 'pca' or 'random', not {init!r}")
        self.init = init
        if not isinstance(init_noise, (int, float, np.floating)) or isinstance(init_noise, bool) \
                or not 0 <= float(init_noise) < 1:
            raise ValueError(f"init_noise must be a number in [0, 1), not {init_noise!r}")
        self.init_noise = float(init_noise)
        self.params = self._initial_params(None)
        self.history = []
        self.fitted = False

    # -- configuration and parameters ----------------------------------------------
    def get_config(self):
        """Constructor arguments as a JSON-able dict."""
        return {k: getattr(self, k) for k in _CONFIG_KEYS}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"DiveAdapter({args})"

    @property
    def n_parameters(self):
        """Number of trained scalars."""
        return int(sum(v.size for v in self.params.values()))

    def _settle_hidden(self, mode):
        # the MLP width of a fit in ``mode`` when the constructor was not given one (set
        # just before the weights it shapes, so that a refused fit leaves the adapter as it was)
        if not self._hidden_given:
            self.hidden = _DEFAULT_HIDDEN[mode]

    def _initial_params(self, x):
        """Seeded initial weights: torch-default-like uniform first layer, zero last layer
        (the residual branch starts as the identity), heads from PCA of ``x`` or random."""
        rng = np.random.default_rng(self.seed)
        d, h, k = self.dim_in, self.hidden, self.dim_out
        bound = 1.0 / np.sqrt(d)
        if self.init == "pca" and x is not None:
            basis = pca_basis(x, k)
        else:
            basis = np.linalg.qr(rng.standard_normal((d, k)))[0].astype(np.float32)
        noise = rng.standard_normal((self.heads, d, k)) * self.init_noise / np.sqrt(d)
        return {
            "w1": rng.uniform(-bound, bound, (d, h)).astype(np.float32),
            "b1": rng.uniform(-bound, bound, h).astype(np.float32),
            "ln_gamma": np.ones(h, np.float32),
            "ln_beta": np.zeros(h, np.float32),
            "w2": np.zeros((h, d), np.float32),
            "b2": np.zeros(d, np.float32),
            "head_w": (basis[None] + noise).astype(np.float32),
            "head_b": np.zeros((self.heads, k), np.float32),
        }

    def _nested_heads(self, x, nested):
        """The extra head columns of ``fit(..., nested=)``: PCA directions ``dim_out`` to
        ``nested`` x ``dim_out`` of ``x`` (or random ones with ``init="random"``), with the
        heads' noise from a generator of its own (the kept columns' start is unchanged)."""
        d, k = self.dim_in, self.dim_out
        wide = k * nested
        rng = np.random.default_rng([self.seed, nested])
        if self.init == "pca":
            basis = pca_basis(x, wide)[:, k:]
        else:
            basis = np.linalg.qr(rng.standard_normal((d, wide)))[0][:, k:]
        noise = rng.standard_normal((self.heads, d, wide - k)) * self.init_noise / np.sqrt(d)
        return (basis[None] + noise).astype(np.float32)

    def weights_hash(self):
        """sha256 (hex) of the configuration and every weight: names the adapter in blobs."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.get_config(), sort_keys=True).encode())
        for name in _PARAM_NAMES:
            value = np.ascontiguousarray(self.params[name], dtype="<f4")
            digest.update(name.encode() + json.dumps(list(value.shape)).encode())
            digest.update(value.tobytes())
        return digest.hexdigest()

    # -- inference (numpy) -----------------------------------------------------------
    def transform(self, x):
        """Reduced, L2-normalised embeddings (rows, dim_out), float32, in pure numpy."""
        rows = as_float32_rows(x, self.dim_in)
        p = self.params
        hidden = residual_mlp(rows, p["w1"], p["b1"], p["ln_gamma"], p["ln_beta"], p["w2"], p["b2"])
        views = np.einsum("nd,hdk->hnk", hidden, p["head_w"], dtype=np.float32) + p["head_b"][:, None, :]
        views = np.stack([l2_normalize(v) for v in views])
        return l2_normalize(views.mean(axis=0, dtype=np.float32))

    def torch_transform(self, x):
        """The same map computed by the torch training module (needs torch), as numpy."""
        # torch is optional (the dive extra): imported only by the calls that train or compare
        import torch

        from ._train import DiveNet

        net = DiveNet(self.dim_in, self.dim_out, self.heads, self.hidden)
        net.load_numpy(self.params)
        with torch.no_grad():
            return net(torch.from_numpy(as_float32_rows(x, self.dim_in))).numpy()

    # -- training --------------------------------------------------------------------
    def fit(self, embeddings, *, queries=None, positives=None, triplets=None, pairs=None, epochs=None,
            batch_size=None, lr=None, head_lr=None, weight_decay=0.01, val_fraction=None, patience=3,
            nt_xent_weight=None, temperature=None, kl_weight=1.0, kl_temperature=0.05, neighbours=10,
            candidate_depth=30, random_candidates=512, hard_negatives=20, teacher_margin=1.0,
            steps_per_epoch="auto", symmetric=True, margin=None, threads=1, progress=True,
            early_stopping="best", epoch_callback=None, dropout=0.0, nested=1):
        """Train on frozen ``embeddings`` (rows, dim_in); returns ``self``.

        With ``triplets`` (query, positive, negative) or ``pairs`` (query, positive) index
        arrays into ``embeddings``, the hinge triplet loss uses those labels (pairs get a
        hard negative mined from the query's frozen neighbours) with margin ``margin``.

        With ``queries`` (m, dim_in) and ``positives`` (m doc rows of ``embeddings``, or m
        arrays of them) it is supervised retrieval training: ``embeddings`` are the documents,
        one adapter maps queries and documents alike (see :func:`_train.train_dive_labelled`
        and docs/dive.md). ``val_fraction`` of the queries are held out; their nDCG@10 among
        all documents drives early stopping (at least 10 held-out queries are needed, or
        ``val_fraction=0``). ``symmetric`` adds the doc-to-query NT-Xent direction. Its hinge
        margin is ``margin`` (0.1), not the constructor's (the self-supervised mode's cap).
        ``early_stopping`` ("best" or "smoothed": best centred 3-epoch mean of the held-out
        nDCG@10) picks the kept epoch; ``epoch_callback(record, weights)`` sees every epoch.
        ``dropout`` (labelled mode only) drops the residual MLP's hidden activations while
        training (inference never drops). ``nested`` (labelled mode only; default 1: off) trains
        the heads at ``nested`` x ``dim_out`` columns with the losses on the first ``dim_out``
        (the kept output) plus, at equal weight, on the full width (a Matryoshka-style
        auxiliary output, started from the wider PCA); only the first ``dim_out`` are kept.

        Settings left at None (``steps_per_epoch`` at "auto") take the mode's default
        (``_MODE_DEFAULTS``): labelled 8 full epochs of 512 pairs, MLP lr 1e-4, heads 1e-3,
        NT-Xent weight 1 at temperature 0.05, 5% of the queries held out; self-supervised
        6 x 50 steps of 64 anchors, lr 3e-5 / 1e-3, NT-Xent weight 0.01 at temperature 0.1,
        10% of the rows held out.

        Without labels it is self-supervised. Each step takes ``batch_size`` anchors and, as
        candidates, their ``candidate_depth`` nearest frozen neighbours plus
        ``random_candidates`` random rows. Positives are an anchor's ``neighbours`` nearest
        frozen neighbours; negatives are the ``hard_negatives`` other candidates that the
        current reduced space ranks highest. A triplet's margin is ``teacher_margin`` times
        its frozen similarity gap, capped at ``margin``: it is satisfied (zero gradient)
        once the reduced space separates the pair as much as the frozen space does. A
        neighbourhood KL term (weight ``kl_weight``, temperature ``kl_temperature``) matches
        each anchor's softmax over candidates to the frozen one.

        The head-wise NT-Xent loss (weight ``nt_xent_weight``, temperature ``temperature``)
        treats the heads' outputs for one input as positives and the other anchors' as
        negatives. A ``val_fraction`` held-out split drives early stopping (recall@10
        against frozen search when self-supervised, the hinge loss when labelled;
        ``patience`` epochs without improvement stop) and the best epoch's weights are kept,
        the initial ones (epoch 0) included. ``self.history`` gets one dict per epoch with the
        losses, ``zero_grad_fraction`` (triplets at or past their margin: exactly zero
        gradient) and the held-out score. ``threads`` pins torch's thread count while fitting
        (default 1: weights then do not depend on the machine's core count, and on a busy
        2-core machine one thread measured 10x faster than two; ``None`` keeps torch's).
        """
        x = as_float32_rows(embeddings, self.dim_in, name="embeddings")
        labelled = queries is not None
        if positives is not None and not labelled:
            raise ValueError("positives= needs queries= (the query embeddings they label)")
        if labelled and (triplets is not None or pairs is not None):
            raise ValueError("give queries=/positives= or triplets=/pairs=, not both")
        if x.shape[0] < (1 if labelled else 3):
            raise ValueError(f"fit needs at least {1 if labelled else 3} embeddings")
        mode = _MODE_DEFAULTS["labelled" if labelled else "self-supervised"]
        epochs = _positive_int("epochs", mode["epochs"] if epochs is None else epochs)
        batch_size = _positive_int("batch_size", mode["batch_size"] if batch_size is None else batch_size)
        lr = mode["lr"] if lr is None else lr
        head_lr = mode["head_lr"] if head_lr is None else head_lr
        nt_xent_weight = mode["nt_xent_weight"] if nt_xent_weight is None else nt_xent_weight
        temperature = mode["temperature"] if temperature is None else temperature
        if isinstance(steps_per_epoch, str) and steps_per_epoch == "auto":
            steps_per_epoch = mode["steps_per_epoch"]
        if steps_per_epoch is not None:
            steps_per_epoch = _positive_int("steps_per_epoch", steps_per_epoch)
        if threads is not None:
            threads = _positive_int("threads", threads)
        val_fraction = mode["val_fraction"] if val_fraction is None else val_fraction
        if not isinstance(val_fraction, (int, float, np.floating)) or not 0 <= val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction!r}")
        if early_stopping not in ("best", "smoothed"):
            raise ValueError(f"early_stopping must be 'best' or 'smoothed', not {early_stopping!r}")
        if not isinstance(dropout, (int, float, np.floating)) or isinstance(dropout, bool) \
                or not 0 <= float(dropout) < 1:
            raise ValueError(f"dropout must be a number in [0, 1), not {dropout!r}")
        nested = _positive_int("nested", nested)
        if nested > 1 and self.dim_out * nested > self.dim_in:
            raise ValueError(f"nested={nested} needs nested x dim_out = {nested * self.dim_out} "
                             f"<= dim_in = {self.dim_in}; lower nested")
        if not labelled and (early_stopping != "best" or epoch_callback is not None or dropout
                             or nested != 1):
            raise ValueError("early_stopping=, epoch_callback=, nested= and dropout= are the labelled "
                             "mode's (queries=)")
        if labelled:
            margin = mode["margin"] if margin is None else margin
            if not isinstance(margin, (int, float, np.floating)) or isinstance(margin, bool) \
                    or not 0 < float(margin) < 2:
                raise ValueError(f"margin must be a number in (0, 2), not {margin!r}")
            q, pair_q, pair_d = labelled_pairs(x, queries, positives, self.dim_in)
            hard_negatives = _positive_int("hard_negatives", hard_negatives)
            self._settle_hidden("labelled")
            self.params = self._initial_params(np.concatenate([x, q]))
            nested_head_w = None if nested == 1 else self._nested_heads(np.concatenate([x, q]), nested)
            from ._train import train_dive_labelled  # needs torch, an optional dependency: imported on use

            self.params, self.history = train_dive_labelled(
                self, x, q, pair_q, pair_d, epochs=epochs, batch_size=batch_size, lr=lr,
                head_lr=head_lr, weight_decay=weight_decay, val_fraction=float(val_fraction),
                patience=patience, nt_xent_weight=nt_xent_weight, temperature=temperature,
                hard_negatives=hard_negatives, symmetric=bool(symmetric), margin=float(margin),
                steps_per_epoch=steps_per_epoch, threads=threads, progress=progress,
                early_stopping=early_stopping, epoch_callback=epoch_callback, dropout=float(dropout),
                nested_head_w=nested_head_w)
            self.fitted = True
            return self
        if margin is not None:
            raise ValueError("fit's margin= is the labelled mode's (queries=); the self-supervised "
                             "and triplet modes use the constructor's margin")
        if triplets is not None and pairs is not None:
            raise ValueError("give triplets or pairs, not both")
        if pairs is not None:
            triplets = self._pairs_to_triplets(x, pairs)
        elif triplets is not None:
            triplets = _index_arrays(triplets, 3, x.shape[0], "triplets")
        self._settle_hidden("self-supervised")
        self.params = self._initial_params(x)
        from ._train import train_dive  # needs torch, an optional dependency: imported on use

        self.params, self.history = train_dive(
            self, x, triplets=triplets, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr,
            weight_decay=weight_decay, val_fraction=val_fraction, patience=patience,
            nt_xent_weight=nt_xent_weight, temperature=temperature, kl_weight=kl_weight,
            kl_temperature=kl_temperature, neighbours=neighbours, candidate_depth=candidate_depth,
            random_candidates=random_candidates, hard_negatives=hard_negatives,
            teacher_margin=teacher_margin, steps_per_epoch=steps_per_epoch, threads=threads,
            progress=progress)
        self.fitted = True
        return self

    def _pairs_to_triplets(self, x, pairs, depth=20):
        q, p = _index_arrays(pairs, 2, x.shape[0], "pairs")
        rng = np.random.default_rng(self.seed + 1)

        unit = l2_normalize(x)
        depth = min(depth, x.shape[0] - 1)
        near = exact_knn(unit[q], unit, depth)
        negatives = np.empty_like(q)
        for i in range(len(q)):
            choices = near[i][(near[i] != p[i]) & (near[i] != q[i])]
            negatives[i] = choices[rng.integers(len(choices))] if len(choices) else (p[i] + 1) % x.shape[0]
        return q, p, negatives

    # -- persistence -----------------------------------------------------------------
    def save(self, path):
        """Write the adapter (config, weights, history) to one ``.npz`` file at ``path``."""
        meta = {"format": FORMAT, "config": self.get_config(), "fitted": self.fitted,
                "history": self.history, "sha256": self.weights_hash()}
        arrays = {name: np.ascontiguousarray(self.params[name], dtype="<f4") for name in _PARAM_NAMES}
        buf = io.BytesIO()
        np.savez(buf, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        with open(path, "wb") as fh:
            fh.write(buf.getvalue())

    @classmethod
    def load(cls, path):
        """Read an adapter written by ``save`` (no torch needed); checks its weights' hash."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode())
                arrays = {name: np.array(data[name], dtype=np.float32) for name in _PARAM_NAMES}
        except (KeyError, ValueError, OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path!s} is not a saved DiveAdapter: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{path!s} is not a saved DiveAdapter (format {meta.get('format')!r})")
        adapter = cls(**meta["config"])
        expected = adapter.params
        for name in _PARAM_NAMES:
            if arrays[name].shape != expected[name].shape:
                raise ValueError(f"weight {name} has shape {arrays[name].shape}, "
                                 f"{expected[name].shape} expected")
        adapter.params = arrays
        adapter.history = meta.get("history", [])
        adapter.fitted = bool(meta.get("fitted", False))
        if adapter.weights_hash() != meta.get("sha256"):
            raise ValueError(f"{path!s}: weights do not match their recorded sha256")
        return adapter


def _index_arrays(arrays, width, n, name):
    """Validate a tuple of ``width`` equal-length integer index arrays into ``n`` rows
    (or an (m, width) array); returns a tuple of int64 arrays."""
    if isinstance(arrays, np.ndarray) and arrays.ndim == 2:
        arrays = tuple(arrays.T)
    if not isinstance(arrays, (tuple, list)) or len(arrays) != width:
        raise ValueError(f"{name} must be {width} index arrays or an (m, {width}) array")
    out = []
    for a in arrays:
        a = np.asarray(a)
        if a.dtype.kind not in "iu" or a.ndim != 1:
            raise ValueError(f"{name} must hold 1-D integer index arrays")
        out.append(a.astype(np.int64))
    if len({len(a) for a in out}) != 1 or len(out[0]) == 0:
        raise ValueError(f"{name} arrays must be non-empty and of equal length")
    if any(((a < 0) | (a >= n)).any() for a in out):
        raise ValueError(f"{name} index out of range for {n} embeddings")
    return tuple(out)
