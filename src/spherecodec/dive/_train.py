"""Torch training loops of the residual adapters (imported only inside ``fit``).

Everything here runs on CPU, in float32, seeded: the same seed, data and thread count give
the same weights bit for bit.
"""

import contextlib
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._numpy import exact_knn, l2_normalize, mine_hard_negatives, ranking_metrics, relevance_codes


class ResidualMLP(nn.Module):
    """``x + Linear(hidden, d)(GELU(LayerNorm(Linear(d, hidden)(x))))``, last layer zero-initialised."""

    def __init__(self, dim, hidden):
        super().__init__()
        #: dropout on the hidden activations while training (labelled fits only; 0: none)
        self.dropout = 0.0
        self.fc1 = nn.Linear(dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, dim)
        # zero last layer: the adapter starts as the identity on the frozen space
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x):
        h = F.gelu(self.norm(self.fc1(x)), approximate="tanh")
        if self.training and self.dropout > 0:
            h = F.dropout(h, self.dropout, training=True)
        return x + self.fc2(h)

    def load_numpy(self, p):
        with torch.no_grad():
            self.fc1.weight.copy_(torch.from_numpy(p["w1"].T.copy()))
            self.fc1.bias.copy_(torch.from_numpy(p["b1"]))
            self.norm.weight.copy_(torch.from_numpy(p["ln_gamma"]))
            self.norm.bias.copy_(torch.from_numpy(p["ln_beta"]))
            self.fc2.weight.copy_(torch.from_numpy(p["w2"].T.copy()))
            self.fc2.bias.copy_(torch.from_numpy(p["b2"]))

    def to_numpy(self):
        t = lambda v: v.detach().cpu().numpy().astype(np.float32, copy=True)  # noqa: E731
        return {
            "w1": np.ascontiguousarray(t(self.fc1.weight).T), "b1": t(self.fc1.bias),
            "ln_gamma": t(self.norm.weight), "ln_beta": t(self.norm.bias),
            "w2": np.ascontiguousarray(t(self.fc2.weight).T), "b2": t(self.fc2.bias),
        }


class DiveNet(nn.Module):
    """Residual MLP then H linear projection heads; output = normalised mean of normalised heads."""

    def __init__(self, dim_in, dim_out, heads, hidden):
        super().__init__()
        self.mlp = ResidualMLP(dim_in, hidden)
        self.head_w = nn.Parameter(torch.zeros(heads, dim_in, dim_out))
        self.head_b = nn.Parameter(torch.zeros(heads, dim_out))

    def raw_views(self, x):
        """Per-head projections before normalisation, shape (heads, rows, dim_out)."""
        h = self.mlp(x)
        return torch.matmul(h, self.head_w) + self.head_b[:, None, :]

    def views(self, x):
        """Per-head unit vectors, shape (heads, rows, dim_out)."""
        return F.normalize(self.raw_views(x), dim=-1)

    @staticmethod
    def combine(views):
        return F.normalize(views.mean(0), dim=-1)

    def forward(self, x):
        return self.combine(self.views(x))

    def load_numpy(self, p):
        self.mlp.load_numpy(p)
        with torch.no_grad():
            self.head_w.copy_(torch.from_numpy(p["head_w"]))
            self.head_b.copy_(torch.from_numpy(p["head_b"]))

    def to_numpy(self):
        p = self.mlp.to_numpy()
        p["head_w"] = self.head_w.detach().numpy().astype(np.float32, copy=True)
        p["head_b"] = self.head_b.detach().numpy().astype(np.float32, copy=True)
        return p


class MatryoshkaNet(nn.Module):
    """Residual MLP on the full space; the reduced embedding is its normalised first ``dim_out`` dims."""

    def __init__(self, dim_in, dim_out, hidden):
        super().__init__()
        self.mlp = ResidualMLP(dim_in, hidden)
        self.dim_out = dim_out

    def forward(self, x):
        return F.normalize(self.mlp(x)[:, :self.dim_out], dim=-1)


@contextlib.contextmanager
def torch_settings(seed, threads):
    """Seed torch and pin its thread count; restore the thread count afterwards."""
    # CPU kernels are deterministic at a fixed thread count; use_deterministic_algorithms
    # is not needed and would import torch's compiler stack (seconds)
    old_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(int(threads))
        torch.manual_seed(seed)
        yield
    finally:
        torch.set_num_threads(old_threads)


