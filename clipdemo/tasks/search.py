"""Search by text and by image, over CIFAR-100's test split or a visitor's own pictures.

The runtime fills the feature store in the background: until it is complete, a search covers the images encoded so
far and says how much. A visitor's gallery keeps features and small thumbnails only, in their session; every live
gallery of the process is bounded together.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter
from dataclasses import dataclass, field

import torch
from PIL import Image

from ..core.labels import LabelSet
from ..core.search import SearchQuery, combine, nearest, results, retrieval_scores
from ..core.words import ProgressFn, Refusal, Text
from ..io.cifar import Cifar100
from ..serving.service import Priority, ZeroShot

__all__ = ["Hit", "SearchResult", "query_feature", "search_cifar", "Gallery", "Galleries", "MAX_GALLERY",
           "MAX_GALLERY_IMAGES", "THUMB", "retrieval"]

MAX_GALLERY = 200  # a visitor's own images searchable at once
MAX_GALLERY_IMAGES = 20_000  # every visitor's together, in one process (about 600 MB of features and thumbnails)
THUMB = 96  # px, the longer side of a gallery image's kept thumbnail


@dataclass(frozen=True)
class Hit:
    """One result: `index` (the CIFAR-100 test index, or the position in the visitor's gallery), its cosine to
    the query, and `label` (the true CIFAR-100 class, or the picture's file name)."""

    index: int
    cosine: float
    label: str


@dataclass(frozen=True)
class SearchResult:
    """What a search found, best first; `covered` of `total` images were searched; `source` is "cifar" or
    "gallery"."""

    hits: tuple[Hit, ...]
    covered: int
    total: int
    source: str = "cifar"

    def rows(self) -> list[dict]:
        """The results as the API, the MCP tool, the CLI and the files give them: `[{index, true_label, cosine}]`
        (a gallery's: `[{index, name, cosine}]`), best first."""
        key = "true_label" if self.source == "cifar" else "name"
        return [{"index": h.index, key: h.label, "cosine": h.cosine} for h in self.hits]

    def classes(self) -> list[tuple[str, int]]:
        """How many results each label has, most first (ties in order of first appearance)."""
        return Counter(h.label for h in self.hits).most_common()


def query_feature(zs: ZeroShot, query: SearchQuery, image_feature: torch.Tensor | None = None) -> torch.Tensor:
    """The query as one normalised feature `[D]`: its text (and negative text) through the service's text
    encoder (cached), combined with `image_feature` `[D]` when there is one (`clipdemo.core.search.combine`)."""
    prompts = tuple(p for p in (query.prompt, query.negative_prompt) if p)
    feats = zs.prompt_features(prompts) if prompts else None  # [1 or 2, D]
    text = feats[0] if query.prompt else None
    negative = feats[-1] if query.negative_prompt else None
    return combine(text, image_feature, negative, image_weight=query.image_weight)


def search_cifar(zs: ZeroShot, data: Cifar100, query: SearchQuery, k: object,
                 image_feature: torch.Tensor | None = None) -> SearchResult:
    """The `k` CIFAR-100 test images nearest to the query, among those with stored features."""
    k = results(k)
    store = zs.cifar_store(len(data))
    if len(store) == 0:
        raise Refusal("search_no_index")
    indices, cosines = store.nearest(query_feature(zs, query, image_feature), k)
    hits = tuple(Hit(i, c, data.true_label(i)) for i, c in zip(indices, cosines))
    return SearchResult(hits, len(store), len(data))


@dataclass(frozen=True, eq=False)
class Gallery:
    """A visitor's own searchable pictures: names, `[n, D]` features and thumbnails (never the images
    themselves). Immutable: `add` returns a new gallery. Lives in the visitor's session state only."""

    names: tuple[str, ...] = ()
    features: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))  # [n, D]
    thumbs: tuple[Image.Image, ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    def add(self, zs: ZeroShot, items: list[tuple[str, Image.Image]], progress: ProgressFn | None = None) -> Gallery:
        """This gallery with `items` (name, RGB image) added: encoded in bulk chunks (visitors' predictions go in
        between), thumbnails kept. A Refusal when the gallery would hold more than MAX_GALLERY."""
        if len(self) + len(items) > MAX_GALLERY:
            raise Refusal("gallery_full", MAX_GALLERY, len(self), len(items))
        new = (zs.image_features([im for _, im in items], Priority.BULK, progress, Text("progress_gallery"))
               if items else torch.zeros(0, 0))  # [k, D]
        features = new if len(self) == 0 else torch.cat([self.features, new])  # [n, D]
        return Gallery(self.names + tuple(n for n, _ in items), features,
                       self.thumbs + tuple(_thumbnail(im) for _, im in items))

    def search(self, zs: ZeroShot, query: SearchQuery, k: object,
               image_feature: torch.Tensor | None = None) -> SearchResult:
        """The `k` pictures of this gallery nearest to the query."""
        k = results(k)
        if len(self) == 0:
            raise Refusal("gallery_empty")
        indices, cosines = nearest(self.features, query_feature(zs, query, image_feature), k)
        return SearchResult(tuple(Hit(i, c, self.names[i]) for i, c in zip(indices, cosines)), len(self), len(self),
                            "gallery")


class Galleries:
    """Every visitor's gallery alive in this process, bounded together: at most `max_images` pictures in all
    (their features and thumbnails, ~30 KB each), whatever the number of sessions. Galleries are tracked weakly:
    one whose session ends (or that a newer version of itself replaced) stops counting when it is dropped."""

    def __init__(self, max_images: int = MAX_GALLERY_IMAGES):
        self.max_images = max_images
        self._alive: weakref.WeakSet[Gallery] = weakref.WeakSet()
        self._lock = threading.Lock()

    def held(self) -> int:
        """Pictures held by all live galleries."""
        with self._lock:
            return sum(len(g) for g in self._alive)

    def add(self, gallery: Gallery, zs: ZeroShot, items: list[tuple[str, Image.Image]],
            progress: ProgressFn | None = None) -> Gallery:
        """`gallery.add(...)`, refused with a sentence (a Refusal) when every gallery together would pass
        `max_images`; the grown gallery is tracked in place of the old one."""
        with self._lock:
            others = sum(len(g) for g in self._alive if g is not gallery)
        if others + len(gallery) + len(items) > self.max_images:
            raise Refusal("gallery_space_full", f"{self.max_images:,}")
        grown = gallery.add(zs, items, progress)
        with self._lock:
            self._alive.discard(gallery)
            self._alive.add(grown)
        return grown


def _thumbnail(image: Image.Image) -> Image.Image:
    thumb = image.copy()
    thumb.thumbnail((THUMB, THUMB), Image.Resampling.BICUBIC)
    return thumb


def retrieval(zs: ZeroShot, data: Cifar100, k: int = 10) -> tuple[float, float]:
    """Text-to-image retrieval on the stored features, scored by the true labels: each class's query "a photo
    of a {class}" (the classes' single-prompt label set, through the same text path), precision@k and mean
    average precision over the classes (`clipdemo.core.search.retrieval_scores`). Every image must be stored."""
    store = zs.cifar_store(len(data))
    feats = store.gather(list(range(len(data))))  # [N, D]
    queries = zs.text_features(LabelSet.of(data.classes, ["a photo of a {}"]))  # [C, D]
    return retrieval_scores(feats, torch.tensor(data.targets), queries, k)
