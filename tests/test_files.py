import pytest

from helpers import files


def test_write_text_replaces_whole(tmp_path):
    path = files.write_text(tmp_path / "sub" / "a.txt", "new\n")
    assert path.read_text() == "new\n"
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(path, suffix=".txt") as tmp:
            assert tmp.suffix == ".txt" and tmp.parent == path.parent
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
