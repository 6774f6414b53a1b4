from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Consistency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONSISTENCY_LINEARIZABLE: _ClassVar[Consistency]
    CONSISTENCY_STALE: _ClassVar[Consistency]

class WatchKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_KIND_UNSPECIFIED: _ClassVar[WatchKind]
    WATCH_GROUP: _ClassVar[WatchKind]
    WATCH_ELECTION: _ClassVar[WatchKind]
    WATCH_LOCK: _ClassVar[WatchKind]
    WATCH_LIST: _ClassVar[WatchKind]

class ChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_TYPE_UNSPECIFIED: _ClassVar[ChangeType]
    CHANGE_CREATED: _ClassVar[ChangeType]
    CHANGE_DELETED: _ClassVar[ChangeType]
    CHANGE_JOINED: _ClassVar[ChangeType]
    CHANGE_LEFT: _ClassVar[ChangeType]
    CHANGE_UPDATED: _ClassVar[ChangeType]
    CHANGE_ELECTED: _ClassVar[ChangeType]
    CHANGE_RESIGNED: _ClassVar[ChangeType]
    CHANGE_GRANTED: _ClassVar[ChangeType]
    CHANGE_FREED: _ClassVar[ChangeType]
    CHANGE_INSERTED: _ClassVar[ChangeType]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNKNOWN: _ClassVar[Role]
    ROLE_FOLLOWER: _ClassVar[Role]
    ROLE_CANDIDATE: _ClassVar[Role]
    ROLE_LEADER: _ClassVar[Role]
CONSISTENCY_LINEARIZABLE: Consistency
CONSISTENCY_STALE: Consistency
WATCH_KIND_UNSPECIFIED: WatchKind
WATCH_GROUP: WatchKind
WATCH_ELECTION: WatchKind
WATCH_LOCK: WatchKind
WATCH_LIST: WatchKind
CHANGE_TYPE_UNSPECIFIED: ChangeType
CHANGE_CREATED: ChangeType
CHANGE_DELETED: ChangeType
CHANGE_JOINED: ChangeType
CHANGE_LEFT: ChangeType
CHANGE_UPDATED: ChangeType
CHANGE_ELECTED: ChangeType
CHANGE_RESIGNED: ChangeType
CHANGE_GRANTED: ChangeType
CHANGE_FREED: ChangeType
CHANGE_INSERTED: ChangeType
ROLE_UNKNOWN: Role
ROLE_FOLLOWER: Role
ROLE_CANDIDATE: Role
ROLE_LEADER: Role

class RequestId(_message.Message):
    __slots__ = ("session_id", "seq", "acked", "answered")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ACKED_FIELD_NUMBER: _ClassVar[int]
    ANSWERED_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    seq: int
    acked: int
    answered: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, session_id: _Optional[int] = ..., seq: _Optional[int] = ..., acked: _Optional[int] = ..., answered: _Optional[_Iterable[int]] = ...) -> None: ...

