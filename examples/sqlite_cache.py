"""An embedding cache in SQLite: text hash -> frame, the dictionary stored once beside them.

Run it: ``python examples/sqlite_cache.py`` (uses the sample bundled with spherecodec and a
temporary database; pass a path to keep the database).

Each cached vector is one spherecodec frame (``spherecodec.encode(v, dictionary=d)``): about
1,294 bytes for a 384-d MiniLM vector instead of 1,536 raw, bit-exact. The dictionary (the
exact codec's trained symbol table, under 1 KB) is trained once on the first vectors the
cache sees and kept in the ``dictionaries`` table; every frame row names the dictionary it
was coded with, so a later retrain never orphans old rows.
"""

import hashlib
import sqlite3
import sys
import tempfile
from pathlib import Path

import numpy as np

import spherecodec
from spherecodec.datasets import load_sample


class EmbeddingCache:
    """text -> float32 vector, stored as frames in SQLite."""

    def __init__(self, path):
        self.db = sqlite3.connect(path)
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS dictionaries (id TEXT PRIMARY KEY, data BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS vectors (
                key BLOB PRIMARY KEY,               -- sha256 of the text
                dictionary TEXT NOT NULL REFERENCES dictionaries(id),
                frame BLOB NOT NULL);
        """)
        self._dictionaries = {}  # id -> Dictionary, loaded once
        self.current = None  # the dictionary new vectors are coded with

    @staticmethod
    def key(text):
        """The cache key of ``text``."""
        return hashlib.sha256(text.encode()).digest()

    def train(self, sample):
        """Train the dictionary new vectors use on ``sample`` (rows) and store it."""
        d = spherecodec.train_dictionary(sample)
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO dictionaries VALUES (?, ?)", (d.hex_id, d.to_bytes()))
        self._dictionaries[d.hex_id] = d
        self.current = d

    def _dictionary(self, hex_id):
        if hex_id not in self._dictionaries:
            (data,) = self.db.execute("SELECT data FROM dictionaries WHERE id = ?", (hex_id,)).fetchone()
            self._dictionaries[hex_id] = spherecodec.Dictionary.from_bytes(data)
        return self._dictionaries[hex_id]

    def put_many(self, texts, vectors):
        """Cache ``vectors`` (2-D float32) under their ``texts``."""
        frames = spherecodec.encode_many(vectors, dictionary=self.current)
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                [(self.key(t), self.current.hex_id, f) for t, f in zip(texts, frames)])

    def get(self, text):
        """The cached vector of ``text``, or None."""
        row = self.db.execute("SELECT dictionary, frame FROM vectors WHERE key = ?", (self.key(text),)).fetchone()
        if row is None:
            return None
        return spherecodec.decode(row[1], dictionary=self._dictionary(row[0]))

    def stored_bytes(self):
        """Bytes of all frames and dictionaries."""
        (frames,) = self.db.execute("SELECT COALESCE(SUM(LENGTH(frame)), 0) FROM vectors").fetchone()
        (dicts,) = self.db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM dictionaries").fetchone()
        return frames, dicts


def main(path=None):
    x = load_sample()  # 2000 x 384 MiniLM sentence embeddings
    texts = [f"document {i}" for i in range(len(x))]
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(path or str(Path(tmp) / "cache.sqlite"))
        cache.train(x[:1000])  # the first vectors the cache sees
        cache.put_many(texts[1000:], x[1000:])
        for i in (1000, 1500, 1999):
            assert (cache.get(texts[i]).view(np.uint32) == x[i].view(np.uint32)).all()
        assert cache.get("never cached") is None
        frames, dicts = cache.stored_bytes()
        print(f"{len(x) - 1000} vectors: {frames} frame bytes ({x[1000:].nbytes / frames:.3f}x), "
              f"dictionary {dicts} bytes; every vector read back bit-exact")
        cache.db.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
