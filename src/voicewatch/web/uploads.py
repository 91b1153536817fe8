"""Saving an uploaded voice note: streamed in chunks, never whole in memory, never left half.

The multipart parser has already spooled the part (Starlette: an anonymous
temporary file, gone when closed). Here it is copied in 1 MiB chunks to one
``.part`` file in the audio directory, checked (size, audio signature) as it
goes, and renamed into place only when complete; any error on the way (too
large, not audio, a full disk) deletes the ``.part`` file before it is raised.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import BinaryIO

from voicewatch.config import Settings
from voicewatch.pipeline.facade import MAX_AUDIO_BYTES, UploadError, sniff_audio

CHUNK = 1024 * 1024
_SNIFF = 64  # bytes enough for every signature sniff_audio knows


def save_upload(settings: Settings, source: BinaryIO) -> Path:
    """Copy an uploaded file into the audio directory; returns its final path.

    :raises UploadError: empty, larger than 25 MB, or not audio (nothing is left behind).
    """
    head = source.read(_SNIFF)
    if not head:
        raise UploadError("the audio file is empty")
    ext = sniff_audio(head)
    directory = Path(settings.audio_dir)
    directory.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    partial = directory / f".{name}.part"
    final = directory / f"{name}.{ext}"
    try:
        size = len(head)
        with partial.open("wb") as out:
            out.write(head)
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > MAX_AUDIO_BYTES:
                    raise UploadError(
                        f"the audio file is larger than {MAX_AUDIO_BYTES // (1024 * 1024)} MB"
                    )
                out.write(chunk)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final
