"""Lineage and portfolio links on a remote (push and pull).

    projects/<p>/lineage/<name>/v<N>/<dir>-<run>.json   a run used or logged v<N>
    projects/<p>/links/<portfolio>/<seq>.json           a link event (see records)

A push sends them after the version records and alias events they name, so
a crash at any moment leaves a valid remote. What was sent to (or received
from) each remote is remembered in the index (see :mod:`wbtool.remote.state`):
a push with nothing new compares tables and makes no request for them.

Lineage records are facts: one per (version, direction, run), created
exclusively; the same fact sent from two stores is one file. A use of a link
travels as a use of its source version.

Link events are claimed by exclusive create, as alias events are: a link
made or whose aliases changed since the last sync is sent with its aliases,
a link remembered as sent that is gone here (unlinked, or its source
deleted) is sent as removed. A link whose source version is not on the
remote cannot be named there: it is left out with a warning. A pull replays
each portfolio's events and changes only the links whose state on the
remote differs from what both sides agreed on last time (so a local change
not pushed yet is kept), pulling a linked version it lacks first.

A checking push does not trust what was remembered as sent: a lineage record
that a listing lacks is sent again, and so is a link agreed on that no event
of its portfolio names any more (all its events deleted by hand). The last
event this store sent for each link is remembered (number, aliases, time):
when it is gone and no event numbered or timed after it is there, it was
the portfolio's last and was deleted, and the link is sent again. An event
of a link gone with later events left (or another store's event written in
its place) cannot be told from a change made elsewhere, and is left. An
event that cannot be read is named in a warning and passed over.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from wbtool.artifacts.registry import Registry, VersionRecord
from wbtool.errors import ConflictError, NotFoundError, StoreError
from wbtool.lazyre import lazy_compile
from wbtool.remote import records, state
from wbtool.remote.fs import Remote
from wbtool.remote.pool import run_all

_RUN_ID = lazy_compile(r"[A-Za-z0-9_-]{1,64}")
Target = tuple[str, str | None, str | None]
T = TypeVar("T")


def _label(rec: VersionRecord) -> str:
    return f"{rec.project}/{rec.name}:{rec.version}"


# -- push ---------------------------------------------------------------------------------------

def lineage_todo(registry: Registry, url: str, mapped: dict[int, state.Mapped],
                 lost: Iterable[state.LineageKey] = ()) -> set[state.LineageKey]:
    """The lineage records of versions on the remote (``mapped``) not sent
    before, or sent and ``lost`` there since."""
    sent = state.load_lineage(registry.store.index, url) - set(lost)
    todo: set[state.LineageKey] = set()
    for run_id, vid, direction in registry.lineage_rows():
        m = mapped.get(vid)
        if m is None or direction not in records.DIRECTIONS or not _RUN_ID.fullmatch(run_id):
            continue
        key = (m.project, m.name, m.remote_idx, direction, run_id)
        if key not in sent:
            todo.add(key)
    return todo


def push_lineage(registry: Registry, remote: Remote, mapped: dict[int, state.Mapped],
                 jobs: int = 8) -> int:
    """Send a record for each lineage row of a version on the remote (``mapped``)
    not sent before; returns how many were sent."""
    todo = lineage_todo(registry, remote.url, mapped)

    def send(key: state.LineageKey) -> None:
        project, name, idx, direction, run_id = key
        remote.create_exclusive(  # False: the same fact is there already
            records.lineage_path(project, name, idx, direction, run_id),
            records.LineageRecord(project, name, idx, direction, run_id).to_bytes())

    run_all(send, sorted(todo), jobs)
    state.remember_lineage(registry.store.index, remote.url, todo)
    return len(todo)


LinkChange = tuple[state.LinkKey, tuple[str, ...] | None]


def _in_scope(project: str | None, key: state.LinkKey) -> bool:
    """Whether a sync of ``project`` (every project: None) sends the link ``key``:
    one of a portfolio in it, or of a version of it."""
    return project is None or project in (key[0], key[2])


def link_changes(registry: Registry, url: str, project: str | None, warnings: list[str],
                 mapped: dict[int, state.Mapped] | None = None,
                 lost: Iterable[LinkChange] = ()) -> list[LinkChange]:
    """The link events a sync of ``project`` (all when None) sends: each link
    made or changed since the last sync, and each link remembered as sent
    that is gone here. ``mapped``: the local versions on the remote (default:
    as remembered); ``lost``: links whose events the remote lost, with the
    state it reads of them now (None: no link), taken as agreed on."""
    index = registry.store.index
    if mapped is None:
        mapped = state.load(index, url)
    want: dict[state.LinkKey, tuple[str, ...]] = {}
    for link in registry.linked():
        assert link.source_id is not None
        m = mapped.get(link.source_id)
        if m is None:
            try:
                source = registry.get(link.source_id)
            except NotFoundError:
                continue
            if project is None or project in (link.project, source.project):
                warnings.append(f"link {_label(link)} not sent: its source {_label(source)} is "
                                f"not on {url} (sync project {source.project!r})")
            continue
        key = (link.project, link.name, m.project, m.name, m.remote_idx)
        if _in_scope(project, key):
            want[key] = tuple(sorted(a for a in link.aliases if a != "latest"))
    had = state.load_links(index, url)
    for key, there in lost:
        if there is None:
            had.pop(key, None)
        else:
            had[key] = there
    return sorted([(k, a) for k, a in want.items() if had.get(k) != a]
                  + [(k, None) for k in had if _in_scope(project, k) and k not in want],
                  key=lambda change: change[0])


def push_links(registry: Registry, remote: Remote, project: str | None,
               warnings: list[str]) -> int:
    """Send an event for each link made, changed or removed since the last sync
    (of portfolios in ``project`` or of its versions; all when None)."""
    changes = link_changes(registry, remote.url, project, warnings)
    by_portfolio: dict[tuple[str, str], list[LinkChange]] = {}
    for key, aliases in changes:
        by_portfolio.setdefault((key[0], key[1]), []).append((key, aliases))
    for (proj, portfolio), items in sorted(by_portfolio.items()):
        found, _ = records.parse_links_listing(
            proj, remote.list(records.links_prefix(proj, portfolio)))
        seqs = found.get(portfolio, set())
        seq = max(seqs) + 1 if seqs else 0
        sent: list[tuple[state.LinkKey, state.SentLinkEvent]] = []
        for key, aliases in items:
            event = records.LinkEvent(source=key[2:], aliases=aliases, time=time.time())
            while not remote.create_exclusive(records.link_path(proj, portfolio, seq),
                                              event.to_bytes()):
                seq += 1
            sent.append((key, state.SentLinkEvent(seq, event.aliases, event.time)))
            seq += 1
        state.set_links(registry.store.index, remote.url, items)
        state.remember_link_events(registry.store.index, remote.url, sent)
    return len(changes)


# -- check: what the remote lost of what was sent -----------------------------------------------

def lost_lineage(registry: Registry, remote: Remote,
                 mapped: dict[int, state.Mapped]) -> list[state.LineageKey]:
    """The lineage records remembered as sent, of versions on the remote
    (``mapped``), that a listing of each project's lineage lacks."""
    ours = {(m.project, m.name, m.remote_idx) for m in mapped.values()}
    claimed = [k for k in state.load_lineage(registry.store.index, remote.url) if k[:3] in ours]
    there: set[state.LineageKey] = set()
    for project in sorted({k[0] for k in claimed}):
        found, _ = records.parse_lineage_listing(
            project, remote.list(records.lineage_prefix(project)))
        there.update((project, *key) for key in found)
    return sorted(k for k in claimed if k not in there)


