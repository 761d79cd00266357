"""The kinds of file Kie takes and makes, declared once: each media type's kind (image, video, audio,
data, document) and file extension, and the other names Kie's pages give some of them. Storage names
the results it keeps by it, inputs name their uploads by it, the results tab picks its player by it,
and the emulator names the results it serves by it. Data only: this module imports nothing."""

from __future__ import annotations

#: media type -> (kind, extension). The first type of a kind is what the emulator makes of it.
TYPES: dict[str, tuple[str, str]] = {
    "image/png": ("image", "png"),
    "image/jpeg": ("image", "jpg"),
    "image/webp": ("image", "webp"),
    "image/gif": ("image", "gif"),
    "video/mp4": ("video", "mp4"),
    "video/quicktime": ("video", "mov"),
    "video/webm": ("video", "webm"),
    "video/x-matroska": ("video", "mkv"),
    "video/x-msvideo": ("video", "avi"),
    "audio/mpeg": ("audio", "mp3"),
    "audio/wav": ("audio", "wav"),
    "audio/mp4": ("audio", "m4a"),
    "audio/aac": ("audio", "aac"),
    "audio/ogg": ("audio", "ogg"),
    "audio/flac": ("audio", "flac"),
    "audio/x-ms-wma": ("audio", "wma"),
    "application/json": ("data", "json"),
    "application/pdf": ("document", "pdf"),
}
#: Other names Kie's pages give some of these types.
ALIASES = {
    "image/jpg": "image/jpeg", "audio/mp3": "audio/mpeg", "audio/x-wav": "audio/wav",
    "audio/m4a": "audio/mp4", "audio/x-m4a": "audio/mp4", "video/avi": "video/x-msvideo",
}  # fmt: skip
_BY_EXTENSION = {extension: media for media, (_, extension) in TYPES.items()} | {"jpeg": "image/jpeg"}


def canonical(media_type: str | None) -> str:
    """``media_type`` without parameters, lower case, under the name this table uses for it."""
    media = (media_type or "").split(";")[0].strip().lower()
    return ALIASES.get(media, media)


def kind(media_type: str | None) -> str:
    """image, video, audio, data, document; ``file`` for a type this table does not list."""
    media = canonical(media_type)
    return (
        TYPES[media][0]
        if media in TYPES
        else media.split("/")[0]
        if media.split("/")[0] in ("image", "video", "audio")
        else "file"
    )


def extension(media_type: str | None) -> str | None:
    found = TYPES.get(canonical(media_type))
    return found[1] if found else None


def of_name(name: str) -> str | None:
    """The media type a file name's (or URL's) extension names, if this table lists it."""
    stem = name.split("?")[0].rsplit("/", 1)[-1]
    return _BY_EXTENSION.get(stem.rpartition(".")[2].lower()) if "." in stem else None


def made_as(kind_name: str) -> tuple[str, str]:
    """The media type and extension a model of ``kind_name`` makes in the emulator (png, mp4, mp3)."""
    media = next(media for media, (k, _) in TYPES.items() if k == kind_name)
    return media, TYPES[media][1]