class ResponseHeader(_message.Message):
    __slots__ = ("node_id", "term", "leader_id", "leader_address", "applied_index")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    term: int
    leader_id: str
    leader_address: str
    applied_index: int
    def __init__(self, node_id: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[str] = ..., leader_address: _Optional[str] = ..., applied_index: _Optional[int] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[StreamCall]
    def __init__(self, calls: _Optional[_Iterable[_Union[StreamCall, _Mapping]]] = ...) -> None: ...

class StreamCall(_message.Message):
    __slots__ = ("call_id", "timeout_ms", "open", "keep_alive", "close", "acquire", "release", "abandon", "extend", "validate", "set_up", "insert", "contains", "members", "size", "tear_down", "cancel", "acquire_many", "semaphore_acquire", "semaphore_release", "semaphore_abandon", "semaphore_extend")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    KEEP_ALIVE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    ABANDON_FIELD_NUMBER: _ClassVar[int]
    EXTEND_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_FIELD_NUMBER: _ClassVar[int]
    SET_UP_FIELD_NUMBER: _ClassVar[int]
    INSERT_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TEAR_DOWN_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_MANY_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_RELEASE_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_ABANDON_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_EXTEND_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    timeout_ms: int
    open: OpenSessionRequest
    keep_alive: KeepAliveRequest
    close: CloseSessionRequest
    acquire: AcquireRequest
    release: ReleaseRequest
    abandon: AbandonRequest
    extend: ExtendRequest
    validate: ValidateRequest
    set_up: SetUpListRequest
    insert: InsertRequest
    contains: ContainsRequest
    members: MembersRequest
    size: SizeRequest
    tear_down: TearDownListRequest
    cancel: CancelCall
    acquire_many: AcquireManyRequest
    semaphore_acquire: AcquirePermitRequest
    semaphore_release: ReleasePermitRequest
    semaphore_abandon: AbandonPermitRequest
    semaphore_extend: ExtendPermitRequest
    def __init__(self, call_id: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., open: _Optional[_Union[OpenSessionRequest, _Mapping]] = ..., keep_alive: _Optional[_Union[KeepAliveRequest, _Mapping]] = ..., close: _Optional[_Union[CloseSessionRequest, _Mapping]] = ..., acquire: _Optional[_Union[AcquireRequest, _Mapping]] = ..., release: _Optional[_Union[ReleaseRequest, _Mapping]] = ..., abandon: _Optional[_Union[AbandonRequest, _Mapping]] = ..., extend: _Optional[_Union[ExtendRequest, _Mapping]] = ..., validate: _Optional[_Union[ValidateRequest, _Mapping]] = ..., set_up: _Optional[_Union[SetUpListRequest, _Mapping]] = ..., insert: _Optional[_Union[InsertRequest, _Mapping]] = ..., contains: _Optional[_Union[ContainsRequest, _Mapping]] = ..., members: _Optional[_Union[MembersRequest, _Mapping]] = ..., size: _Optional[_Union[SizeRequest, _Mapping]] = ..., tear_down: _Optional[_Union[TearDownListRequest, _Mapping]] = ..., cancel: _Optional[_Union[CancelCall, _Mapping]] = ..., acquire_many: _Optional[_Union[AcquireManyRequest, _Mapping]] = ..., semaphore_acquire: _Optional[_Union[AcquirePermitRequest, _Mapping]] = ..., semaphore_release: _Optional[_Union[ReleasePermitRequest, _Mapping]] = ..., semaphore_abandon: _Optional[_Union[AbandonPermitRequest, _Mapping]] = ..., semaphore_extend: _Optional[_Union[ExtendPermitRequest, _Mapping]] = ...) -> None: ...

class CancelCall(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("answers",)
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[StreamAnswer]
    def __init__(self, answers: _Optional[_Iterable[_Union[StreamAnswer, _Mapping]]] = ...) -> None: ...

class StreamAnswer(_message.Message):
    __slots__ = ("call_id", "open", "keep_alive", "close", "acquire", "release", "abandon", "extend", "validate", "set_up", "insert", "contains", "members", "size", "tear_down", "error", "acquire_many", "semaphore_acquire", "semaphore_release", "semaphore_abandon", "semaphore_extend", "renewed")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    KEEP_ALIVE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    ABANDON_FIELD_NUMBER: _ClassVar[int]
    EXTEND_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_FIELD_NUMBER: _ClassVar[int]
    SET_UP_FIELD_NUMBER: _ClassVar[int]
    INSERT_FIELD_NUMBER: _ClassVar[int]
    CONTAINS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TEAR_DOWN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_MANY_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_RELEASE_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_ABANDON_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_EXTEND_FIELD_NUMBER: _ClassVar[int]
    RENEWED_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    open: OpenSessionResponse
    keep_alive: KeepAliveResponse
    close: CloseSessionResponse
    acquire: AcquireResponse
    release: ReleaseResponse
    abandon: AbandonResponse
    extend: ExtendResponse
    validate: ValidateResponse
    set_up: SetUpListResponse
    insert: InsertResponse
    contains: ContainsResponse
    members: MembersResponse
    size: SizeResponse
    tear_down: TearDownListResponse
    error: StreamError
    acquire_many: AcquireManyResponse
    semaphore_acquire: AcquireResponse
    semaphore_release: ReleaseResponse
    semaphore_abandon: AbandonResponse
    semaphore_extend: ExtendResponse
    renewed: bool
    def __init__(self, call_id: _Optional[int] = ..., open: _Optional[_Union[OpenSessionResponse, _Mapping]] = ..., keep_alive: _Optional[_Union[KeepAliveResponse, _Mapping]] = ..., close: _Optional[_Union[CloseSessionResponse, _Mapping]] = ..., acquire: _Optional[_Union[AcquireResponse, _Mapping]] = ..., release: _Optional[_Union[ReleaseResponse, _Mapping]] = ..., abandon: _Optional[_Union[AbandonResponse, _Mapping]] = ..., extend: _Optional[_Union[ExtendResponse, _Mapping]] = ..., validate: _Optional[_Union[ValidateResponse, _Mapping]] = ..., set_up: _Optional[_Union[SetUpListResponse, _Mapping]] = ..., insert: _Optional[_Union[InsertResponse, _Mapping]] = ..., contains: _Optional[_Union[ContainsResponse, _Mapping]] = ..., members: _Optional[_Union[MembersResponse, _Mapping]] = ..., size: _Optional[_Union[SizeResponse, _Mapping]] = ..., tear_down: _Optional[_Union[TearDownListResponse, _Mapping]] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ..., acquire_many: _Optional[_Union[AcquireManyResponse, _Mapping]] = ..., semaphore_acquire: _Optional[_Union[AcquireResponse, _Mapping]] = ..., semaphore_release: _Optional[_Union[ReleaseResponse, _Mapping]] = ..., semaphore_abandon: _Optional[_Union[AbandonResponse, _Mapping]] = ..., semaphore_extend: _Optional[_Union[ExtendResponse, _Mapping]] = ..., renewed: _Optional[bool] = ...) -> None: ...

class StreamError(_message.Message):
    __slots__ = ("code", "message", "reason", "leader_address")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    reason: str
    leader_address: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ..., leader_address: _Optional[str] = ...) -> None: ...

class OpenSessionRequest(_message.Message):
    __slots__ = ("ttl_ms", "client_name", "client_host", "client_pid")
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PID_FIELD_NUMBER: _ClassVar[int]
    ttl_ms: int
    client_name: str
    client_host: str
    client_pid: int
    def __init__(self, ttl_ms: _Optional[int] = ..., client_name: _Optional[str] = ..., client_host: _Optional[str] = ..., client_pid: _Optional[int] = ...) -> None: ...

class OpenSessionResponse(_message.Message):
    __slots__ = ("header", "session_id", "ttl_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    session_id: int
    ttl_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., session_id: _Optional[int] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class KeepAliveRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    def __init__(self, session_id: _Optional[int] = ...) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ("header", "ttl_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    ttl_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    def __init__(self, session_id: _Optional[int] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("after_session_id", "limit", "consistency")
    AFTER_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    after_session_id: int
    limit: int
    consistency: Consistency
    def __init__(self, after_session_id: _Optional[int] = ..., limit: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "ttl_ms", "client_name", "client_host", "client_pid", "age_ms", "held", "waiting", "permits", "permit_waits")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PID_FIELD_NUMBER: _ClassVar[int]
    AGE_MS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PERMITS_FIELD_NUMBER: _ClassVar[int]
    PERMIT_WAITS_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    ttl_ms: int
    client_name: str
    client_host: str
    client_pid: int
    age_ms: int
    held: _containers.RepeatedScalarFieldContainer[str]
    waiting: _containers.RepeatedScalarFieldContainer[str]
    permits: _containers.RepeatedScalarFieldContainer[str]
    permit_waits: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[int] = ..., ttl_ms: _Optional[int] = ..., client_name: _Optional[str] = ..., client_host: _Optional[str] = ..., client_pid: _Optional[int] = ..., age_ms: _Optional[int] = ..., held: _Optional[_Iterable[str]] = ..., waiting: _Optional[_Iterable[str]] = ..., permits: _Optional[_Iterable[str]] = ..., permit_waits: _Optional[_Iterable[str]] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("header", "sessions")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    sessions: _containers.RepeatedCompositeFieldContainer[SessionInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., sessions: _Optional[_Iterable[_Union[SessionInfo, _Mapping]]] = ...) -> None: ...

class AcquireRequest(_message.Message):
    __slots__ = ("request", "name", "max_hold_ms", "wait_ms", "description")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_HOLD_MS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    max_hold_ms: int
    wait_ms: int
    description: str
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., max_hold_ms: _Optional[int] = ..., wait_ms: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class AcquireManyRequest(_message.Message):
    __slots__ = ("request", "names", "max_hold_ms", "wait_ms", "description")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_HOLD_MS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    names: _containers.RepeatedScalarFieldContainer[str]
    max_hold_ms: int
    wait_ms: int
    description: str
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., names: _Optional[_Iterable[str]] = ..., max_hold_ms: _Optional[int] = ..., wait_ms: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class LockGrant(_message.Message):
    __slots__ = ("name", "token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    token: int
    def __init__(self, name: _Optional[str] = ..., token: _Optional[int] = ...) -> None: ...

class AcquireManyResponse(_message.Message):
    __slots__ = ("header", "acquired", "grants", "expires_in_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    acquired: bool
    grants: _containers.RepeatedCompositeFieldContainer[LockGrant]
    expires_in_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., acquired: _Optional[bool] = ..., grants: _Optional[_Iterable[_Union[LockGrant, _Mapping]]] = ..., expires_in_ms: _Optional[int] = ...) -> None: ...

class AcquireResponse(_message.Message):
    __slots__ = ("header", "acquired", "token", "expires_in_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    acquired: bool
    token: int
    expires_in_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., acquired: _Optional[bool] = ..., token: _Optional[int] = ..., expires_in_ms: _Optional[int] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("request", "name", "token")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    token: int
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., token: _Optional[int] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class AbandonRequest(_message.Message):
    __slots__ = ("request", "name", "acquire_seq")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_SEQ_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    acquire_seq: int
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., acquire_seq: _Optional[int] = ...) -> None: ...

class AbandonResponse(_message.Message):
    __slots__ = ("header", "removed", "released")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    removed: bool
    released: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., removed: _Optional[bool] = ..., released: _Optional[bool] = ...) -> None: ...

class ExtendRequest(_message.Message):
    __slots__ = ("request", "name", "token", "max_hold_ms")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    MAX_HOLD_MS_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    token: int
    max_hold_ms: int
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., token: _Optional[int] = ..., max_hold_ms: _Optional[int] = ...) -> None: ...

class ExtendResponse(_message.Message):
    __slots__ = ("header", "expires_in_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    expires_in_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., expires_in_ms: _Optional[int] = ...) -> None: ...

class ValidateRequest(_message.Message):
    __slots__ = ("name", "token", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    token: int
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., token: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ValidateResponse(_message.Message):
    __slots__ = ("header", "valid", "current_token")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    VALID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    valid: bool
    current_token: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., valid: _Optional[bool] = ..., current_token: _Optional[int] = ...) -> None: ...

class DescribeLockRequest(_message.Message):
    __slots__ = ("name", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class LockHolder(_message.Message):
    __slots__ = ("session_id", "token", "held_for_ms", "expires_in_ms", "client_name", "client_host", "client_pid", "description", "seq")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    HELD_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    token: int
    held_for_ms: int
    expires_in_ms: int
    client_name: str
    client_host: str
    client_pid: int
    description: str
    seq: int
    def __init__(self, session_id: _Optional[int] = ..., token: _Optional[int] = ..., held_for_ms: _Optional[int] = ..., expires_in_ms: _Optional[int] = ..., client_name: _Optional[str] = ..., client_host: _Optional[str] = ..., client_pid: _Optional[int] = ..., description: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class LockWaiter(_message.Message):
    __slots__ = ("session_id", "seq", "waited_for_ms", "wait_remaining_ms", "client_name", "client_host", "client_pid", "description", "names")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    WAITED_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    WAIT_REMAINING_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: int
    seq: int
    waited_for_ms: int
    wait_remaining_ms: int
    client_name: str
    client_host: str
    client_pid: int
    description: str
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[int] = ..., seq: _Optional[int] = ..., waited_for_ms: _Optional[int] = ..., wait_remaining_ms: _Optional[int] = ..., client_name: _Optional[str] = ..., client_host: _Optional[str] = ..., client_pid: _Optional[int] = ..., description: _Optional[str] = ..., names: _Optional[_Iterable[str]] = ...) -> None: ...

class LockInfo(_message.Message):
    __slots__ = ("name", "holder", "waiters")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    holder: LockHolder
    waiters: _containers.RepeatedCompositeFieldContainer[LockWaiter]
    def __init__(self, name: _Optional[str] = ..., holder: _Optional[_Union[LockHolder, _Mapping]] = ..., waiters: _Optional[_Iterable[_Union[LockWaiter, _Mapping]]] = ...) -> None: ...

class DescribeLockResponse(_message.Message):
    __slots__ = ("header", "lock")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    lock: LockInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., lock: _Optional[_Union[LockInfo, _Mapping]] = ...) -> None: ...

class ListLocksRequest(_message.Message):
    __slots__ = ("prefix", "after_name", "limit", "consistency")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    AFTER_NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    after_name: str
    limit: int
    consistency: Consistency
    def __init__(self, prefix: _Optional[str] = ..., after_name: _Optional[str] = ..., limit: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ListLocksResponse(_message.Message):
    __slots__ = ("header", "locks")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LOCKS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    locks: _containers.RepeatedCompositeFieldContainer[LockInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., locks: _Optional[_Iterable[_Union[LockInfo, _Mapping]]] = ...) -> None: ...

class AcquirePermitRequest(_message.Message):
    __slots__ = ("request", "name", "limit", "max_hold_ms", "wait_ms", "description")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_HOLD_MS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    limit: int
    max_hold_ms: int
    wait_ms: int
    description: str
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., limit: _Optional[int] = ..., max_hold_ms: _Optional[int] = ..., wait_ms: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class ReleasePermitRequest(_message.Message):
    __slots__ = ("request", "name", "token")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    token: int
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., token: _Optional[int] = ...) -> None: ...

class AbandonPermitRequest(_message.Message):
    __slots__ = ("request", "name", "acquire_seq")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_SEQ_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    acquire_seq: int
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., acquire_seq: _Optional[int] = ...) -> None: ...

class ExtendPermitRequest(_message.Message):
    __slots__ = ("request", "name", "token", "max_hold_ms")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    MAX_HOLD_MS_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    token: int
    max_hold_ms: int
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., token: _Optional[int] = ..., max_hold_ms: _Optional[int] = ...) -> None: ...

class DescribeSemaphoreRequest(_message.Message):
    __slots__ = ("name", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class SemaphoreInfo(_message.Message):
    __slots__ = ("name", "limit", "holders", "waiters")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    holders: _containers.RepeatedCompositeFieldContainer[LockHolder]
    waiters: _containers.RepeatedCompositeFieldContainer[LockWaiter]
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ..., holders: _Optional[_Iterable[_Union[LockHolder, _Mapping]]] = ..., waiters: _Optional[_Iterable[_Union[LockWaiter, _Mapping]]] = ...) -> None: ...

class DescribeSemaphoreResponse(_message.Message):
    __slots__ = ("header", "semaphore")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORE_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    semaphore: SemaphoreInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., semaphore: _Optional[_Union[SemaphoreInfo, _Mapping]] = ...) -> None: ...

