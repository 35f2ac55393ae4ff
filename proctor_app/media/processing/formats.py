"""Which demuxer reads an uploaded recording: the one its declared type names, never ffmpeg's
guess. Uploaded bytes are the candidate's: guessed, an HLS playlist or an ffconcat listing would
make ffmpeg open other files or URLs. So every input that reads chunks pins its format and takes
only the protocols our own listings need (file, concatf)."""

from proctor_app.media.processing.timeline import FinalizeError

# Container (the type before ";") -> ffmpeg demuxer. WebM is Matroska; "mov" reads MP4.
DEMUXERS = {
    "video/webm": "matroska",
    "audio/webm": "matroska",
    "video/x-matroska": "matroska",
    "audio/x-matroska": "matroska",
    "video/matroska": "matroska",
    "audio/matroska": "matroska",
    "video/mp4": "mov",
    "audio/mp4": "mov",
}
# What an ffmpeg input that reads chunks may open: files, through our concatf: listings.
PROTOCOLS = "file,concatf"


class UnknownFormat(FinalizeError):
    """The declared type names no container we read."""


def demuxer_for(mime: str) -> str:
    """The ffmpeg demuxer for a recording's declared type (e.g. `video/webm;codecs=vp8,opus`)."""
    container = (mime or "").split(";", 1)[0].strip().lower()
    try:
        return DEMUXERS[container]
    except KeyError:
        raise UnknownFormat(f"no demuxer for the declared type {mime!r}") from None


def pinned_input_options(mime: str) -> dict[str, str]:
    """ffmpeg-python input options that read chunks of this type and nothing else."""
    return {"f": demuxer_for(mime), "protocol_whitelist": PROTOCOLS}