def lost_links(registry: Registry, remote: Remote, project: str | None, warnings: list[str],
               jobs: int = 8) -> list[LinkChange]:
    """The links of portfolios in ``project`` (all when None) whose events
    the remote lost, each with the state the remote reads of it now (None:
    no link): a link agreed on at the last sync that no event names any more,
    and a link whose last event this store sent is gone while no event came
    after it (see :func:`_lost_last`). An event that cannot be read is named
    in ``warnings`` and passed over; the rest of its portfolio is checked."""
    index = registry.store.index
    agreed = state.load_links(index, remote.url)
    sent = state.load_link_events(index, remote.url)
    portfolios = {k[:2] for k in [*agreed, *sent] if _in_scope(project, k)}
    listed: dict[tuple[str, str], set[int]] = {p: set() for p in portfolios}
    for proj in sorted({p for p, _ in portfolios}):
        found, _ = records.parse_links_listing(proj, remote.list(records.links_prefix(proj)))
        for portfolio, seqs in found.items():
            if (proj, portfolio) in listed:
                listed[(proj, portfolio)] = seqs
    wanted = [(*portfolio, seq) for portfolio, seqs in sorted(listed.items())
              for seq in sorted(seqs)]

    def read(item: tuple[str, str, int]) -> tuple[tuple[str, str, int],
                                                   records.LinkEvent | None]:
        path = records.link_path(*item)
        try:
            return item, records.LinkEvent.from_bytes(remote.read(path), path)
        except (records.UnreadableRecordError, records.BadRecordError) as e:
            warnings.append(f"skipped link event {remote.display(path)} while checking: "
                            f"{e.fields['reason']}")
        except NotFoundError:
            pass
        return item, None

    events: dict[tuple[str, str], list[tuple[int, records.LinkEvent]]] = {
        p: [] for p in portfolios}
    for (proj, portfolio, seq), event in run_all(read, wanted, jobs):
        if event is not None:
            events[(proj, portfolio)].append((seq, event))
    named = {pf: {event.source for _, event in evs} for pf, evs in events.items()}
    lost: dict[state.LinkKey, tuple[str, ...] | None] = {}
    for key in agreed:
        if _in_scope(project, key) and key[2:] not in named[key[:2]]:
            lost[key] = None  # every event of it deleted: no link there
    states: dict[tuple[str, str], dict[records.SourceKey, tuple[str, ...]]] = {}
    for key, ev in sent.items():
        pf = key[:2]
        if _in_scope(project, key) and _lost_last(ev, agreed.get(key), listed[pf], events[pf]):
            if pf not in states:
                states[pf] = records.link_state(events[pf])
            lost[key] = states[pf].get(key[2:])
    return sorted(lost.items(), key=lambda change: change[0])