class ListSemaphoresRequest(_message.Message):
    __slots__ = ("prefix", "after_name", "limit", "consistency")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    AFTER_NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    after_name: str
    limit: int
    consistency: Consistency
    def __init__(self, prefix: _Optional[str] = ..., after_name: _Optional[str] = ..., limit: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ListSemaphoresResponse(_message.Message):
    __slots__ = ("header", "semaphores")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORES_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    semaphores: _containers.RepeatedCompositeFieldContainer[SemaphoreInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., semaphores: _Optional[_Iterable[_Union[SemaphoreInfo, _Mapping]]] = ...) -> None: ...

class SetUpListRequest(_message.Message):
    __slots__ = ("request", "name", "ttl_ms")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    ttl_ms: int
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class SetUpListResponse(_message.Message):
    __slots__ = ("header", "created", "expires_in_ms")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    created: bool
    expires_in_ms: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., created: _Optional[bool] = ..., expires_in_ms: _Optional[int] = ...) -> None: ...

class InsertRequest(_message.Message):
    __slots__ = ("request", "name", "members")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    members: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., members: _Optional[_Iterable[bytes]] = ...) -> None: ...

class InsertResult(_message.Message):
    __slots__ = ("added", "id")
    ADDED_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    added: bool
    id: int
    def __init__(self, added: _Optional[bool] = ..., id: _Optional[int] = ...) -> None: ...

