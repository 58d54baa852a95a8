"""The multilingual text tower: labels in any language, aligned with CLIP ViT-B/32's image features.

`sentence-transformers/clip-ViT-B-32-multilingual-v1` (Apache-2.0) is multilingual DistilBERT, a mean over its
token states and a 768 -> 512 linear layer, distilled so that its text features land next to ViT-B/32's *image*
features in 50+ languages. Images still go through CLIP's own vision tower, so the image features, the search index
and the attention maps stay what they are. `transformers` is imported on first use; files come from `clipdemo.weights`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from .clip_package import import_transformers
from .labels import MULTILINGUAL
from .model import WeightsError, WeightsInfo
from .words import Text

__all__ = ["TowerConfig", "TOWER_PRESETS", "TextTower", "WordPieces", "LoadedTower",
           "standin_vocabulary", "build_random", "build_from_state_dicts", "text_features", "VOCAB_SIZE",
           "MAX_TOKENS", "HUB_REPO", "transformers_module"]


def transformers_module():
    """`transformers`, imported whole once (`clip_package.import_transformers`); not installed: a WeightsError with
    the fix, never an ImportError in a visitor's face."""
    try:
        return import_transformers()
    except ImportError as exc:
        raise WeightsError("ml_not_installed", exc) from exc


HUB_REPO = "sentence-transformers/clip-ViT-B-32-multilingual-v1"
VOCAB_SIZE = 119_547  # multilingual DistilBERT's cased WordPiece vocabulary
MAX_TOKENS = 128  # sentence_bert_config.json's max_seq_length: [CLS] and [SEP] included