def _lost_last(ev: state.SentLinkEvent, agreed: tuple[str, ...] | None, seqs: set[int],
               evs: list[tuple[int, records.LinkEvent]]) -> bool:
    """Whether ``ev``, the last event this store sent for a link, is lost and
    was the last of its portfolio: its number is not listed, nor any higher
    one (events are numbered upwards, so no store wrote after it), and no
    event there is newer than it (none was written in its place after it was
    deleted). Only an event that still states what both sides agreed on
    counts: one that a pull, or an older wbtool, has overtaken is left."""
    return (ev.aliases == agreed and all(s < ev.seq for s in seqs)
            and all(event.time <= ev.time for _, event in evs))


# -- pull ---------------------------------------------------------------------------------------

def _scopes(targets: Iterable[Target]) -> list[tuple[str, str | None]]:
    """(project, name or None) to list, each once; a whole project covers its names."""
    whole = {p for p, n, _ in targets if n is None}
    return sorted({(p, None if p in whole else n) for p, n, _ in targets},
                  key=lambda s: (s[0], s[1] or ""))


def _by_remote_idx(registry: Registry, url: str) -> dict[tuple[str, str, int], int]:
    return {(m.project, m.name, m.remote_idx): vid
            for vid, m in state.load(registry.store.index, url).items()}


def _read(remote: Remote, path: str, parse: Callable[[bytes], T], warnings: list[str],
          refused: list[dict[str, str]]) -> T | None:
    """The record at ``path``, parsed; None for one that is unreadable (a
    warning), bad (refused) or removed since the listing."""
    try:
        return parse(remote.read(path))
    except records.UnreadableRecordError as e:
        warnings.append(f"skipped {remote.display(path)}: {e.fields['reason']}")
    except records.BadRecordError as e:
        refused.append({"path": remote.display(path), "reason": e.fields["reason"]})
    except NotFoundError:
        pass
    return None