class InsertResponse(_message.Message):
    __slots__ = ("header", "results")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    results: _containers.RepeatedCompositeFieldContainer[InsertResult]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., results: _Optional[_Iterable[_Union[InsertResult, _Mapping]]] = ...) -> None: ...

class ContainsRequest(_message.Message):
    __slots__ = ("name", "members", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    members: _containers.RepeatedScalarFieldContainer[bytes]
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., members: _Optional[_Iterable[bytes]] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ContainsResponse(_message.Message):
    __slots__ = ("header", "ids")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., ids: _Optional[_Iterable[int]] = ...) -> None: ...

class MembersRequest(_message.Message):
    __slots__ = ("name", "after_id", "limit", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    after_id: int
    limit: int
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., after_id: _Optional[int] = ..., limit: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ListMember(_message.Message):
    __slots__ = ("id", "member")
    ID_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    id: int
    member: bytes
    def __init__(self, id: _Optional[int] = ..., member: _Optional[bytes] = ...) -> None: ...

class MembersResponse(_message.Message):
    __slots__ = ("header", "members", "size")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[ListMember]
    size: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[ListMember, _Mapping]]] = ..., size: _Optional[int] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("name", "ids", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    ids: _containers.RepeatedScalarFieldContainer[int]
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., ids: _Optional[_Iterable[int]] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("header", "members")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[bytes]] = ...) -> None: ...

