"""Supervised DIVE on (query, relevant doc) pairs, its baselines, and evaluate_retrieval."""

import numpy as np
import pytest
import torch

import spherecodec
from spherecodec.dive import (PCA, DiveAdapter, LinearProjection, MatryoshkaAdaptor, SearchAdaptor,
                              Truncation, l2_normalize, ranking_metrics)
from spherecodec.dive._train import LabelledPairs

torch.set_num_threads(1)
TINY = dict(epochs=3, batch_size=64, threads=1, progress=False)
# tiny runs (24 steps) need larger steps than the defaults tuned for 12,000 pairs
FAST = dict(TINY, lr=1e-3, head_lr=1e-2)


def labelled_sample(n, dim=32, signal=8, seed=0):
    """Synthetic labelled pairs where the labels, not the variance, say what to keep.

    A query and its document share a topic in the first ``signal`` coordinates (std 0.5
    each); the other coordinates are independent per side: 4 of them with a larger variance
    than the topic (std 0.8, so PCA to ``signal`` dims keeps them and loses half the topic)
    and the rest small (std 0.2). Truncation to ``signal`` dims is the ceiling.
    """
    rng = np.random.default_rng(seed)
    topic = rng.standard_normal((n, signal)) * 0.5
    scale = np.r_[np.full(4, 0.8), np.full(dim - signal - 4, 0.2)]

    def side():
        out = np.concatenate([topic + 0.15 * rng.standard_normal((n, signal)),
                              scale * rng.standard_normal((n, dim - signal))], axis=1)
        return l2_normalize(out.astype(np.float32))
    return side(), side()  # docs, queries (row i relevant to row i)


@pytest.fixture(scope="module")
def sample():
    docs, queries = labelled_sample(700)
    # 500 training pairs, 200 test queries over the 200 held-out docs
    return docs[:500], queries[:500], docs[500:], queries[500:]


@pytest.fixture(scope="module")
def dive(sample):
    train_d, train_q, _, _ = sample
    return DiveAdapter(32, 8, heads=2, hidden=32, seed=3).fit(train_d, queries=train_q,
                                                             positives=np.arange(500), **FAST)


def ndcg(method, sample):
    _, _, corpus, queries = sample
    return spherecodec.evaluate_retrieval(corpus, queries, np.arange(len(corpus)),
                                          methods=[method])[0]["ndcg@10"]


def test_supervised_dive_learns_what_the_labels_say(sample, dive):
    train_d, train_q, _, _ = sample
    pca = PCA(32, 8).fit(train_d, queries=train_q, positives=np.arange(500))
    lin = LinearProjection(32, 8).fit(train_d, queries=train_q, positives=np.arange(500), **TINY, lr=1e-2)
    scores = {name: ndcg(m, sample) for name, m in
              (("pca", pca), ("dive", dive), ("linear", lin), ("truncation", Truncation(32, 8)))}
    # the 8 topic coordinates are exactly what truncation keeps: the ceiling here
    assert scores["truncation"] > 0.9
    assert scores["pca"] < 0.2
    assert scores["dive"] > scores["pca"] + 0.2 and scores["linear"] > scores["pca"] + 0.1
    history = dive.history
    assert history[0]["epoch"] == 0 and "val_ndcg@10" in history[0]
    best = max(h["val_ndcg@10"] for h in history)
    assert best > history[0]["val_ndcg@10"]
    assert all(0 <= h["zero_grad_fraction"] <= 1 and h["triplets"] == 475 for h in history[1:])


def test_supervised_fit_is_seeded_and_numpy_matches_torch(sample, dive):
    train_d, train_q, corpus, _ = sample
    again = DiveAdapter(32, 8, heads=2, hidden=32, seed=3).fit(train_d, queries=train_q,
                                                              positives=np.arange(500), **FAST)
    assert again.weights_hash() == dive.weights_hash()
    assert np.abs(dive.transform(corpus) - dive.torch_transform(corpus)).max() < 1e-5


def test_early_stopping_on_held_out_pairs_keeps_the_start(sample):
    train_d, train_q, corpus, _ = sample
    a = DiveAdapter(32, 8, heads=2, hidden=16, init_noise=0.0).fit(
        train_d, queries=train_q, positives=np.arange(500),
        **{**TINY, "epochs": 4, "lr": 5.0, "head_lr": 5.0, "patience": 1})
    assert len(a.history) == 2  # epoch 0, one worse epoch: patience 1 stops
    assert a.history[1]["val_ndcg@10"] < a.history[0]["val_ndcg@10"]
    start = PCA(32, 8).fit(train_d, queries=train_q, positives=np.arange(500))
    assert np.abs(a.transform(corpus) - start.transform(corpus)).max() < 1e-5


