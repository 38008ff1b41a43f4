"""DiveAdapter and baselines: numpy/torch agreement, persistence, training behaviour."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from spherecodec.dive import (PCA, DiveAdapter, MatryoshkaAdaptor, RandomProjection, Truncation,
                              exact_knn, l2_normalize, pca_basis, recall_at_k)
from spherecodec.dive._train import DiveNet, MatryoshkaNet, headwise_nt_xent, hinge_triplets

torch.set_num_threads(1)
DATA = Path(__file__).parent / "data" / "minilm-sentences-512.npy"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sentences():
    return np.load(DATA)


def tiny_fit_kwargs(**kw):
    base = dict(epochs=2, steps_per_epoch=3, batch_size=16, random_candidates=64, candidate_depth=12,
                neighbours=5, hard_negatives=5, threads=1, progress=False)
    base.update(kw)
    return base


@pytest.fixture(scope="module")
def fitted(sentences):
    return DiveAdapter(384, 48, heads=3, hidden=32, seed=1).fit(sentences[:300], **tiny_fit_kwargs(lr=1e-3))


def random_weights(adapter, seed=5):
    """Non-trivial weights everywhere (residual branch included) to exercise every layer."""
    rng = np.random.default_rng(seed)
    for name, value in adapter.params.items():
        adapter.params[name] = (value + rng.standard_normal(value.shape) * 0.1).astype(np.float32)
    return adapter


def test_numpy_and_torch_outputs_agree(sentences, fitted):
    for adapter in (fitted, random_weights(DiveAdapter(384, 40, heads=2, hidden=64, seed=3))):
        out_np = adapter.transform(sentences)
        out_t = adapter.torch_transform(sentences)
        assert out_np.dtype == np.float32 and out_np.shape == (512, adapter.dim_out)
        assert np.abs(out_np - out_t).max() < 1e-5
        assert np.allclose(np.linalg.norm(out_np, axis=1), 1, atol=1e-5)


def test_fit_changes_the_residual_branch_and_heads(sentences, fitted):
    fresh = DiveAdapter(384, 48, heads=3, hidden=32, seed=1)
    fresh.params = fresh._initial_params(sentences[:300])
    # history keeps the epoch-0 score; training ran and was kept only if it scored better
    best = max(fitted.history, key=lambda h: h["val_recall"])
    changed = any(not np.array_equal(fitted.params[k], fresh.params[k]) for k in fresh.params)
    assert changed == (best["epoch"] > 0)


def test_one_dimensional_input_is_one_row(fitted, sentences):
    assert fitted.transform(sentences[0]).shape == (1, 48)
    assert np.array_equal(fitted.transform(sentences[0]), fitted.transform(sentences[:1]))


def test_save_load_round_trip(tmp_path, fitted, sentences):
    path = tmp_path / "adapter.npz"
    fitted.save(path)
    loaded = DiveAdapter.load(path)
    assert loaded.get_config() == fitted.get_config()
    assert loaded.weights_hash() == fitted.weights_hash()
    for name, value in fitted.params.items():
        assert np.array_equal(loaded.params[name].view(np.uint32), value.view(np.uint32))
    assert np.array_equal(loaded.transform(sentences).view(np.uint32), fitted.transform(sentences).view(np.uint32))
    assert loaded.history == fitted.history and loaded.fitted


def test_load_rejects_damaged_files(tmp_path, fitted):
    path = tmp_path / "adapter.npz"
    fitted.save(path)
    data = dict(np.load(path))
    data["head_b"] = data["head_b"] + 1  # weights no longer match their recorded hash
    bad = tmp_path / "bad.npz"
    np.savez(bad, **data)
    with pytest.raises(ValueError, match="sha256"):
        DiveAdapter.load(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError):
        DiveAdapter.load(junk)
    np.savez(bad, meta=np.frombuffer(b"{}", np.uint8), **{k: v for k, v in data.items() if k != "meta"})
    with pytest.raises(ValueError, match="not a saved DiveAdapter"):
        DiveAdapter.load(bad)


def test_load_and_transform_work_without_torch(tmp_path, fitted, sentences):
    path = tmp_path / "adapter.npz"
    fitted.save(path)
    np.save(tmp_path / "x.npy", sentences[:20])
    script = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None  # any "import torch" now raises ImportError
        import numpy as np
        import spherecodec.dive
        from spherecodec.dive import DiveAdapter, PCA, Truncation
        a = DiveAdapter.load({str(path)!r})
        np.save({str(tmp_path / 'y.npy')!r}, a.transform(np.load({str(tmp_path / 'x.npy')!r})))
        try:
            a.fit(np.load({str(tmp_path / 'x.npy')!r}))
        except ImportError:
            print("fit needs torch")
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert res.returncode == 0, res.stderr
    assert "fit needs torch" in res.stdout
    assert np.array_equal(np.load(tmp_path / "y.npy").view(np.uint32),
                          fitted.transform(sentences[:20]).view(np.uint32))


def test_fit_is_reproducible_and_seeded(sentences):
    x = sentences[:200]
    kw = tiny_fit_kwargs(lr=1e-3, patience=None)
    a = DiveAdapter(384, 32, heads=2, hidden=16, seed=7).fit(x, **kw)
    b = DiveAdapter(384, 32, heads=2, hidden=16, seed=7).fit(x, **kw)
    c = DiveAdapter(384, 32, heads=2, hidden=16, seed=8).fit(x, **kw)
    assert a.weights_hash() == b.weights_hash()
    assert [h.get("loss") for h in a.history] == [h.get("loss") for h in b.history]
    assert a.weights_hash() != c.weights_hash()


def test_history_records_zero_gradient_fraction(fitted):
    assert fitted.history[0]["epoch"] == 0 and "val_recall" in fitted.history[0]
    epochs = fitted.history[1:]
    assert len(epochs) == 2
    for h in epochs:
        assert 0.0 <= h["zero_grad_fraction"] <= 1.0
        assert h["triplets"] > 0 and h["loss"] > 0 and 0 <= h["val_recall"] <= 1
    # teacher-gap margins: many triplets are already satisfied by the PCA-initialised space
    assert epochs[0]["zero_grad_fraction"] > 0.05


def test_hinge_gradient_is_exactly_zero_past_the_margin():
    emb = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0], [0.9, 0.1], [-1.0, 0.2], [0.8, 0.3]]), dim=-1).requires_grad_(True)
    a, p = torch.tensor([0, 0]), torch.tensor([1, 3])
    n = torch.tensor([2, 1])  # triplet 0 is far past the margin, triplet 1 violates it
    losses = hinge_triplets(emb, a, p, n, 0.2)
    assert losses[0].item() == 0.0 and losses[1].item() > 0
    losses[0].backward(retain_graph=True)
    assert torch.count_nonzero(emb.grad) == 0
    emb.grad = None
    losses[1].backward()
    assert torch.count_nonzero(emb.grad) > 0


def test_headwise_nt_xent_prefers_agreeing_heads():
    gen = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(16, 8, generator=gen), dim=-1)
    agree = torch.stack([base, base, base])
    disagree = torch.nn.functional.normalize(torch.randn(3, 16, 8, generator=gen), dim=-1)
    assert headwise_nt_xent(agree, 0.1) < headwise_nt_xent(disagree, 0.1)


def test_fit_with_labelled_triplets_and_pairs(sentences):
    x = sentences[:200]
    truth = exact_knn(x, x, 3, exclude_self=False)  # column 0 is the row itself
    q = np.arange(200)
    far = (q + 100) % 200
    trip = (q, truth[:, 1], far)
    a = DiveAdapter(384, 32, heads=2, hidden=16).fit(x, triplets=trip, **tiny_fit_kwargs(lr=1e-3))
    assert all("val_loss" in h for h in a.history)
    assert all(0 <= h["zero_grad_fraction"] <= 1 for h in a.history[1:])
    b = DiveAdapter(384, 32, heads=2, hidden=16).fit(x, pairs=np.stack([q, truth[:, 1]], axis=1),
                                                     **tiny_fit_kwargs(lr=1e-3))
    assert len(b.history) >= 2 and b.fitted
    with pytest.raises(ValueError, match="out of range"):
        DiveAdapter(384, 32, hidden=16).fit(x, triplets=(q, q, q + 1), **tiny_fit_kwargs())
    with pytest.raises(ValueError, match="not both"):
        DiveAdapter(384, 32, hidden=16).fit(x, triplets=trip, pairs=(q, q), **tiny_fit_kwargs())


def test_early_stopping_keeps_the_best_weights(sentences):
    x = sentences[:300]
    # a destructive learning rate: every epoch scores below the PCA-initialised start
    a = DiveAdapter(384, 32, heads=2, hidden=16, init_noise=0.0).fit(
        x, **tiny_fit_kwargs(epochs=6, lr=1.0, head_lr=1.0, patience=1))
    assert len(a.history) == 1 + 1  # epoch 0, then one epoch that scores worse ends patience=1
    assert all(h["val_recall"] < a.history[0]["val_recall"] for h in a.history[1:])
    pca = PCA(384, 32).fit(x)
    assert np.abs(a.transform(x) - pca.transform(x)).max() < 1e-5


def test_pca_initialisation_equals_the_pca_baseline(sentences):
    x = sentences
    a = DiveAdapter(384, 64, heads=4, hidden=8, init_noise=0.0)
    a.params = a._initial_params(x)
    assert np.abs(a.transform(x) - PCA(384, 64).fit(x).transform(x)).max() < 1e-5
    basis = pca_basis(x, 64)
    assert np.allclose(basis.T @ basis, np.eye(64), atol=1e-5)


def test_progress_bar_is_shown(sentences, capsys):
    DiveAdapter(384, 16, heads=2, hidden=8).fit(sentences[:100], **tiny_fit_kwargs(epochs=1, progress=True))
    assert "DIVE" in capsys.readouterr().err


def test_argument_errors(sentences):
    with pytest.raises(ValueError):
        DiveAdapter(32, 64)
    with pytest.raises(ValueError):
        DiveAdapter(384, 0)
    with pytest.raises(ValueError):
        DiveAdapter(384, 32, margin=0)
    with pytest.raises(ValueError):
        DiveAdapter(384, 32, init="svd")
    a = DiveAdapter(384, 32, hidden=8)
    with pytest.raises(ValueError, match="columns"):
        a.transform(np.zeros((3, 100), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        a.transform(np.full((2, 384), np.nan, np.float32))
    with pytest.raises(TypeError):
        a.transform(np.array([["a"] * 384]))
    with pytest.raises(ValueError):
        a.fit(sentences[:2])
    with pytest.raises(ValueError, match="steps_per_epoch"):
        a.fit(sentences[:50], steps_per_epoch=0)
    with pytest.raises(ValueError, match="val_fraction"):
        a.fit(sentences[:50], val_fraction=1.5)


def test_baselines(sentences):
    x = sentences
    queries, corpus = x[:64], x[64:]
    truth = exact_knn(queries, corpus, 10)
    t = Truncation(384, 96).fit(x)
    assert np.array_equal(t.transform(x), l2_normalize(x[:, :96]))
    r1, r2 = RandomProjection(384, 96, seed=3), RandomProjection(384, 96, seed=3)
    assert np.array_equal(r1.basis, r2.basis)
    assert np.allclose(r1.basis.T @ r1.basis, np.eye(96), atol=1e-5)
    p = PCA(384, 96).fit(x)
    pc = PCA(384, 96, center=True).fit(x)
    full = PCA(384, 384).fit(x)
    assert recall_at_k(full.transform(queries), full.transform(corpus), truth) == 1.0
    rec = {m: recall_at_k(m.transform(queries), m.transform(corpus), truth) for m in (t, r1, p, pc)}
    # on real MiniLM rows PCA keeps neighbours far better than a random projection
    assert rec[p] > rec[r1] + 0.1 and rec[p] > rec[t]
    with pytest.raises(ValueError):
        PCA(384, 96).transform(x)


def test_matryoshka_adaptor_numpy_matches_torch(sentences):
    x = sentences[:200]
    m = MatryoshkaAdaptor(384, 48, hidden=16)
    assert np.array_equal(m.transform(x), l2_normalize(x[:, :48]))  # untrained: truncation
    m.fit(x, epochs=2, steps_per_epoch=3, batch_size=16, random_candidates=32, threads=1, progress=False,
          lr=1e-3)
    assert len(m.history) == 2 and all(h["loss"] > 0 for h in m.history)
    net = MatryoshkaNet(384, 48, 16)
    net.mlp.load_numpy(m.params)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(m.transform(x) - ref).max() < 1e-5
    assert not np.array_equal(m.transform(x), l2_normalize(x[:, :48]))


def test_dive_net_matches_numpy_layer_by_layer():
    adapter = random_weights(DiveAdapter(24, 8, heads=3, hidden=12, init="random"), seed=11)
    net = DiveNet(24, 8, 3, 12)
    net.load_numpy(adapter.params)
    back = net.to_numpy()
    for name, value in adapter.params.items():
        assert np.array_equal(back[name], value)
    x = np.random.default_rng(0).standard_normal((50, 24)).astype(np.float32) * 3
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert np.abs(adapter.transform(x) - ref).max() < 1e-5
