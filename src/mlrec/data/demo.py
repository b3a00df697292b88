"""A synthetic, deterministic dataset for demos and tests: no files, no licence.

The generative story, chosen so that collaborative filtering clearly beats
popularity while popularity still matters:

* each item has a primary genre (and sometimes a second one) and a popularity
  from a Zipf-like power law (exponent 1.1), so the top tenth of the items get
  about a third of the traffic;
* each user has a taste vector over genres drawn from a sparse Dirichlet (concentration
  0.1), so most users care about one or two genres;
* a user picks items, without replacement, with probability proportional to
  ``0.95 * taste[genre] * popularity / popularity of that genre + 0.05 * popularity``:
  within a liked genre the hits come first, and a little pure popularity noise
  is mixed in;
* activity per user is log-normal (median 30 events, at least 5), and timestamps are
  uniform over the 90 days before :data:`DEMO_END`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mlrec.core.errors import ValidationError
from mlrec.core.ids import IdMap
from mlrec.core.interactions import Interactions, ItemInfo

__all__ = ["DEMO_END", "DEMO_GENRES", "make_demo"]

DEMO_END = 1_704_067_200
"""The end of the demo's time span, exclusive (timestamps are below it): 2024-01-01T00:00:00Z."""

DEMO_GENRES: tuple[str, ...] = (
    "Sci-Fi",
    "Comedy",
    "Drama",
    "Action",
    "Romance",
    "Horror",
    "Documentary",
    "Animation",
    "Thriller",
    "Fantasy",
)
"""The item categories of the demo catalogue (one latent taste cluster each)."""

_ADJECTIVES = (
    "Silent", "Crimson", "Last", "Hidden", "Electric", "Golden", "Broken", "Midnight",
    "Distant", "Wild", "Frozen", "Burning", "Secret", "Lost", "Iron", "Velvet",
    "Hollow", "Bright", "Savage", "Quiet", "Endless", "Paper", "Neon", "Stolen",
)  # fmt: skip
_NOUNS = (
    "Horizon", "Garden", "Signal", "Empire", "River", "Machine", "Kingdom", "Summer",
    "Promise", "Orbit", "Harbor", "Mirror", "Storm", "Letter", "Frontier", "Engine",
    "Island", "Circus", "Shadow", "Voyage", "Dynasty", "Lantern", "Code", "Tide",
)  # fmt: skip

_SECONDS_PER_DAY = 86_400
_NOISE = 0.05


def _titles(rng: np.random.Generator, n_items: int) -> list[str]:
    adjectives = rng.integers(0, len(_ADJECTIVES), n_items)
    nouns = rng.integers(0, len(_NOUNS), n_items)
    years = rng.integers(1970, 2024, n_items)
    articles = rng.random(n_items) < 0.4
    seen: dict[str, int] = {}
    titles = []
    for adjective, noun, year, article in zip(
        adjectives.tolist(), nouns.tolist(), years.tolist(), articles.tolist(), strict=True
    ):
        base = f"{'The ' if article else ''}{_ADJECTIVES[adjective]} {_NOUNS[noun]}"
        count = seen.get(base, 0) + 1
        seen[base] = count
        sequel = f" {count}" if count > 1 else ""
        titles.append(f"{base}{sequel} ({year})")
    return titles


def make_demo(
    n_users: int = 1000,
    n_items: int = 500,
    seed: int = 42,
    *,
    n_days: int = 90,
) -> Interactions:
    """Generate the synthetic demo dataset (implicit feedback, weights 1.0).

    The result depends only on the arguments and on NumPy's ``PCG64`` streams, so
    it is the same across runs and machines for a given seed (NumPy does not
    promise identical streams across its own major versions).

    Args:
        n_users: number of users (ids ``u0000``, ``u0001``, ...).
        n_items: number of items (ids ``i0000``, ...), each with a title and genres.
        seed: the random seed.
        n_days: timestamps are spread over this many days before :data:`DEMO_END`.

    Returns:
        About 40 events per user on average; every item of the catalogue is in
        ``items`` (even the few nobody picked) and has an ``item_info`` entry.

    Raises:
        ValidationError: a non-positive size, or fewer than 10 items.

    Example:
        >>> demo = make_demo(n_users=100, n_items=50, seed=1)
        >>> demo.n_users, demo.n_items, demo.name
        (100, 50, 'demo')
    """
    if n_users < 1 or n_items < 10 or n_days < 1:
        raise ValidationError("make_demo needs n_users >= 1, n_items >= 10 and n_days >= 1")
    rng = np.random.default_rng(seed)
    n_genres = len(DEMO_GENRES)

    genre_sizes = rng.dirichlet(np.full(n_genres, 4.0))
    genre = rng.choice(n_genres, size=n_items, p=genre_sizes)
    second = (genre + rng.integers(1, n_genres, n_items)) % n_genres
    has_second = rng.random(n_items) < 0.3
    popularity = (rng.permutation(n_items) + 1.0) ** -1.1
    titles = _titles(rng, n_items)

    taste = rng.dirichlet(np.full(n_genres, 0.1), size=n_users)
    activity = np.rint(rng.lognormal(np.log(30.0), 0.7, n_users)).astype(np.int64)
    activity = np.clip(activity, 5, max(5, n_items // 2))
    activity = np.minimum(activity, n_items)

    genre_mass = np.bincount(genre, weights=popularity, minlength=n_genres)
    within_genre = popularity / genre_mass[genre]
    probability = (1.0 - _NOISE) * taste[:, genre] * within_genre + _NOISE * (
        popularity / popularity.sum()
    )
    # Gumbel top-k: the k largest of log(p) + Gumbel noise are a sample of k items
    # without replacement with probabilities p, for all users at once.
    keys = np.log(probability) + rng.gumbel(size=probability.shape)
    ranked = np.argsort(-keys, axis=1, kind="stable")
    chosen = np.arange(n_items) < activity[:, None]
    user_idx = np.repeat(np.arange(n_users, dtype=np.int64), activity)
    item_idx = ranked[chosen].astype(np.int64)

    span = n_days * _SECONDS_PER_DAY
    timestamps = DEMO_END - span + rng.integers(0, span, size=len(user_idx), dtype=np.int64)
    order = np.lexsort((timestamps, user_idx))

    width = max(4, len(str(max(n_users, n_items) - 1)))
    users = IdMap([f"u{u:0{width}d}" for u in range(n_users)])
    items = IdMap([f"i{i:0{width}d}" for i in range(n_items)])
    info = {
        items.id(i): ItemInfo(
            title=titles[i],
            categories=(DEMO_GENRES[genre[i]], DEMO_GENRES[second[i]])
            if has_second[i]
            else (DEMO_GENRES[genre[i]],),
        )
        for i in range(n_items)
    }
    weights: npt.NDArray[np.float32] = np.ones(len(user_idx), dtype=np.float32)
    return Interactions(
        users,
        items,
        user_idx[order],
        item_idx[order],
        weights,
        timestamps[order],
        info,
        "demo",
    )