def weight_bytes(params):
    return b"".join(params[name].tobytes() for name in sorted(params))


def test_smoothed_early_stopping_keeps_the_best_three_epoch_mean(sample):
    train_d, train_q, _, _ = sample
    fits = {}
    for rule in ("best", "smoothed"):
        seen = []
        a = DiveAdapter(32, 8, heads=2, hidden=16, seed=5).fit(
            train_d, queries=train_q, positives=np.arange(500), early_stopping=rule,
            epoch_callback=lambda record, weights: seen.append((record["epoch"], weight_bytes(weights))),
            **{**TINY, "lr": 3e-2, "head_lr": 0.3, "epochs": 5, "patience": None})
        fits[rule] = (a, seen)
    (best, seen_best), (smooth, seen_smooth) = fits["best"], fits["smoothed"]
    # the rule changes which epoch is kept, not the training: same epochs, same weights
    assert seen_best == seen_smooth and [e for e, _ in seen_best] == list(range(6))
    scores = np.array([h["val_ndcg@10"] for h in best.history])
    assert scores.tolist() == [h["val_ndcg@10"] for h in smooth.history]
    means = [scores[max(0, e - 1):e + 2].mean() for e in range(6)]
    assert np.argmax(means) != np.argmax(scores)  # (these settings overshoot: the rules disagree)
    assert weight_bytes(best.params) == seen_best[int(np.argmax(scores))][1]
    assert weight_bytes(smooth.params) == seen_best[int(np.argmax(means))][1]
    with pytest.raises(ValueError, match="early_stopping"):
        DiveAdapter(32, 8).fit(train_d, queries=train_q, positives=np.arange(500), early_stopping="last")


def test_dropout_acts_in_training_only_and_is_seeded(sample):
    train_d, train_q, corpus, _ = sample
    fit = lambda seed, p: DiveAdapter(32, 8, heads=2, hidden=16, seed=seed).fit(  # noqa: E731
        train_d, queries=train_q, positives=np.arange(500), dropout=p, **{**FAST, "epochs": 1})
    plain, dropped, again = fit(1, 0.0), fit(1, 0.3), fit(1, 0.3)
    assert plain.history[1]["loss"] != dropped.history[1]["loss"]  # training sees the dropout
    assert dropped.weights_hash() == again.weights_hash() != plain.weights_hash()
    # inference never drops: the numpy transform and torch agree
    assert np.abs(dropped.transform(corpus) - dropped.torch_transform(corpus)).max() < 1e-5
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\), not 1.5"):
        fit(1, 1.5)
    with pytest.raises(ValueError, match="dropout= are the labelled mode's"):
        DiveAdapter(32, 8).fit(train_d, dropout=0.1, **TINY)


def test_nested_output_trains_a_wider_head_and_keeps_its_prefix(sample):
    train_d, train_q, corpus, _ = sample
    fit = lambda nested: DiveAdapter(32, 8, heads=2, hidden=16, seed=1).fit(  # noqa: E731
        train_d, queries=train_q, positives=np.arange(500), nested=nested, **{**FAST, "epochs": 1})
    plain, nested, again = fit(1), fit(2), fit(2)
    # the kept columns start where the plain fit starts (epoch 0 is scored on them alone) ...
    assert nested.history[0]["val_ndcg@10"] == pytest.approx(plain.history[0]["val_ndcg@10"], abs=1e-6)
    # ... but training also pulls on the 8 extra columns, which are not kept
    assert nested.params["head_w"].shape == plain.params["head_w"].shape == (2, 32, 8)
    assert nested.history[1]["loss"] > plain.history[1]["loss"]  # two widths' losses
    assert nested.weights_hash() == again.weights_hash() != plain.weights_hash()
    assert np.abs(nested.transform(corpus) - nested.torch_transform(corpus)).max() < 1e-5
    with pytest.raises(ValueError, match="nested=5 needs nested x dim_out = 40 <= dim_in = 32"):
        fit(5)
    with pytest.raises(ValueError, match="nested= and dropout= are the labelled mode's"):
        DiveAdapter(32, 8).fit(train_d, nested=2, **TINY)


