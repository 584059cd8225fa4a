import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_HELD: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]
    JOB_STATE_REJECTED: _ClassVar[JobState]

class StepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATE_UNSPECIFIED: _ClassVar[StepState]
    STEP_STATE_WAITING: _ClassVar[StepState]
    STEP_STATE_DISPATCHED: _ClassVar[StepState]
    STEP_STATE_ACCEPTED: _ClassVar[StepState]
    STEP_STATE_STAGING_IN: _ClassVar[StepState]
    STEP_STATE_PREPROCESSING: _ClassVar[StepState]
    STEP_STATE_SUBMITTED: _ClassVar[StepState]
    STEP_STATE_QUEUED: _ClassVar[StepState]
    STEP_STATE_RUNNING: _ClassVar[StepState]
    STEP_STATE_POSTPROCESSING: _ClassVar[StepState]
    STEP_STATE_STAGING_OUT: _ClassVar[StepState]
    STEP_STATE_SUCCEEDED: _ClassVar[StepState]
    STEP_STATE_HELD: _ClassVar[StepState]
    STEP_STATE_FAILED: _ClassVar[StepState]
    STEP_STATE_CANCELLED: _ClassVar[StepState]
    STEP_STATE_REJECTED: _ClassVar[StepState]

class StepPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_PHASE_UNSPECIFIED: _ClassVar[StepPhase]
    STEP_PHASE_DISPATCH: _ClassVar[StepPhase]
    STEP_PHASE_STAGE_IN: _ClassVar[StepPhase]
    STEP_PHASE_PREPROCESS: _ClassVar[StepPhase]
    STEP_PHASE_SUBMIT: _ClassVar[StepPhase]
    STEP_PHASE_RUN: _ClassVar[StepPhase]
    STEP_PHASE_POSTPROCESS: _ClassVar[StepPhase]
    STEP_PHASE_STAGE_OUT: _ClassVar[StepPhase]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_HELD: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
JOB_STATE_REJECTED: JobState
STEP_STATE_UNSPECIFIED: StepState
STEP_STATE_WAITING: StepState
STEP_STATE_DISPATCHED: StepState
STEP_STATE_ACCEPTED: StepState
STEP_STATE_STAGING_IN: StepState
STEP_STATE_PREPROCESSING: StepState
STEP_STATE_SUBMITTED: StepState
STEP_STATE_QUEUED: StepState
STEP_STATE_RUNNING: StepState
STEP_STATE_POSTPROCESSING: StepState
STEP_STATE_STAGING_OUT: StepState
STEP_STATE_SUCCEEDED: StepState
STEP_STATE_HELD: StepState
STEP_STATE_FAILED: StepState
STEP_STATE_CANCELLED: StepState
STEP_STATE_REJECTED: StepState
STEP_PHASE_UNSPECIFIED: StepPhase
STEP_PHASE_DISPATCH: StepPhase
STEP_PHASE_STAGE_IN: StepPhase
STEP_PHASE_PREPROCESS: StepPhase
STEP_PHASE_SUBMIT: StepPhase
STEP_PHASE_RUN: StepPhase
STEP_PHASE_POSTPROCESS: StepPhase
STEP_PHASE_STAGE_OUT: StepPhase

