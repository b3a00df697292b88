"""load_dataset: names, data directory resolution, helpful errors, verified downloads.

No test here touches the network: downloads read a zip built in tmp_path, through a
``file://`` URL or a fake opener.
"""

from __future__ import annotations

import hashlib
import io
import urllib.error
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from mlrec.core import DataError, NotFoundError
from mlrec.data import (
    DATASET_NAMES,
    DATASETS,
    ML100K_GENRES,
    ZipSource,
    default_data_dir,
    download_zip,
    find_dataset,
    load_dataset,
    make_demo,
    registry,
)

U_DATA = "1\t10\t5\t881250949\n2\t10\t3\t881250950\n2\t20\t4\t881250951\n"
U_ITEM = (
    "10|Ten (1995)|x||u|" + "|".join(["0"] * 5 + ["1"] + ["0"] * 13) + "\n"
    "20|Twenty (1996)|x||u|" + "|".join(["0"] * 15 + ["1"] + ["0"] * 3) + "\n"
)
U_GENRE = "".join(f"{name}|{i}\n" for i, name in enumerate(ML100K_GENRES))


def _zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text.encode("latin-1"))
    return path


def _small_ml100k_zip(tmp_path: Path) -> Path:
    return _zip(
        tmp_path / "ml-100k.zip",
        {"ml-100k/u.data": U_DATA, "ml-100k/u.item": U_ITEM, "ml-100k/u.genre": U_GENRE},
    )


def _use_source(monkeypatch: pytest.MonkeyPatch, source: ZipSource) -> None:
    patched = dict(DATASETS)
    patched["ml-100k"] = replace(DATASETS["ml-100k"], source=source)
    monkeypatch.setattr(registry, "DATASETS", patched)