def test_several_relevant_docs_per_query(sample):
    train_d, train_q, _, _ = sample
    # queries 0..199 each relevant to their own doc and to doc i + 200 (an unrelated one)
    positives = [np.array([i, i + 200]) for i in range(200)]
    a = DiveAdapter(32, 8, heads=2, hidden=16).fit(train_d, queries=train_q[:200], positives=positives,
                                                    **{**TINY, "epochs": 1})
    assert a.fitted and a.history[1]["triplets"] == 2 * 190
    pair_q = np.repeat(np.arange(3), 2)
    pair_d = np.array([0, 5, 1, 6, 2, 7])
    data = LabelledPairs(train_d[:10], train_q[:3], pair_q, pair_d, 0.0, np.random.default_rng(0))
    mask = data.false_negative_mask(pair_q, pair_d, np.arange(6)).numpy()
    # row 0 (query 0, doc 0): doc 5 is also relevant to query 0, masked; its own column is not
    assert mask[0].tolist() == [False, True, False, False, False, False]
    assert mask[3].tolist() == [False, False, True, False, False, False]


def test_supervised_baselines(sample):
    train_d, train_q, _, _ = sample
    pos = np.arange(500)
    s = SearchAdaptor(32, 8).fit(train_d, queries=train_q, positives=pos, **TINY, lr=1e-2)
    m = MatryoshkaAdaptor(32, 8, hidden=16).fit(train_d, queries=train_q, positives=pos, **TINY)
    assert ndcg(s, sample) > ndcg(PCA(32, 8).fit(train_d), sample) + 0.1
    assert m.params is not None and len(m.history) >= 2
    with pytest.raises(ValueError, match="supervised"):
        LinearProjection(32, 8).fit(train_d)


def test_ranking_metrics_by_hand():
    docs = np.eye(4, dtype=np.float32)
    query = np.array([[0.1, 0.4, 0.3, 0.2]], np.float32)  # ranks docs 1, 2, 3, 0
    got = ranking_metrics(query, docs, [{2: 2.0, 0: 1.0}], k=2, depth=4)
    dcg = 2.0 / np.log2(3)
    idcg = 2.0 + 1.0 / np.log2(3)
    assert got["ndcg@2"] == pytest.approx(dcg / idcg)
    assert got["recall@2"] == 0.5 and got["recall@4"] == 1.0 and got["mrr"] == 0.5


def test_binary_qrels_match_the_rank_formula():
    rng = np.random.default_rng(1)
    corpus = l2_normalize(rng.standard_normal((300, 16)).astype(np.float32))
    queries = l2_normalize(rng.standard_normal((50, 16)).astype(np.float32))
    rel = rng.integers(0, 300, 50)
    s = queries @ corpus.T
    rank = (s > s[np.arange(50), rel][:, None]).sum(1)
    row = spherecodec.evaluate_retrieval(corpus, queries, rel, methods={"f": None})[0]
    assert row["ndcg@10"] == pytest.approx(np.where(rank < 10, 1 / np.log2(rank + 2), 0).mean())
    assert row["recall@10"] == pytest.approx((rank < 10).mean())
    assert row["recall@100"] == pytest.approx((rank < 100).mean())
    assert row["mrr"] == pytest.approx(np.where(rank < 100, 1 / (rank + 1), 0).mean())
    assert row["bytes_per_vector"] == 64 and row["dims"] == 16
    as_lists = spherecodec.evaluate_retrieval(corpus, queries, [[r] for r in rel], methods={"f": None})[0]
    assert as_lists["ndcg@10"] == row["ndcg@10"]


def test_evaluate_retrieval_codecs_and_compositions(sample, dive):
    _, _, corpus, queries = sample
    rel = np.arange(len(corpus))
    rows = spherecodec.evaluate_retrieval(corpus, queries, rel, methods={
        "int8": "int8", "dive": dive, "dive+int8": (dive, "int8"), "dive+binary": (dive, ("binary", {})),
        "dive codec": {"codec": "dive", "adapter": dive, "then": "int8"}})
    by = {r["method"]: r for r in rows}
    blob = spherecodec.encode(dive.transform(corpus), codec="int8")
    decoded = spherecodec.decode(blob)
    direct = ranking_metrics(dive.transform(queries), decoded, [{int(i): 1} for i in rel])
    assert by["dive+int8"]["ndcg@10"] == direct["ndcg@10"] == by["dive codec"]["ndcg@10"]
    assert by["dive+int8"]["bytes_per_vector"] == len(blob) / len(corpus) < by["dive"]["bytes_per_vector"]
    assert by["dive+binary"]["bytes_per_vector"] < by["dive+int8"]["bytes_per_vector"]
    assert by["dive"]["dims"] == 8 and by["int8"]["dims"] == 32


