"""Frames from the table's camera and their binarization into sketches.

frames.py     the records handed between stages (Frame, Sketch)
binarize.py   camera frame (or training image) -> R x R sketch, the one binarizer
source.py     what every frame source shares (read / health / close, latest wins)
camera.py     the IR camera through OpenCV, with its reader thread and watchdog
video.py      replay of a recording of the table
simulated.py  the seeded simulated pen camera of the demo and the tests
health.py     a source's health report, frame-rate meter and freeze detector
quality.py    precision / recall of stroke pixels against a ground truth
commands.py   `newsnow camera check|record`

See docs/capture.md.
"""
