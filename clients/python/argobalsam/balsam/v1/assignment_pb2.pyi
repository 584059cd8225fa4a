import datetime

from argobalsam.argo.v1 import job_pb2 as _job_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AssignmentEnvelope(_message.Message):
    __slots__ = ("step_id", "attempt", "sequence", "site", "time", "trace_context", "assign", "cancel", "hold", "release")
    class TraceContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ASSIGN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    attempt: int
    sequence: int
    site: str
    time: _timestamp_pb2.Timestamp
    trace_context: _containers.ScalarMap[str, str]
    assign: Assign
    cancel: Cancel
    hold: Hold
    release: Release
    def __init__(self, step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., sequence: _Optional[int] = ..., site: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ..., assign: _Optional[_Union[Assign, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., hold: _Optional[_Union[Hold, _Mapping]] = ..., release: _Optional[_Union[Release, _Mapping]] = ...) -> None: ...

class AssignmentBatch(_message.Message):
    __slots__ = ("envelopes",)
    ENVELOPES_FIELD_NUMBER: _ClassVar[int]
    envelopes: _containers.RepeatedCompositeFieldContainer[AssignmentEnvelope]
    def __init__(self, envelopes: _Optional[_Iterable[_Union[AssignmentEnvelope, _Mapping]]] = ...) -> None: ...

class InputFile(_message.Message):
    __slots__ = ("name", "source_url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    source_url: str
    def __init__(self, name: _Optional[str] = ..., source_url: _Optional[str] = ...) -> None: ...

class OutputFile(_message.Message):
    __slots__ = ("name", "destination_urls")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_URLS_FIELD_NUMBER: _ClassVar[int]
    name: str
    destination_urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., destination_urls: _Optional[_Iterable[str]] = ...) -> None: ...

class Assign(_message.Message):
    __slots__ = ("step", "job_id", "owner", "inputs", "outputs", "step_count")
    STEP_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    STEP_COUNT_FIELD_NUMBER: _ClassVar[int]
    step: _job_pb2.Step
    job_id: str
    owner: str
    inputs: _containers.RepeatedCompositeFieldContainer[InputFile]
    outputs: _containers.RepeatedCompositeFieldContainer[OutputFile]
    step_count: int
    def __init__(self, step: _Optional[_Union[_job_pb2.Step, _Mapping]] = ..., job_id: _Optional[str] = ..., owner: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[InputFile, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[OutputFile, _Mapping]]] = ..., step_count: _Optional[int] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class Hold(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class Release(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
