"""Companion to the HTC course Getting Started with Deep Learning, lessons 3-6

Modules:

- `htc_dl.deploy`: Lesson 3, part 3: turn the classifier into files that run without Python and without PyTorch (on a server, a phone, a web page or an Intel camera board), check that every runtime gives the same answer, and see why "one button for all hardware" is harder than it sounds."""

__version__ = "0.1.0"