def test_bad_input_is_named(sample):
    train_d, train_q, corpus, queries = sample
    a = DiveAdapter(32, 8, heads=2, hidden=16)
    fit = lambda **kw: a.fit(train_d, **{**TINY, **kw})  # noqa: E731
    with pytest.raises(ValueError, match="positives has 499 entries but queries has 500"):
        fit(queries=train_q, positives=np.arange(499))
    with pytest.raises(ValueError, match="queries have 16 columns but docs have 32"):
        fit(queries=train_q[:, :16], positives=np.arange(500))
    with pytest.raises(ValueError, match="doc row 500, outside docs' 500 rows"):
        fit(queries=train_q, positives=np.arange(1, 501))
    with pytest.raises(ValueError, match="too few pairs to validate on"):
        fit(queries=train_q[:50], positives=np.arange(50))
    with pytest.raises(ValueError, match="needs positives"):
        fit(queries=train_q)
    with pytest.raises(ValueError, match="needs queries"):
        fit(positives=np.arange(500))
    with pytest.raises(TypeError, match="integer doc rows"):
        fit(queries=train_q, positives=np.zeros(500))
    with pytest.raises(ValueError, match=r"positives\[3\] is empty"):
        fit(queries=train_q[:5], positives=[[0], [1], [2], [], [4]])
    ev = spherecodec.evaluate_retrieval
    with pytest.raises(ValueError, match="doc row 200, outside the corpus's 200 rows"):
        ev(corpus, queries, np.arange(1, 201), methods=[None])
    with pytest.raises(ValueError, match="qrels has 199 entries but there are 200 queries"):
        ev(corpus, queries, np.arange(199), methods=[None])
    with pytest.raises(ValueError, match="queries have 16 columns but the corpus has 32"):
        ev(corpus, queries[:, :16], np.arange(200), methods=[None])
    with pytest.raises(ValueError, match="no relevant doc"):
        ev(corpus, queries[:1], [{0: 0}], methods=[None])
    with pytest.raises(TypeError, match="a method is"):
        ev(corpus, queries, np.arange(200), methods=[42])


def test_retrieval_bench_on_a_set_directory(tmp_path, sample, capsys):
    from spherecodec.bench import main as bench_main
    from spherecodec.bench import retrieval

    train_d, train_q, corpus, queries = sample
    assert bench_main(["--retrieval", str(tmp_path)]) == 1
    assert "no corpus-*.npy" in capsys.readouterr().err
    for name, arr in (("corpus-32", corpus), ("queries-32", queries), ("qrels", np.arange(200)),
                      ("train-queries-32", train_q), ("train-docs-32", train_d)):
        np.save(tmp_path / f"{name}.npy", arr)
    results = retrieval.run(str(tmp_path), [4], [0, 1], ["pca", "linear"], threads=1, log=lambda s: None)
    names = [(r["name"], r["seed"]) for r in results["rows"]]
    assert names == [("frozen", None), ("frozen+int8", None), ("frozen+binary", None), ("pca", 0),
                     ("linear", 0), ("linear", 1)]
    pca_row = results["rows"][3]
    expected = ranking_metrics(*(PCA(32, 8).fit(train_d, queries=train_q, positives=np.arange(500))
                                 .transform(v) for v in (queries, corpus)), [{i: 1} for i in range(200)])
    assert pca_row["ndcg@10"] == expected["ndcg@10"] and pca_row["dims"] == 8
    paths = retrieval.write(results, str(tmp_path / "out"))
    table = open(paths[0]).read()
    assert "| linear |" in table and "±" in table
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["retrieval.md", "retrieval.json", "retrieval.png"]


def test_the_mlp_width_follows_the_mode_unless_given(sample):
    # hidden=None: 2048 until a fit, 4096 for a labelled fit, 2048 for a self-supervised one;
    # a given width is kept in both modes, and the config rebuilds the fitted adapter
    train_d, train_q, _, _ = sample
    a = DiveAdapter(32, 8, heads=2, seed=3)
    assert a.hidden == 2048 and a.params["w1"].shape == (32, 2048)
    a.fit(train_d, queries=train_q, positives=np.arange(500), **{**FAST, "epochs": 1})
    assert a.hidden == 4096 and a.params["w1"].shape == (32, 4096)
    assert DiveAdapter(**a.get_config()).hidden == 4096
    a.fit(train_d, **{**FAST, "epochs": 1})
    assert a.hidden == 2048 and a.params["w1"].shape == (32, 2048)
    given = DiveAdapter(32, 8, heads=2, hidden=24, seed=3)
    given.fit(train_d, queries=train_q, positives=np.arange(500), **{**FAST, "epochs": 1})
    assert given.hidden == 24 and given.params["w1"].shape == (32, 24)
