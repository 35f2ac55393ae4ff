"""Running ffmpeg: an ffmpeg-python graph as an async subprocess, below the web server's priority,
with progress from `-progress` and the tail of stderr in the error."""

import asyncio
import subprocess
from collections.abc import Callable

import ffmpeg
import imageio_ffmpeg

from proctor_app.platform import background_child

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
# ffmpeg runs below the web server's priority: submits and page loads come first.
FFMPEG_NICE = 10

ProgressFn = Callable[[float], None]


class FfmpegError(RuntimeError):
    pass



async def run_ffmpeg(stream_spec, duration_s: float, on_progress: ProgressFn | None = None) -> None:
    """Run an ffmpeg-python graph; progress (0..1) from `-progress`, stderr tail on failure."""
    args = ffmpeg.compile(stream_spec.global_args("-nostdin", "-hide_banner", "-loglevel", "error",
                                                  "-progress", "pipe:1", "-nostats")
                          .overwrite_output(), cmd=FFMPEG)
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE,
                                                # dies with the worker (Linux), so a crashed
                                                # worker leaves no ffmpeg writing into the
                                                # folder the next try works in
                                                **background_child(FFMPEG_NICE))
    stderr = asyncio.create_task(proc.stderr.read())
    try:
        async for line in proc.stdout:
            key, _, value = line.decode(errors="replace").strip().partition("=")
            # out_time_ms is microseconds too (an old ffmpeg naming slip).
            if key == "out_time_us" and value.isdigit() and on_progress and duration_s > 0:
                on_progress(min(1.0, int(value) / 1e6 / duration_s))
        code = await proc.wait()
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    finally:
        errors = (await stderr).decode(errors="replace")
    if code != 0:
        raise FfmpegError(f"ffmpeg exited with {code}: {errors.strip()[-1500:]}")


def pipe_ffmpeg(args: list[str], data: bytes) -> bytes:
    """ffmpeg with `args` (between the executable and nothing else: input pipe:0, output
    pipe:1), fed `data`; its output. Blocking: for worker threads, on small inputs."""
    done = subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", *args], input=data,
                          capture_output=True, **background_child(FFMPEG_NICE))
    if done.returncode != 0:
        errors = done.stderr.decode(errors="replace").strip()[-1500:]
        raise FfmpegError(f"ffmpeg exited with {done.returncode}: {errors}")
    return done.stdout
