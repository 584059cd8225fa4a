import datetime

from argobalsam.argo.v1 import job_pb2 as _job_pb2
from argobalsam.argo.v1 import site_pb2 as _site_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentReport(_message.Message):
    __slots__ = ("site", "status", "heartbeat")
    SITE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    site: str
    status: StatusBatch
    heartbeat: Heartbeat
    def __init__(self, site: _Optional[str] = ..., status: _Optional[_Union[StatusBatch, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class StatusBatch(_message.Message):
    __slots__ = ("updates",)
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    updates: _containers.RepeatedCompositeFieldContainer[StatusUpdate]
    def __init__(self, updates: _Optional[_Iterable[_Union[StatusUpdate, _Mapping]]] = ...) -> None: ...

class StatusUpdate(_message.Message):
    __slots__ = ("step_id", "attempt", "sequence", "state", "failed_phase", "reason", "scheduler_id", "exit_code", "time", "trace_context")
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
    STATE_FIELD_NUMBER: _ClassVar[int]
    FAILED_PHASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    attempt: int
    sequence: int
    state: _job_pb2.StepState
    failed_phase: _job_pb2.StepPhase
    reason: str
    scheduler_id: str
    exit_code: int
    time: _timestamp_pb2.Timestamp
    trace_context: _containers.ScalarMap[str, str]
    def __init__(self, step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., sequence: _Optional[int] = ..., state: _Optional[_Union[_job_pb2.StepState, str]] = ..., failed_phase: _Optional[_Union[_job_pb2.StepPhase, str]] = ..., reason: _Optional[str] = ..., scheduler_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trace_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("agent_version", "hostname", "scheduler", "plugins", "capacity", "time", "stopping")
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    agent_version: str
    hostname: str
    scheduler: str
    plugins: _containers.RepeatedCompositeFieldContainer[_site_pb2.PluginInfo]
    capacity: _site_pb2.SiteCapacity
    time: _timestamp_pb2.Timestamp
    stopping: bool
    def __init__(self, agent_version: _Optional[str] = ..., hostname: _Optional[str] = ..., scheduler: _Optional[str] = ..., plugins: _Optional[_Iterable[_Union[_site_pb2.PluginInfo, _Mapping]]] = ..., capacity: _Optional[_Union[_site_pb2.SiteCapacity, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stopping: _Optional[bool] = ...) -> None: ...