def hinge_triplets(student, a, p, n, margin):
    """Hinge triplet losses ``max(0, margin - s(a,p) + s(a,n))`` of index triples into ``student``."""
    sap = (student[a] * student[p]).sum(-1)
    san = (student[a] * student[n]).sum(-1)
    # relu: the gradient is exactly zero at and past the margin
    return F.relu(margin - sap + san)


def headwise_nt_xent(views, temperature):
    """NT-Xent over H views per input: a view's positives are the other heads' views of the
    same input; every view of every other input in the batch is a negative."""
    heads, rows, _ = views.shape
    flat = views.reshape(heads * rows, -1)
    logits = flat @ flat.T / temperature
    eye = torch.eye(heads * rows, dtype=torch.bool)
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    owner = torch.arange(rows).repeat(heads)
    positive = (owner[:, None] == owner[None, :]) & ~eye
    return -(log_prob[positive]).mean()


class Progress:
    """A tqdm bar over epochs when asked for (tqdm is a core dependency)."""

    def __init__(self, total, enabled, desc):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="epoch", leave=False)

    def update(self, **postfix):
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class BestEpoch:
    """Early stopping on a held-out score: the weights of the best score so far, and a stop
    once ``patience`` epochs in a row brought no better one (None: never stop)."""

    def __init__(self, score, weights, patience):
        self.score, self.weights, self.patience, self.bad_epochs = score, weights, patience, 0

    def offer(self, score, weights):
        """Keep ``weights()`` if ``score`` beats the best so far; True when training should stop."""
        if score > self.score:
            self.score, self.weights, self.bad_epochs = score, weights(), 0
            return False
        self.bad_epochs += 1
        return self.patience is not None and self.bad_epochs >= self.patience


def split_holdout(n, fraction, rng, minimum=20):
    """(train, held-out) row indices; no held-out rows if there are too few."""
    order = rng.permutation(n)
    n_val = int(round(n * fraction))
    if fraction <= 0 or n_val < minimum or n - n_val < minimum:
        return np.sort(order), np.zeros(0, dtype=np.int64)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


class NeighbourMiner:
    """Frozen-space neighbour lists of the training rows (self excluded), best first."""

    def __init__(self, unit_rows, depth):
        self.depth = min(depth, unit_rows.shape[0] - 1)
        self.lists = exact_knn(unit_rows, unit_rows, self.depth, exclude_self=True)


def candidate_batch(miner, anchors, rng, n_rows, depth, n_random):
    """Rows of one self-supervised step: the anchors, their ``depth`` nearest frozen
    neighbours (positives and frozen hard negatives) and ``n_random`` random rows (the
    far field that a reduced space may pull in). Returns the sorted unique rows."""
    near = miner.lists[anchors, :depth].reshape(-1)
    far = rng.choice(n_rows, size=min(n_random, n_rows), replace=False)
    return np.unique(np.concatenate([anchors, near, far]))


def mined_triplet_losses(student, teacher, anchor_pos, positives, hard_negatives, margin, teacher_margin):
    """Hinge losses of every (anchor, positive, negative) with positives = the anchor's
    frozen top-k and negatives = the ``hard_negatives`` candidates outside it that the
    current reduced space ranks highest (online hard-negative mining).

    ``student``/``teacher``: (anchors, candidates) reduced and frozen similarities;
    ``positives``: (anchors, k) candidate columns. The margin of a triplet is its frozen
    similarity gap times ``teacher_margin``, capped at ``margin`` (fixed ``margin`` if
    ``teacher_margin`` is 0).
    """
    blocked = torch.zeros_like(student, dtype=torch.bool)
    blocked.scatter_(1, positives, True)
    blocked[torch.arange(len(anchor_pos)), anchor_pos] = True
    scores = student.detach().masked_fill(blocked, float("-inf"))
    negatives = scores.topk(hard_negatives, dim=1).indices
    sap = student.gather(1, positives)[:, :, None]
    san = student.gather(1, negatives)[:, None, :]
    if teacher_margin:
        gap = teacher.gather(1, positives)[:, :, None] - teacher.gather(1, negatives)[:, None, :]
        m = torch.clamp(gap * teacher_margin, min=0.0, max=margin)
    else:
        m = margin
    return F.relu(m - sap + san).reshape(-1)


