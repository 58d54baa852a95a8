"""Label sets and prompt templates, as data.

Holds: the CIFAR-100 / CIFAR-10 / CIFAR-100-superclass label lists and the prompt template sets,
registered in two tables (`LABEL_PRESETS`, `TEMPLATE_SETS`) that the CLI and the UI read their
choices from. Holds no model code and no validation (see `clipdemo.prompts`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LabelPreset", "TemplateSet", "LABEL_PRESETS", "TEMPLATE_SETS", "CLASS_NAME_SPELLINGS", "label_preset",
           "template_set", "preset_key", "template_set_key"]

# torchvision's CIFAR100.classes, in its order (the order of the dataset's integer targets).
CIFAR100_CLASSES: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

# The CLIP paper's spelling: the nine names with underscores, written with spaces.
CIFAR100_CLASSES_PAPER: tuple[str, ...] = tuple(c.replace("_", " ") for c in CIFAR100_CLASSES)

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# The 20 CIFAR-100 superclasses (the dataset's coarse_label_names, in order, underscores as spaces).
CIFAR100_SUPERCLASSES: tuple[str, ...] = (
    "aquatic mammals", "fish", "flowers", "food containers", "fruit and vegetables",
    "household electrical devices", "household furniture", "insects", "large carnivores",
    "large man-made outdoor things", "large natural outdoor scenes", "large omnivores and herbivores",
    "medium mammals", "non-insect invertebrates", "people", "reptiles", "small mammals", "trees",
    "vehicles 1", "vehicles 2",
)

# The notebook's single prompt.
SINGLE_TEMPLATE: tuple[str, ...] = ("a photo of a {}",)

# CLIP's 18 CIFAR-100 templates (openai/CLIP data/prompts.md, section CIFAR100).
CIFAR_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)


@dataclass(frozen=True)
class LabelPreset:
    """A named label list offered by the CLI and the UI."""

    key: str  # CLI/API name
    title: str  # shown in the UI
    labels: tuple[str, ...]


@dataclass(frozen=True)
class TemplateSet:
    """A named list of prompt templates; each holds exactly one `{}`."""

    key: str
    title: str
    templates: tuple[str, ...]


LABEL_PRESETS: dict[str, LabelPreset] = {
    p.key: p
    for p in (
        LabelPreset("cifar100", "CIFAR-100 (100 classes, torchvision names)", CIFAR100_CLASSES),
        LabelPreset("cifar100-paper", "CIFAR-100 (CLIP paper spelling)", CIFAR100_CLASSES_PAPER),
        LabelPreset("cifar10", "CIFAR-10 (10 classes)", CIFAR10_CLASSES),
        LabelPreset("cifar100-coarse", "CIFAR-100 superclasses (20)", CIFAR100_SUPERCLASSES),
    )
}

TEMPLATE_SETS: dict[str, TemplateSet] = {
    t.key: t
    for t in (
        TemplateSet("single", 'Single prompt: "a photo of a {}" (the notebook)', SINGLE_TEMPLATE),
        TemplateSet("cifar18", "CLIP's 18 CIFAR templates (ensemble)", CIFAR_TEMPLATES),
    )
}

# The presets that spell CIFAR-100's own 100 classes, in the dataset's order: evaluation's "class names" choice.
CLASS_NAME_SPELLINGS: tuple[str, ...] = ("cifar100", "cifar100-paper")


def preset_key(labels) -> str | None:
    """The key of the label preset whose labels these are, or None."""
    return next((k for k, p in LABEL_PRESETS.items() if p.labels == tuple(labels)), None)


def template_set_key(templates) -> str | None:
    """The key of the template set whose templates these are, or None."""
    return next((k for k, ts in TEMPLATE_SETS.items() if ts.templates == tuple(templates)), None)


def label_preset(key: str) -> LabelPreset:
    """Return the label preset named `key`; ValueError lists the valid names."""
    try:
        return LABEL_PRESETS[key]
    except KeyError:
        raise ValueError(f"Unknown label preset {key!r}; choose one of: {', '.join(LABEL_PRESETS)}.") from None


def template_set(key: str) -> TemplateSet:
    """Return the template set named `key`; ValueError lists the valid names."""
    try:
        return TEMPLATE_SETS[key]
    except KeyError:
        raise ValueError(f"Unknown template set {key!r}; choose one of: {', '.join(TEMPLATE_SETS)}.") from None
