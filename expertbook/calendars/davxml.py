"""CalDAV request bodies and answers as plain data, built and read with the `caldav`
library's elements and response parser.

Pure: no network, no Flask, no database, so a child process can read a large answer
(parse_worker) while the server only waits on the network.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from caldav.elements import cdav, dav
from caldav.response import DAVResponse
from caldav.search import CalDAVSearcher
from lxml import etree


@dataclass(frozen=True)
class DavObject:
    """One calendar object as a REPORT listed it; `data` is None when it was not asked for
    (or the server left it out)."""

    href: str
    etag: str
    data: str | None


@dataclass
class Listing:
    """What a calendar-query, calendar-multiget or sync-collection REPORT answered."""

    objects: list[DavObject] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # hrefs gone (404)
    token: str | None = None  # the new sync token (sync-collection)
    truncated: bool = False  # the server sent part of the changes (RFC 6578, 3.6)


def _xml(element) -> bytes:
    return etree.tostring(element.xmlelement(), encoding="utf-8", xml_declaration=True)


def query_body(start: datetime | None, end: datetime | None, *, with_data: bool) -> bytes:
    """A calendar-query for the event objects touching [start, end) (every event object
    when both are None), with their ETags and (with_data) their iCalendar data; no
    server-side expansion."""
    query, _ = CalDAVSearcher(event=True, start=start, end=end).build_search_xml_query()
    root = copy.deepcopy(query.xmlelement())
    if not with_data:
        for element in root.iter(cdav.CalendarData.tag):
            element.getparent().remove(element)
    return etree.tostring(root, encoding="utf-8", xml_declaration=True)


def sync_body(token: str) -> bytes:
    """A sync-collection REPORT (RFC 6578) for what changed since `token`, with ETags and
    data."""
    return _xml(
        dav.SyncCollection()
        + [
            dav.SyncToken(value=token),
            dav.SyncLevel(value="1"),
            dav.Prop() + [dav.GetEtag(), cdav.CalendarData()],
        ]
    )


def multiget_body(hrefs: list[str]) -> bytes:
    """A calendar-multiget REPORT for these objects' ETags and data."""
    return _xml(
        cdav.CalendarMultiGet()
        + [dav.Prop() + [dav.GetEtag(), cdav.CalendarData()]]
        + [dav.Href(value=href) for href in hrefs]
    )


def read_listing(body: bytes, *, sync: bool) -> Listing:
    """The objects (and for a sync-collection, the removed hrefs and the new token) in a
    REPORT's multistatus answer. Raises ValueError when it is not one."""
    response = DAVResponse.from_bytes(body, huge_tree=True)
    if response.tree is None:
        raise ValueError("not a multistatus answer")
    if sync:
        result = response.parse_sync_collection()
        found, removed = result.changed, list(result.deleted)
        listing = Listing(token=result.sync_token, truncated=bool(result.truncated))
    else:
        results = response.parse_calendar_query()
        found = [r for r in results if r.status != 404]
        removed = [r.href for r in results if r.status == 404]
        listing = Listing()
    listing.removed = removed
    listing.objects = [
        DavObject(
            href=str(r.href),
            etag=(r.etag or "").strip(),
            data=r.calendar_data if r.calendar_data and r.calendar_data.strip() else None,
        )
        for r in found
        if r.href and not str(r.href).endswith("/")  # the collection itself
    ]
    return listing
