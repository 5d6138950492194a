#!/usr/bin/env python3
"""End-to-end check of seedance-gateway's /v1/videos API with the official OpenAI Python SDK.

Standalone script (no pytest): plain asserts, exits non-zero on the first failure.

Environment:
  GATEWAY_URL       gateway origin, e.g. http://127.0.0.1:8080 (the script appends /v1)
  GATEWAY_API_KEY   API key sent as "Authorization: Bearer <key>"
  TEST_TIMEOUT      optional overall deadline in seconds (default 180)

The gateway is expected to run with the sandbox provider, which completes jobs
after about 1-2 seconds and serves assets/sandbox.mp4 as the content.

Install the SDK with: pip install -r tests/python/requirements.txt
"""

import os
import signal
import struct
import sys
import time
import traceback
import warnings
import zlib

# The SDK marks the videos methods as deprecated ("Sora API ... shut down"); the
# warnings are noise here.
warnings.simplefilter("ignore", DeprecationWarning)

import openai  # noqa: E402

MODEL = "seedance-2.0"
SECONDS = "4"
SIZE = "1280x720"


def step(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def png_1x1():
    """A valid 1x1 opaque red RGB PNG, built from raw bytes (no PIL)."""

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit, colour type 2 (RGB)
    scanline = b"\x00" + b"\xff\x00\x00"  # filter byte 0 + one RGB pixel
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(scanline))
        + chunk(b"IEND", b"")
    )


def check_video(v, *, expect_id=None, statuses=("queued", "in_progress", "completed")):
    assert isinstance(v, openai.types.Video), f"expected Video, got {type(v)}"
    assert isinstance(v.id, str) and v.id, f"bad id: {v.id!r}"
    if expect_id is not None:
        assert v.id == expect_id, f"id mismatch: {v.id!r} != {expect_id!r}"
    assert v.object == "video", f"object should be 'video', got {v.object!r}"
    assert v.status in statuses, f"status {v.status!r} not in {statuses}"
    assert isinstance(v.created_at, int) and v.created_at > 0, f"bad created_at: {v.created_at!r}"
    assert isinstance(v.progress, int) and 0 <= v.progress <= 100, f"bad progress: {v.progress!r}"
    assert v.model == MODEL, f"model should be {MODEL!r}, got {v.model!r}"
    assert v.seconds == SECONDS, f"seconds should be {SECONDS!r} (a string), got {v.seconds!r}"
    assert v.size == SIZE, f"size should be {SIZE!r}, got {v.size!r}"


def check_completed(v, *, expect_id=None):
    assert v.status == "completed", f"expected completed, got {v.status!r} (error={v.error!r})"
    check_video(v, expect_id=expect_id, statuses=("completed",))
    assert v.progress == 100, f"completed video should have progress 100, got {v.progress!r}"
    assert v.error is None, f"completed video has error: {v.error!r}"
    if v.completed_at is not None:
        assert isinstance(v.completed_at, int) and v.completed_at >= v.created_at, (
            f"bad completed_at {v.completed_at!r} (created_at {v.created_at!r})"
        )