def neighbourhood_kl(student, teacher, anchor_pos, temperature):
    """KL(softmax(teacher / T) || softmax(student / T)) per anchor over the step's candidates
    (self excluded): the dense neighbourhood-preservation signal."""
    rows = torch.arange(len(anchor_pos))
    self_mask = torch.zeros_like(student, dtype=torch.bool)
    self_mask[rows, anchor_pos] = True
    t = F.log_softmax((teacher / temperature).masked_fill(self_mask, float("-inf")), dim=1)
    s = F.log_softmax((student / temperature).masked_fill(self_mask, float("-inf")), dim=1)
    p = t.exp()
    return (p * (t - s)).masked_fill(self_mask, 0.0).sum(1).mean()


def knn_excluding(queries, corpus, query_rows, k, block=1024):
    """Top-``k`` corpus rows by inner product for each query, skipping the query's own row."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), block):
        sims = queries[start:start + block] @ corpus.T
        sims[np.arange(sims.shape[0]), query_rows[start:start + block]] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out[start:start + block] = top
    return out


class HoldoutRecall:
    """recall@k of held-out query rows searched among *all* rows (training rows included),
    against frozen-space exact search: the use case of a corpus reduced by the adapter."""

    def __init__(self, x, unit, val_rows, k=10):
        self.x, self.val_rows = x, val_rows
        self.k = min(k, x.shape[0] - 1)
        self.truth = knn_excluding(unit[val_rows], unit, val_rows, self.k)

    def __call__(self, model_fn, block=4096):
        with torch.no_grad():
            red = np.concatenate([model_fn(torch.from_numpy(self.x[s:s + block])).numpy()
                                  for s in range(0, self.x.shape[0], block)])
        found = knn_excluding(red[self.val_rows], red, self.val_rows, self.k)
        hits = [np.intersect1d(a, b).size for a, b in zip(found, self.truth)]
        return float(np.mean(hits)) / self.k


def train_dive(adapter, x, *, triplets, epochs, batch_size, lr, head_lr, weight_decay, val_fraction,
               patience, nt_xent_weight, temperature, kl_weight, kl_temperature, neighbours,
               candidate_depth, random_candidates, hard_negatives, teacher_margin, steps_per_epoch,
               threads, progress):
    """Train ``adapter`` (a DiveAdapter holding numpy weights); returns (best weights, history)."""
    rng = np.random.default_rng(adapter.seed)
    with torch_settings(adapter.seed, threads):
        net = DiveNet(adapter.dim_in, adapter.dim_out, adapter.heads, adapter.hidden)
        net.load_numpy(adapter.params)
        unit = l2_normalize(x)
        xt = torch.from_numpy(x)
        unit_t = torch.from_numpy(unit)
        labelled = triplets is not None
        if labelled:
            tr_idx, val_idx = split_holdout(len(triplets[0]), val_fraction, rng)
            train_trip = tuple(t[tr_idx] for t in triplets)
            val_trip = tuple(t[val_idx] for t in triplets)
            n_items = len(tr_idx)
        else:
            tr_rows, val_rows = split_holdout(x.shape[0], val_fraction, rng)
            miner = NeighbourMiner(unit[tr_rows], max(candidate_depth, neighbours))
            k_pos = min(neighbours, miner.depth - 1) if miner.depth > 1 else 1
            depth = max(miner.depth, k_pos)
            n_items = len(tr_rows)
            holdout = HoldoutRecall(x, unit, val_rows) if len(val_rows) > 1 else None
        optimiser = torch.optim.AdamW([
            {"params": list(net.mlp.parameters()), "lr": lr},
            {"params": [net.head_w, net.head_b], "lr": head_lr},
        ], weight_decay=weight_decay)

        def evaluate(record):
            """Held-out score (higher is better), recorded in ``record``."""
            net.eval()
            if labelled and len(val_trip[0]):
                with torch.no_grad():
                    va, vp, vn = (torch.from_numpy(v) for v in val_trip)
                    out = net(xt)
                    record["val_loss"] = float(hinge_triplets(out, va, vp, vn, float(adapter.margin)).mean())
                return -record["val_loss"]
            if not labelled and len(val_rows) > 1:
                record["val_recall"] = holdout(net)
                return record["val_recall"]
            return -record.get("loss", math.inf)

        def step_labelled(batch):
            a, p, n = (t[batch] for t in train_trip)
            rows, inverse = np.unique(np.concatenate([a, p, n]), return_inverse=True)
            ia, ip, in_ = (torch.from_numpy(v) for v in np.split(inverse, 3))
            views = net.views(xt[torch.from_numpy(rows)])
            hinge = hinge_triplets(net.combine(views), ia, ip, in_, float(adapter.margin))
            return views, hinge, torch.zeros(()), torch.from_numpy(np.unique(ia.numpy()))

        def step_self_supervised(batch):
            anchors = batch  # positions in tr_rows
            cand = candidate_batch(miner, anchors, rng, len(tr_rows), depth, random_candidates)
            anchor_pos = torch.from_numpy(np.searchsorted(cand, anchors))
            positives = torch.from_numpy(np.searchsorted(cand, miner.lists[anchors, :k_pos]))
            rows = torch.from_numpy(tr_rows[cand])
            views = net.views(xt[rows])
            student = net.combine(views)
            ut = unit_t[rows]
            teacher = ut[anchor_pos] @ ut.T
            sim = student[anchor_pos] @ student.T
            n_neg = max(1, min(hard_negatives, len(cand) - k_pos - 1))
            hinge = mined_triplet_losses(sim, teacher, anchor_pos, positives, n_neg,
                                         float(adapter.margin), teacher_margin)
            kl = neighbourhood_kl(sim, teacher, anchor_pos, kl_temperature) if kl_weight > 0 \
                else torch.zeros(())
            # NT-Xent over distinct inputs that are not each other's neighbours: the anchors
            far = torch.from_numpy(np.unique(anchor_pos.numpy()))
            return views, hinge, kl, far

        # epoch 0 is the initial adapter (identity residual, PCA heads): training must beat it
        initial = {"epoch": 0}
        history = [initial]
        best = BestEpoch(evaluate(initial), net.to_numpy(), patience)
        bar = Progress(epochs, progress, "DIVE")
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                net.train()
                sums = np.zeros(4)  # loss, hinge, nt-xent, kl (summed over steps)
                zero = 0
                n_trip = 0
                steps = 0
                order = rng.permutation(n_items)
                batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
                if steps_per_epoch is not None:
                    batches = batches[:steps_per_epoch]
                for batch in batches:
                    views, hinge, kl, nt_pos = (step_labelled if labelled else step_self_supervised)(batch)
                    trip_loss = hinge.mean()
                    loss = trip_loss + kl_weight * kl
                    nt = torch.zeros(())
                    if nt_xent_weight > 0 and adapter.heads > 1 and len(nt_pos) > 1:
                        nt = headwise_nt_xent(views[:, nt_pos], temperature)
                        loss = loss + nt_xent_weight * nt
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    sums += [loss.item(), trip_loss.item(), nt.item(), kl.item()]
                    zero += int((hinge.detach() <= 0).sum())
                    n_trip += hinge.numel()
                    steps += 1
                record = {
                    "epoch": epoch + 1,
                    "loss": float(sums[0] / max(steps, 1)),
                    "triplet_loss": float(sums[1] / max(steps, 1)),
                    "nt_xent_loss": float(sums[2] / max(steps, 1)),
                    "kl_loss": float(sums[3] / max(steps, 1)),
                    "zero_grad_fraction": zero / max(n_trip, 1),
                    "triplets": n_trip,
                }
                score = evaluate(record)
                record["seconds"] = time.perf_counter() - t0
                history.append(record)
                bar.update(loss=record["loss"], zero_grad=record["zero_grad_fraction"], val=score)
                if best.offer(score, net.to_numpy):
                    break
        finally:
            bar.close()
    return best.weights, history


def train_matryoshka(model, x, *, epochs, batch_size, lr, weight_decay, neighbours, random_candidates,
                     pair_weight, reconstruction_weight, steps_per_epoch, threads, progress):
    """Unsupervised Matryoshka-Adaptor-style training: top-k similarity preservation.

    Loss per step (anchors vs candidates = their frozen top-k plus random rows):
    mean |S - s| over each anchor's frozen top-``neighbours`` pairs, plus ``pair_weight``
    times mean |S - s| over all anchor-candidate pairs, plus ``reconstruction_weight`` times
    the mean squared change of the full embedding. Returns (weights, history).
    """
    rng = np.random.default_rng(model.seed)
    with torch_settings(model.seed, threads):
        net = MatryoshkaNet(model.dim_in, model.dim_out, model.hidden)
        unit = l2_normalize(x)
        xt, unit_t = torch.from_numpy(x), torch.from_numpy(unit)
        miner = NeighbourMiner(unit, neighbours)
        k_pos = miner.depth
        optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        history = []
        bar = Progress(epochs, progress, "Matryoshka-Adaptor")
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                order = rng.permutation(x.shape[0])
                batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
                if steps_per_epoch is not None:
                    batches = batches[:steps_per_epoch]
                total = 0.0
                for anchors in batches:
                    cand = candidate_batch(miner, anchors, rng, x.shape[0], k_pos, random_candidates)
                    anchor_pos = torch.from_numpy(np.searchsorted(cand, anchors))
                    positives = torch.from_numpy(np.searchsorted(cand, miner.lists[anchors, :k_pos]))
                    rows = torch.from_numpy(cand)
                    full = net.mlp(xt[rows])
                    red = F.normalize(full[:, :net.dim_out], dim=-1)
                    ut = unit_t[rows]
                    teacher = ut[anchor_pos] @ ut.T
                    student = red[anchor_pos] @ red.T
                    diff = (teacher - student).abs()
                    loss = diff.gather(1, positives).mean() + pair_weight * diff.mean() \
                        + reconstruction_weight * ((full - xt[rows]) ** 2).sum(-1).mean()
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    total += loss.item()
                record = {"epoch": epoch + 1, "loss": total / max(len(batches), 1),
                          "seconds": time.perf_counter() - t0}
                history.append(record)
                bar.update(loss=record["loss"])
        finally:
            bar.close()
    return net.mlp.to_numpy(), history


def split_queries(n_queries, fraction, rng, minimum):
    """(train, held-out) query rows for labelled training; ValueError when ``fraction`` of
    ``n_queries`` leaves fewer than ``minimum`` held-out (or training) queries."""
    if fraction <= 0:
        return np.arange(n_queries), np.zeros(0, dtype=np.int64)
    n_val = int(round(n_queries * fraction))
    if n_val < minimum or n_queries - n_val < minimum:
        raise ValueError(
            f"too few pairs to validate on: val_fraction={fraction} of {n_queries} queries holds out "
            f"{n_val}, and early stopping needs at least {minimum} held-out and {minimum} training "
            f"queries; give at least {int(np.ceil(minimum / fraction))} queries, raise val_fraction, "
            "or pass val_fraction=0 to train every epoch without validation")
    order = rng.permutation(n_queries)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def embed(model_fn, x, block=4096):
    """``model_fn`` over numpy rows in blocks, without gradients, as numpy."""
    with torch.no_grad():
        return np.concatenate([model_fn(torch.from_numpy(x[s:s + block])).numpy()
                               for s in range(0, x.shape[0], block)])


class LabelledPairs:
    """Training and held-out views of labelled (query, doc) pairs for the supervised loops."""

    def __init__(self, docs, queries, pair_q, pair_d, val_fraction, rng, min_val=10):
        self.docs, self.queries = docs, queries
        self.n_docs = docs.shape[0]
        self.codes = relevance_codes(pair_q, pair_d, self.n_docs)
        self.max_relevant = int(np.bincount(pair_q).max())
        train_q, self.val_q = split_queries(queries.shape[0], val_fraction, rng, min_val)
        keep = np.isin(pair_q, train_q)
        self.pair_q, self.pair_d = pair_q[keep], pair_d[keep]
        self.train_q = train_q
        # held-out relevance, as ranking_metrics wants it
        self.val_qrels = [dict() for _ in self.val_q]
        slot = {int(q): i for i, q in enumerate(self.val_q)}
        for q, d in zip(pair_q[~keep], pair_d[~keep]):
            self.val_qrels[slot[int(q)]][int(d)] = 1

    def false_negative_mask(self, batch_q, cand_d, own):
        """(rows, candidates) bool: candidate docs relevant to the row's query, except its own
        column ``own[i]`` (in-batch negatives must not be positives of the query)."""
        mask = np.isin(batch_q[:, None] * np.int64(self.n_docs) + cand_d[None, :], self.codes)
        mask[np.arange(len(batch_q)), own] = False
        return torch.from_numpy(mask)

    def negatives(self, model_fn, k):
        """(n_queries, k) hard negatives of every training query, ranked by ``model_fn``
        (None: the frozen space); rows are indexed by query row."""
        if model_fn is None:
            qv, dv = l2_normalize(self.queries[self.train_q]), l2_normalize(self.docs)
        else:
            qv, dv = embed(model_fn, self.queries[self.train_q]), embed(model_fn, self.docs)
        mined = mine_hard_negatives(qv, self.train_q, dv, self.codes, k, self.max_relevant)
        out = np.zeros((self.queries.shape[0], mined.shape[1]), dtype=np.int64)
        out[self.train_q] = mined
        return out

    def val_score(self, model_fn):
        """nDCG@10 of the held-out queries searched over *all* docs (the use case)."""
        return ranking_metrics(embed(model_fn, self.queries[self.val_q]), embed(model_fn, self.docs),
                               self.val_qrels, k=10, depth=10)["ndcg@10"]


def info_nce(q, d, mask, temperature):
    """Cross-entropy of each query row against its own doc column (column i for row i) among
    all columns of ``d``; ``mask`` (rows, columns) True drops a column (a false negative)."""
    logits = (q @ d.T / temperature).masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, torch.arange(q.shape[0]))


def train_dive_labelled(adapter, docs, queries, pair_q, pair_d, *, epochs, batch_size, lr, head_lr,
                        weight_decay, val_fraction, patience, nt_xent_weight, temperature,
                        hard_negatives, symmetric, margin, steps_per_epoch, threads, progress,
                        early_stopping="best", epoch_callback=None, dropout=0.0, nested_head_w=None):
    """Supervised DIVE on (query, relevant doc) pairs; returns (best weights, history).

    Per step, ``batch_size`` pairs; each pair gets one hard negative drawn from its query's
    ``hard_negatives`` top non-relevant docs in the frozen space and as many in the current
    adapter's space (re-mined every epoch). Loss = hinge triplet (query, doc, negative) with
    margin ``margin`` on the ensemble output + ``nt_xent_weight`` x (NT-Xent per head
    + NT-Xent of the ensemble output), each over the batch's docs and negatives (in-batch
    negatives, relevant ones masked), query to doc and, if ``symmetric``, doc to query.

    ``early_stopping``: "best" keeps the epoch with the best held-out nDCG@10; "smoothed"
    the epoch with the best centred 3-epoch mean of it (epochs e-1, e, e+1; two at the ends),
    ``patience`` counted on that mean. Training itself is the same: only the kept epoch and
    the stopping epoch differ. ``epoch_callback(record, weights)`` is called after every epoch
    (epoch 0 included) with its history record and a copy of its weights. ``dropout`` drops
    the residual MLP's hidden activations in training steps (never when mining or scoring).

    ``nested_head_w`` (heads, dim_in, extra columns), or None: a Matryoshka-style auxiliary
    output. The heads are trained with these extra columns after their ``dim_out`` ones;
    every loss above is taken on the normalised first ``dim_out`` columns (the kept output)
    and, at equal weight, on the normalised full width. Mining, scoring and the returned
    weights use the first ``dim_out`` columns only.
    """
    rng = np.random.default_rng(adapter.seed)
    with torch_settings(adapter.seed, threads):
        k = adapter.dim_out
        if nested_head_w is None:
            net = DiveNet(adapter.dim_in, k, adapter.heads, adapter.hidden)
            net.load_numpy(adapter.params)
            model, widths, export = net, (None,), net.to_numpy
        else:
            wide = nested_head_w.shape[2] + k
            net = DiveNet(adapter.dim_in, wide, adapter.heads, adapter.hidden)
            net.load_numpy({**adapter.params,
                            "head_w": np.concatenate([adapter.params["head_w"], nested_head_w], axis=2),
                            "head_b": np.zeros((adapter.heads, wide), np.float32)})

            def model(x):
                return net.combine(F.normalize(net.raw_views(x)[..., :k], dim=-1))

            def export():
                p = net.to_numpy()
                p["head_w"] = np.ascontiguousarray(p["head_w"][:, :, :k])
                p["head_b"] = np.ascontiguousarray(p["head_b"][:, :k])
                return p
            widths = (k, wide)
        net.mlp.dropout = float(dropout)
        data = LabelledPairs(docs, queries, pair_q, pair_d, val_fraction, rng)
        dt, qt = torch.from_numpy(docs), torch.from_numpy(queries)
        frozen_neg = data.negatives(None, hard_negatives)
        optimiser = torch.optim.AdamW([
            {"params": list(net.mlp.parameters()), "lr": lr},
            {"params": [net.head_w, net.head_b], "lr": head_lr},
        ], weight_decay=weight_decay)

        def evaluate(record):
            net.eval()
            if len(data.val_q):
                record["val_ndcg@10"] = data.val_score(model)
                return record["val_ndcg@10"]
            return -record.get("loss", math.inf)

        initial = {"epoch": 0}
        history = [initial]
        scores = [evaluate(initial)]
        weights = export()
        if epoch_callback is not None:
            epoch_callback(initial, weights)
        previous = weights  # the smoothed rule judges an epoch one epoch later
        best = BestEpoch(-math.inf if early_stopping == "smoothed" else scores[0], weights, patience)
        bar = Progress(epochs, progress, "DIVE")
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                net.eval()
                pool = np.concatenate([frozen_neg, data.negatives(model, hard_negatives)], axis=1)
                net.train()
                sums = np.zeros(3)  # loss, hinge, nt-xent
                zero = n_trip = steps = 0
                order = rng.permutation(len(data.pair_q))
                batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
                if steps_per_epoch is not None:
                    batches = batches[:steps_per_epoch]
                for batch in batches:
                    bq, bd = data.pair_q[batch], data.pair_d[batch]
                    bn = pool[bq, rng.integers(0, pool.shape[1], len(batch))]
                    b = len(batch)
                    if widths == (None,):
                        raws = None
                    else:
                        raws = [net.raw_views(t[torch.from_numpy(i)]) for t, i in ((qt, bq), (dt, bd), (dt, bn))]
                    cand = np.concatenate([bd, bn])
                    mask = data.false_negative_mask(bq, cand, np.arange(b))
                    back = data.false_negative_mask(bq, bd, np.arange(b)).T if symmetric else None
                    loss = None
                    for width in widths:
                        if raws is None:
                            vq, vd, vn = (net.views(t[torch.from_numpy(i)]) for t, i in ((qt, bq), (dt, bd), (dt, bn)))
                        else:
                            vq, vd, vn = (F.normalize(z[..., :width], dim=-1) for z in raws)
                        oq, od, on = net.combine(vq), net.combine(vd), net.combine(vn)
                        hinge_w = F.relu(margin - (oq * od).sum(-1) + (oq * on).sum(-1))
                        vdn, odn = torch.cat([vd, vn], 1), torch.cat([od, on])
                        # head-wise NT-Xent (mean over heads) plus the same loss on the ensemble output
                        nt_w = sum(info_nce(vq[h], vdn[h], mask, temperature) for h in range(adapter.heads)) \
                            / adapter.heads + info_nce(oq, odn, mask, temperature)
                        if symmetric:
                            nt_w = nt_w + sum(info_nce(vd[h], vq[h], back, temperature) for h in range(adapter.heads)) \
                                / adapter.heads + info_nce(od, oq, back, temperature)
                        term = hinge_w.mean() + nt_xent_weight * nt_w
                        loss = term if loss is None else loss + term
                        if width == widths[0]:
                            hinge, nt = hinge_w, nt_w  # the kept output's terms are logged
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    sums += [loss.item(), hinge.mean().item(), nt.item()]
                    zero += int((hinge.detach() <= 0).sum())
                    n_trip += b
                    steps += 1
                record = {"epoch": epoch + 1, "loss": float(sums[0] / max(steps, 1)),
                          "triplet_loss": float(sums[1] / max(steps, 1)),
                          "nt_xent_loss": float(sums[2] / max(steps, 1)),
                          "zero_grad_fraction": zero / max(n_trip, 1), "triplets": n_trip}
                score = evaluate(record)
                record["seconds"] = time.perf_counter() - t0
                history.append(record)
                scores.append(score)
                bar.update(loss=record["loss"], zero_grad=record["zero_grad_fraction"], val=score)
                if epoch_callback is not None:
                    epoch_callback(record, export())
                if early_stopping == "smoothed":
                    # the previous epoch's centred mean is complete now (its epochs e-1, e, e+1)
                    judged, kept = float(np.mean(scores[max(0, epoch - 1):epoch + 2])), previous
                    previous = export()
                    stop = best.offer(judged, lambda: kept)
                else:
                    stop = best.offer(score, export)
                if stop:
                    break
            if early_stopping == "smoothed":
                best.offer(float(np.mean(scores[-2:])), lambda: previous)  # the last epoch: its mean with the one before
        finally:
            bar.close()
    return best.weights, history


class LinearNet(nn.Module):
    """``normalize(x @ W)``: the linear projection baselines (W: (dim_in, dim_out))."""

    def __init__(self, basis):
        super().__init__()
        self.w = nn.Parameter(torch.from_numpy(np.array(basis, dtype=np.float32)))

    def forward(self, x):
        return F.normalize(x @ self.w, dim=-1)


def pairwise_ranking(q, d, mask, temperature):
    """Search-Adaptor's pairwise ranking loss over in-batch docs: mean over (query i, doc j
    != i, not relevant) of ``softplus((s_ij - s_ii) / T)`` (RankNet: a relevant doc must
    outscore each non-relevant one)."""
    s = q @ d.T
    own = s.diagonal()[:, None]
    off = ~mask & ~torch.eye(q.shape[0], d.shape[0], dtype=torch.bool)
    return F.softplus((s - own) / temperature)[off].mean()


def train_ranking(net, params_fn, seed, docs, queries, pair_q, pair_d, *, loss, temperature, epochs,
                  batch_size, lr, weight_decay, val_fraction, patience, threads, progress, desc,
                  extra_loss=None):
    """Train a reducer ``net`` (rows -> unit reduced rows) on labelled pairs with in-batch
    negatives: ``loss`` "infonce" (query to doc) or "pairwise" (:func:`pairwise_ranking`),
    plus ``extra_loss(net, query_rows, doc_rows)`` if given. Early stopping on held-out
    nDCG@10 as in :func:`train_dive_labelled`; returns (``params_fn()`` of the best epoch,
    history)."""
    rng = np.random.default_rng(seed)
    with torch_settings(seed, threads):
        data = LabelledPairs(docs, queries, pair_q, pair_d, val_fraction, rng)
        dt, qt = torch.from_numpy(docs), torch.from_numpy(queries)
        optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
        rank_loss = info_nce if loss == "infonce" else pairwise_ranking

        def evaluate(record):
            net.eval()
            if len(data.val_q):
                record["val_ndcg@10"] = data.val_score(net)
                return record["val_ndcg@10"]
            return -record.get("loss", math.inf)

        history = [{"epoch": 0}]
        best = BestEpoch(evaluate(history[0]), params_fn(), patience)
        bar = Progress(epochs, progress, desc)
        try:
            for epoch in range(epochs):
                t0 = time.perf_counter()
                net.train()
                order = rng.permutation(len(data.pair_q))
                total, steps = 0.0, 0
                for s in range(0, len(order), batch_size):
                    batch = order[s:s + batch_size]
                    bq, bd = data.pair_q[batch], data.pair_d[batch]
                    xq, xd = qt[torch.from_numpy(bq)], dt[torch.from_numpy(bd)]
                    mask = data.false_negative_mask(bq, bd, np.arange(len(batch)))
                    value = rank_loss(net(xq), net(xd), mask, temperature)
                    if extra_loss is not None:
                        value = value + extra_loss(net, xq, xd)
                    optimiser.zero_grad(set_to_none=True)
                    value.backward()
                    optimiser.step()
                    total += value.item()
                    steps += 1
                record = {"epoch": epoch + 1, "loss": total / max(steps, 1)}
                score = evaluate(record)
                record["seconds"] = time.perf_counter() - t0
                history.append(record)
                bar.update(loss=record["loss"], val=score)
                if best.offer(score, params_fn):
                    break
        finally:
            bar.close()
    return best.weights, history


def matryoshka_similarity_loss(net, x, neighbours=10):
    """The unsupervised Matryoshka-Adaptor terms on a batch of rows ``x``: mean |S - s| of
    frozen vs reduced cosine over each row's in-batch top-``neighbours`` pairs, plus over all
    pairs, plus the mean squared change of the full embedding (reconstruction)."""
    full = net.mlp(x)
    red = F.normalize(full[:, :net.dim_out], dim=-1)
    unit = F.normalize(x, dim=-1)
    teacher = unit @ unit.T
    diff = (teacher - red @ red.T).abs()
    top = teacher.topk(min(neighbours + 1, x.shape[0]), dim=1).indices
    return diff.gather(1, top).mean() + diff.mean() + ((full - x) ** 2).sum(-1).mean()
