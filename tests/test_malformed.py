"""Malformed checkpoints end in a clear, final state: a WeightsError naming what is missing, in the library,
the CLI and a real server start (which must never hang on 'Loading model')."""

import pytest
import torch

from clipdemo.core.model import CONFIG_TENSORS, WeightsError
from clipdemo.weights.load import load_model

# visual.proj is how a non-ViT (ResNet) CLIP is told apart; it has its own sentence.
READ_BY_CONFIG = [k for k in CONFIG_TENSORS if k != "visual.proj"]


@pytest.fixture(scope="module")
def broken(tiny_ckpts, tmp_path_factory):
    """One state dict per tensor that the config derivation reads, each missing that tensor."""
    sd = torch.load(tiny_ckpts["state_dict"], weights_only=True)
    folder = tmp_path_factory.mktemp("broken")
    paths = {}
    for key in READ_BY_CONFIG:
        paths[key] = folder / f"no-{key.replace('.', '_')}.pt"
        torch.save({k: v for k, v in sd.items() if k != key}, paths[key])
    paths["flat projection"] = folder / "flat-projection.pt"
    torch.save({**sd, "text_projection": sd["text_projection"].flatten()}, paths["flat projection"])
    return paths


@pytest.mark.parametrize("key", READ_BY_CONFIG)
def test_a_missing_tensor_is_a_weights_error_naming_it(broken, key):
    with pytest.raises(WeightsError, match=rf"^Not a complete CLIP ViT checkpoint: it has no tensor {key}\.$"):
        load_model(str(broken[key]))


def test_a_tensor_of_the_wrong_rank_is_a_weights_error(broken):
    with pytest.raises(WeightsError, match=r"tensor text_projection \(1-D, needs 2-D\)"):
        load_model(str(broken["flat projection"]))


@pytest.mark.parametrize("key", READ_BY_CONFIG)
def test_the_cli_names_the_missing_tensor(broken, key, tmp_path, capsys):
    from PIL import Image

    from clipdemo.cli import main
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    assert main(["predict", "--image", str(image), "--labels", "a,b", "--weights", str(broken[key])]) == 2
    assert capsys.readouterr().err == f"error: Not a complete CLIP ViT checkpoint: it has no tensor {key}.\n"


@pytest.mark.parametrize("key", READ_BY_CONFIG)
def test_a_start_reaches_a_final_unavailable_status_naming_it(broken, key, tmp_path):
    """The load thread ends, and says so: the status the page polls is final, never "Loading model" forever."""
    from clipdemo.serving.runtime import ModelState, Runtime
    from clipdemo.serving.settings import Settings
    from uiserver import built_page

    rt = Runtime(Settings(weights=str(broken[key]), cache_dir=tmp_path, data_root=tmp_path, allow_download=False,
                          search_index=False))
    rt.start()
    rt.settle(60)
    assert rt.settled and rt.status.state is ModelState.FAILED
    page = built_page(rt)
    status = page.status.status()[page.status.line].replace("\\", "")
    assert f"Not a complete CLIP ViT checkpoint: it has no tensor {key}." in status
    assert "The model could not be loaded" in status


@pytest.mark.slow
def test_a_served_start_with_broken_weights_still_serves_the_architecture(broken, tmp_path):
    from gradio_client import Client

    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.settings import Settings
    from uiserver import running_app

    rt = Runtime(Settings(weights=str(broken["ln_final.weight"]), cache_dir=tmp_path, data_root=tmp_path,
                          allow_download=False, search_index=False))
    rt.start()
    with running_app(rt) as (url, _):
        rt.settle(60)
        c = Client(url, verbose=False, download_files=False)
        status = c.predict(api_name="/status")[0].replace("\\", "")
        assert "Not a complete CLIP ViT checkpoint: it has no tensor ln_final.weight." in status
        card, *_ = c.predict(1, api_name="/architecture")  # the Architecture tab still works
        assert card["vision"]["width"] == 768 and "random weights" in card["note"]
