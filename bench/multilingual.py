"""The multilingual text tower's figures (part of `make bench`; also `python -m bench.multilingual [--quick]`).

R13: encoding 100 labels (CIFAR-100 with the notebook's one prompt; the Turkish names for the multilingual tower)
     with CLIP's own text tower vs with the multilingual tower (DistilBERT 6 x 768 and the dense layer), uncached,
     median of 5: how much more a multilingual label set costs to encode the first time.
R14: a warm prediction (100 labels, an uploaded image) with CLIP's text tower vs with the multilingual one: the
     label features are cached per tower, so the second prediction costs the same (goal: about 1).
And, in a fresh process (the app's own start-up path, `open_service`): RSS with CLIP alone, then after the first
multilingual prediction (the tower loaded lazily: transformers imported, the tower built, the labels encoded),
and how long that first prediction took beside a warm one.

Both towers have seeded random weights of the real shapes (the multilingual one over a stand-in vocabulary of
the real 119,547 pieces): the figures are about cost, never accuracy. On the Space the tower's weights are read
from the preloaded safetensors files (539 MB) instead of being initialised: its first use there costs about
reading that file instead of the random init measured here.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import warnings

import torch
from PIL import Image

from bench.common import ROOT
from bench.timing import paired, report
from clipdemo.core.labels import LabelSet
from clipdemo.serving.scheduler import Priority
from clipdemo.serving.service import ZeroShot
from clipdemo.tasks.classify import predict_image

FIRST_USE = """
import json, os, sys, time
from pathlib import Path
from PIL import Image
from clipdemo.core.labels import LabelSet
from clipdemo.serving.runtime import open_service
from clipdemo.serving.settings import Settings
from clipdemo.tasks.classify import predict_image

def rss():
    fields = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines() if ":" in l)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

zs = open_service(Settings(weights="random", cache_dir=Path(sys.argv[1]), allow_download=False))
upload = Image.effect_mandelbrot((640, 480), (-2, -1.2, 1, 1.2), 60).convert("RGB")
english = LabelSet.preset()
predict_image(zs, upload, english, 5)  # the app encodes the default labels at start-up
t = time.perf_counter(); predict_image(zs, upload, english, 5); warm = time.perf_counter() - t
clip_rss, _ = rss()
loaded_before = "transformers" in sys.modules or zs.tower_loaded is not None
turkish = LabelSet.preset("cifar100-tr", "single-tr", encoder="multilingual")
t = time.perf_counter(); predict_image(zs, upload, turkish, 5); first = time.perf_counter() - t
both_rss, peak = rss()
t = time.perf_counter(); predict_image(zs, upload, turkish, 5); second = time.perf_counter() - t
print(json.dumps(dict(warm=warm, first=first, second=second, clip_rss=clip_rss, both_rss=both_rss, peak=peak,
                      loaded_before=loaded_before)))
"""


def in_process(zs: ZeroShot, upload: Image.Image, q: bool) -> dict[str, float]:
    """R13 and R14 on the bench's full-size random service (its multilingual tower: random, full size)."""
    english, turkish = LabelSet.preset(), LabelSet.preset("cifar100-tr", "single-tr", encoder="multilingual")
    zs.tower()  # loaded once (its first use is measured in a fresh process, below)
    clip_prompts, ml_prompts = tuple(english.prompts()), tuple(turkish.prompts())
    r = {"R13": report("R13", "encoding 100 labels, uncached: CLIP's text tower (English names) vs the multilingual "
                              "tower (Turkish names)",
                       paired(lambda: zs._encode_prompts(clip_prompts, Priority.INTERACTIVE),
                              lambda: zs._encode_prompts(ml_prompts, Priority.INTERACTIVE, encoder="multilingual"),
                              5, 1))}
    zs.text_features(english), zs.text_features(turkish)  # both cached, as after each set's first use
    r["R14"] = report("R14", "warm prediction (100 labels, uploaded image): CLIP's text tower vs the multilingual "
                             "tower (goal: about 1)",
                      paired(lambda: predict_image(zs, upload, english, 5), lambda: predict_image(zs, upload, turkish, 5),
                             5 if q else 15, 1, 3))
    return r


def first_use(work) -> None:
    """RSS and the first multilingual prediction after start, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", FIRST_USE, str(work)], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    m = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"multilingual tower, first use after start (fresh process, full-size random weights): loaded before its "
          f"first use: {m['loaded_before']}; first multilingual prediction {m['first']:.1f} s (transformers "
          f"imported, tower built, 100 Turkish labels encoded), the next {1000 * m['second']:.0f} ms, a warm CLIP "
          f"prediction {1000 * m['warm']:.0f} ms")
    print(f"    RSS with CLIP alone {m['clip_rss']:,.0f} MB; with both text towers {m['both_rss']:,.0f} MB "
          f"(+{m['both_rss'] - m['clip_rss']:,.0f} MB); peak {m['peak']:,.0f} MB")


def main() -> int:
    import tempfile
    from pathlib import Path

    from clipdemo.serving.cpus import cpu_threads
    from clipdemo.weights.load import load_model

    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    q = ap.parse_args().quick
    torch.set_num_threads(cpu_threads())
    zs = ZeroShot(load_model("random", device="cpu"))
    upload = Image.effect_mandelbrot((640, 480), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    in_process(zs, upload, q)
    with tempfile.TemporaryDirectory(prefix="clipdemo-bench-") as tmp:
        first_use(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
