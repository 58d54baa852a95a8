"""Turkish CIFAR-100, as data: the 100 class names, the 20 superclasses and the prompt templates.

How they were written and checked (issue #25): each name is the everyday Turkish noun, bare and singular, so it
fits "bir {} fotoğrafı"; where the English is ambiguous, CIFAR-100's sense (ray = vatoz, seal = fok, plain = ova,
can = teneke kutu, a drink can as in most of its pictures); where a bare word would take another class's pictures
or mean something else, the qualified name (beetle = kın kanatlı böcek, not böcek, "insect"; porcupine = oklu kirpi,
not kirpi, "hedgehog"; poppy = gelincik çiçeği, not gelincik, also "weasel"). Compared with the public Turkish
lists found (a Turkish CIFAR-100 table on GitHub, Babel-ImageNet's Turkish ImageNet labels, word lists): 89 of the
100 agree, 7 share the head word in another form, 4 differ where those lists are wrong or vaguer (can, possum,
shrew, wardrobe). Spelling follows TDK. Checked by the tests: 100 unique names in CIFAR-100's order, NFC, each
prompt within the multilingual tower's tokens. Turkish has no articles: a template's "a" is `bir` before the noun,
"the" nothing, so the 18 stay distinct.

Display note: never `.upper()`/`.title()` these (Python maps "i" to "I", not Turkish "İ").
"""

from __future__ import annotations

__all__ = ["CIFAR100_CLASSES_TR", "CIFAR100_SUPERCLASSES_TR", "SINGLE_TEMPLATE_TR", "CIFAR_TEMPLATES_TR"]

# In torchvision's CIFAR100.classes order (the English name after each).
CIFAR100_CLASSES_TR: tuple[str, ...] = (
    "elma",  # apple
    "akvaryum balığı",  # aquarium_fish
    "bebek",  # baby
    "ayı",  # bear
    "kunduz",  # beaver
    "yatak",  # bed
    "arı",  # bee
    "kın kanatlı böcek",  # beetle
    "bisiklet",  # bicycle
    "şişe",  # bottle
    "kase",  # bowl
    "erkek çocuk",  # boy
    "köprü",  # bridge
    "otobüs",  # bus
    "kelebek",  # butterfly
    "deve",  # camel
    "teneke kutu",  # can
    "kale",  # castle
    "tırtıl",  # caterpillar
    "sığır",  # cattle
    "sandalye",  # chair
    "şempanze",  # chimpanzee
    "saat",  # clock
    "bulut",  # cloud
    "hamam böceği",  # cockroach
    "kanepe",  # couch
    "yengeç",  # crab
    "timsah",  # crocodile
    "fincan",  # cup
    "dinozor",  # dinosaur
    "yunus",  # dolphin
    "fil",  # elephant
    "yassı balık",  # flatfish
    "orman",  # forest
    "tilki",  # fox
    "kız",  # girl
    "hamster",  # hamster
    "ev",  # house
    "kanguru",  # kangaroo
    "klavye",  # keyboard
    "lamba",  # lamp
    "çim biçme makinesi",  # lawn_mower
    "leopar",  # leopard
    "aslan",  # lion
    "kertenkele",  # lizard
    "ıstakoz",  # lobster
    "adam",  # man
    "akçaağaç",  # maple_tree
    "motosiklet",  # motorcycle
    "dağ",  # mountain
    "fare",  # mouse
    "mantar",  # mushroom
    "meşe ağacı",  # oak_tree
    "portakal",  # orange
    "orkide",  # orchid
    "su samuru",  # otter
    "palmiye ağacı",  # palm_tree
    "armut",  # pear
    "kamyonet",  # pickup_truck
    "çam ağacı",  # pine_tree
    "ova",  # plain
    "tabak",  # plate
    "gelincik çiçeği",  # poppy
    "oklu kirpi",  # porcupine
    "keseli sıçan",  # possum
    "tavşan",  # rabbit
    "rakun",  # raccoon
    "vatoz",  # ray
    "yol",  # road
    "roket",  # rocket
    "gül",  # rose
    "deniz",  # sea
    "fok",  # seal
    "köpek balığı",  # shark
    "sivri fare",  # shrew
    "kokarca",  # skunk
    "gökdelen",  # skyscraper
    "salyangoz",  # snail
    "yılan",  # snake
    "örümcek",  # spider
    "sincap",  # squirrel
    "tramvay",  # streetcar
    "ayçiçeği",  # sunflower
    "dolmalık biber",  # sweet_pepper
    "masa",  # table
    "tank",  # tank
    "telefon",  # telephone
    "televizyon",  # television
    "kaplan",  # tiger
    "traktör",  # tractor
    "tren",  # train
    "alabalık",  # trout
    "lale",  # tulip
    "kaplumbağa",  # turtle
    "gardırop",  # wardrobe
    "balina",  # whale
    "söğüt ağacı",  # willow_tree
    "kurt",  # wolf
    "kadın",  # woman
    "solucan",  # worm
)