class Step(_message.Message):
    __slots__ = ("name", "index", "target_site", "executable", "executable_args", "input_files", "output_files", "nodes", "processes_per_node", "num_evts", "wall_minutes", "scheduler_args", "preprocess", "preprocess_args", "postprocess", "postprocess_args", "condor_job_file", "condor_dagman_file", "state", "state_reason", "failed_phase", "attempt", "scheduler_id", "exit_code", "dispatch_time", "start_time", "end_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TARGET_SITE_FIELD_NUMBER: _ClassVar[int]
    EXECUTABLE_FIELD_NUMBER: _ClassVar[int]
    EXECUTABLE_ARGS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FILES_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_PER_NODE_FIELD_NUMBER: _ClassVar[int]
    NUM_EVTS_FIELD_NUMBER: _ClassVar[int]
    WALL_MINUTES_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_ARGS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_ARGS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_ARGS_FIELD_NUMBER: _ClassVar[int]
    CONDOR_JOB_FILE_FIELD_NUMBER: _ClassVar[int]
    CONDOR_DAGMAN_FILE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    FAILED_PHASE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    index: int
    target_site: str
    executable: str
    executable_args: _containers.RepeatedScalarFieldContainer[str]
    input_files: _containers.RepeatedScalarFieldContainer[str]
    output_files: _containers.RepeatedScalarFieldContainer[str]
    nodes: int
    processes_per_node: int
    num_evts: int
    wall_minutes: int
    scheduler_args: _containers.RepeatedScalarFieldContainer[str]
    preprocess: str
    preprocess_args: _containers.RepeatedScalarFieldContainer[str]
    postprocess: str
    postprocess_args: _containers.RepeatedScalarFieldContainer[str]
    condor_job_file: str
    condor_dagman_file: str
    state: StepState
    state_reason: str
    failed_phase: StepPhase
    attempt: int
    scheduler_id: str
    exit_code: int
    dispatch_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., index: _Optional[int] = ..., target_site: _Optional[str] = ..., executable: _Optional[str] = ..., executable_args: _Optional[_Iterable[str]] = ..., input_files: _Optional[_Iterable[str]] = ..., output_files: _Optional[_Iterable[str]] = ..., nodes: _Optional[int] = ..., processes_per_node: _Optional[int] = ..., num_evts: _Optional[int] = ..., wall_minutes: _Optional[int] = ..., scheduler_args: _Optional[_Iterable[str]] = ..., preprocess: _Optional[str] = ..., preprocess_args: _Optional[_Iterable[str]] = ..., postprocess: _Optional[str] = ..., postprocess_args: _Optional[_Iterable[str]] = ..., condor_job_file: _Optional[str] = ..., condor_dagman_file: _Optional[str] = ..., state: _Optional[_Union[StepState, str]] = ..., state_reason: _Optional[str] = ..., failed_phase: _Optional[_Union[StepPhase, str]] = ..., attempt: _Optional[int] = ..., scheduler_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., dispatch_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("name", "owner", "email_address", "group_identifier", "input_url", "output_url", "preprocess", "preprocess_args", "postprocess", "postprocess_args", "steps", "notify_every_change", "state", "state_reason", "current_step", "create_time", "update_time", "end_time", "data_url")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    EMAIL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GROUP_IDENTIFIER_FIELD_NUMBER: _ClassVar[int]
    INPUT_URL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_URL_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_ARGS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_FIELD_NUMBER: _ClassVar[int]
    POSTPROCESS_ARGS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    NOTIFY_EVERY_CHANGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    CURRENT_STEP_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DATA_URL_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    email_address: str
    group_identifier: str
    input_url: str
    output_url: str
    preprocess: str
    preprocess_args: _containers.RepeatedScalarFieldContainer[str]
    postprocess: str
    postprocess_args: _containers.RepeatedScalarFieldContainer[str]
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    notify_every_change: bool
    state: JobState
    state_reason: str
    current_step: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    data_url: str
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., email_address: _Optional[str] = ..., group_identifier: _Optional[str] = ..., input_url: _Optional[str] = ..., output_url: _Optional[str] = ..., preprocess: _Optional[str] = ..., preprocess_args: _Optional[_Iterable[str]] = ..., postprocess: _Optional[str] = ..., postprocess_args: _Optional[_Iterable[str]] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ..., notify_every_change: _Optional[bool] = ..., state: _Optional[_Union[JobState, str]] = ..., state_reason: _Optional[str] = ..., current_step: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., data_url: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("name", "job", "event_id", "time", "job_state", "step_index", "previous_step_state", "step_state", "attempt", "site", "scheduler_id", "exit_code", "failed_phase", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    JOB_STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STEP_STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILED_PHASE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    job: str
    event_id: int
    time: _timestamp_pb2.Timestamp
    job_state: JobState
    step_index: int
    previous_step_state: StepState
    step_state: StepState
    attempt: int
    site: str
    scheduler_id: str
    exit_code: int
    failed_phase: StepPhase
    reason: str
    def __init__(self, name: _Optional[str] = ..., job: _Optional[str] = ..., event_id: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., job_state: _Optional[_Union[JobState, str]] = ..., step_index: _Optional[int] = ..., previous_step_state: _Optional[_Union[StepState, str]] = ..., step_state: _Optional[_Union[StepState, str]] = ..., attempt: _Optional[int] = ..., site: _Optional[str] = ..., scheduler_id: _Optional[str] = ..., exit_code: _Optional[int] = ..., failed_phase: _Optional[_Union[StepPhase, str]] = ..., reason: _Optional[str] = ...) -> None: ...
