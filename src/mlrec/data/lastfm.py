"""Last.fm HetRec 2011 (2K users): implicit feedback as artist play counts.

``user_artists.dat`` holds ``userID<TAB>artistID<TAB>weight`` (a header, CRLF line
endings), where weight is how many times the user played the artist. There are
no timestamps, so every event gets timestamp 0. Artist names come from
``artists.dat`` (``id<TAB>name<TAB>url<TAB>pictureURL``).

The data is "made available for non-commercial use" only; never commit it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlrec.core.interactions import Interactions, ItemInfo
from mlrec.data._parse import (
    RawEvents,
    first_line,
    locate,
    no_gc,
    parse_floats,
    read_events_fast,
    read_table,
    require_events,
    require_file,
    require_ids,
)

__all__ = ["load_lastfm", "read_lastfm_artists"]


def read_lastfm_artists(path: Path | str) -> dict[str, ItemInfo]:
    """Artist names from ``artists.dat``, keyed by artist id.

    Raises:
        DataError: the file is missing.
        DataFormatError: a row without an id and a name, with its line number.
    """
    table = read_table(require_file(Path(path), "Last.fm artists.dat"), "\t")
    if table.rows and table.rows[0][:1] == ["id"]:
        table = table.drop_first()
    table.check_columns(2, at_least=True, sep="\t")
    info: dict[str, ItemInfo] = {}
    for row, fields in enumerate(table.rows):
        artist_id = fields[0].strip()
        if not artist_id:
            raise table.error(row, "artist id is empty")
        info[artist_id] = ItemInfo(title=fields[1].strip() or f"artist {artist_id}")
    return info


def _read_user_artists(path: Path) -> RawEvents:
    skip = 1 if first_line(path).split("\t")[0] == "userID" else 0
    fast = read_events_fast(path, "\t", has_timestamp=False, skiprows=skip)
    if fast is not None:
        return require_events(fast, path)
    table = read_table(path, "\t")
    if skip:
        table = table.drop_first()
    table.check_columns(3, sep="\t")
    users, items = table.column(0), table.column(1)
    require_ids(table, users, "user id")
    require_ids(table, items, "artist id")
    weights = parse_floats(table, table.column(2), "weight")
    events = RawEvents(users, items, weights, np.zeros(len(weights), dtype=np.int64))
    return require_events(events, path)


def load_lastfm(path: Path | str) -> Interactions:
    """Load Last.fm HetRec 2011 from its folder or from one ``user_artists.dat`` file.

    Args:
        path: the extracted ``hetrec2011-lastfm-2k`` directory, or a file in the
            ``user_artists.dat`` format (``userID<TAB>artistID<TAB>weight``, header
            optional); artist names then come from ``artists.dat`` beside it when present.

    Returns:
        92,834 events (1,892 users, 17,632 artists) whose weights are play counts;
        timestamps are all 0 (the dataset has none). Artist names are in
        ``item_info`` when ``artists.dat`` is present. The name is ``lastfm``, or
        ``lastfm-<stem>`` for a file not called ``user_artists.dat``.

    Raises:
        DataError: the path or ``user_artists.dat`` is missing, or that file is empty.
        DataFormatError: a malformed row, with its line number.
    """
    ratings, directory = locate(path, "user_artists.dat", "Last.fm")
    require_file(ratings, "Last.fm user_artists.dat")
    name = "lastfm" if ratings.name == "user_artists.dat" else f"lastfm-{ratings.stem}"
    with no_gc():
        events = _read_user_artists(ratings)
        artists = directory / "artists.dat"
        info = read_lastfm_artists(artists) if artists.is_file() else {}
        return events.build(info, name)
