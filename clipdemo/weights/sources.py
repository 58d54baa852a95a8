"""Where CLIP weights come from, as data: the mirrors of each source, each pinned by SHA-256.

Hub mirrors are also pinned to a revision, and each source's mirror order comes with its reason. Nothing here
touches the network: fetching is `clipdemo.weights.download`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.model import DEFAULT_MODEL
from ..core.labels import MULTILINGUAL
from ..core.multilingual import HUB_REPO

__all__ = ["Mirror", "WeightSource", "WEIGHT_SOURCES", "TowerSource", "TOWER_SOURCES", "TOWER_ROLES", "KNOWN_RELEASES",
           "known_release", "sha256_file", "file_digest"]

log = logging.getLogger(__name__)

_VIT_B_32_SHA = "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"


@dataclass(frozen=True)
class Mirror:
    """One place a checkpoint can be fetched from: a plain HTTPS URL, or a file of a Hugging Face Hub repo at a
    pinned revision (fetched with `huggingface_hub.hf_hub_download`, into the cache `preload_from_hub` fills).
    Every mirror names the SHA-256 of its bytes: a file that does not hash to it is never used."""

    filename: str  # the file's name in the repo, or in the cache directory for a URL mirror
    sha256: str
    url: str | None = None  # a plain HTTPS host
    repo_id: str | None = None  # a Hugging Face Hub model repo ...
    revision: str | None = None  # ... at this commit (40 hex digits: a pin, never a branch)
    endpoint: str | None = None  # the Hub's address (None: huggingface.co, or HF_ENDPOINT); tests pass a loopback

    def __post_init__(self):
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256 or ""):
            raise ValueError(f"Mirror {self.filename}: a SHA-256 (64 hex digits) is required, not {self.sha256!r}.")
        if (self.url is None) == (self.repo_id is None):
            raise ValueError(f"Mirror {self.filename}: give a url or a repo_id, not both or neither.")
        if self.repo_id is not None and not re.fullmatch(r"[0-9a-f]{40}", self.revision or ""):
            raise ValueError(f"Mirror {self.filename}: a Hub mirror needs a pinned revision (a 40-hex commit).")

    @property
    def where(self) -> str:
        """Where it is, for messages and `WeightsInfo.origin`."""
        if self.url is not None:
            return self.url
        return f"{self.endpoint or 'https://huggingface.co'}/{self.repo_id}@{self.revision[:7]}/{self.filename}"


@dataclass(frozen=True)
class WeightSource:
    """A named model whose checkpoint can be fetched from any of its mirrors, tried in order."""

    name: str
    mirrors: tuple[Mirror, ...]


_HF_REPO, _HF_REV = "timm/vit_base_patch32_clip_224.openai", "a6f597a30f7b82c51704746581f9a4e41421e878"
_HF_SAFETENSORS_SHA = "e6d1bd7789aa45192b3bf90570a789b478bae1b74ebcce7eddd908e83a2b7c31"
_HF_BIN_SHA = "9ecdaef325b20e7283dc6a32f92aa638d100899e4f084c2462d3832eeea0b26e"

# The order, from what is known today (2026-11):
# 1. open_clip's safetensors file on the Hub, at a pinned commit. On the Space it is preloaded at build time
#    (`preload_from_hub` in README.md), so it is found in the local Hugging Face cache with no network at all;
#    elsewhere the Hub is the host that answers today; and safetensors holds no pickle.
# 2. The same weights as open_clip's .bin at the same commit (loaded with weights_only=True).
# 3. OpenAI's blob-storage host, the origin behind the CDN below (the TorchScript archive clip.load uses).
# 4. OpenAI's CDN, the URL in `clip.clip._MODELS`: last, since users report it answering 404 (openai/CLIP#516).
# Sizes and hashes of the Hub files come from third-party records (issue #13); they are data, checked on use.
WEIGHT_SOURCES: dict[str, WeightSource] = {
    DEFAULT_MODEL: WeightSource(
        DEFAULT_MODEL,
        (
            Mirror("open_clip_model.safetensors", _HF_SAFETENSORS_SHA, repo_id=_HF_REPO, revision=_HF_REV),  # 605,143,284 B
            Mirror("open_clip_pytorch_model.bin", _HF_BIN_SHA, repo_id=_HF_REPO, revision=_HF_REV),  # 605,225,782 B
            Mirror("ViT-B-32.pt", _VIT_B_32_SHA,
                   url=f"https://openaipublic.blob.core.windows.net/clip/models/{_VIT_B_32_SHA}/ViT-B-32.pt"),
            Mirror("ViT-B-32.pt", _VIT_B_32_SHA,
                   url=f"https://openaipublic.azureedge.net/clip/models/{_VIT_B_32_SHA}/ViT-B-32.pt"),
        ),
    ),
}


# Checkpoint files known by their SHA-256: only these are labelled as what they are (and verified).
KNOWN_RELEASES: dict[str, str] = {
    _VIT_B_32_SHA: "OpenAI ViT-B/32",  # the TorchScript archive `clip.load` downloads (its URL holds the hash)
    _HF_SAFETENSORS_SHA: "OpenAI ViT-B/32",  # the same weights, as open_clip publishes them (safetensors)
    _HF_BIN_SHA: "OpenAI ViT-B/32",  # ... and as its torch.save file
}


@dataclass(frozen=True)
class TowerSource:
    """A text tower's files, each a `WeightSource` by its role: "bert" (DistilBERT's tensors), "dense" (the
    768 -> 512 layer's), "vocab" (the WordPiece vocabulary); and the image weights it was aligned with (a
    KNOWN_RELEASES name): its features mean something beside those only."""

    name: str
    files: dict[str, WeightSource]
    aligned_with: str


TOWER_ROLES = ("bert", "dense", "vocab")
_ML_REV = "58edf8cada9e398793dca955574a48cbb7f18be2"


def _ml(filename: str, sha256: str) -> Mirror:
    return Mirror(filename, sha256, repo_id=HUB_REPO, revision=_ML_REV)


# sentence-transformers/clip-ViT-B-32-multilingual-v1 (Apache-2.0) at one commit, the one projects that pin
# its files download (issue #25's note lists the sources). safetensors first (no pickle); the same tensors as
# torch.save files second (read with weights_only=True). Sizes and hashes are third-party records: data,
# checked on use like the image weights'. On the Space they are preloaded (`preload_from_hub` in README.md).
TOWER_SOURCES: dict[str, TowerSource] = {
    MULTILINGUAL: TowerSource(MULTILINGUAL, {
        "bert": WeightSource("multilingual DistilBERT", (
            _ml("model.safetensors", "7b968c09938603158413ea2c91af82e82158ebb6db901a6cf97c28ce7d7ebc6d"),  # ~539 MB
            _ml("pytorch_model.bin", "a220db68008f8d22d5899fbb71f51e95a34bc42402ecb967c8d42b3ab0e5000f"),  # ~539 MB
        )),
        "dense": WeightSource("multilingual dense layer", (
            _ml("2_Dense/model.safetensors", "d12568dc7300970a4d3dbb49068ad16cd89b99840b74b026f8e48071e9414f74"),  # 1,572,984 B
            _ml("2_Dense/pytorch_model.bin", "616d24a48f22b1097c30423a6054b8ac025fedf31ee9fbb05d5c963c56a14ecf"),  # 1,573,739 B
        )),
        "vocab": WeightSource("multilingual vocabulary", (
            _ml("vocab.txt", "fe0fda7c425b48c516fc8f160d594c8022a0808447475c1a7c6d6479763f310c"),  # 995,526 B
        )),
    }, aligned_with=KNOWN_RELEASES[_VIT_B_32_SHA]),
}


def known_release(sha256: str | None) -> str | None:
    """The release a file with this SHA-256 is, or None when it is not a known one."""
    return KNOWN_RELEASES.get(sha256 or "")


def file_digest(path: Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest (`hashlib` algorithm name) of the file at `path`, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of the file at `path`."""
    return file_digest(path, "sha256")