class SizeRequest(_message.Message):
    __slots__ = ("name", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ListInfo(_message.Message):
    __slots__ = ("name", "size", "ttl_ms", "expires_in_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    ttl_ms: int
    expires_in_ms: int
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., ttl_ms: _Optional[int] = ..., expires_in_ms: _Optional[int] = ...) -> None: ...

class SizeResponse(_message.Message):
    __slots__ = ("header", "list")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    list: ListInfo
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., list: _Optional[_Union[ListInfo, _Mapping]] = ...) -> None: ...

class TearDownListRequest(_message.Message):
    __slots__ = ("request", "name")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class TearDownListResponse(_message.Message):
    __slots__ = ("header", "removed")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    removed: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., removed: _Optional[bool] = ...) -> None: ...

class ListListsRequest(_message.Message):
    __slots__ = ("prefix", "after_name", "limit", "consistency")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    AFTER_NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    after_name: str
    limit: int
    consistency: Consistency
    def __init__(self, prefix: _Optional[str] = ..., after_name: _Optional[str] = ..., limit: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ListListsResponse(_message.Message):
    __slots__ = ("header", "lists")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LISTS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    lists: _containers.RepeatedCompositeFieldContainer[ListInfo]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., lists: _Optional[_Iterable[_Union[ListInfo, _Mapping]]] = ...) -> None: ...

