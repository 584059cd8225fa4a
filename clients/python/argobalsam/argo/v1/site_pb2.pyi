import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PluginInfo(_message.Message):
    __slots__ = ("name", "version", "hooks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    hooks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., hooks: _Optional[_Iterable[str]] = ...) -> None: ...

class SiteCapacity(_message.Message):
    __slots__ = ("max_queued_steps", "max_nodes", "max_wall_minutes", "active_steps")
    MAX_QUEUED_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_NODES_FIELD_NUMBER: _ClassVar[int]
    MAX_WALL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_STEPS_FIELD_NUMBER: _ClassVar[int]
    max_queued_steps: int
    max_nodes: int
    max_wall_minutes: int
    active_steps: int
    def __init__(self, max_queued_steps: _Optional[int] = ..., max_nodes: _Optional[int] = ..., max_wall_minutes: _Optional[int] = ..., active_steps: _Optional[int] = ...) -> None: ...

class Site(_message.Message):
    __slots__ = ("name", "online", "last_heartbeat_time", "agent_version", "scheduler", "plugins", "capacity", "hostname")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    online: bool
    last_heartbeat_time: _timestamp_pb2.Timestamp
    agent_version: str
    scheduler: str
    plugins: _containers.RepeatedCompositeFieldContainer[PluginInfo]
    capacity: SiteCapacity
    hostname: str
    def __init__(self, name: _Optional[str] = ..., online: _Optional[bool] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agent_version: _Optional[str] = ..., scheduler: _Optional[str] = ..., plugins: _Optional[_Iterable[_Union[PluginInfo, _Mapping]]] = ..., capacity: _Optional[_Union[SiteCapacity, _Mapping]] = ..., hostname: _Optional[str] = ...) -> None: ...
