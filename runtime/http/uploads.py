"""Package uploads to the HTTP API: read the body (raw or multipart), refuse compression
bombs before tarfile sees a byte (runtime.package.inflate counts every decompressed byte),
and turn the archive into a validated package."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..config import Settings
from ..errors import PackageError
from ..package import (
    GZIP_MAGIC,
    SkillPackage,
    archive_cap,
    inflate,
    package_from_files,
    parse_skill_md,
    unpack_files,
    with_canonical_skill_md,
)

JSON_LIMIT = 4 * 1024 * 1024
UPLOAD_LIMIT = 20 * 1024 * 1024


def check_archive(blob: bytes, settings: Settings) -> bytes:
    """The upload's tar bytes, before tarfile sees any: a gzip stream inflated with every byte
    of every member counted (ArchiveTooLarge, a 413, past what a package can need), or a
    plain tar; anything else is refused (422)."""
    tar = inflate(blob, archive_cap(settings))
    if len(tar) > 262 and tar[257:262] == b"ustar":
        return tar
    if blob[:2] == GZIP_MAGIC:
        raise PackageError(
            "", "the gzip stream does not hold a tar archive: send the skill folder as a .tar.gz"
        )
    raise PackageError("", "send the skill folder as a .tar.gz (or .tar) archive")


def parse_upload(blob: bytes, settings: Settings) -> SkillPackage:
    """An uploaded archive -> a validated package. Accepts files at the archive's root or
    inside one top folder named like the skill."""
    if not blob:
        raise HTTPException(422, "empty upload: send the skill folder as a .tar.gz archive")
    files, executable = unpack_files(check_archive(blob, settings), settings)
    files = with_canonical_skill_md(files)
    folder = None
    if "SKILL.md" not in files and files:
        tops = {p.split("/", 1)[0] for p in files}
        if len(tops) == 1 and all("/" in p for p in files):
            folder = tops.pop()
            files = with_canonical_skill_md({p[len(folder) + 1 :]: data for p, data in files.items()})
            executable = {p[len(folder) + 1 :] for p in executable}
    if "SKILL.md" not in files:
        raise PackageError("SKILL.md", "missing: the archive needs SKILL.md at its root or in one top folder")
    if folder is None:
        try:
            front, _ = parse_skill_md(files["SKILL.md"].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise PackageError("SKILL.md", "is not valid UTF-8") from exc
        folder = front.get("name") if isinstance(front.get("name"), str) else ""
    return package_from_files(folder, files, executable)


async def read_upload(request: Request, limit: int) -> bytes:
    """The uploaded archive: the raw body, or the multipart field `file`; 413 past `limit`."""
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=8)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "a multipart upload needs the archive in a file field named 'file'")
            data = await upload.read(limit + 1)
        finally:
            await form.close()
    else:
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise HTTPException(413, f"the upload is over the {limit}-byte limit")
            chunks.append(chunk)
        data = b"".join(chunks)
    if len(data) > limit:
        raise HTTPException(413, f"the upload is over the {limit}-byte limit")
    return data
