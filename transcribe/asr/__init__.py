"""Speech recognition: Whisper, and what turns its words into a draft.

Everything that depends on the model, its options or the shape of its output lives
here, so a stage asks for a draft and does not care how it was decoded, and a change
of engine, batching or post-processing stays inside this wing. This file imports
nothing: the capped decoding child (:mod:`transcribe.asr.decode`) must start without
numpy or faster-whisper.
"""

from __future__ import annotations
