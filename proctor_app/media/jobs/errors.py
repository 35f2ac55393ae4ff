"""How a job handler says a try did not succeed, other than by failing."""


class PermanentError(Exception):
    """Trying again cannot help: the job fails now, with this message as its reason."""


class Defer(Exception):
    """Not yet: run the job again after `seconds`, without counting a try."""

    def __init__(self, seconds: float, why: str = ""):
        super().__init__(why or f"deferred {seconds} s")
        self.seconds = seconds
