"""`python -m clipdemo bulk` (issue #28): a collection of 200 generated images (some corrupt) on the tiny checkpoint,
locally and on a local Ray (`ray.init(num_cpus=2)`): the output files in clip-retrieval's layout, read back as its
tools read them (pyarrow, numpy); the errors file; a rerun that touches no file; a run cut short and finished by a
rerun; results equal to `predict --images` in its chunks of 64; Ray's equal to the local path's, also with a model
actor killed mid-run; `search --index` over the embeddings, refusing other weights; the README's two commands."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipdemo.cli import main
from clipdemo.tasks.classify import Answering

ROOT = Path(__file__).resolve().parent.parent
LABELS = "red thing,green thing,blue thing,yellow thing"
FOLDERS = ("a", "b", "c", "d")  # 4 x 49 good images: each at most 64, as `predict --images` takes them


def _collection(root: Path) -> Path:
    """196 good images in four folders (PNG and JPEG, of several sizes) and four bad files in a fifth."""
    rng = np.random.default_rng(7)
    photos = root / "photos"
    for f, folder in enumerate(FOLDERS):
        (photos / folder).mkdir(parents=True)
        for i in range(49):
            h, w = int(rng.integers(20, 90)), int(rng.integers(20, 90))
            colour = rng.integers(0, 255, 3)
            pixels = np.clip(colour + rng.normal(0, 30, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(photos / folder / f"{folder}{i:02d}.{'png' if i % 3 else 'jpg'}")
    bad = photos / "zbad"
    bad.mkdir()
    (bad / "text.jpg").write_bytes(b"this is not an image")
    (bad / "empty.png").write_bytes(b"")
    good = (photos / "a" / "a01.png").read_bytes()
    (bad / "truncated.png").write_bytes(good[: len(good) // 2])
    (bad / "garbage.webp").write_bytes(os.urandom(300))
    return photos


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    return _collection(tmp_path_factory.mktemp("bulk"))


@pytest.fixture
def env(monkeypatch, tiny_ckpts, tmp_path):
    monkeypatch.setenv("CLIPDEMO_WEIGHTS", str(tiny_ckpts["state_dict"]))
    monkeypatch.setenv("CLIPDEMO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLIPDEMO_DOWNLOAD", "0")
    return tmp_path


def _files(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_mtime_ns, p.stat().st_ino) for p in sorted(out.rglob("*"))
            if p.is_file()}


def _bulk(out: Path, photos: Path, *extra: str) -> list[str]:
    return ["bulk", "--folder", str(photos), "--collection", str(out), "--labels", LABELS, "--top-k", "3",
            "--threshold", "0.1", "--embeddings", "--partition-size", "64", *extra]


def _read(out: Path) -> tuple[list[dict], np.ndarray, list[str], list[dict]]:
    """The output as clip-retrieval's tools read it: pyarrow over each folder, numpy over the sorted shards."""
    import pyarrow.parquet as pq

    preds = pq.read_table(out / "predictions").to_pylist()
    shards = sorted((out / "img_emb").glob("*.npy"))
    emb = np.concatenate([np.load(s) for s in shards])
    meta = pq.read_table(out / "metadata").column("image_path").to_pylist()
    errors = pq.read_table(out / "errors.parquet").to_pylist()
    return preds, emb, meta, errors


def test_local_bulk_writes_clip_retrievals_layout_and_equals_predict(env, collection, capsys):
    out = env / "out"
    assert main(_bulk(out, collection)) == 0
    said = capsys.readouterr().out
    assert "200 images in 4 partitions (0 already written)" in said and "196 images scored, 4 could not be read" in said
    assert sorted(p.name for p in (out / "img_emb").iterdir()) == [f"img_emb_{n:05d}.npy" for n in range(4)]
    assert sorted(p.name for p in (out / "metadata").iterdir()) == [f"metadata_{n:05d}.parquet" for n in range(4)]
    preds, emb, meta, errors = _read(out)
    assert emb.dtype == np.float16 and emb.shape == (196, 32)  # the tiny model's embedding width
    assert np.allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1, atol=2e-3)
    assert meta == [p["image_path"] for p in preds] and len(set(meta)) == 196  # embedding rows = metadata rows
    reasons = {Path(e["image_path"]).name: e["reason"] for e in errors}
    fmt = "This file is not an image in an accepted format (JPEG, PNG, WEBP, GIF, BMP)."
    assert reasons == {"empty.png": reasons["empty.png"], "garbage.webp": fmt, "text.jpg": fmt,
                       "truncated.png": reasons["truncated.png"]}
    assert "empty" in reasons["empty.png"] and "truncated" in reasons["truncated.png"]
    assert all(len(p["labels"]) == 3 and p["fits"] == (p["cosines"][0] >= 0.1) for p in preds)
    manifest = json.loads((out / "bulk.json").read_text())
    assert manifest["settings"]["labels"] == LABELS.split(",") and manifest["embed_dim"] == 32

    by_name = {Path(p["image_path"]).name: p for p in preds}
    for folder in FOLDERS:  # `predict --images` in its chunks of 64: the same labels, scores and cosines
        assert main(["predict", "--images", str(collection / folder), "--labels", LABELS, "--top-k", "3",
                     "--json"]) == 0
        for row in json.loads(capsys.readouterr().out)["images"]:
            mine = by_name[row["image"]]
            assert mine["labels"] == [r["label"] for r in row["predictions"]]
            assert np.allclose(mine["scores"], [r["score"] for r in row["predictions"]], atol=1e-5)
            assert np.allclose(mine["cosines"], [r["cosine"] for r in row["predictions"]], atol=1e-5)

    before = _files(out)
    assert main(_bulk(out, collection)) == 0  # a rerun: nothing left, and no file touched
    assert "Nothing left to do" in capsys.readouterr().out and _files(out) == before
    assert main(_bulk(out, collection, "--top-k", "2")) == 2  # other settings: refused, files as they were
    assert "holds a bulk run with other inputs or settings" in capsys.readouterr().err and _files(out) == before


