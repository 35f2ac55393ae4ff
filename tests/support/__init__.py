"""Code the tests (and the benchmarks in bench/) share that is not a fixture: the app server as a
child process, polling, PostgreSQL schemas, signing in through the browser, database rows
(factories), recordings made with ffmpeg, review media and WebRTC peers."""
