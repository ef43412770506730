"""The HTTP protocol between a client and the handler, defined once: where
the video and the options go, the output types, and the streaming headers.

TorchServe 0.12 drops query parameters on /predictions, so options travel as
headers or multipart form fields. The sequence header names are TorchServe's
defaults; an operator may rename them (``TS_REQUEST_SEQUENCE_ID``...), and the
handler then reads the names in force from its context.
"""
from typing import NamedTuple

OUTPUT_TYPES = {'mp4': 'video/mp4', 'json': 'application/json', 'mot': 'text/plain'}
DEFAULT_OUTPUT = 'mp4'
# a chunk of a stream answers JSON unless asked otherwise
DEFAULT_CHUNK_OUTPUT = 'json'
# form fields and body keys that may carry the video, in order of preference
BODY_KEYS = ('data', 'body', 'file', 'video')
# the form field a multipart request carries its video in
VIDEO_FIELD = 'data'
# a raw body's content type: without it TorchServe's frontend mangles the bytes
BINARY = 'application/octet-stream'
# the multipart field with a public-detection model's boxes (MOTChallenge det.txt)
DETECTIONS_KEY = 'detections'
# the option that starts a sequence whose id the server chooses
STREAM_KEY = 'stream'


class SequenceHeaders(NamedTuple):
    id: str
    start: str
    end: str


SEQUENCE_HEADERS = SequenceHeaders('ts_request_sequence_id', 'ts_request_sequence_start',
                                   'ts_request_sequence_end')
HEADER_ID, HEADER_START, HEADER_END = SEQUENCE_HEADERS

# what a chunk's answer says of it, besides its body; a request may send
# CHUNK_HEADER too (its index: the server refuses it out of order, and answers
# a retried one from its stored answer)
CHUNK_HEADER = 'x-sequence-chunk'
CHUNK_OPTION = 'sequence_chunk'      # find_option's name for CHUNK_HEADER
FIRST_FRAME_HEADER = 'x-sequence-first-frame'
RESTARTED_HEADER = 'x-sequence-restarted'
# where the sequence's state is after this chunk: STATE_SAVED (the state
# store: any worker may take the next chunk), STATE_MEMORY (this worker only)
STATE_HEADER = 'x-sequence-state'
STATE_SAVED, STATE_MEMORY = 'saved', 'memory'
# "true" on an answer returned again from the store to a retried chunk
REPLAYED_HEADER = 'x-sequence-replayed'
# the error types (the JSON body's "type") after which a client sends the same
# chunk again, after Retry-After: nothing was tracked, and it may go through later
RETRY_ERRORS = ('StoreBusy', 'StoreUnavailable', 'SequencesFull')
