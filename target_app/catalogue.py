"""A small product catalogue whose endpoints cost different amounts."""

from __future__ import annotations

import random
from dataclasses import dataclass

CATEGORIES = ("books", "games", "garden", "kitchen", "music", "sports", "tools", "toys")
WORDS = ("red", "blue", "large", "small", "classic", "smart", "eco", "pro", "mini", "ultra",
         "wooden", "steel", "quiet", "fast", "soft", "bright")


@dataclass(frozen=True)
class Product:
    id: int
    name: str
    category: str
    price: float
    stock: int

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "category": self.category,
                "price": self.price, "stock": self.stock}


def make_catalogue(n: int = 500, seed: int = 0) -> dict[int, Product]:
    """Build a deterministic catalogue of `n` products."""
    rng = random.Random(seed)
    products = {}
    for i in range(1, n + 1):
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(CATEGORIES)[:-1]} {i}"
        products[i] = Product(i, name, rng.choice(CATEGORIES), round(rng.uniform(2, 300), 2),
                              rng.randint(0, 200))
    return products


def search(products: dict[int, Product], query: str, limit: int = 20) -> list[Product]:
    """Scan every product for the query words (deliberately a full scan, like a LIKE '%q%')."""
    words = [w for w in query.lower().split() if w]
    hits = [p for p in products.values()
            if all(w in p.name.lower() or w == p.category for w in words)]
    return hits[:limit]