def _digests(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def test_load_dataset_generates_demo_without_any_files(tmp_path: Path) -> None:
    data = load_dataset("demo", data_dir=tmp_path / "absent")
    expected = make_demo()
    assert data.name == "demo"
    np.testing.assert_array_equal(data.item_idx, expected.item_idx)
    assert not (tmp_path / "absent").exists()


def test_dataset_names_cover_demo_and_the_real_datasets() -> None:
    assert DATASET_NAMES == ("demo", "ml-100k", "ml-latest-small", "lastfm")


def test_load_dataset_rejects_unknown_name() -> None:
    with pytest.raises(NotFoundError, match=r"unknown dataset 'netflix'.*ml-100k"):
        load_dataset("netflix")


def test_load_dataset_says_where_it_looked_and_how_to_download_when_missing(
    tmp_path: Path,
) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset("ml-100k", data_dir=tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "ml-100k") in message
    assert "download=True" in message
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in message
    assert "MLREC_DATA_DIR" in message


def test_load_dataset_points_to_homepage_when_dataset_cannot_be_downloaded(
    tmp_path: Path,
) -> None:
    with pytest.raises(DataError, match=r"grouplens\.org/datasets/hetrec-2011") as caught:
        load_dataset("lastfm", data_dir=tmp_path, download=True)
    assert str(tmp_path / "lastfm-hetrec2011-2k") in str(caught.value)


def test_load_dataset_reads_data_dir_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLREC_DATA_DIR", str(tmp_path / "from-env"))
    assert default_data_dir() == tmp_path / "from-env"
    with pytest.raises(DataError, match="from-env"):
        load_dataset("ml-latest-small")


def test_default_data_dir_falls_back_to_local_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLREC_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "mlrec"


@pytest.mark.parametrize("value", ["", "   "])
def test_default_data_dir_treats_an_empty_variable_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MLREC_DATA_DIR", value)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / ".local" / "share" / "mlrec"


def test_load_dataset_accepts_the_alternative_folder_names(tmp_path: Path) -> None:
    folder = tmp_path / "lastfm-hetrec2011-2k"
    folder.mkdir()
    (folder / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t51\t7\n")
    assert find_dataset("lastfm", tmp_path) == folder
    data = load_dataset("lastfm", data_dir=tmp_path)
    assert (len(data), data.name) == (1, "lastfm")
    assert load_dataset("lastfm-hetrec2011-2k", data_dir=tmp_path).name == "lastfm"


def test_movielens_sources_point_at_grouplens_and_pin_ml100k() -> None:
    ml100k = DATASETS["ml-100k"].source
    assert ml100k is not None and ml100k.md5 == "0e33842e24a9c977be4e0107933c0723"
    assert ml100k.url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    small = DATASETS["ml-latest-small"].source
    assert small is not None
    assert small.url == "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"


def test_load_dataset_downloads_verifies_and_extracts_from_file_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = _small_ml100k_zip(tmp_path)
    md5, sha256 = _digests(archive)
    _use_source(
        monkeypatch,
        ZipSource(archive.as_uri(), "ml-100k", ("u.data", "u.item"), md5=md5, sha256=sha256),
    )
    data_dir = tmp_path / "data"
    data = load_dataset("ml-100k", data_dir=data_dir, download=True)
    assert (len(data), data.n_users, data.n_items) == (3, 2, 2)
    assert data.item_info["20"].categories == ("Sci-Fi",)
    assert (data_dir / "ml-100k" / "u.data").is_file()
    printed = capsys.readouterr().out
    assert "research" in printed and "redistribute" in printed and "Harper" in printed
    assert sorted(p.name for p in data_dir.iterdir()) == ["ml-100k"]  # no temp leftovers
    # Second call finds the folder and does not download again.
    _use_source(monkeypatch, ZipSource("file:///nonexistent.zip", "ml-100k", ("u.data",)))
    assert len(load_dataset("ml-100k", data_dir=data_dir, download=True)) == 3


def test_download_rejects_checksum_mismatch_and_leaves_nothing_behind(tmp_path: Path) -> None:
    archive = _small_ml100k_zip(tmp_path)
    source = ZipSource(archive.as_uri(), "ml-100k", ("u.data",), sha256="0" * 64)
    data_dir = tmp_path / "data"
    with pytest.raises(DataError, match=r"SHA-256 .* expected 0000"):
        download_zip(source, data_dir / "ml-100k", echo=lambda _: None)
    assert list(data_dir.iterdir()) == []


def test_download_rejects_extracted_file_with_wrong_pinned_hash(tmp_path: Path) -> None:
    archive = _small_ml100k_zip(tmp_path)
    source = ZipSource(archive.as_uri(), "ml-100k", ("u.data",), member_sha256={"u.data": "f" * 64})
    with pytest.raises(DataError, match=r"u\.data"):
        download_zip(source, tmp_path / "data" / "ml-100k", echo=lambda _: None)
    assert not (tmp_path / "data" / "ml-100k").exists()


@pytest.mark.parametrize(
    ("members", "problem"),
    [
        ({"ml-100k/../evil.txt": "x", "ml-100k/u.data": U_DATA}, "unsafe member name"),
        ({"elsewhere/u.data": U_DATA}, "outside the expected folder"),
        ({"ml-100k/u.item": U_ITEM}, "lacks u.data"),
    ],
)
def test_download_rejects_zip_with_bad_members(
    tmp_path: Path, members: dict[str, str], problem: str
) -> None:
    archive = _zip(tmp_path / "bad.zip", members)
    source = ZipSource(archive.as_uri(), "ml-100k", ("u.data",))
    with pytest.raises(DataError, match=problem):
        download_zip(source, tmp_path / "data" / "ml-100k", echo=lambda _: None)
    assert not (tmp_path / "evil.txt").exists()


def test_download_rejects_a_file_that_is_not_a_zip(tmp_path: Path) -> None:
    page = tmp_path / "page.zip"
    page.write_text("<html>rate limited</html>")
    source = ZipSource(page.as_uri(), "ml-100k", ("u.data",))
    with pytest.raises(DataError, match="not a valid zip"):
        download_zip(source, tmp_path / "data" / "ml-100k", echo=lambda _: None)


def test_download_uses_injected_opener_instead_of_the_network(tmp_path: Path) -> None:
    payload = _small_ml100k_zip(tmp_path).read_bytes()
    asked: list[str] = []

    def opener(url: str, *, timeout: float) -> IO[bytes]:
        asked.append(url)
        return io.BytesIO(payload)

    source = ZipSource("https://example.invalid/ml-100k.zip", "ml-100k", ("u.data",))
    target = download_zip(source, tmp_path / "ml-100k", opener=opener, echo=lambda _: None)
    assert asked == ["https://example.invalid/ml-100k.zip"]
    assert (target / "u.item").is_file()


def test_download_turns_network_errors_into_data_error(tmp_path: Path) -> None:
    def opener(url: str, *, timeout: float) -> IO[bytes]:
        raise urllib.error.URLError("Name or service not known")

    source = ZipSource("https://example.invalid/x.zip", "x", ("a",))
    with pytest.raises(DataError, match=r"could not download .*Name or service not known"):
        download_zip(source, tmp_path / "x", opener=opener, echo=lambda _: None)
