"""The upload folder stays bounded: `clipdemo.janitor` sweeps old files (and Gradio's records of them), and
keeps sweeping after errors; Gradio 6.31's own delete_cache sweep dies at the first concurrent upload,
which is why it is not used (this test pins that reason: if Gradio fixes it, it fails and says so)."""

from __future__ import annotations

import os
import time

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from clipdemo.ui.janitor import Janitor, sweep
from uiserver import running_app, runtime_for


AGE = 0.5  # seconds: a file's ctime cannot be set back, so these tests let real time pass instead


def test_sweep_removes_old_files_and_old_empty_folders_only(tmp_path):
    old_dir, new_dir = tmp_path / "a", tmp_path / "b"
    old_dir.mkdir()
    (old_dir / "x.webp").write_bytes(b"1")
    time.sleep(AGE + 0.2)
    new_dir.mkdir()
    (new_dir / "y.webp").write_bytes(b"2")
    (tmp_path / "fresh").mkdir()  # a folder Gradio just made for a file it is about to write
    removed = sweep(tmp_path, AGE)
    assert removed == 1 and not (old_dir / "x.webp").exists() and (new_dir / "y.webp").exists()
    assert old_dir.is_dir() and (tmp_path / "fresh").is_dir()  # emptied just now / new: kept this time
    time.sleep(AGE + 0.2)
    sweep(tmp_path, AGE)  # the emptied folder is old now: removed (and "b" with its old file)
    assert not old_dir.exists() and not (tmp_path / "fresh").exists() and tmp_path.exists()


def test_a_file_handed_out_again_counts_as_new(tmp_path):
    (tmp_path / "d").mkdir()
    f = tmp_path / "d" / "image.webp"
    f.write_bytes(b"1")
    old = time.time() - 7200
    os.utime(f, (old, old))  # a copy keeps its source's old mtime; its ctime says when it was made
    assert sweep(tmp_path, 3600) == 0 and f.exists()
    time.sleep(AGE + 0.2)
    os.utime(f)  # what gradio's save_file_to_cache does when it hands out a cached copy again
    assert sweep(tmp_path, AGE) == 0 and f.exists()
    time.sleep(AGE + 0.2)
    assert sweep(tmp_path, AGE) == 1 and not f.exists()


def test_the_janitor_keeps_sweeping_after_an_error(tmp_path):
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Set changed size during iteration")

    janitor = Janitor({tmp_path: AGE}, every_s=0.02, after=flaky).start()
    try:
        deadline = time.monotonic() + 30
        while janitor.sweeps < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        (tmp_path / "late.txt").write_bytes(b"1")  # old after AGE: a later sweep removes it
        while (tmp_path / "late.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        janitor.stop()
    assert janitor.sweeps >= 3 and len(calls) >= 3 and not (tmp_path / "late.txt").exists()


def test_gradios_own_sweep_dies_when_a_request_adds_a_file_meanwhile(tmp_path, monkeypatch):
    import gradio as gr
    from gradio import route_utils

    with gr.Blocks() as demo:
        image = gr.Image()
    for i in range(3):
        (tmp_path / f"f{i}").write_bytes(b"1")
        image.temp_files.add(str(tmp_path / f"f{i}"))
    real_remove = os.remove

    def remove_while_a_request_adds(path):  # a request thread saves an output between two deletions
        real_remove(path)
        image.temp_files.add(str(tmp_path / f"new-{path}"))

    monkeypatch.setattr(route_utils.os, "remove", remove_while_a_request_adds)
    with pytest.raises(RuntimeError, match="Set changed size during iteration"):
        route_utils.delete_files_created_by_app(demo, age=0)  # in delete_files_on_schedule, this ends the task


def test_the_app_janitor_removes_old_uploads_and_gradios_records_of_them(tmp_path, cifar_root, tiny_loaded,
                                                                     monkeypatch):
    from clipdemo.ui.app import file_janitor
    from clipdemo.ui.files import RESULTS_MAX_AGE_S, results_dir
    uploads = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    rt = runtime_for(tiny_loaded, cifar_root, tmp=tmp_path)
    picture = tmp_path / "p.png"
    Image.new("RGB", (40, 30), "teal").save(picture)
    with running_app(rt) as (url, demo):
        c = Client(url, verbose=False, download_files=False)
        c.predict(handle_file(str(picture)), 3, api_name="/predict_image")
        files = [p for p in uploads.rglob("*") if p.is_file()]
        recorded = {p for paths in demo.temp_file_sets for p in paths}
        assert files and recorded
        time.sleep(AGE + 0.2)
        janitor = file_janitor(demo, AGE)
        assert janitor.ages[uploads] == AGE and janitor.ages[results_dir()] == RESULTS_MAX_AGE_S
        assert janitor.sweep_now() >= len(files)  # and whatever old downloads the results folder held
        assert [p for p in uploads.rglob("*") if p.is_file()] == []
        assert not any(os.path.exists(p) for paths in demo.temp_file_sets for p in paths)
        assert sum(len(paths) for paths in demo.temp_file_sets) < len(recorded)  # the removed ones forgotten
        c.predict(handle_file(str(picture)), 3, api_name="/predict_image")  # the app goes on
