"""`--download` fetches a missing dataset from the command line. No test touches the network:
the download step itself (``download_zip``) is replaced by a fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mlrec.data.registry
from mlrec.cli import main
from mlrec.core.errors import DataError
from mlrec.data.download import ZipSource

# every command that takes --dataset, with what must come before it
COMMANDS: dict[str, tuple[list[str], list[str]]] = {
    "train": ([], ["train", "--algorithm", "most_popular", "--output", "{tmp}/m"]),
    "run": ([], ["run"]),
    "up": ([], ["up"]),
    "split": ([], ["split", "--train-output", "{tmp}/a.csv", "--test-output", "{tmp}/b.csv"]),
    "features materialize": (["features", "apply"], ["features", "materialize", "user_stats"]),
}


class FakeDownload:
    """Stands in for ``download_zip``: records the call, then writes a tiny ML-100K (or fails)."""

    def __init__(self, write: bool) -> None:
        self.write = write
        self.calls: list[tuple[ZipSource, Path, str]] = []

    def __call__(self, source: ZipSource, destination: Path, **kwargs: Any) -> Path:
        self.calls.append((source, destination, kwargs.get("licence", "")))
        if not self.write:
            raise DataError(f"offline test: not downloading {source.url}")
        destination.mkdir(parents=True)
        rows = [
            f"{u}\t{(u * 3 + j) % 30 + 1}\t{1 + j % 5}\t{880000000 + u * 10 + j}"
            for u in range(1, 41)
            for j in range(6)
        ]
        (destination / "u.data").write_text("\n".join(rows) + "\n")
        genres = "|".join("0" * 19)
        items = [
            f"{i}|Movie {i} (1998)|01-Jan-1998||http://example.org/{i}|{genres}"
            for i in range(1, 31)
        ]
        (destination / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
        return destination


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (code if isinstance(code, int) else 1), captured.out, captured.err


def command(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    before, argv = COMMANDS[name]
    if before:
        assert run(before, capsys)[0] == 0
    return [arg.format(tmp=tmp_path) for arg in argv]


@pytest.mark.parametrize("name", COMMANDS)
def test_missing_dataset_points_at_the_download_flag(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDownload(write=False)
    monkeypatch.setattr(mlrec.data.registry, "download_zip", fake)
    code, _, err = run([*command(name, tmp_path, capsys), "--dataset", "ml-100k"], capsys)
    assert code == 2
    message = " ".join(err.split())
    assert "dataset 'ml-100k' not found" in message
    assert "Run again with --download" in message
    assert "load_dataset(" not in message  # not "call Python"
    assert fake.calls == []


@pytest.mark.parametrize("name", COMMANDS)
def test_download_flag_reaches_the_download(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDownload(write=False)
    monkeypatch.setattr(mlrec.data.registry, "download_zip", fake)
    argv = [*command(name, tmp_path, capsys), "--dataset", "ml-100k", "--download"]
    code, _, err = run(argv, capsys)
    assert code == 2 and "offline test: not downloading" in err
    [(source, destination, licence)] = fake.calls
    assert source.url.endswith("/ml-100k.zip")
    assert destination == tmp_path / "data" / "ml-100k"
    assert "research use only" in licence


def test_train_with_download_trains_on_the_fetched_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDownload(write=True)
    monkeypatch.setattr(mlrec.data.registry, "download_zip", fake)
    argv = ["train", "--dataset", "ml-100k", "--download", "--algorithm", "most_popular"]
    code, out, err = run([*argv, "--output", str(tmp_path / "m")], capsys)
    assert code == 0, err
    assert "on ml-100k: 40 users, 30 items, 240 interactions" in " ".join(out.split())
    assert len(fake.calls) == 1
    # present now: a second run does not download again, flag or not
    code, _, err = run([*argv, "--output", str(tmp_path / "m2")], capsys)
    assert code == 0, err
    assert len(fake.calls) == 1


def test_a_dataset_without_a_download_source_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["train", "--dataset", "lastfm", "--download"], capsys)
    message = " ".join(err.split())
    assert code == 2 and "cannot be downloaded automatically" in message
    assert "grouplens.org/datasets/hetrec-2011" in message


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (["--download"], "--download fetches a --dataset by name"),
        (["--dataset", "demo"], "give either --interactions or --dataset, not both"),
    ],
)
def test_options_for_a_named_dataset_do_not_mix_with_a_file(
    options: list[str], problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "i.csv"
    data.write_text("u1,i1\n")
    code, _, err = run(["train", "--interactions", str(data), *options], capsys)
    assert code == 2 and problem in err


def test_format_does_not_apply_to_a_named_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["train", "--dataset", "demo", "--format", "csv"], capsys)
    assert code == 2 and "--format describes --interactions" in err
