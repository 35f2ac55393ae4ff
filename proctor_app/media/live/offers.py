"""What the relay makes of an SDP offer before answering it, and how it refuses one."""

from aiortc.sdp import SessionDescription

from proctor_app.media.live.passthrough import PASSTHROUGH_CODECS, offered_codec


class LiveRequestError(ValueError):
    """An offer the relay cannot serve; the message is meant for the client, `status` is the
    HTTP status that says why (RFC 9725: 422 for an offer that cannot be answered)."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def offer_media(sdp: str) -> list:
    try:
        media = SessionDescription.parse(sdp).media
    except Exception as exc:
        raise LiveRequestError("the body is not an SDP offer", 400) from exc
    if not sdp.startswith("v=0") or not media:
        raise LiveRequestError("the body is not an SDP offer", 400)
    return media


def codec_of(media) -> str:
    """The codec a publisher's section keeps (see passthrough.offered_codec)."""
    codec = offered_codec(media)
    if codec is None:
        names = " or ".join(PASSTHROUGH_CODECS.get(media.kind, ("nothing",)))
        raise LiveRequestError(f"the offer's {media.kind} section has no codec the relay passes on ({names})")
    return codec

