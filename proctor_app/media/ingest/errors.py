"""The one way ingest refuses an upload."""


class IngestError(Exception):
    """A refused upload: the HTTP status, a stable code for the client, and a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

