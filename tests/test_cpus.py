"""Threads from the CPU quota, not the affinity mask: cgroup v1 and v2 trees made by the test."""

import pytest

from clipdemo.serving.cpus import cgroup_quota, cpu_threads
def _tree(tmp_path, proc: str, files: dict[str, str]):
    (tmp_path / "proc").write_text(proc)
    for rel, text in files.items():
        path = tmp_path / "cg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "proc", tmp_path / "cg"


@pytest.mark.parametrize("proc, files, quota, threads", [
    # cgroup v2 with a 2-CPU quota, the host showing 16 cores
    ("0::/space\n", {"space/cpu.max": "200000 100000\n"}, 2.0, 2),
    # v2 without a limit, and with a fractional one (1.5 CPUs: 2 threads)
    ("0::/space\n", {"space/cpu.max": "max 100000\n"}, None, 16),
    ("0::/\n", {"cpu.max": "150000 100000\n"}, 1.5, 2),
    # v1: quota and period files; -1 means no limit
    ("4:memory:/x\n1:cpu,cpuacct:/docker/abc\n", {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "100000\n",
                                                  "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n"}, 1.0, 1),
    ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None, 16),
    # the tightest quota on the way up wins (a parent's limit binds its children)
    ("0::/a/b\n", {"a/cpu.max": "100000 100000", "a/b/cpu.max": "400000 100000"}, 1.0, 1),
    # v2 mounted at unified/ beside v1 (hybrid, as on this machine)
    ("1:cpu:/\n0::/s\n", {"unified/s/cpu.max": "300000 100000"}, 3.0, 3),
    # nothing readable, or junk: no quota
    ("0::/s\n", {}, None, 16),
    ("0::/s\n", {"s/cpu.max": "lots of cpus"}, None, 16),
])
def test_quota_from_fake_cgroup_files(tmp_path, proc, files, quota, threads):
    proc_file, root = _tree(tmp_path, proc, files)
    assert cgroup_quota(proc_file, root) == quota
    assert cpu_threads(proc_file, root, cpus=16) == threads


def test_affinity_caps_a_generous_quota(tmp_path):
    proc_file, root = _tree(tmp_path, "0::/\n", {"cpu.max": "800000 100000"})
    assert cpu_threads(proc_file, root, cpus=2) == 2