def pull_links(registry: Registry, remote: Remote, targets: Iterable[Target], jobs: int,
               warnings: list[str], refused: list[dict[str, str]],
               fetch: Callable[[Target], None]) -> int:
    """Follow the link events of the portfolios ``targets`` cover; ``fetch``
    pulls a source version this store lacks. Returns how many links changed."""
    index = registry.store.index
    events: dict[tuple[str, str], list[tuple[int, records.LinkEvent]]] = {}
    listed: dict[tuple[str, str], set[int]] = {}
    wanted: list[tuple[str, str, int]] = []
    for project, name in _scopes(targets):
        found, ignored = records.parse_links_listing(
            project, remote.list(records.links_prefix(project, name)))
        warnings += [records.ignored_warning(remote.display(p)) for p in ignored]
        for portfolio, seqs in found.items():
            events[(project, portfolio)] = []
            listed[(project, portfolio)] = seqs
            wanted += [(project, portfolio, seq) for seq in sorted(seqs)]
    if not wanted:
        return 0

    def read(item: tuple[str, str, int]) -> tuple[tuple[str, str, int],
                                                   records.LinkEvent | None]:
        path = records.link_path(*item)
        return item, _read(remote, path, lambda data: records.LinkEvent.from_bytes(data, path),
                           warnings, refused)

    for (project, portfolio, seq), event in run_all(read, wanted, jobs):
        if event is not None:
            events[(project, portfolio)].append((seq, event))
    had = state.load_links(index, remote.url)
    sent = state.load_link_events(index, remote.url)
    changes: list[tuple[state.LinkKey, tuple[str, ...] | None]] = []
    for (project, portfolio), evs in sorted(events.items()):
        there = records.link_state(evs)
        agreed = {k[2:]: a for k, a in had.items() if k[:2] == (project, portfolio)}
        differ: list[LinkChange] = [((project, portfolio, *src), a)
                                    for src, a in sorted(there.items())
                                    if agreed.get(src) != a]
        differ += [((project, portfolio, *src), None) for src in sorted(agreed)
                   if src not in there]
        for key, change in differ:
            ev = sent.get(key)
            if ev is not None and _lost_last(ev, had.get(key), listed[key[:2]], evs):
                warnings.append(f"link of {key[2]}/{key[3]}:v{key[4]} into {project}/"
                                f"{portfolio} kept as it is here: the last event sent of it "
                                f"is gone from {remote.url} (wbtool sync --check sends it "
                                "again)")
            else:
                changes.append((key, change))
    local = _by_remote_idx(registry, remote.url)
    for src in sorted({k[2:] for k, a in changes if a is not None and k[2:] not in local}):
        try:
            fetch((src[0], src[1], f"v{src[2]}"))
        except NotFoundError:
            pass  # told below
    if any(k[2:] not in local for k, _ in changes):
        local = _by_remote_idx(registry, remote.url)
    applied: list[tuple[state.LinkKey, tuple[str, ...] | None]] = []
    for key, aliases in changes:
        project, portfolio = key[0], key[1]
        vid = local.get(key[2:])
        source = f"{key[2]}/{key[3]}:v{key[4]} on {remote.url}"
        if vid is None:
            if aliases is not None:
                warnings.append(f"link of {source} into {project}/{portfolio} not made: "
                                "that version could not be pulled")
            else:
                applied.append((key, None))
            continue
        try:
            link = registry.link_in(vid, project, portfolio)
            if aliases is None:
                if link is not None:
                    registry.delete(link)
            else:
                link = registry.link(registry.get(vid), project, portfolio)
                registry.update(link, aliases=[a for a in aliases if a != "latest"])
        except (ConflictError, StoreError) as e:
            warnings.append(f"link of {source} into {project}/{portfolio} not followed: {e}")
            continue
        applied.append((key, aliases))
    state.set_links(index, remote.url, applied)
    # Their state is what the remote says now, no longer an event sent from here.
    state.forget_link_events(index, remote.url, [key for key, _ in applied])
    return len(applied)


def pull_lineage(registry: Registry, remote: Remote, targets: Iterable[Target], jobs: int,
                 warnings: list[str], refused: list[dict[str, str]]) -> int:
    """Record the lineage the remote holds of local versions that this store
    has not received yet; returns how many rows were added."""
    index = registry.store.index
    had = state.load_lineage(index, remote.url)
    local = _by_remote_idx(registry, remote.url)
    todo: list[state.LineageKey] = []
    for project, name in _scopes(targets):
        found, ignored = records.parse_lineage_listing(
            project, remote.list(records.lineage_prefix(project, name)))
        warnings += [records.ignored_warning(remote.display(p)) for p in ignored]
        todo += [key for n, idx, d, r in found
                 if (key := (project, n, idx, d, r)) not in had and (project, n, idx) in local]
    if not todo:
        return 0

    def read(key: state.LineageKey) -> state.LineageKey | None:
        path = records.lineage_path(*key)
        got = _read(remote, path, lambda data: records.LineageRecord.from_bytes(data, path, *key),
                    warnings, refused)
        return None if got is None else key

    good = [k for k in run_all(read, todo, jobs) if k is not None]
    registry.add_lineage([(r, local[(p, n, i)], d) for p, n, i, d, r in good])
    state.remember_lineage(index, remote.url, good)
    return len(good)
