"""Files on an operator's path: read only when they are regular files, written without following a
link or writing into a file that another name shares."""

from __future__ import annotations

import os

import pytest

from resolver.bulk.userfiles import RefusedFile, append, create, open_regular


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious\n", encoding="utf-8")
    return path


def test_a_fifo_a_directory_and_a_device_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # opened for reading the ordinary way, this waits for a writer forever
    for path, kind in ((fifo, "FIFO"), (tmp_path, "目录"), ("/dev/zero", "设备")):
        with pytest.raises(RefusedFile, match="不是普通文件") as refused:
            open_regular(path)
        assert str(path) in str(refused.value) and kind in str(refused.value)


def test_a_regular_file_is_read_through_a_link(tmp_path, victim):
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    with open_regular(link) as source:
        assert source.read() == b"precious\n"


def test_create_replaces_a_link_instead_of_writing_through_it(tmp_path, victim):
    report = tmp_path / "rows.csv.rejected.csv"
    report.symlink_to(victim)
    with create(report) as out:
        out.write("line,handle,reason\n")
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not report.is_symlink() and report.read_text(encoding="utf-8") == "line,handle,reason\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv.rejected.csv", "victim.txt"]


def test_create_leaves_a_hard_linked_file_alone(tmp_path, victim):
    report = tmp_path / "rows.csv.rejected.csv"
    os.link(victim, report)
    with create(report) as out:
        out.write("new\n")
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert report.read_text(encoding="utf-8") == "new\n"


def test_create_makes_a_missing_file_and_replaces_a_plain_one(tmp_path):
    report = tmp_path / "new.csv"
    with create(report) as out:
        out.write("one\n")
    with create(report) as out:
        out.write("two\n")
    assert report.read_text(encoding="utf-8") == "two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["new.csv"]


def test_create_into_a_directory_leaves_no_file_behind(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(RefusedFile, match="无法写入"):
        create(tmp_path / "taken")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


def test_append_continues_a_plain_file_and_creates_a_missing_one(tmp_path):
    report = tmp_path / "rows.csv.rejected.csv"
    with append(report) as out:
        assert out.tell() == 0
        out.write("a\n")
    with append(report) as out:
        assert out.tell() == 2
        out.write("b\n")
    assert report.read_text(encoding="utf-8") == "a\nb\n"


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_append_refuses_what_is_not_a_plain_file_of_its_own(tmp_path, victim, kind):
    report = tmp_path / "rows.csv.rejected.csv"
    if kind == "symlink":
        report.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, report)
    else:
        os.mkfifo(report)  # opened for writing the ordinary way, this waits for a reader forever
    with pytest.raises(RefusedFile, match="不写入") as refused:
        append(report)
    assert str(report) in str(refused.value)
    assert victim.read_text(encoding="utf-8") == "precious\n"


def test_a_parent_turned_into_a_link_meanwhile_gets_nothing(tmp_path, monkeypatch):
    """The parent directory is swapped for a link to another one between the fresh file's creation
    and its rename (an attacker racing the import, as found by the second attack): the file and its
    rename stay in the directory opened first, and nothing lands in the other one."""
    real, target = tmp_path / "real", tmp_path / "target"
    real.mkdir()
    target.mkdir()
    (tmp_path / "batch").symlink_to(real)
    rename = os.rename

    def flip_then_rename(*args, **kwargs):
        (tmp_path / "batch").unlink()
        (tmp_path / "batch").symlink_to(target)
        return rename(*args, **kwargs)

    monkeypatch.setattr(os, "rename", flip_then_rename)
    with create(tmp_path / "batch" / "data.csv.rejected.csv") as out:
        out.write("row\n")
    assert [p.name for p in real.iterdir()] == ["data.csv.rejected.csv"]
    assert (real / "data.csv.rejected.csv").read_text(encoding="utf-8") == "row\n"
    assert list(target.iterdir()) == []