class CreateGroupRequest(_message.Message):
    __slots__ = ("request", "name")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class CreateGroupResponse(_message.Message):
    __slots__ = ("header", "created")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    created: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class DeleteGroupRequest(_message.Message):
    __slots__ = ("request", "name")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteGroupResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class JoinGroupRequest(_message.Message):
    __slots__ = ("request", "name", "member_id", "capabilities")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    member_id: str
    capabilities: bytes
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., member_id: _Optional[str] = ..., capabilities: _Optional[bytes] = ...) -> None: ...

class JoinGroupResponse(_message.Message):
    __slots__ = ("header", "joined")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    JOINED_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    joined: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., joined: _Optional[bool] = ...) -> None: ...

class LeaveGroupRequest(_message.Message):
    __slots__ = ("request", "name", "member_id")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    member_id: str
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., member_id: _Optional[str] = ...) -> None: ...

class LeaveGroupResponse(_message.Message):
    __slots__ = ("header", "left")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    left: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., left: _Optional[bool] = ...) -> None: ...

class UpdateCapabilitiesRequest(_message.Message):
    __slots__ = ("request", "name", "member_id", "capabilities")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    member_id: str
    capabilities: bytes
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., member_id: _Optional[str] = ..., capabilities: _Optional[bytes] = ...) -> None: ...

class UpdateCapabilitiesResponse(_message.Message):
    __slots__ = ("header", "updated")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    updated: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., updated: _Optional[bool] = ...) -> None: ...