def test_a_run_cut_short_is_finished_by_a_rerun(env, collection, tiny_loaded, monkeypatch):
    """The run dies while writing its second partition, after that partition's errors, embeddings and metadata files
    and before its predictions file (the mark that a partition is whole): the rerun writes partitions 1 to 3, touches
    nothing of partition 0, and ends equal to a run never cut; search reads only whole partitions meanwhile."""
    from clipdemo.core.labels import LabelSet
    from clipdemo.serving.service import ZeroShot
    from clipdemo.tasks import bulk

    zs = ZeroShot(tiny_loaded)
    items = bulk.list_inputs(collection)
    settings = bulk.BulkSettings(LabelSet.from_text(LABELS.replace(",", "\n"), "a photo of a {}."), 3, True,
                                 tiny_loaded.info.identity, 64, Answering(threshold=0.1))
    out = env / "cut"
    whole_write = bulk._write_whole

    def dies_at_the_second_predictions(path, write):
        if path.name == "predictions_00001.parquet":
            raise KeyboardInterrupt  # as a killed process: nothing after this point happens
        whole_write(path, write)

    monkeypatch.setattr(bulk, "_write_whole", dies_at_the_second_predictions)
    with pytest.raises(KeyboardInterrupt):
        bulk.run_local(zs, out, items, settings)
    monkeypatch.setattr(bulk, "_write_whole", whole_write)
    assert sorted(p.name for p in (out / "predictions").iterdir()) == ["predictions_00000.parquet"]
    assert (out / "img_emb" / "img_emb_00001.npy").is_file() and not list(out.rglob("*.tmp"))
    assert len(bulk.BulkIndex.open(out, tiny_loaded.info.identity).paths) == 64  # partition 0 only: a00..b14
    first = {k: v for k, v in _files(out).items() if "00000" in k or k == "bulk.json"}
    report = bulk.run_local(zs, out, items, settings)
    assert (report.partitions, report.skipped, report.images + report.errors) == (4, 1, 200 - 64)
    assert {k: v for k, v in _files(out).items() if k in first} == first
    whole = env / "whole"
    bulk.run_local(zs, whole, items, settings)
    a, b = _read(out), _read(whole)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and a[2] == b[2] and a[3] == b[3]