# The 20 superclasses, in the dataset's coarse-label order (plural, as the English ones).
CIFAR100_SUPERCLASSES_TR: tuple[str, ...] = (
    "sucul memeliler",  # aquatic mammals
    "balıklar",  # fish
    "çiçekler",  # flowers
    "yiyecek kapları",  # food containers
    "meyve ve sebzeler",  # fruit and vegetables
    "elektrikli ev aletleri",  # household electrical devices
    "ev mobilyaları",  # household furniture
    "böcekler",  # insects
    "büyük etoburlar",  # large carnivores
    "büyük insan yapımı açık hava yapıları",  # large man-made outdoor things
    "büyük doğal açık hava manzaraları",  # large natural outdoor scenes
    "büyük hepçiller ve otçullar",  # large omnivores and herbivores
    "orta boy memeliler",  # medium mammals
    "böcek olmayan omurgasızlar",  # non-insect invertebrates
    "insanlar",  # people
    "sürüngenler",  # reptiles
    "küçük memeliler",  # small mammals
    "ağaçlar",  # trees
    "taşıtlar 1",  # vehicles 1
    "taşıtlar 2",  # vehicles 2
)

SINGLE_TEMPLATE_TR: tuple[str, ...] = ("bir {} fotoğrafı",)  # "a photo of a {}"

# CLIP's 18 CIFAR templates, in their order (the English after each).
CIFAR_TEMPLATES_TR: tuple[str, ...] = (
    "bir {} fotoğrafı.",  # a photo of a {}.
    "bulanık bir {} fotoğrafı.",  # a blurry photo of a {}.
    "siyah beyaz bir {} fotoğrafı.",  # a black and white photo of a {}.
    "düşük kontrastlı bir {} fotoğrafı.",  # a low contrast photo of a {}.
    "yüksek kontrastlı bir {} fotoğrafı.",  # a high contrast photo of a {}.
    "kötü bir {} fotoğrafı.",  # a bad photo of a {}.
    "iyi bir {} fotoğrafı.",  # a good photo of a {}.
    "küçük bir {} fotoğrafı.",  # a photo of a small {}.
    "büyük bir {} fotoğrafı.",  # a photo of a big {}.
    "{} fotoğrafı.",  # a photo of the {}.
    "bulanık {} fotoğrafı.",  # a blurry photo of the {}.
    "siyah beyaz {} fotoğrafı.",  # a black and white photo of the {}.
    "düşük kontrastlı {} fotoğrafı.",  # a low contrast photo of the {}.
    "yüksek kontrastlı {} fotoğrafı.",  # a high contrast photo of the {}.
    "kötü {} fotoğrafı.",  # a bad photo of the {}.
    "iyi {} fotoğrafı.",  # a good photo of the {}.
    "küçük {} fotoğrafı.",  # a photo of the small {}.
    "büyük {} fotoğrafı.",  # a photo of the big {}.
)
