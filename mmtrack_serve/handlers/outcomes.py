"""What became of a request between the handler's steps: tracked, or failed
(and why). Kept apart from the handler module because TorchServe requires
that module to define exactly one class."""
from dataclasses import dataclass
from typing import Any, Optional

from mmtrack_serve.handlers.sequences import SequenceRequest


@dataclass
class Failed:
    """A request that failed at some step, and why."""
    idx: int
    error: BaseException
    what: str                                   # 'request' or 'chunk', for the log
    sequence: Optional[SequenceRequest] = None


@dataclass
class Tracked:
    """A request tracked: its results (``frames`` empty for an mp4 answer) and,
    for mp4, the annotated video."""
    request: Any                                # VideoRequest or ChunkRequest
    results: dict
    num_frames: int
    first_frame: int = 0
    video: Optional[bytes] = None
    restart_reason: Optional[str] = None
    chunk_index: int = 0
    detector_passes: int = 0                    # the model's detector passes it took
    # a chunk's answer, made in ``inference`` so that the state store keeps it
    body: Any = None
    content_type: Optional[str] = None
    replayed: bool = False                      # answered again from the stored answer
    state: Optional[str] = None                 # protocol.STATE_SAVED / STATE_MEMORY
    state_note: Optional[str] = None            # why STATE_MEMORY