def main():
    base = os.environ.get("GATEWAY_URL", "").rstrip("/")
    key = os.environ.get("GATEWAY_API_KEY", "")
    assert base, "GATEWAY_URL must be set (e.g. http://127.0.0.1:8080)"
    assert key, "GATEWAY_API_KEY must be set"

    step(f"openai SDK {openai.__version__}, base_url={base}/v1")
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, timeout=30.0, max_retries=1)
    created = []

    # 1. text-only create
    v1 = client.videos.create(model=MODEL, prompt="A red fox running through fresh snow", seconds=SECONDS, size=SIZE)
    check_video(v1)
    assert v1.prompt in (None, "A red fox running through fresh snow"), f"unexpected prompt {v1.prompt!r}"
    created.append(v1.id)
    step(f"create (text-only) ok: id={v1.id} status={v1.status}")

    # 2. retrieve
    r1 = client.videos.retrieve(v1.id)
    check_video(r1, expect_id=v1.id)
    step(f"retrieve ok: id={r1.id} status={r1.status} progress={r1.progress}")

    # 3. poll the first job to completion, then create_and_poll a second one
    p1 = client.videos.poll(v1.id)
    check_completed(p1, expect_id=v1.id)
    step(f"poll ok: id={p1.id} completed")

    v2 = client.videos.create_and_poll(model=MODEL, prompt="A paper boat drifting on a pond", seconds=SECONDS, size=SIZE)
    created.append(v2.id)
    check_completed(v2)
    assert v2.id != v1.id, "create returned a duplicate id"
    step(f"create_and_poll ok: id={v2.id} completed")

    # 4. create with input_reference (in-memory PNG file)
    png = png_1x1()
    v3 = client.videos.create_and_poll(
        model=MODEL,
        prompt="Animate this image: a slow zoom in",
        seconds=SECONDS,
        size=SIZE,
        input_reference=("reference.png", png, "image/png"),
    )
    created.append(v3.id)
    check_completed(v3)
    assert v3.id not in (v1.id, v2.id), "create returned a duplicate id"
    step(f"create_and_poll with input_reference ok: id={v3.id} completed")

    # 5. list: first page with limit=1, then the SDK auto-paginator across pages
    first = client.videos.list(limit=1)
    assert len(first.data) <= 1, f"limit=1 returned {len(first.data)} items"
    assert len(first.data) == 1, "list returned no items although videos exist"
    assert first.has_more is True, f"has_more should be true with {len(created)}+ videos and limit=1, got {first.has_more!r}"
    assert first.last_id == first.data[0].id, f"last_id {first.last_id!r} != data[-1].id {first.data[0].id!r}"
    assert first.has_next_page(), "SDK sees no next page"
    step(f"list(limit=1) first page ok: id={first.data[0].id} has_more={first.has_more} last_id={first.last_id}")

    wanted = set(created)
    seen = []
    for item in client.videos.list(limit=1):  # auto-paginates via ?after=<last_id>
        assert isinstance(item, openai.types.Video), f"list item is {type(item)}"
        assert item.object == "video", f"list item object {item.object!r}"
        assert item.id not in seen, f"pagination repeated id {item.id!r}"
        seen.append(item.id)
        if wanted.issubset(seen) or len(seen) >= 10000:
            break
    missing = wanted.difference(seen)
    assert not missing, f"created ids missing from list: {sorted(missing)} (saw {len(seen)} items)"
    assert len(seen) >= len(wanted), "auto-paginator did not cross pages"
    step(f"list auto-pagination (limit=1) ok: found all {len(wanted)} created ids across {len(seen)} pages")

    pages = 0
    for page in client.videos.list(limit=2).iter_pages():
        pages += 1
        assert len(page.data) <= 2, f"limit=2 page has {len(page.data)} items"
        if pages >= 2:
            break
    assert pages >= 2, "iter_pages() with limit=2 did not reach a second page"
    step("list iter_pages (limit=2) ok: reached a second page")

    # 6. download_content -> MP4 bytes
    content = client.videos.download_content(v1.id)
    data = content.content
    assert isinstance(data, bytes), f"content is {type(data)}"
    assert len(data) > 8, f"content too short: {len(data)} bytes"
    assert data[4:8] == b"ftyp", f"content is not an MP4 (bytes 4..8 = {data[4:8]!r})"
    step(f"download_content ok: {len(data)} bytes, ftyp box present")

    # thumbnail variant (JPEG): the gateway serves one for every completed video
    thumb = client.videos.download_content(v1.id, variant="thumbnail").content
    assert thumb[:3] == b"\xff\xd8\xff", f"thumbnail is not a JPEG (starts {thumb[:4]!r})"
    step(f"download_content(variant=thumbnail) ok: {len(thumb)} bytes JPEG")

    # 7. delete, then retrieve -> 404
    for vid in list(created):
        d = client.videos.delete(vid)
        assert d.id == vid, f"delete returned id {d.id!r}, expected {vid!r}"
        assert d.deleted is True, f"delete returned deleted={d.deleted!r}"
        assert d.object == "video.deleted", f"delete returned object={d.object!r}"
        created.remove(vid)
        step(f"delete ok: id={vid} deleted=True")

    try:
        gone = client.videos.retrieve(v1.id)
    except openai.NotFoundError as e:
        assert e.status_code == 404
        step("retrieve after delete ok: NotFoundError (404)")
    else:
        raise AssertionError(f"retrieve after delete should raise NotFoundError, got status={gone.status!r}")

    step("ALL PASSED")


def _timeout(signum, frame):
    raise TimeoutError("test exceeded TEST_TIMEOUT")


if __name__ == "__main__":
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(int(os.environ.get("TEST_TIMEOUT", "180")))
    try:
        main()
    except Exception:  # AssertionError, openai.APIError, TimeoutError, ...
        traceback.print_exc()
        print("FAILED", file=sys.stderr, flush=True)
        sys.exit(1)