@dataclass(frozen=True)
class TowerConfig:
    """The tower's sizes: DistilBERT (`DistilBertConfig`'s fields), then the dense layer to `embed_dim`."""

    vocab_size: int = VOCAB_SIZE
    dim: int = 768
    n_layers: int = 6
    n_heads: int = 12
    hidden_dim: int = 3072
    max_position_embeddings: int = 512
    embed_dim: int = 512  # the dense layer's output: CLIP ViT-B/32's joint embedding width
    max_tokens: int = MAX_TOKENS
    # The tokens one label set may cost this tower (CLIP's own: labels.PROMPT_BUDGET, 20,000). Its cased WordPieces
    # cut Turkish finer than CLIP's BPE cuts English: Turkish CIFAR-100 with the 18 Turkish templates is 21,326 of
    # the stand-in's pieces, so the largest preset pair fits with room; ~10 s on 2 vCPUs, like CLIP's 20,000.
    prompt_budget: int = 30_000

    @classmethod
    def from_state_dicts(cls, bert: dict[str, torch.Tensor], dense: dict[str, torch.Tensor]) -> TowerConfig:
        """The sizes read from the tensors (heads: DistilBERT's width over its 64-wide heads); a tensor this reads
        that is missing or of the wrong rank is a WeightsError naming it."""
        need = {"embeddings.word_embeddings.weight": (bert, 2), "embeddings.position_embeddings.weight": (bert, 2),
                "transformer.layer.0.ffn.lin1.weight": (bert, 2), "weight": (dense, 2)}
        missing = [k for k, (sd, rank) in need.items() if k not in sd]
        if missing:
            raise WeightsError("ml_missing_tensor", ", ".join(missing))
        wrong = [k for k, (sd, rank) in need.items() if sd[k].dim() != rank]
        if wrong:
            raise WeightsError("ml_bad_rank", ", ".join(wrong))
        vocab, dim = bert["embeddings.word_embeddings.weight"].shape
        layers = len({k.split(".")[2] for k in bert if k.startswith("transformer.layer.")})
        return cls(vocab_size=vocab, dim=dim, n_layers=layers, n_heads=max(dim // 64, 1),
                   hidden_dim=bert["transformer.layer.0.ffn.lin1.weight"].shape[0],
                   max_position_embeddings=bert["embeddings.position_embeddings.weight"].shape[0],
                   embed_dim=dense["weight"].shape[0])

    def bert(self):
        """The `transformers.DistilBertConfig` of these sizes (GELU, learned positions, as the Hub's config.json)."""
        t = transformers_module()
        return t.DistilBertConfig(vocab_size=self.vocab_size, dim=self.dim, n_layers=self.n_layers,
                                  n_heads=self.n_heads, hidden_dim=self.hidden_dim,
                                  max_position_embeddings=self.max_position_embeddings, activation="gelu",
                                  sinusoidal_pos_embds=False, pad_token_id=0)


TOWER_PRESETS: dict[str, TowerConfig] = {
    MULTILINGUAL: TowerConfig(),  # the Hub model's sizes (its config.json and 2_Dense/config.json)
    # A miniature for fast tests, beside CLIP's "tiny" preset (embed 32): the real vocabulary's size, 2 layers of
    # one 64-wide head (DistilBERT's head width, so the sizes can be read back from the tensors).
    "tiny": TowerConfig(dim=64, n_layers=2, n_heads=1, hidden_dim=128, max_position_embeddings=MAX_TOKENS,
                        embed_dim=32),
}


class TextTower(torch.nn.Module):
    """DistilBERT, the mean of its last hidden states over the real (unmasked) tokens, and a linear layer without
    bias: sentence-transformers' `Transformer -> Pooling(mean) -> Dense(Identity)`, as one module."""

    def __init__(self, config: TowerConfig):
        super().__init__()
        self.config = config
        self.bert = transformers_module().DistilBertModel(config.bert())
        self.dense = torch.nn.Linear(config.dim, config.embed_dim, bias=False)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`[B, T]` token ids and `[B, T]` attention mask (1 for a token, 0 for padding) -> `[B, embed_dim]`
        unnormalised text features."""
        hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state.float()  # [B, T, dim], fp32 sums
        m = mask.unsqueeze(-1).float()  # [B, T, 1]
        pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)  # [B, dim]: sentence-transformers' mean
        return self.dense(pooled.to(self.dense.weight.dtype))  # [B, embed_dim] (fp16 on CUDA, as the weights)


def standin_vocabulary(size: int = VOCAB_SIZE) -> list[str]:
    """A made-up cased WordPiece vocabulary of `size` entries, the same every time: BERT's special tokens where
    multilingual BERT has them ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103), the characters of the
    Latin (Turkish letters included), Greek, Cyrillic, Hebrew, Arabic, Devanagari, kana and common CJK blocks
    (each also as a `##` continuation), then Latin letter pairs, triples and quadruples. Text in those scripts
    becomes real pieces, not [UNK]; what the pieces mean is random, as the weights are."""
    vocab = ["[PAD]", *(f"[unused{i}]" for i in range(1, 100)), "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    blocks = ((0x21, 0x7F), (0xA1, 0x180), (0x370, 0x400), (0x400, 0x500), (0x5D0, 0x5EB), (0x620, 0x64B),
              (0x900, 0x980), (0x3040, 0x3100), (0x4E00, 0x5600))
    chars = [chr(c) for lo, hi in blocks for c in range(lo, hi)]
    vocab += chars + ["##" + c for c in chars]
    letters = "abcçdefgğhıijklmnoöprsştuüvyzqwx"
    for n in (2, 3, 4):
        for combo in itertools.product(letters, repeat=n):
            word = "".join(combo)
            vocab += [word, "##" + word]
            if len(vocab) >= size:
                return vocab[:size]
    raise ValueError(f"a stand-in vocabulary holds at most {len(vocab):,} entries, not {size:,}")


class WordPieces:
    """The tower's tokenizer: cased multilingual WordPiece (`BertTokenizerFast`, no lower-casing, no accent
    stripping: `do_lower_case` is false in the Hub's files) over `vocab` (a `vocab.txt` path or a list). Not for
    two threads at once: a fast tokenizer sets its padding on itself for each call ("Already borrowed"), so the
    service calls it under a lock of its own."""

    def __init__(self, vocab: str | list[str], max_tokens: int = MAX_TOKENS):
        t = transformers_module()
        source = {w: i for i, w in enumerate(vocab)} if isinstance(vocab, list) else str(vocab)
        self._tok = t.BertTokenizerFast(vocab=source, do_lower_case=False, strip_accents=None,
                                        tokenize_chinese_chars=True)
        self.max_tokens = max_tokens

    @property
    def size(self) -> int:
        return self._tok.vocab_size

    def counts(self, texts: list[str]) -> list[int]:
        """Tokens of each text, [CLS] and [SEP] included (nothing truncated)."""
        return [len(ids) for ids in self._tok(list(texts), add_special_tokens=True)["input_ids"]]

    def pieces(self, text: str) -> list[str]:
        """The word pieces of `text`, without [CLS] and [SEP] (for tables and tests)."""
        return self._tok.tokenize(text)

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """`[B, T]` ids and `[B, T]` mask, padded to the longest text (T <= max_tokens: a longer text is the
        caller's error to refuse first; here it is an error, never a silent cut)."""
        enc = self._tok(list(texts), padding=True, truncation=False, return_tensors="pt")
        if enc["input_ids"].shape[1] > self.max_tokens:
            raise ValueError(f"a text of {enc['input_ids'].shape[1]} tokens is over the tower's {self.max_tokens}")
        return enc["input_ids"], enc["attention_mask"]


@dataclass(frozen=True)
class LoadedTower:
    """The multilingual tower ready for inference, with its tokenizer and where its weights came from."""

    model: TextTower  # in eval mode, on the image model's device (fp32 on CPU, fp16 on CUDA)
    tokenizer: WordPieces
    config: TowerConfig
    info: WeightsInfo

    @property
    def label(self) -> Text:
        """The status line's words for this tower: random weights and a stand-in vocabulary say so."""
        return Text("ml_random" if not self.info.trained else "ml_loaded", self.info.name)


def build_random(config: TowerConfig, seed: int = 0) -> TextTower:
    """A tower of `config` with DistilBERT's own init, seeded; leaves the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TextTower(config).eval()


def build_from_state_dicts(bert: dict[str, torch.Tensor], dense: dict[str, torch.Tensor]) -> TextTower:
    """The tower from DistilBERT's tensors (the Hub's `model.safetensors`; a `distilbert.` prefix is dropped) and
    the dense layer's (`linear.weight`, `[embed_dim, dim]`), its sizes read from them: built on the meta device,
    each tensor assigned once. A missing, extra or misshapen tensor is a WeightsError naming it."""
    bert = {k.removeprefix("distilbert."): v for k, v in bert.items()
            if not k.endswith("position_ids")}  # older transformers saved this index buffer; it is rebuilt below
    dense = {k.removeprefix("linear."): v for k, v in dense.items()}
    config = TowerConfig.from_state_dicts(bert, dense)
    with torch.device("meta"):
        tower = TextTower(config)
    for part, got in ((tower.bert, bert), (tower.dense, dense)):
        want = part.state_dict()
        missing, unexpected = want.keys() - got.keys(), got.keys() - want.keys()
        if missing or unexpected:
            raise WeightsError("ml_incomplete", sorted(missing)[:3], sorted(unexpected)[:3])
        for k, t in got.items():
            if tuple(t.shape) != tuple(want[k].shape):
                raise WeightsError("ml_tensor_shape", k, tuple(t.shape), tuple(want[k].shape))
        part.load_state_dict({k: t.float() for k, t in got.items()}, assign=True)
    positions = torch.arange(config.max_position_embeddings).expand((1, -1))  # [1, P]: a buffer made on meta
    tower.bert.embeddings.register_buffer("position_ids", positions, persistent=False)
    return tower.eval()


@torch.inference_mode()
def text_features(tower: TextTower, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L2-normalised features of tokenised texts: `[b, T]` ids and mask -> `[b, embed_dim]` float32 on CPU."""
    device = tower.dense.weight.device
    feats = tower(ids.to(device), mask.to(device)).float()  # [b, embed_dim]
    return (feats / feats.norm(dim=-1, keepdim=True)).cpu()
