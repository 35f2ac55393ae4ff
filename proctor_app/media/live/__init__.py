"""Live video: publish -> relay -> view (WebRTC through the server, nothing decoded)."""