class DescribeGroupRequest(_message.Message):
    __slots__ = ("name", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class GroupMember(_message.Message):
    __slots__ = ("member_id", "session_id", "capabilities", "joined_for_ms", "updated_for_ms", "client_name", "client_host", "client_pid")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    JOINED_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    session_id: int
    capabilities: bytes
    joined_for_ms: int
    updated_for_ms: int
    client_name: str
    client_host: str
    client_pid: int
    def __init__(self, member_id: _Optional[str] = ..., session_id: _Optional[int] = ..., capabilities: _Optional[bytes] = ..., joined_for_ms: _Optional[int] = ..., updated_for_ms: _Optional[int] = ..., client_name: _Optional[str] = ..., client_host: _Optional[str] = ..., client_pid: _Optional[int] = ...) -> None: ...

class GroupInfo(_message.Message):
    __slots__ = ("name", "age_ms", "members")
    NAME_FIELD_NUMBER: _ClassVar[int]
    AGE_MS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    age_ms: int
    members: _containers.RepeatedCompositeFieldContainer[GroupMember]
    def __init__(self, name: _Optional[str] = ..., age_ms: _Optional[int] = ..., members: _Optional[_Iterable[_Union[GroupMember, _Mapping]]] = ...) -> None: ...

class DescribeGroupResponse(_message.Message):
    __slots__ = ("header", "group", "revision")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    group: GroupInfo
    revision: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., group: _Optional[_Union[GroupInfo, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ListGroupsRequest(_message.Message):
    __slots__ = ("prefix", "after_name", "limit", "consistency")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    AFTER_NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    after_name: str
    limit: int
    consistency: Consistency
    def __init__(self, prefix: _Optional[str] = ..., after_name: _Optional[str] = ..., limit: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ListGroupsResponse(_message.Message):
    __slots__ = ("header", "groups", "revision")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    groups: _containers.RepeatedCompositeFieldContainer[GroupInfo]
    revision: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[GroupInfo, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class CampaignRequest(_message.Message):
    __slots__ = ("request", "name", "member_id", "wait_ms")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    member_id: str
    wait_ms: int
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ..., member_id: _Optional[str] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class CampaignResponse(_message.Message):
    __slots__ = ("header", "elected", "token", "position")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ELECTED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    elected: bool
    token: int
    position: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., elected: _Optional[bool] = ..., token: _Optional[int] = ..., position: _Optional[int] = ...) -> None: ...

class ResignRequest(_message.Message):
    __slots__ = ("request", "name")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    request: RequestId
    name: str
    def __init__(self, request: _Optional[_Union[RequestId, _Mapping]] = ..., name: _Optional[str] = ...) -> None: ...

class ResignResponse(_message.Message):
    __slots__ = ("header", "was_candidate", "was_leader")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    WAS_CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    WAS_LEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    was_candidate: bool
    was_leader: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., was_candidate: _Optional[bool] = ..., was_leader: _Optional[bool] = ...) -> None: ...

class DescribeElectionRequest(_message.Message):
    __slots__ = ("name", "consistency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    consistency: Consistency
    def __init__(self, name: _Optional[str] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ElectionCandidate(_message.Message):
    __slots__ = ("member_id", "session_id", "token", "for_ms", "client_name", "client_host", "client_pid")
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    FOR_MS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HOST_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PID_FIELD_NUMBER: _ClassVar[int]
    member_id: str
    session_id: int
    token: int
    for_ms: int
    client_name: str
    client_host: str
    client_pid: int
    def __init__(self, member_id: _Optional[str] = ..., session_id: _Optional[int] = ..., token: _Optional[int] = ..., for_ms: _Optional[int] = ..., client_name: _Optional[str] = ..., client_host: _Optional[str] = ..., client_pid: _Optional[int] = ...) -> None: ...

class ElectionInfo(_message.Message):
    __slots__ = ("name", "leader", "candidates")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    name: str
    leader: ElectionCandidate
    candidates: _containers.RepeatedCompositeFieldContainer[ElectionCandidate]
    def __init__(self, name: _Optional[str] = ..., leader: _Optional[_Union[ElectionCandidate, _Mapping]] = ..., candidates: _Optional[_Iterable[_Union[ElectionCandidate, _Mapping]]] = ...) -> None: ...

class DescribeElectionResponse(_message.Message):
    __slots__ = ("header", "election", "revision")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ELECTION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    election: ElectionInfo
    revision: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., election: _Optional[_Union[ElectionInfo, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ListElectionsRequest(_message.Message):
    __slots__ = ("prefix", "after_name", "limit", "consistency")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    AFTER_NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    after_name: str
    limit: int
    consistency: Consistency
    def __init__(self, prefix: _Optional[str] = ..., after_name: _Optional[str] = ..., limit: _Optional[int] = ..., consistency: _Optional[_Union[Consistency, str]] = ...) -> None: ...

class ListElectionsResponse(_message.Message):
    __slots__ = ("header", "elections", "revision")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ELECTIONS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    elections: _containers.RepeatedCompositeFieldContainer[ElectionInfo]
    revision: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., elections: _Optional[_Iterable[_Union[ElectionInfo, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class WatchKey(_message.Message):
    __slots__ = ("kind", "name")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    kind: WatchKind
    name: str
    def __init__(self, kind: _Optional[_Union[WatchKind, str]] = ..., name: _Optional[str] = ...) -> None: ...

class Change(_message.Message):
    __slots__ = ("revision", "kind", "name", "type", "member_id", "session_id", "token", "cause", "capabilities", "first_id", "last_id")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    FIRST_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    revision: int
    kind: WatchKind
    name: str
    type: ChangeType
    member_id: str
    session_id: int
    token: int
    cause: str
    capabilities: bytes
    first_id: int
    last_id: int
    def __init__(self, revision: _Optional[int] = ..., kind: _Optional[_Union[WatchKind, str]] = ..., name: _Optional[str] = ..., type: _Optional[_Union[ChangeType, str]] = ..., member_id: _Optional[str] = ..., session_id: _Optional[int] = ..., token: _Optional[int] = ..., cause: _Optional[str] = ..., capabilities: _Optional[bytes] = ..., first_id: _Optional[int] = ..., last_id: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("keys", "after_revision", "wait_ms")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    AFTER_REVISION_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[WatchKey]
    after_revision: int
    wait_ms: int
    def __init__(self, keys: _Optional[_Iterable[_Union[WatchKey, _Mapping]]] = ..., after_revision: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class WatchResponse(_message.Message):
    __slots__ = ("header", "revision", "changes", "compacted")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    COMPACTED_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    revision: int
    changes: _containers.RepeatedCompositeFieldContainer[Change]
    compacted: bool
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., revision: _Optional[int] = ..., changes: _Optional[_Iterable[_Union[Change, _Mapping]]] = ..., compacted: _Optional[bool] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StateCounts(_message.Message):
    __slots__ = ("sessions", "locks_held", "waiters", "lists", "members", "groups", "group_members", "elections", "semaphores", "permits_held")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    LOCKS_HELD_FIELD_NUMBER: _ClassVar[int]
    WAITERS_FIELD_NUMBER: _ClassVar[int]
    LISTS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    GROUP_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    ELECTIONS_FIELD_NUMBER: _ClassVar[int]
    SEMAPHORES_FIELD_NUMBER: _ClassVar[int]
    PERMITS_HELD_FIELD_NUMBER: _ClassVar[int]
    sessions: int
    locks_held: int
    waiters: int
    lists: int
    members: int
    groups: int
    group_members: int
    elections: int
    semaphores: int
    permits_held: int
    def __init__(self, sessions: _Optional[int] = ..., locks_held: _Optional[int] = ..., waiters: _Optional[int] = ..., lists: _Optional[int] = ..., members: _Optional[int] = ..., groups: _Optional[int] = ..., group_members: _Optional[int] = ..., elections: _Optional[int] = ..., semaphores: _Optional[int] = ..., permits_held: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("header", "node_id", "client_address", "peer_address", "role", "commit_index", "last_contact_ms", "healthy", "version", "counts", "follower_lag", "cluster_version")
    class FollowerLagEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    HEADER_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_CONTACT_MS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    FOLLOWER_LAG_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    node_id: str
    client_address: str
    peer_address: str
    role: Role
    commit_index: int
    last_contact_ms: int
    healthy: bool
    version: str
    counts: StateCounts
    follower_lag: _containers.ScalarMap[str, int]
    cluster_version: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., node_id: _Optional[str] = ..., client_address: _Optional[str] = ..., peer_address: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., commit_index: _Optional[int] = ..., last_contact_ms: _Optional[int] = ..., healthy: _Optional[bool] = ..., version: _Optional[str] = ..., counts: _Optional[_Union[StateCounts, _Mapping]] = ..., follower_lag: _Optional[_Mapping[str, int]] = ..., cluster_version: _Optional[int] = ...) -> None: ...

class ClusterMember(_message.Message):
    __slots__ = ("node_id", "peer_address", "client_address")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    peer_address: str
    client_address: str
    def __init__(self, node_id: _Optional[str] = ..., peer_address: _Optional[str] = ..., client_address: _Optional[str] = ...) -> None: ...

class MembersListRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MembersListResponse(_message.Message):
    __slots__ = ("header", "members")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    members: _containers.RepeatedCompositeFieldContainer[ClusterMember]
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., members: _Optional[_Iterable[_Union[ClusterMember, _Mapping]]] = ...) -> None: ...

class AddMemberRequest(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: ClusterMember
    def __init__(self, member: _Optional[_Union[ClusterMember, _Mapping]] = ...) -> None: ...

class AddMemberResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class RemoveMemberRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class RemoveMemberResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class ForceReleaseRequest(_message.Message):
    __slots__ = ("name", "reason", "token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    token: int
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ..., token: _Optional[int] = ...) -> None: ...

class ForceReleaseResponse(_message.Message):
    __slots__ = ("header", "session_id", "token")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    session_id: int
    token: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., session_id: _Optional[int] = ..., token: _Optional[int] = ...) -> None: ...

class TransferLeadershipRequest(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    def __init__(self, node_id: _Optional[str] = ...) -> None: ...

class TransferLeadershipResponse(_message.Message):
    __slots__ = ("header",)
    HEADER_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ...) -> None: ...

class SaveSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SaveSnapshotResponse(_message.Message):
    __slots__ = ("header", "data", "offset", "total_bytes")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    header: ResponseHeader
    data: bytes
    offset: int
    total_bytes: int
    def __init__(self, header: _Optional[_Union[ResponseHeader, _Mapping]] = ..., data: _Optional[bytes] = ..., offset: _Optional[int] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[ForwardCall]
    def __init__(self, calls: _Optional[_Iterable[_Union[ForwardCall, _Mapping]]] = ...) -> None: ...

class ForwardCall(_message.Message):
    __slots__ = ("call_id", "command", "keep_alives", "read_index")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    KEEP_ALIVES_FIELD_NUMBER: _ClassVar[int]
    READ_INDEX_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    command: bytes
    keep_alives: ForwardKeepAlives
    read_index: ForwardReadIndex
    def __init__(self, call_id: _Optional[int] = ..., command: _Optional[bytes] = ..., keep_alives: _Optional[_Union[ForwardKeepAlives, _Mapping]] = ..., read_index: _Optional[_Union[ForwardReadIndex, _Mapping]] = ...) -> None: ...

class ForwardKeepAlives(_message.Message):
    __slots__ = ("session_ids",)
    SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    session_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, session_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ForwardReadIndex(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForwardResponse(_message.Message):
    __slots__ = ("answers", "leader_now_ms")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    LEADER_NOW_MS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[ForwardAnswer]
    leader_now_ms: int
    def __init__(self, answers: _Optional[_Iterable[_Union[ForwardAnswer, _Mapping]]] = ..., leader_now_ms: _Optional[int] = ...) -> None: ...

class ForwardAnswer(_message.Message):
    __slots__ = ("call_id", "result", "ttls", "read_index", "error", "renewed")
    CALL_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TTLS_FIELD_NUMBER: _ClassVar[int]
    READ_INDEX_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RENEWED_FIELD_NUMBER: _ClassVar[int]
    call_id: int
    result: bytes
    ttls: ForwardTtls
    read_index: int
    error: StreamError
    renewed: bool
    def __init__(self, call_id: _Optional[int] = ..., result: _Optional[bytes] = ..., ttls: _Optional[_Union[ForwardTtls, _Mapping]] = ..., read_index: _Optional[int] = ..., error: _Optional[_Union[StreamError, _Mapping]] = ..., renewed: _Optional[bool] = ...) -> None: ...

class ForwardTtls(_message.Message):
    __slots__ = ("ttl_ms",)
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    ttl_ms: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ttl_ms: _Optional[_Iterable[int]] = ...) -> None: ...