def test_search_index_finds_by_text_and_refuses_other_weights(env, collection, capsys, tiny_ckpts):
    out = env / "out"
    assert main(_bulk(out, collection)) == 0
    capsys.readouterr()
    assert main(["search", "--collection", str(out), "red thing", "--top-k", "5", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert len(found["results"]) == 5 and found["query"] == "a photo of red thing"  # as CIFAR search reads it
    from clipdemo.core.search import nearest
    from clipdemo.serving.runtime import open_service
    from clipdemo.serving.settings import from_env
    from clipdemo.tasks.bulk import BulkIndex

    zs = open_service(from_env())
    index = BulkIndex.open(out, zs.loaded.info.identity)
    rows, cos = nearest(index.features, zs.prompt_features((found["query"],))[0], 5)
    assert [r["image_path"] for r in found["results"]] == [index.paths[i] for i in rows]
    assert [r["cosine"] for r in found["results"]] == pytest.approx(cos, abs=1e-6)
    assert main(["search", "--collection", str(out), "red thing", "--top-k", "4", "--sheet", str(env / "sheet.png")]) == 0
    assert "Contact sheet:" in capsys.readouterr().out and Image.open(env / "sheet.png").size[0] > 200
    with pytest.raises(SystemExit) as exc:  # a folder mistyped: said as one, not as a bad CIFAR index
        main(["search", "--collection", str(env / "nowhere"), "red thing"])
    assert exc.value.code == 2 and "nowhere is not a folder" in capsys.readouterr().err
    assert main(["search", "--collection", str(out), "red thing", "--weights", "random"]) == 2
    err = capsys.readouterr().err
    assert "were made with other weights (" in err and str(tiny_ckpts["state_dict"].name) in err and "--weights" in err


@pytest.mark.slow
def test_the_readme_commands_run_verbatim(tmp_path, tiny_ckpts):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- bulk-example -->", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2 and "bulk" in commands[0] and "search --collection" in commands[1]
    _collection(tmp_path)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    env = {**os.environ, "CLIPDEMO_WEIGHTS": str(tiny_ckpts["state_dict"]), "CLIPDEMO_DOWNLOAD": "0",
           "CLIPDEMO_CACHE": str(tmp_path / "cache")}
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    assert len(list((tmp_path / "collection" / "predictions").iterdir())) == 1  # 200 images: one partition
    assert "rank  cosine  image" in done.stdout and done.stdout.count("photos/") >= 5


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_equals_local_even_when_an_actor_dies(local_ray, collection, tiny_ckpts, tmp_path):
    """Two model actors on a local Ray (2 CPUs), one of whose processes is killed at its first batch: the run
    completes, with the same predictions as the local path and, in float16, the same embeddings to one float16 step,
    in the same layout, every image once."""
    from clipdemo.core.labels import LabelSet
    from clipdemo.fakes import dying_scorer
    from clipdemo.serving.runtime import open_service
    from clipdemo.serving.settings import Settings
    from clipdemo.tasks import bulk
    from clipdemo.tasks.bulk_ray import run_ray

    cfg = Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path / "cache", allow_download=False,
                   device="cpu")
    cfg.cache_dir.mkdir()
    zs = open_service(cfg)
    items = bulk.list_inputs(collection)
    settings = bulk.BulkSettings(LabelSet.from_text(LABELS.replace(",", "\n"), "a photo of a {}."), 3, True,
                                 zs.loaded.info.identity, 64, Answering(threshold=0.1))
    bulk.run_local(zs, tmp_path / "local", items, settings)
    seen = []
    report = run_ray(zs, cfg, tmp_path / "ray", items, settings, actors=2, scorer=dying_scorer(),
                     progress=lambda step: seen.append(step[:2]))
    assert (cfg.cache_dir / "bulk-die-once").exists()  # an actor did die
    assert (report.partitions, report.images, report.errors) == (4, 196, 4)
    assert len(seen) == 4 and seen[-1] == (200, 200)  # a partition at a time, each written as it was whole
    local, got = _read(tmp_path / "local"), _read(tmp_path / "ray")
    assert _files(tmp_path / "ray").keys() == _files(tmp_path / "local").keys()
    assert [p["image_path"] for p in got[0]] == [p["image_path"] for p in local[0]]  # none lost, none twice
    assert [p["labels"] for p in got[0]] == [p["labels"] for p in local[0]]
    assert [p["fits"] for p in got[0]] == [p["fits"] for p in local[0]]
    for mine, theirs in zip(got[0], local[0]):
        assert np.allclose(mine["cosines"], theirs["cosines"], atol=1e-5)
    a, b = got[1].astype(np.float32), local[1].astype(np.float32)
    assert np.all(np.abs(a - b) <= np.spacing(np.abs(b).astype(np.float16)).astype(np.float32))
    assert got[2] == local[2] and got[3] == local[3]


def test_the_ray_writer_takes_rows_as_ray_hands_them_back(tmp_path):
    """Rows of a partition out of order, in two batches, one row twice (a retried batch), lists as numpy arrays, a
    `fits` column of None that Ray's blocks turned into NaN, and a partition with no readable image: each written
    as the local path writes it, once complete (no threshold: `fits` is null)."""
    import pyarrow.parquet as pq

    from clipdemo.core.labels import LabelSet
    from clipdemo.tasks import bulk
    from clipdemo.tasks.bulk_ray import PartitionRows

    items = [bulk.Item(f"/x/{i}.png", f"/x/{i}.png", "", 10) for i in range(4)]
    settings = bulk.BulkSettings(LabelSet.of(["a", "b"], ["{}"]), 2, True, "w", 3)
    first, second = bulk.plan(items, settings)
    emb = np.eye(4, 4, dtype=np.float32)

    def batch(rows):  # (key index, partition, position, error)
        k = [r[0] for r in rows]
        return {"key": np.array([f"/x/{i}.png" for i in k], dtype=object), "partition": np.array([r[1] for r in rows]),
                "position": np.array([r[2] for r in rows]), "error": np.array([r[3] for r in rows], dtype=object),
                "embedding": emb[k], "labels": np.array([np.array(["b", "a"]) for _ in rows] + [None], dtype=object)[:-1],
                "scores": np.array([np.array([0.6, 0.4]) for _ in rows] + [None], dtype=object)[:-1],
                "cosines": np.array([np.array([0.2, 0.1]) for _ in rows] + [None], dtype=object)[:-1],
                "fits": np.full(len(rows), np.nan)}

    rows = PartitionRows(tmp_path, [first, second], settings)
    assert rows.add(batch([(2, 0, 2, ""), (0, 0, 0, "")])) == []
    assert rows.add(batch([(2, 0, 2, ""), (3, 1, 0, "broken"), (1, 0, 1, "bad")])) == [1, 0]
    assert (rows.images, rows.errors) == (2, 2)
    assert rows.add(batch([(0, 0, 0, "")])) == [] and (rows.images, rows.errors) == (2, 2)  # once written: ignored
    preds = pq.read_table(tmp_path / "predictions").to_pylist()
    assert preds == [{"image_path": f"/x/{i}.png", "labels": ["b", "a"], "scores": [0.6, 0.4], "cosines": [0.2, 0.1],
                      "fits": None} for i in (0, 2)]
    assert np.array_equal(np.load(tmp_path / "img_emb" / "img_emb_00000.npy"), emb[[0, 2]].astype(np.float16))
    assert np.load(tmp_path / "img_emb" / "img_emb_00001.npy").shape == (0, 4)  # no readable image: (0, D)
    assert pq.read_table(tmp_path / "errors.parquet").to_pylist() == [{"image_path": "/x/1.png", "reason": "bad"},
                                                                        {"image_path": "/x/3.png", "reason": "broken"}]
    assert bulk.partition_done(tmp_path, first) and bulk.partition_done(tmp_path, second)


def test_shards_and_tables_of_paths_are_inputs_too(env, collection, capsys, tmp_path):
    """Webdataset shards (image members by key, other members ignored) and a CSV of paths give the same predictions
    as the folder; a broken shard and an empty input are sentences."""
    import tarfile

    import pyarrow.parquet as pq

    files = sorted((collection / "a").iterdir())[:10]
    with tarfile.open(tmp_path / "shard-000.tar", "w") as tar:
        for f in files:
            tar.add(f, arcname=f"{f.stem}.{f.suffix[1:]}")
            info = tarfile.TarInfo(f"{f.stem}.json")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    (tmp_path / "paths.csv").write_text("path\n" + "\n".join(str(f) for f in files) + "\n")
    (tmp_path / "plain.csv").write_text("\n".join(str(f) for f in files) + "\n")  # no header: every line a path
    for name, source in (("tar", ["--shards", str(tmp_path / "shard-000.tar")]),
                         ("csv", ["--table", str(tmp_path / "paths.csv")]),
                         ("plain", ["--table", str(tmp_path / "plain.csv")])):
        args = ["bulk", *source, "--collection", str(tmp_path / name), "--labels", LABELS, "--top-k", "3"]
        assert main(args) == 0, capsys.readouterr().err
    capsys.readouterr()
    tar_rows = pq.read_table(tmp_path / "tar" / "predictions").to_pylist()
    csv_rows = pq.read_table(tmp_path / "csv" / "predictions").to_pylist()
    assert [r["image_path"] for r in tar_rows] == [f"{tmp_path / 'shard-000.tar'}/{f.name}" for f in files]
    assert [r["labels"] for r in tar_rows] == [r["labels"] for r in csv_rows]
    assert np.allclose([r["cosines"] for r in tar_rows], [r["cosines"] for r in csv_rows], atol=1e-6)
    assert pq.read_table(tmp_path / "plain" / "predictions").to_pylist() == csv_rows
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 but not really")
    assert main(["bulk", "--table", str(tmp_path / "bad.parquet"), "--collection", str(tmp_path / "z"), "--labels", LABELS]) == 2
    assert "bad.parquet cannot be read" in capsys.readouterr().err
    (tmp_path / "broken.tar").write_bytes(b"not a tar file at all" * 30)
    assert main(["bulk", "--shards", str(tmp_path / "broken.tar"), "--collection", str(tmp_path / "x"), "--labels", LABELS]) == 2
    assert "is not a readable tar file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["bulk", "--folder", str(tmp_path / "empty"), "--collection", str(tmp_path / "y"), "--labels", LABELS]) == 2
    assert "No images found in" in capsys.readouterr().err
